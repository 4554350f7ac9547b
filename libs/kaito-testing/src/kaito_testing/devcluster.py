"""``make cluster-up`` / ``make cluster-down``: the full local control plane for development.

``up`` starts a detached supervisor process that runs a ``full`` :class:`ControlPlane` until it
receives SIGTERM, copies the admin kubeconfig to the requested path and prints the
``export KUBECONFIG=...`` line. Running ``up`` while the cluster answers does nothing but print
that line again. ``down`` stops the supervisor, which stops every component (and the kernel's
parent-death signal takes the components with it should the supervisor be killed).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from kaito_testing.controlplane import ControlPlane, Profile
from kaito_testing.process import Component, run
from kaito_testing.waiting import wait_for

log = logging.getLogger("kaito_testing.devcluster")

PID_FILE = "supervisor.pid"
READY_FILE = "ready"
SUPERVISOR_LOG = "supervisor.log"


def _read_pid(state: Path) -> int | None:
    try:
        return int((state / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive; /proc tells them apart.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _kubectl_answers(state: Path, kubeconfig: Path) -> bool:
    kubectl = (state / "kubectl").resolve()
    if not kubeconfig.exists() or not kubectl.exists():
        return False
    argv = [str(kubectl), "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"]
    return run(argv, check=False, timeout=20).returncode == 0


def up(
    state: Path, kubeconfig: Path, timeout: float, profile: Profile = "full", node_gpus: int = 1
) -> int:
    state = state.resolve()
    kubeconfig = kubeconfig.resolve()
    pid = _read_pid(state)
    if pid is not None and _alive(pid):
        return _already_running(state, kubeconfig, pid)
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    supervisor = _start_supervisor(state, kubeconfig, profile, node_gpus)

    def supervisor_alive() -> None:
        if not supervisor.running():
            raise RuntimeError(f"the cluster supervisor exited with code {supervisor.exit_code()}")

    try:
        wait_for(
            lambda: (state / READY_FILE).exists(),
            timeout=timeout,
            what="the local control plane",
            interval=0.25,
            alive=supervisor_alive,
        )
    except (RuntimeError, TimeoutError) as err:
        print(f"cluster-up failed: {err}\n--- {state / SUPERVISOR_LOG}", file=sys.stderr)
        print((state / SUPERVISOR_LOG).read_text()[-4000:], file=sys.stderr)
        assert supervisor.pid is not None
        _terminate(supervisor.pid, grace=30.0)
        return 1
    print(f"# Local control plane is up (state and logs: {state}).", file=sys.stderr)
    print(f"export KUBECONFIG={kubeconfig}")
    return 0


def _already_running(state: Path, kubeconfig: Path, pid: int) -> int:
    """``up`` while a supervisor runs: print the export line when its cluster answers."""
    if not (state / READY_FILE).exists():
        print(
            f"cluster supervisor {pid} is still starting; wait or `make cluster-down`",
            file=sys.stderr,
        )
        return 1
    if _kubectl_answers(state, kubeconfig):
        print(f"export KUBECONFIG={kubeconfig}")
        return 0
    print(
        f"cluster supervisor {pid} is running but the API server does not answer; "
        "run `make cluster-down` first",
        file=sys.stderr,
    )
    return 1


def _start_supervisor(
    state: Path, kubeconfig: Path, profile: Profile, node_gpus: int = 1
) -> Component:
    """``devcluster serve`` in a session of its own that outlives this process."""
    argv = [
        sys.executable,
        "-m",
        "kaito_testing.devcluster",
        "serve",
        "--state",
        str(state),
        "--kubeconfig",
        str(kubeconfig),
        "--profile",
        profile,
        "--node-gpus",
        str(node_gpus),
    ]
    supervisor = Component("cluster-supervisor", argv, state / SUPERVISOR_LOG)
    supervisor.start(die_with_parent=False)
    assert supervisor.pid is not None
    (state / PID_FILE).write_text(f"{supervisor.pid}\n")
    return supervisor


def _terminate(pid: int, grace: float) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return False


def down(state: Path, kubeconfig: Path | None) -> int:
    state = state.resolve()
    pid = _read_pid(state)
    if pid is None or not _alive(pid):
        print("# No local control plane is running.", file=sys.stderr)
    else:
        graceful = _terminate(pid, grace=60.0)
        print(
            f"# Stopped the local control plane (supervisor {pid}, "
            f"{'graceful' if graceful else 'killed'}).",
            file=sys.stderr,
        )
    for name in (PID_FILE, READY_FILE):
        (state / name).unlink(missing_ok=True)
    if kubeconfig is not None:
        kubeconfig.unlink(missing_ok=True)
    return 0


def serve(state: Path, kubeconfig: Path, profile: Profile = "full", node_gpus: int = 1) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("Received signal; stopping the control plane", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    plane = ControlPlane(profile, state / "work", node_gpus=node_gpus)
    with plane:
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plane.kubeconfig_path, kubeconfig)
        kubeconfig.chmod(0o600)
        (state / "kubectl").unlink(missing_ok=True)
        (state / "kubectl").symlink_to(plane.bin_dir / "kubectl")
        (state / READY_FILE).write_text(f"{plane.server}\n")
        log.info("Serving the local control plane", extra={"server": plane.server})
        while not stop.wait(1.0):
            dead = [name for name, ok in plane.running().items() if not ok]
            if dead:
                log.error("Component exited; stopping", extra={"components": dead})
                break
    (state / READY_FILE).unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devcluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--state", type=Path, default=Path(".dev/cluster"))
        p.add_argument("--kubeconfig", type=Path, default=Path(".dev/kubeconfig"))
        if name == "up":
            p.add_argument("--timeout", type=float, default=180.0)
        if name in ("up", "serve"):
            # node: the full control plane plus one real node (kaito_testing.realnode).
            p.add_argument("--profile", choices=("full", "node"), default="full")
            # How many (fake) GPUs the real node advertises.
            p.add_argument("--node-gpus", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.state, args.kubeconfig, args.timeout, args.profile, args.node_gpus)
    if args.command == "down":
        return down(args.state, args.kubeconfig)
    return serve(args.state.resolve(), args.kubeconfig.resolve(), args.profile, args.node_gpus)


if __name__ == "__main__":
    sys.exit(main())
