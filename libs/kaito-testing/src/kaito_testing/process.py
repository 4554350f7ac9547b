"""Child processes of the tests: :func:`run` for a command that finishes, :class:`Component`
for a program that keeps running (a control plane component, a controller, a server).

Each component gets a session of its own (so a terminal's Ctrl-C reaches only the Python
process, which then stops the components in order) and, on Linux, a parent-death signal (so a
crashed or killed launcher takes its components with it instead of leaving them behind).
Output goes to one log file per component.

The kernel sends the parent-death signal when the *thread* that forked the child ends, so
every component is forked by one daemon thread that lives as long as the process: a component
started from a short-lived worker thread (``asyncio.to_thread``) is not killed when that thread
is recycled.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class CommandError(subprocess.CalledProcessError):
    """A command exited non-zero; the message carries its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float | None = 60.0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion, capturing its output as text; raises
    :class:`CommandError` on a non-zero exit unless ``check`` is false."""
    result = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=None if env is None else dict(env),
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandError(result.returncode, list(argv), result.stdout, result.stderr)
    return result


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGKILL it when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _Spawner:
    """A daemon thread that forks every component (see the module docstring)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, spawn: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="controlplane-spawner", daemon=True
                )
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((spawn, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            spawn, future = self._jobs.get()
            try:
                future.set_result(spawn())
            except BaseException as err:
                future.set_exception(err)


_SPAWNER = _Spawner()


class Component:
    """A started component: its process, its command line and its log file.

    ``env`` is added to this process's environment for the child."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, *, die_with_parent: bool = True) -> None:
        """Starts the process, appending its output to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"\n==> {' '.join(self.argv)}\n".encode())
            out.flush()
            preexec: Callable[[], None] | None = (
                _die_with_parent if die_with_parent and sys.platform == "linux" else None
            )
            argv = self.argv
            env = {**os.environ, **self.env} if self.env else None

            def spawn() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=preexec,
                )

            self._process = _SPAWNER.run(spawn) if preexec else spawn()
        log.info("Started component", extra={"component": self.name, "pid": self._process.pid})

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def signal_group(self, sig: signal.Signals) -> None:
        """Sends ``sig`` to the component's whole process group."""
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)

    def wait(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for the process to exit; True when it has."""
        if self._process is None:
            return True
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group, then SIGKILL to whatever is left after ``grace`` seconds."""
        if self._process is None:
            return
        self.signal_group(signal.SIGTERM)
        if not self.wait(grace):
            log.info(
                "Killed component still running after SIGTERM",
                extra={"component": self.name, "grace_s": grace},
            )
        # Kill the group even when the leader exited: it must leave no child behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self.wait(5.0)
        log.info(
            "Stopped component",
            extra={"component": self.name, "exit_code": self._process.returncode},
        )
        self._process = None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the component's log."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])
