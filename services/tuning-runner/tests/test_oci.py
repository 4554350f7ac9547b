"""OCI references, docker config auth, adapter images pushed to and pulled from a real registry."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaito_testing.registry import LocalRegistry, RegistryUnavailableError
from tuning_runner.oci.auth import DockerConfig, DockerConfigError
from tuning_runner.oci.client import HttpRegistryClient, RegistryError
from tuning_runner.oci.connect import client_for
from tuning_runner.oci.image import (
    MODEL_NAME_ANNOTATION,
    OCI_CONFIG,
    OCI_LAYER_TAR_GZIP,
    pull_image,
    push_adapter,
)
from tuning_runner.oci.reference import ImageReference, InvalidReferenceError

from .inmemory_registry import InMemoryRegistry
from .tokenauth_registry import TokenAuthRegistry


@pytest.mark.parametrize(
    ("text", "registry", "repository", "reference"),
    [
        ("myregistry.azurecr.io/adapters/phi:v1", "myregistry.azurecr.io", "adapters/phi", "v1"),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", "latest"),
        ("localhost/x", "localhost", "x", "latest"),
        ("busybox", "docker.io", "library/busybox", "latest"),
        ("user/repo:tag", "docker.io", "user/repo", "tag"),
        ("r.io/x@sha256:" + "a" * 64, "r.io", "x", "sha256:" + "a" * 64),
    ],
)
def test_parses_references(text: str, registry: str, repository: str, reference: str) -> None:
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.repository, ref.reference) == (registry, repository, reference)


@pytest.mark.parametrize(
    "text", ["", "http://r.io/x", "r.io/UPPER", "r.io/x:bad tag", "x@sha256:1"]
)
def test_rejects_bad_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        ImageReference.parse(text)


def test_docker_config_forms() -> None:
    auth = base64.b64encode(b"me:secret").decode()
    cfg = DockerConfig.from_json(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": auth},
                    "r.io": {"username": "u", "password": "p"},
                }
            }
        )
    )
    hub = cfg.for_registry("docker.io")
    assert hub is not None and (hub.username, hub.password) == ("me", "secret")
    other = cfg.for_registry("r.io")
    assert other is not None and other.password == "p"
    assert cfg.for_registry("elsewhere.io") is None
    with pytest.raises(DockerConfigError, match="not valid JSON"):
        DockerConfig.from_json("{")
    with pytest.raises(DockerConfigError, match="user:password"):
        DockerConfig.from_json(
            json.dumps({"auths": {"r": {"auth": base64.b64encode(b"x").decode()}}})
        )


def _adapter(dir_: Path) -> Path:
    dir_.mkdir(parents=True)
    (dir_ / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (dir_ / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 300)
    return dir_


def test_push_and_pull_against_the_real_registry(registry: LocalRegistry, tmp_path: Path) -> None:
    source = _adapter(tmp_path / "adapter")
    ref = ImageReference.parse(f"{registry.host}/adapters/tiny:v1")
    docker_config = registry.write_docker_config(tmp_path / "secret" / ".dockerconfigjson")
    with client_for(ref, [docker_config.parent], [], 30) as client:
        pushed = push_adapter(client, ref, source, "phi-4-mini-instruct")
        again = push_adapter(client, ref, source, "phi-4-mini-instruct")
        assert again.manifest_digest == pushed.manifest_digest  # deterministic layer

        manifest_raw, _ = client.get_manifest(ref.repository, "v1")
        manifest = json.loads(manifest_raw)
        assert manifest["annotations"][MODEL_NAME_ANNOTATION] == "phi-4-mini-instruct"
        assert manifest["config"]["mediaType"] == OCI_CONFIG
        assert [layer["mediaType"] for layer in manifest["layers"]] == [OCI_LAYER_TAR_GZIP]
        config = json.loads(client.get_blob(ref.repository, manifest["config"]["digest"]))
        layer = client.get_blob(ref.repository, manifest["layers"][0]["digest"])
        tar_bytes = gzip.decompress(layer)
        assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            names = sorted(m.name for m in tar.getmembers() if m.isfile())
        assert names == ["data/adapter_config.json", "data/adapter_model.safetensors"]

        dest = tmp_path / "mnt" / "adapter" / "tiny"
        files = pull_image(client, ref, dest)
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    for name in files:
        assert (dest / name).read_bytes() == (source / name).read_bytes()


def test_wrong_or_missing_credentials_fail_clearly(registry: LocalRegistry, tmp_path: Path) -> None:
    source = _adapter(tmp_path / "adapter")
    ref = ImageReference.parse(f"{registry.host}/adapters/denied:v1")
    with (
        HttpRegistryClient(ref.registry, None, plain_http=True) as anonymous,
        pytest.raises(RegistryError, match="needs credentials"),
    ):
        push_adapter(anonymous, ref, source, "m")
    bad = DockerConfig.from_json(
        json.dumps({"auths": {registry.host: {"username": registry.username, "password": "nope"}}})
    )
    with (
        HttpRegistryClient(ref.registry, bad.for_registry(registry.host), plain_http=True) as c,
        pytest.raises(RegistryError, match="credentials rejected"),
    ):
        push_adapter(c, ref, source, "m")


def test_pull_of_a_missing_tag_names_it(registry: LocalRegistry, tmp_path: Path) -> None:
    ref = ImageReference.parse(f"{registry.host}/adapters/none:v9")
    docker_config = registry.write_docker_config(tmp_path / "cfg.json")
    with (
        client_for(ref, [docker_config], [], 30) as client,
        pytest.raises(RegistryError, match="HTTP 404"),
    ):
        pull_image(client, ref, tmp_path / "out")
    assert not (tmp_path / "out" / "adapter_config.json").exists()


def test_fake_registry_round_trip(tmp_path: Path) -> None:
    fake = InMemoryRegistry()
    source = _adapter(tmp_path / "adapter")
    ref = ImageReference.parse("r.io/a:v1")
    push_adapter(fake, ref, source, "m")
    assert pull_image(fake, ref, tmp_path / "out") == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[TokenAuthRegistry]:
    reg = TokenAuthRegistry(tmp_path / "token-registry")
    try:
        reg.start()
    except RegistryUnavailableError as err:
        pytest.fail(f"{err} (make pytest installs it through TEST_DEPS)")
    yield reg
    reg.stop()


def test_bearer_token_flow_against_the_real_registry(
    token_registry: TokenAuthRegistry, tmp_path: Path
) -> None:
    """The registry answers with a Bearer challenge; the client takes the docker config's
    credentials to the realm, gets a token for the scope and pushes and pulls with it."""
    source = _adapter(tmp_path / "adapter")
    ref = ImageReference.parse(f"{token_registry.host}/adapters/bearer:v1")
    config = tmp_path / "secret" / ".dockerconfigjson"
    config.parent.mkdir()
    config.write_text(token_registry.docker_config())
    with client_for(ref, [config.parent], [], 30) as client:
        pushed = push_adapter(client, ref, source, "phi-4-mini-instruct")
        dest = tmp_path / "pulled"
        files = pull_image(client, ref, dest)
    assert pushed.manifest_digest.startswith("sha256:")
    for name in files:
        assert (dest / name).read_bytes() == (source / name).read_bytes()
    scopes = [s for q in token_registry.token_requests for s in q.get("scope", [])]
    # The registry's challenge lists the actions in no fixed order (pull,push or push,pull).
    actions = [
        set(scope.rpartition(":")[2].split(","))
        for scope in scopes
        if scope.startswith("repository:adapters/bearer:")
    ]
    assert {"pull", "push"} in actions, scopes
    assert all(q.get("service") == ["kaito-test-registry"] for q in token_registry.token_requests)

    token_registry.token_requests.clear()
    config.write_text(token_registry.docker_config(password="wrong"))
    with (
        client_for(ref, [config.parent], [], 30) as client,
        pytest.raises(RegistryError, match="credentials rejected"),
    ):
        push_adapter(client, ImageReference.parse(f"{token_registry.host}/a/no:v1"), source, "m")
    assert token_registry.token_requests, "the client never asked the token server"
