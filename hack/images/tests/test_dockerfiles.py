"""The four Dockerfiles and docker-compose.test.yml stay in step (no build needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ["workspace-controller", "gpu-provisioner", "inference-server", "tuning-runner"]
ML = ["inference-server", "tuning-runner"]
MODULES = {s: s.replace("-", "_") for s in SERVICES}


def dockerfile(service: str) -> str:
    return (ROOT / "services" / service / "Dockerfile").read_text()


def between(text: str, start: str, end: str) -> str:
    match = re.search(re.escape(start) + r".*?" + re.escape(end), text, re.S)
    assert match, f"markers {start!r} .. {end!r} not found"
    return match.group(0)


def test_shared_stages_are_identical() -> None:
    """Identical stages give identical layers: one build's cache serves the next."""
    blocks = {
        s: between(dockerfile(s), "# ---- shared stages", "# ---- end of shared stages")
        for s in SERVICES
    }
    assert len(set(blocks.values())) == 1, "shared stages differ between Dockerfiles"


def test_ml_images_share_the_torch_stage() -> None:
    blocks = {
        s: between(dockerfile(s), "# ---- shared ML stage", "# ---- end of shared ML stage")
        for s in ML
    }
    assert len(set(blocks.values())) == 1
    # The runtime stages match up to torch's COPY: any earlier difference (a LABEL, an ENV)
    # would give each image a torch layer of its own.
    heads = set()
    for service in ML:
        runtime = dockerfile(service).split("AS runtime", 1)[1]
        head, sep, _ = runtime.partition("COPY --from=torch /opt/torch /opt/torch\n")
        assert sep, f"{service}: no COPY of /opt/torch in the runtime stage"
        assert not re.search(r"^COPY", head, re.M)
        heads.add(head)
    assert len(heads) == 1


@pytest.mark.parametrize("service", ["workspace-controller", "gpu-provisioner"])
def test_controllers_have_no_torch_stage(service: str) -> None:
    text = dockerfile(service)
    assert "AS torch" not in text and "/opt/torch" not in text


@pytest.mark.parametrize("service", SERVICES)
def test_runtime_contract(service: str) -> None:
    text = dockerfile(service)
    assert text.startswith("# syntax=docker/dockerfile:1")
    assert "ARG BASE_IMAGE=debian:bookworm-slim" in text
    assert "FROM ${BASE_IMAGE} AS python" in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert f'ENTRYPOINT ["python", "-m", "{MODULES[service]}"]' in text
    assert "--mount=type=secret,id=ca,required=false" in text
    assert "--mount=type=cache,target=/root/.cache/uv" in text
    # No interpreter or installer downloads: Debian's Python 3.11 and uv from PyPI only.
    assert "uv python install" not in text and "curl" not in text


def test_dockerignore_lets_in_what_the_dockerfiles_copy() -> None:
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    for service in SERVICES:
        for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile(service), re.M):
            for path in source.split():
                generic = re.sub(r"^services/[^/]+/", "services/*/", path).rstrip("/")
                assert path.rstrip("./") in allowed or generic in allowed or path == "./", path
                assert (ROOT / path).exists(), path


def test_compose_file_matches_the_dockerfiles() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.test.yml").read_text())
    services = compose["services"]
    for service in SERVICES:
        spec = services[service]
        assert spec["build"]["context"] == "."
        assert spec["build"]["dockerfile"] == f"services/{service}/Dockerfile"
        assert (ROOT / spec["build"]["dockerfile"]).is_file()
        assert "BASE_IMAGE" in spec["build"]["args"]
        assert spec["image"].endswith(f"/{service}:${{IMAGE_TAG:-dev}}")
        # The images decide their entrypoint and (non-root) user.
        assert "entrypoint" not in spec and "user" not in spec
        exposed = re.findall(r"^EXPOSE (.+)$", dockerfile(service), re.M)[0].split()
        ports = re.findall(r"port=(\d+)", " ".join(spec.get("command", [])))
        if service == "inference-server":
            assert ports == exposed
        health = " ".join(spec.get("healthcheck", {}).get("test", []))
        for port in ports:
            if service != "tuning-runner":
                assert f"127.0.0.1:{port}" in health or port == "9443"
