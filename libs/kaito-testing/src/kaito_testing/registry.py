"""A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution) on loopback.

Started on a free 127.0.0.1 port with htpasswd (bcrypt) basic auth and filesystem storage in a
scratch directory. `hack/install-registry.sh` installs the binary and `htpasswd`.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from kaito_testing.ports import free_port

REGISTRY_BINARY_CANDIDATES = ("docker-registry", "/usr/bin/docker-registry", "registry")


class RegistryUnavailableError(RuntimeError):
    """The registry binary or htpasswd is missing, or the registry did not become ready."""


def find_registry_binary() -> str | None:
    for candidate in REGISTRY_BINARY_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def bcrypt_htpasswd_line(username: str, password: str) -> str:
    """One htpasswd line with a bcrypt hash, made by apache2-utils' `htpasswd`."""
    binary = shutil.which("htpasswd")
    if binary is None:
        raise RegistryUnavailableError("htpasswd not found; run hack/install-registry.sh")
    out = subprocess.run(
        [binary, "-nbB", "-C", "5", username, password],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@dataclass
class LocalRegistry:
    """A running registry. `host` is `<address>:<port>`; plain HTTP."""

    workdir: Path
    # Where the blobs live (default: under workdir); a lasting directory keeps pushed images
    # across runs, so a second push uploads nothing.
    storage_dir: Path | None = None
    # 127.0.0.1, or the host's address on the node network so that pods and the kubelet reach it.
    address: str = "127.0.0.1"
    username: str = "kaito"
    password: str = "kaito-test-password"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def docker_config(self) -> dict[str, object]:
        """A docker config JSON (a pull/push Secret's `.dockerconfigjson`) for this registry."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"auths": {self.host: {"auth": token}}}

    def write_docker_config(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.docker_config()))
        return path

    def start(self, timeout: float = 30.0) -> LocalRegistry:
        binary = find_registry_binary()
        if binary is None:
            raise RegistryUnavailableError(
                "docker-registry not found; run hack/install-registry.sh"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        storage = self.storage_dir or self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        htpasswd = self.workdir / "htpasswd"
        htpasswd.write_text(bcrypt_htpasswd_line(self.username, self.password) + "\n")
        config = self.workdir / "config.yml"
        # JSON is valid YAML, so no YAML writer is needed here.
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "warn", "accesslog": {"disabled": True}},
                    "storage": {
                        "filesystem": {"rootdirectory": str(storage)},
                        "delete": {"enabled": True},
                    },
                    "http": {"addr": self.host, "secret": "kaito-test-secret"},
                    "auth": {"htpasswd": {"realm": "kaito-test", "path": str(htpasswd)}},
                }
            )
        )
        log = (self.workdir / "registry.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RegistryUnavailableError(
                    f"registry exited with code {self.process.returncode}: {self.log_tail()}"
                )
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=1)
                return
            except urllib.error.HTTPError as err:
                if err.code == 401:  # auth is on: the registry is serving
                    return
                last_error = f"HTTP {err.code}"
            except OSError as err:
                last_error = str(err)
            time.sleep(0.05)
        self.stop()
        raise RegistryUnavailableError(f"registry not ready after {timeout}s: {last_error}")

    def log_tail(self, limit: int = 2000) -> str:
        path = self.workdir / "registry.log"
        return path.read_text(errors="replace")[-limit:] if path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def garbage_collect(self, timeout: float = 600.0) -> str:
        """Deletes the blobs no tagged manifest uses (the registry must be stopped): a lasting
        store would otherwise keep every superseded layer of every run. Returns its output."""
        binary = find_registry_binary()
        config = self.workdir / "config.yml"
        if binary is None or not config.exists():
            return ""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("stop the registry before collecting its garbage")
        result = subprocess.run(
            [binary, "garbage-collect", "--delete-untagged", str(config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"registry garbage-collect failed: {result.stderr.strip()[-500:]}")
        return result.stdout

    def __enter__(self) -> LocalRegistry:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
