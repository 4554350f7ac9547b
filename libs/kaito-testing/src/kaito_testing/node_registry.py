"""The real node pulls the project's images from a registry, as a cluster does.

A registry (htpasswd auth, plain HTTP) listens on the host's address on the node network, with
its blobs in a lasting directory (``~/.cache/kaito-realnode/registry``, or
``$KAITO_REALNODE_REGISTRY``) so that a second run uploads nothing. The node's containerd is told
to use plain HTTP for it (a ``hosts.toml``). The project's images go there with
``make images-push`` (``hack/images/push.sh``), exactly as docs/installation.md tells a user;
pods pull them with a ``kubernetes.io/dockerconfigjson`` pull secret.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kaito_testing.checkout import repo_root
from kaito_testing.kaito_local import registry_secret
from kaito_testing.ports import free_port
from kaito_testing.registry import LocalRegistry

PULL_SECRET = "kaito-registry"
REPO_PATH = "kaito"  # <registry>/kaito/<image>:<tag>, as `make images-push REGISTRY=<host>/kaito`
LOCAL_REPO = "localhost/kaito"  # what `make images` builds
LOCAL_TAG = "dev"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


def registry_store() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("KAITO_REALNODE_REGISTRY") or cache / "kaito-realnode" / "registry")


class ImagePushError(RuntimeError):
    """`make images-push` or a buildah push failed."""


@dataclass
class NodeRegistry:
    """The running registry and where the project's images are in it."""

    registry: LocalRegistry
    authfile: Path
    tag: str = LOCAL_TAG

    @property
    def repo(self) -> str:
        """What the chart's `global.image.registry` is set to."""
        return f"{self.registry.host}/{REPO_PATH}"

    def image(self, name: str) -> str:
        return f"{self.repo}/{name}:{self.tag}"

    def pull_secret(self, namespace: str, name: str = PULL_SECRET) -> str:
        """The pull secret's manifest (YAML) for `namespace`."""
        reg = self.registry
        return registry_secret(name, namespace, reg.host, reg.username, reg.password)

    def keeps(self, ref: str, *, this_run_only: bool) -> bool:
        """Whether the node keeps the image ``ref`` (see ``Containerd.prune_images``): images of
        this registry (of this run's tag only, once the run's pods have pulled theirs) and the
        node's own (``kaito.local/``)."""
        if ref.startswith("kaito.local/"):
            return True
        if not ref.startswith(f"{self.registry.host}/"):
            return False
        return not this_run_only or ref.endswith(f":{self.tag}")

    def push_project_images(self, log: Path) -> str:
        """`make images-push` of everything built; returns what it printed."""
        env = {
            **os.environ,
            "REGISTRY": self.repo,
            "TAG": self.tag,
            "AUTHFILE": str(self.authfile),
            "TLS_VERIFY": "false",
            # zstd: fast to compress on two cores, and containerd unpacks it.
            "COMPRESSION": "zstd",
            "IMAGE_REPO": LOCAL_REPO,
            "IMAGE_TAG": LOCAL_TAG,
        }
        push = repo_root() / "hack" / "images" / "push.sh"
        result = subprocess.run(
            ["bash", str(push)], env=env, capture_output=True, text=True, check=False, timeout=1800
        )
        log.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise ImagePushError(f"make images-push failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def digest(self, name: str) -> str:
        """The digest of `<repo>/<name>:<tag>`'s manifest, as the registry serves it."""
        reg = self.registry
        token = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
        request = urllib.request.Request(
            f"{reg.url}/v2/{REPO_PATH}/{name}/manifests/{self.tag}",
            method="HEAD",
            headers={
                "Authorization": f"Basic {token}",
                "Accept": ", ".join(MANIFEST_TYPES),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return str(resp.headers["Docker-Content-Digest"])

    def push(self, source: str, name: str) -> str:
        """Pushes one more local image (a test's own) as `<repo>/<name>:<tag>`; its digest."""
        digest_file = self.authfile.parent / f"{name}.digest"
        argv = [
            "buildah", "push", "--quiet", "--tls-verify=false", "--compression-format", "zstd",
            "--authfile", str(self.authfile), "--digestfile", str(digest_file),
            source, f"docker://{self.image(name)}",
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1800)
        if result.returncode != 0:
            raise ImagePushError(f"buildah push {source} failed: {result.stderr.strip()}")
        return digest_file.read_text().strip()


# The same port each run when it is free: buildah remembers, per registry host, which compressed
# blob a layer became there, so a second push skips the multi-GiB layers without recompressing.
STABLE_PORT = 5050


def _port(address: str) -> int:
    wanted = int(os.environ.get("KAITO_REALNODE_REGISTRY_PORT") or STABLE_PORT)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Go's listener does: a port in TIME_WAIT from the last run is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, wanted))
        except OSError:
            return free_port(address)
    return wanted


def start_node_registry(address: str, workdir: Path) -> NodeRegistry:
    """A registry on `address` (the node's), with its blobs in the lasting store."""
    registry = LocalRegistry(
        workdir, storage_dir=registry_store(), address=address, port=_port(address)
    )
    registry.start()
    authfile = registry.write_docker_config(workdir / "auth.json")
    return NodeRegistry(registry, authfile)


def content_tag(repo: str = LOCAL_REPO, tag: str = LOCAL_TAG) -> str:
    """A registry tag that changes whenever one of the local images ``<repo>/*:<tag>`` (what
    `make images-push` pushes) does.

    The node's image store lasts across runs and pods pull `IfNotPresent`, so a fixed tag
    (`dev`) would run the image the node pulled in an earlier run. Layers shared with that
    image are not unpacked again."""
    result = subprocess.run(
        ["buildah", "images", "--no-trunc", "--format", "{{.Name}}:{{.Tag}} {{.ID}}",
         "--filter", f"reference={repo}/*:{tag}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    images = sorted(line for line in result.stdout.splitlines() if line.strip())
    return "dev-" + hashlib.sha256("\n".join(images).encode()).hexdigest()[:12]
