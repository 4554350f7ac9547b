"""What a real node changes on the host besides its own directories, and how it is undone:
the ``KUBE-*`` iptables chains (kubelet, kube-proxy), the pods' cgroups, the sysctls the pod
network needs, and the machine-wide lock that keeps a second node off the same host."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import TextIO

from kaito_testing.waiting import wait_for

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_IPTABLES = ("iptables", "ip6tables")
_TABLES = ("filter", "nat", "mangle")
SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}


class MachineBusyError(RuntimeError):
    """Another real node holds the machine."""


class MachineLock:
    """An exclusive ``flock`` on ``path``: two nodes would share the ``kubepods`` cgroups, the
    kubelet's and kube-proxy's iptables chains and the image store, and each one's clean-up
    would remove the other's pods."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self, holder: str) -> None:
        """Takes the lock, writing ``holder`` into the file; raises :class:`MachineBusyError`
        naming the current holder when another process has it."""
        if self._handle is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            current = handle.read().strip()
            handle.close()
            raise MachineBusyError(current or "unknown holder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class Sysctls:
    """Sets :data:`SYSCTLS` where they differ and puts the old values back on restore."""

    def __init__(self) -> None:
        self._saved: dict[str, str] = {}

    def set(self) -> None:
        for key, value in SYSCTLS.items():
            path = Path("/proc/sys") / key
            if not path.exists():
                continue
            current = path.read_text().strip()
            if current != value:
                self._saved[key] = current
                path.write_text(value)

    def restore(self) -> None:
        for key, value in self._saved.items():
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / key).write_text(value)
        self._saved.clear()


def _kube_chains(binary: str, table: str) -> list[str]:
    result = subprocess.run(
        [f"{binary}-save", "-t", table], capture_output=True, text=True, check=False
    )
    return [line[1:].split()[0] for line in result.stdout.splitlines() if line.startswith(":KUBE-")]


def kube_proxy_rules() -> list[str]:
    """The ``KUBE-*`` chains (kube-proxy's and the kubelet's) still in iptables."""
    return [
        f"{binary} {table}: {chain}"
        for binary in _IPTABLES
        for table in _TABLES
        for chain in _kube_chains(binary, table)
    ]


def remove_kube_chains() -> None:
    """Removes the ``KUBE-*`` chains the kubelet makes (``KUBE-FIREWALL``, its canaries, the
    iptables hint) and any kube-proxy left: first every rule jumping to them, then the chains."""
    for binary in _IPTABLES:
        for table in _TABLES:
            chains = set(_kube_chains(binary, table))
            if chains:
                _remove_chains(binary, table, chains)


def _remove_chains(binary: str, table: str, chains: set[str]) -> None:
    rules = subprocess.run(
        [binary, "-t", table, "-S"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    for rule in rules:
        parts = shlex.split(rule)
        if parts[:1] == ["-A"] and parts[1] not in chains and "-j" in parts:
            target = parts[parts.index("-j") + 1]
            if target in chains:
                subprocess.run(
                    [binary, "-t", table, "-D", *parts[1:]], capture_output=True, check=False
                )
    for chain in chains:
        subprocess.run([binary, "-t", table, "-F", chain], capture_output=True, check=False)
    for chain in chains:
        subprocess.run([binary, "-t", table, "-X", chain], capture_output=True, check=False)


def cgroups(name: str) -> list[Path]:
    """The cgroup ``name`` in every hierarchy that has it."""
    found = []
    if _CGROUP_ROOT.is_dir():
        for hierarchy in _CGROUP_ROOT.iterdir():
            if (hierarchy / name).is_dir():
                found.append(hierarchy / name)
    return found


def kill_cgroup_processes(name: str) -> int:
    """SIGKILLs every process in the cgroup ``name`` and below (the pods' containers, whose
    shims are gone after a crash); returns how many there were."""
    pids: set[int] = set()
    for top in cgroups(name):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in procs.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        wait_for(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids),
            timeout=15.0,
            what="the pods' processes to exit",
        )
    return len(pids)


def remove_cgroups(name: str) -> None:
    """Removes the cgroup ``name`` in every hierarchy, children first (they must be empty)."""
    for top in cgroups(name):
        folders = sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for folder in [*folders, top]:
            with contextlib.suppress(OSError):
                folder.rmdir()
