"""containerd for the real node: its own config, state directories and socket.

Debian's ``containerd`` (1.6, CRI plugin built in) runs as a child process with every path
under one directory, so it never touches ``/var/lib/containerd`` or ``/run/containerd`` and
can run next to another containerd. The CRI plugin uses runc with the cgroupfs driver, the
sandbox image given here, the CNI configuration directory given here and keeps network
namespaces under its state directory. ``ctr`` (same package) imports images into the
``k8s.io`` namespace, where the CRI plugin finds them.

:meth:`Containerd.remove_everything` kills and deletes every task and container and the shims
that ran them; :func:`unmount_under` lifts every mount left below a directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kaito_testing.process import CommandError, Component, run
from kaito_testing.waiting import wait_for

log = logging.getLogger(__name__)

NAMESPACE = "k8s.io"
START_TIMEOUT_S = 30.0
_CRI = 'plugins."io.containerd.grpc.v1.cri"'


class ContainerdError(RuntimeError):
    """containerd failed to start or a ``ctr`` command failed."""


@dataclass(frozen=True)
class ContainerdPaths:
    """Where one containerd keeps everything: ``base`` holds config, socket and state (what
    dies with the node); ``image_root`` (its "root": content, snapshots, metadata) may live
    elsewhere so that imported images outlive the node."""

    base: Path
    image_root: Path | None = None

    @property
    def root(self) -> Path:
        return self.image_root if self.image_root is not None else self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def socket(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def config(self) -> Path:
        return self.base / "config.toml"

    @property
    def hosts_dir(self) -> Path:
        """Per-registry settings (`<host[:port]>/hosts.toml`), read at each pull."""
        return self.base / "certs.d"


def render_config(
    paths: ContainerdPaths, *, sandbox_image: str, cni_bin_dir: Path, cni_conf_dir: Path
) -> str:
    """The containerd 1.6 (config version 2) configuration of the real node."""
    return f"""version = 2
root = "{paths.root}"
state = "{paths.state}"
oom_score = 0

[grpc]
  address = "{paths.socket}"

[ttrpc]
  address = "{paths.socket}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[{_CRI}]
  sandbox_image = "{sandbox_image}"
  netns_mounts_under_state_dir = true
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
  enable_unprivileged_ports = true
  # This machine withholds CAP_SYS_RESOURCE: oom_score_adj may not go below containerd's own.
  restrict_oom_score_adj = true
  [{_CRI}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    # Pulled layers are kept unpacked only (the registry keeps the compressed blobs): half the
    # disk for the multi-GiB runtime images.
    discard_unpacked_layers = true
    [{_CRI}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{_CRI}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{_CRI}.registry]
    config_path = "{paths.hosts_dir}"
  [{_CRI}.cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{cni_conf_dir}"
    max_conf_num = 1
"""


class Containerd:
    """One containerd process and the ``ctr`` commands against it."""

    def __init__(self, paths: ContainerdPaths, log_path: Path) -> None:
        self.paths = paths
        self._component = Component(
            "containerd", ["containerd", "--config", str(paths.config)], log_path
        )

    @property
    def endpoint(self) -> str:
        """The CRI endpoint the kubelet dials."""
        return f"unix://{self.paths.socket}"

    def write_config(self, *, sandbox_image: str, cni_bin_dir: Path, cni_conf_dir: Path) -> None:
        self.paths.base.mkdir(parents=True, exist_ok=True)
        self.paths.config.write_text(
            render_config(
                self.paths,
                sandbox_image=sandbox_image,
                cni_bin_dir=cni_bin_dir,
                cni_conf_dir=cni_conf_dir,
            )
        )

    def trust_plain_http(self, host: str) -> None:
        """Pull from `host` (`address:port`) over plain HTTP, as a node with an insecure
        registry mirror configured would (the tests' registry has no TLS)."""
        directory = self.paths.hosts_dir / host
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text(
            f'server = "http://{host}"\n\n'
            f'[host."http://{host}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
        )

    def start(self) -> None:
        """Starts containerd and waits until ``ctr version`` answers."""
        with contextlib.suppress(FileNotFoundError):
            self.paths.socket.unlink()
        self._component.start()
        wait_for(
            self._answers,
            timeout=START_TIMEOUT_S,
            what="containerd to answer on its socket",
            interval=0.2,
            alive=self._check_alive,
        )

    def running(self) -> bool:
        return self._component.running()

    def stop(self) -> None:
        self._component.stop(grace=10.0)

    def log_tail(self, lines: int = 40) -> str:
        return self._component.log_tail(lines)

    def _check_alive(self) -> None:
        if not self._component.running():
            raise ContainerdError(
                f"containerd exited with code {self._component.exit_code()}:\n"
                f"{self._component.log_tail(30)}"
            )

    def _answers(self) -> bool:
        if not self.paths.socket.exists():
            return False
        result = subprocess.run(
            ["ctr", "--address", str(self.paths.socket), "version"],
            capture_output=True,
            check=False,
            timeout=10,
        )
        return result.returncode == 0

    def ctr_argv(self) -> list[str]:
        """``ctr`` against this containerd, in the ``k8s.io`` namespace."""
        return ["ctr", "--address", str(self.paths.socket), "--namespace", NAMESPACE]

    def ctr(self, *args: str, timeout: float = 120.0) -> str:
        """Runs ``ctr`` in the ``k8s.io`` namespace; returns its stdout."""
        argv = [*self.ctr_argv(), *args]
        try:
            return run(argv, timeout=timeout).stdout
        except CommandError as err:
            raise ContainerdError(f"{' '.join(argv)} failed: {err.stderr.strip()}") from err

    def import_image(self, archive: Path) -> None:
        """Imports an OCI or docker archive into the ``k8s.io`` namespace (CRI sees it)."""
        self.ctr("images", "import", "--no-unpack=false", str(archive), timeout=900.0)
        log.info("Imported image archive", extra={"archive": str(archive)})

    def image_names(self) -> list[str]:
        return [line for line in self.ctr("images", "ls", "-q").splitlines() if line]

    def image_digests(self) -> dict[str, str]:
        """Every image reference in the ``k8s.io`` namespace and its manifest digest."""
        lines = self.ctr("images", "ls").splitlines()[1:]
        return {parts[0]: parts[2] for parts in (line.split() for line in lines) if len(parts) > 2}

    def prune_images(self, keep: Callable[[str], bool]) -> list[str]:
        """Deletes the images whose references ``keep`` refuses, and their layers.

        The image store lasts across runs (a pull unpacks only the layers that changed), so
        without this every registry port and every superseded build would stay on disk (the
        CRI's ``@sha256`` and image-id references of a kept image stay too). Returns the
        references deleted."""
        refs = self.image_digests()
        kept = {digest for ref, digest in refs.items() if keep(ref)}
        stale = sorted(
            ref
            for ref, digest in refs.items()
            if not keep(ref)
            and not (digest in kept and (ref.startswith("sha256:") or "@sha256:" in ref))
        )
        for ref in stale:
            with contextlib.suppress(ContainerdError):
                self.ctr("images", "rm", "--sync", ref, timeout=300.0)
        if stale:
            log.info("Deleted stale images from the node", extra={"count": len(stale)})
        return stale

    def container_ids(self) -> list[str]:
        return [line for line in self.ctr("containers", "ls", "-q").splitlines() if line]

    def sandbox_ids(self) -> list[str]:
        out = self.ctr("containers", "ls", "-q", 'labels."io.cri-containerd.kind"==sandbox')
        return [line for line in out.splitlines() if line]

    def network_namespace(self, container_id: str) -> str:
        """The path of a sandbox's network namespace ("" when it has none or it is gone)."""
        info = json.loads(self.ctr("containers", "info", container_id))
        namespaces = info.get("Spec", {}).get("linux", {}).get("namespaces", [])
        for namespace in namespaces:
            if namespace.get("type") == "network":
                path = str(namespace.get("path", ""))
                return path if path and Path(path).exists() else ""
        return ""

    def task_ids(self) -> list[str]:
        lines = self.ctr("tasks", "ls").splitlines()[1:]
        return [line.split()[0] for line in lines if line.strip()]

    def remove_everything(self) -> list[str]:
        """Kills and deletes every task and container (sandboxes included); returns their ids.

        The caller tears the sandboxes' networks down first (the CNI plugins need the ids)."""
        ids = self.container_ids()
        with contextlib.suppress(ContainerdError):
            self._remove_tasks()
        for container in ids:
            with contextlib.suppress(ContainerdError):
                self.ctr("containers", "delete", container)
        return ids

    def _remove_tasks(self) -> None:
        for task in self.task_ids():
            with contextlib.suppress(ContainerdError):
                self.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task)
        for task in self.task_ids():
            with contextlib.suppress(ContainerdError):
                self.ctr("tasks", "delete", "--force", task)


def shim_pids(paths: ContainerdPaths) -> list[int]:
    """Process ids of the runc shims this containerd started that still run (a shim names
    its containerd's socket on its command line)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _is_shim_of(int(proc.name), paths):
            pids.append(int(proc.name))
    return pids


def _is_shim_of(pid: int, paths: ContainerdPaths) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        bool(cmdline) and b"containerd-shim" in cmdline[0] and str(paths.socket).encode() in cmdline
    )


def kill_shims(paths: ContainerdPaths) -> list[int]:
    """SIGKILLs the shims (and so their containers) left by this containerd; returns their pids."""
    killed = []
    for pid in shim_pids(paths):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    if killed:
        wait_for(
            lambda: not any(_is_shim_of(pid, paths) for pid in killed),
            timeout=15.0,
            what="the killed containerd shims to exit",
        )
    return killed


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory``, deepest first."""
    prefix = str(directory.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_under(directory: Path) -> list[Path]:
    """Unmounts every mount at or below ``directory`` (lazily when busy); returns them."""
    lifted = []
    for _ in range(5):
        points = mounts_under(directory)
        if not points:
            break
        for point in points:
            result = subprocess.run(["umount", str(point)], capture_output=True, check=False)
            if result.returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
            lifted.append(point)
    return lifted
