"""The local Hugging Face hub answers the real huggingface_hub client as the hub does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from kaito_common.presets import default_catalog
from kaito_testing.hfhub import LocalHub, serve_preset
from kaito_testing.tiny_model import tiny_model_dir

PRESET = "phi-3-mini-128k-instruct"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def phi3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(
        tmp_path_factory, arch="phi3", long_rope=True, hidden_size=32, num_layers=1, num_heads=2
    )


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub() as started:
        yield started


def test_snapshot_download_through_hf_endpoint_gets_the_preset_model(
    hub: LocalHub, phi3_dir: Path, tmp_path: Path
) -> None:
    served = serve_preset(hub, PRESET, phi3_dir)
    source = default_catalog().preset(PRESET)
    assert source is not None
    assert (served.repo_id, served.revision) == (source.source.repo, source.source.revision)
    dest = tmp_path / "snapshot"
    script = (
        "import sys; from huggingface_hub import snapshot_download; "
        "print(snapshot_download(sys.argv[1], revision=sys.argv[2], local_dir=sys.argv[3]))"
    )
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-c", script, served.repo_id, served.revision, str(dest)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (dest / name).read_bytes() == (phi3_dir / name).read_bytes()
    # At a pinned commit the client lists the tree, then asks each file's metadata and body.
    paths = [(r.method, r.path) for r in hub.requests if "agent-harnesses" not in r.path]
    assert ("GET", f"/api/models/{served.repo_id}/tree/{served.commit}") in paths
    assert ("HEAD", f"/{served.repo_id}/resolve/{served.commit}/config.json") in paths

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(dest)
    assert type(model).__name__ == "Phi3ForCausalLM"
    assert model.config.rope_parameters["rope_type"] == "longrope"
    assert model.config.max_position_embeddings == 131072


def test_a_branch_resolves_through_the_model_info(hub: LocalHub, tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.json").write_text("{}")
    commit = hub.add_repo("org/model", tmp_path / "repo")
    api = HfApi(endpoint=hub.url, token=False)
    info = api.model_info("org/model", files_metadata=True)
    assert info.sha == commit and info.siblings is not None
    assert [(s.rfilename, s.size) for s in info.siblings] == [("config.json", 2)]
    snapshot_download("org/model", local_dir=tmp_path / "out", endpoint=hub.url, token=False)
    assert (tmp_path / "out" / "config.json").read_text() == "{}"
    assert any(r.path == "/api/models/org/model/revision/main" for r in hub.requests)


def test_a_second_download_fetches_nothing(hub: LocalHub, phi3_dir: Path, tmp_path: Path) -> None:
    served = serve_preset(hub, PRESET, phi3_dir)
    dest = tmp_path / "snapshot"
    snapshot_download(served.repo_id, revision=served.commit, local_dir=dest, endpoint=hub.url)
    assert hub.bytes_served(served.repo_id) == sum(
        p.stat().st_size for p in phi3_dir.iterdir() if p.is_file()
    )
    hub.reset_counters()
    snapshot_download(served.repo_id, revision=served.commit, local_dir=dest, endpoint=hub.url)
    assert hub.file_requests(served.repo_id) == []


def test_gated_repository_needs_a_token(hub: LocalHub, phi3_dir: Path, tmp_path: Path) -> None:
    served = serve_preset(hub, PRESET, phi3_dir, gated=True, tokens=["hf_granted"])
    hub.add_token("hf_other")
    with pytest.raises(GatedRepoError) as no_token:
        hf_hub_download(served.repo_id, "config.json", revision=served.commit,
                        local_dir=tmp_path / "a", endpoint=hub.url, token=False)  # fmt: skip
    assert no_token.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as not_granted:
        hf_hub_download(served.repo_id, "config.json", revision=served.commit,
                        local_dir=tmp_path / "b", endpoint=hub.url, token="hf_other")  # fmt: skip
    assert not_granted.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as invalid:
        HfApi(endpoint=hub.url).model_info(served.repo_id, token="hf_forged")
    assert invalid.value.response.status_code == 401
    path = snapshot_download(served.repo_id, revision=served.commit, local_dir=tmp_path / "c",
                             endpoint=hub.url, token="hf_granted")  # fmt: skip
    assert json.loads((Path(path) / "config.json").read_text())["model_type"] == "phi3"


def test_unknown_repository_revision_and_file(hub: LocalHub, tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.json").write_text("{}")
    commit = hub.add_repo("org/model", tmp_path / "repo", commit="c" * 40)
    api = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/missing", revision=commit)
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/model", revision="d" * 40)
    with pytest.raises(RevisionNotFoundError):
        list(api.list_repo_tree("org/model", revision="d" * 40))
    with pytest.raises(Exception, match="Entry Not Found"):
        hf_hub_download("org/model", "missing.json", revision=commit,
                        local_dir=tmp_path / "out", endpoint=hub.url, token=False)  # fmt: skip


def test_no_xet_headers_so_the_client_uses_plain_http(hub: LocalHub, tmp_path: Path) -> None:
    import httpx2

    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "model.safetensors").write_bytes(b"x" * 100)
    commit = hub.add_repo("org/model", tmp_path / "repo")
    head = httpx2.head(f"{hub.url}/org/model/resolve/{commit}/model.safetensors")
    assert head.status_code == 200 and head.headers["X-Repo-Commit"] == commit
    assert head.headers["Content-Length"] == "100"
    assert len(head.headers["ETag"].strip('"')) == 64  # the LFS sha256
    assert not [h for h in head.headers if h.lower().startswith("x-xet")]
    tree = httpx2.get(f"{hub.url}/api/models/org/model/tree/{commit}").json()
    assert "xetHash" not in tree[0] and tree[0]["lfs"]["size"] == 100


def test_an_interrupted_file_is_resumed_with_a_range_request(hub: LocalHub, tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    blob = os.urandom(24 * MIB + 5)
    (tmp_path / "repo" / "model.safetensors").write_bytes(blob)
    commit = hub.add_repo("org/big", tmp_path / "repo")
    hub.interrupt("org/big", "model.safetensors", after_bytes=15 * MIB)
    path = hf_hub_download("org/big", "model.safetensors", revision=commit,
                           local_dir=tmp_path / "out", endpoint=hub.url, token=False)  # fmt: skip
    assert Path(path).read_bytes() == blob
    first, second = hub.file_requests("org/big", "model.safetensors")
    assert first.body_bytes == 15 * MIB and first.range is None
    # huggingface_hub keeps whole 10 MiB chunks and asks for the rest.
    assert second.status == 206 and second.range == f"bytes={10 * MIB}-"
    assert second.body_bytes == len(blob) - 10 * MIB
