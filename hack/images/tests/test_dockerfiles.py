"""The one Dockerfile (a target per image) and docker-compose.test.yml stay in step (no build
needed)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ["workspace-controller", "gpu-provisioner", "inference-server", "tuning-runner"]
ML = ["inference-server", "tuning-runner"]
MODULES = {s: s.replace("-", "_") for s in SERVICES}


DOCKERFILE = ROOT / "hack" / "images" / "Dockerfile"
IMAGES = [*SERVICES, "inference-server-vllm"]


def dockerfile_text() -> str:
    return DOCKERFILE.read_text()


def stages() -> dict[str, str]:
    """Stage name -> its text (from its FROM line to the next FROM)."""
    parts = re.split(r"^(?=FROM )", dockerfile_text(), flags=re.M)
    found: dict[str, str] = {}
    for part in parts[1:]:
        match = re.match(r"FROM \S+ AS (\S+)", part)
        assert match, part.splitlines()[0]
        found[match.group(1)] = part
    return found


def stage_chain(name: str) -> list[str]:
    """The stage and every stage it builds on (FROM), nearest first."""
    all_stages = stages()
    chain = [name]
    while True:
        parent = re.match(r"FROM (\S+)", all_stages[chain[-1]])
        assert parent
        if parent.group(1) not in all_stages:
            return chain
        chain.append(parent.group(1))


def dockerfile(image: str) -> str:
    """The instructions that make one image's final stage: its stage and those below it."""
    return "".join(stages()[s] for s in reversed(stage_chain(image)))


def between(text: str, start: str, end: str) -> str:
    match = re.search(re.escape(start) + r".*?" + re.escape(end), text, re.S)
    assert match, f"markers {start!r} .. {end!r} not found"
    return match.group(0)


def test_one_dockerfile_with_a_target_per_image() -> None:
    """One template instead of a copy per service: every image is a target of it."""
    assert not list((ROOT / "services").glob("*/Dockerfile"))
    assert not list((ROOT / "services").glob("*/*/Dockerfile"))
    names = stages()
    for image in IMAGES:
        assert image in names, f"no stage {image}"
    assert set(stage_chain("workspace-controller")) >= {"python", "controller-runtime"}


def test_ml_images_share_the_torch_layer() -> None:
    """Both ML images copy the same torch stage on the same base: one shared layer."""
    for service in ML:
        assert stage_chain(service)[1:] == ["ml-runtime", "ml-base", "python"]
    runtime = stages()["ml-runtime"]
    head, sep, _ = runtime.partition("COPY --from=torch /opt/torch /opt/torch\n")
    assert sep and not re.search(r"^COPY", head.split("\n", 1)[1], re.M)


@pytest.mark.parametrize("service", ["workspace-controller", "gpu-provisioner"])
def test_controllers_have_no_torch(service: str) -> None:
    text = dockerfile(service)
    assert "/opt/torch" not in text
    assert "torch must not be in a controller image" in text


@pytest.mark.parametrize("image", IMAGES)
def test_runtime_contract(image: str) -> None:
    whole = dockerfile_text()
    assert whole.startswith("# syntax=docker/dockerfile:1")
    assert "ARG BASE_IMAGE=debian:bookworm-slim" in whole
    assert "FROM ${BASE_IMAGE} AS python" in whole
    text = dockerfile(image)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    module = MODULES.get(image, "inference_server")
    assert f'ENTRYPOINT ["python", "-m", "{module}"]' in stages()[image]
    assert "--mount=type=secret,id=ca,required=false" in whole
    assert "--mount=type=cache,target=/root/.cache/uv" in whole
    # No interpreter or installer downloads: Debian's Python 3.11 and uv from PyPI only.
    assert "uv python install" not in whole and "curl" not in whole


def test_build_script_builds_each_image_as_its_target() -> None:
    script = (ROOT / "hack" / "images" / "build.sh").read_text()
    assert '--build-arg "SERVICE=$svc" --target "$svc"' in script
    assert "-f hack/images/Dockerfile" in script


def test_dockerignore_lets_in_what_the_dockerfiles_copy() -> None:
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    text = re.sub(r"\\\n\s*", " ", dockerfile_text())
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in source.split():
            path = path.replace("${SERVICE}", "inference-server")
            generic = re.sub(r"^services/[^/]+/", "services/*/", path).rstrip("/")
            matched = any(fnmatch.fnmatch(path.rstrip("/"), rule) for rule in allowed)
            assert matched or generic in allowed or path == "./", path
            assert (ROOT / path).exists(), path


def test_compose_file_matches_the_dockerfiles() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.test.yml").read_text())
    services = compose["services"]
    for service in SERVICES:
        spec = services[service]
        assert spec["build"]["context"] == "."
        assert spec["build"]["dockerfile"] == "hack/images/Dockerfile"
        assert spec["build"]["target"] == service
        assert spec["build"]["args"]["SERVICE"] == service
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
