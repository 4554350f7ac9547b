"""What both forms of `make demo` share: the state directory, timed output, detached processes
recorded by pid, the local control plane, and `make demo-down`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kaito_testing.kaito_local import REPO, Cluster, HostProcess

STATE = REPO / ".dev" / "demo"
KUBECONFIG = STATE / "kubeconfig"
NAMESPACE = "kaito-demo"
SEED_PROMPT = "What is Kubernetes?"
START = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


def python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def remember(name: str, pid: int) -> None:
    (STATE / f"{name}.pid").write_text(str(pid))


def spawn_detached(proc: HostProcess) -> None:
    """Start a process that outlives this script (own session), and record its pid."""
    proc.start()
    assert proc.pid is not None
    remember(proc.name, proc.pid)


def devcluster(action: str, *extra: str) -> str:
    """`kaito_testing.devcluster up|down`; returns what it printed."""
    result = subprocess.run(
        [python(), "-m", "kaito_testing.devcluster", action,
         "--state", str(STATE / "cluster"), "--kubeconfig", str(KUBECONFIG), *extra],
        check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = [line.lstrip("# ") for line in result.stdout.splitlines() if line.startswith("#")]
    return " ".join(lines) or f"devcluster {action} finished"


def condition(cluster: Cluster, name: str, type_: str) -> str:
    out = cluster.kubectl(
        "get", "workspace", name, "-n", NAMESPACE, "-o",
        f'jsonpath={{.status.conditions[?(@.type=="{type_}")].status}}', check=False,
    )  # fmt: skip
    return out.strip()


def down() -> None:
    """Stop every process `up` recorded, then the control plane."""
    for pid_file in sorted(STATE.glob("*.pid")):
        pid = int(pid_file.read_text())
        if not _alive(pid):
            pid_file.unlink()
            continue
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
        pid_file.unlink()
        say(f"Stopped {pid_file.stem} (pid {pid})")
    if (STATE / "cluster").exists():
        say(devcluster("down"))


def _signal(pid: int, sig: int) -> None:
    """The process's own group when it leads one (the controllers), else the process alone."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def run_demo(up: object, description: str) -> None:
    """`up` (default) or `down` from the command line; on failure, the logs and a clean stop."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("action", nargs="?", choices=["up", "down"], default="up")
    action = parser.parse_args().action
    if action == "down":
        down()
        return
    try:
        assert callable(up)
        up()
    except BaseException:
        say("The demo failed; logs are in " + str(STATE) + ". Stopping what it started.")
        for log in sorted(STATE.glob("*.log")):
            print(f"--- {log.name} (last lines) ---\n{log.read_text()[-2000:]}", flush=True)
        down()
        raise
