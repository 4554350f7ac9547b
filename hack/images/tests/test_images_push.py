"""`make images-push` (hack/images/push.sh) against a real registry with htpasswd auth.

The images pushed are tiny ones the test builds from scratch under a local name of its own
(`IMAGE_REPO`), so it needs neither the 6 GB images nor `make images`: the four service names and
a weights image, all one small layer. Each is checked through the registry's API with the
credentials; wrong credentials and unbuilt images must fail with a message saying so.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaito_testing.registry import LocalRegistry, RegistryUnavailableError

from .conftest import DRIVER, ROOT, SERVICES, buildah

LOCAL_REPO = "localhost/kaito-push-test"
LOCAL_TAG = "test"
MODEL_IMAGE = "kaito-model-test-tiny-llama"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """One image of one small file, tagged as the four services and a weights image."""
    payload = tmp_path_factory.mktemp("payload") / "hello.txt"
    payload.write_text("kaito images-push test\n")
    container = buildah("from", "scratch").stdout.strip()
    names = [*SERVICES, MODEL_IMAGE]
    local = [f"{LOCAL_REPO}/{name}:{LOCAL_TAG}" for name in names]
    try:
        buildah("copy", container, str(payload), "/hello.txt")
        buildah("config", "--user", "65532:65532", container)
        buildah("commit", "--quiet", "--format", "oci", container, local[0])
        for name in local[1:]:
            buildah("tag", local[0], name)
    finally:
        buildah("rm", container)
    yield names
    buildah("rmi", *local)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    try:
        with LocalRegistry(tmp_path_factory.mktemp("registry")) as running:
            yield running
    except RegistryUnavailableError as err:
        pytest.fail(f"{err} (`make install-registry`)")


def push(
    registry: LocalRegistry,
    authfile: Path,
    *,
    repo: str = LOCAL_REPO,
    tag: str = "1.0.0",
    compression: str = "",
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REGISTRY": f"{registry.host}/team/kaito",
        "TAG": tag,
        "AUTHFILE": str(authfile),
        "TLS_VERIFY": "false",
        "IMAGE_REPO": repo,
        "IMAGE_TAG": LOCAL_TAG,
        "KAITO_BUILDAH_DRIVER": DRIVER,
        "COMPRESSION": compression,
    }
    return subprocess.run(
        ["bash", str(ROOT / "hack" / "images" / "push.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def manifest(registry: LocalRegistry, name: str, tag: str) -> tuple[dict[str, object], str]:
    """(manifest, digest) of <registry>/team/kaito/<name>:<tag>, read with the credentials."""
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    request = urllib.request.Request(
        f"{registry.url}/v2/team/kaito/{name}/manifests/{tag}",
        headers={"Authorization": f"Basic {token}", "Accept": OCI_MANIFEST},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read()), response.headers["Docker-Content-Digest"]


def layer_types(found: dict[str, object]) -> list[str]:
    layers = found["layers"]
    assert isinstance(layers, list)
    return [str(layer["mediaType"]) for layer in layers]


def test_pushes_every_built_image_to_the_registry_with_the_credentials(
    tiny_images: list[str], registry: LocalRegistry, tmp_path: Path
) -> None:
    authfile = registry.write_docker_config(tmp_path / "config.json")
    result = push(registry, authfile)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" -> ") == len(tiny_images), result.stdout  # each once
    for name in tiny_images:
        dest = f"{registry.host}/team/kaito/{name}:1.0.0"
        assert f"-> {dest}" in result.stdout, result.stdout
        found, digest = manifest(registry, name, "1.0.0")
        assert found["mediaType"] == OCI_MANIFEST
        assert layer_types(found) == ["application/vnd.oci.image.layer.v1.tar+gzip"]
        assert digest.startswith("sha256:") and digest in result.stdout
    assert f"--set global.image.registry={registry.host}/team/kaito" in result.stdout
    # Without credentials the registry answers 401: it is not open to anyone.
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(
            f"{registry.url}/v2/team/kaito/workspace-controller/manifests/1.0.0", timeout=10
        )
    assert denied.value.code == 401


def test_zstd_compression(tiny_images: list[str], tmp_path: Path) -> None:
    # A registry of its own: one that holds a layer gzipped already gets that blob reused.
    with LocalRegistry(tmp_path / "registry") as fresh:
        authfile = fresh.write_docker_config(tmp_path / "config.json")
        result = push(fresh, authfile, tag="zstd", compression="zstd")
        assert result.returncode == 0, result.stderr
        found, _ = manifest(fresh, tiny_images[0], "zstd")
    assert layer_types(found) == ["application/vnd.oci.image.layer.v1.tar+zstd"]


def test_wrong_credentials_fail_clearly(
    tiny_images: list[str], registry: LocalRegistry, tmp_path: Path
) -> None:
    token = base64.b64encode(f"{registry.username}:wrong-password".encode()).decode()
    authfile = tmp_path / "wrong.json"
    authfile.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    result = push(registry, authfile, tag="wrong")
    assert result.returncode != 0
    assert f"the registry refused the credentials in {authfile}" in result.stderr, result.stderr
    with pytest.raises(urllib.error.HTTPError) as missing:
        manifest(registry, tiny_images[0], "wrong")
    assert missing.value.code == 404


def test_unbuilt_images_and_bad_settings_fail_before_pushing(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    authfile = registry.write_docker_config(tmp_path / "config.json")
    result = push(registry, authfile, repo="localhost/kaito-push-test-nothing-built")
    assert result.returncode != 0
    assert "not built: localhost/kaito-push-test-nothing-built/workspace-controller:test" in (
        result.stderr
    )
    assert "make images" in result.stderr
    env = {**os.environ, "REGISTRY": "", "KAITO_BUILDAH_DRIVER": DRIVER}
    script = str(ROOT / "hack" / "images" / "push.sh")
    no_registry = subprocess.run(
        ["bash", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert no_registry.returncode != 0 and "REGISTRY is required" in no_registry.stderr
    env["REGISTRY"] = "https://registry.example/kaito"
    scheme = subprocess.run(
        ["bash", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert scheme.returncode != 0 and "without a scheme" in scheme.stderr
