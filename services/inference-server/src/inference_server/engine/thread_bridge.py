"""The bridge between the asyncio loop and the engine thread that owns the model.

The loop side submits sequences, cancellations and commands into one locked inbox and wakes the
engine thread; the engine thread hands outputs and command results back only through
`call_soon_threadsafe`, so the loop never blocks on the model. The inbox also counts the requests
waiting for admission (the 429 bound) and those running (stats).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from inference_server.engine.errors import QueueFullError
from inference_server.engine.types import GenerationOutput

Item = GenerationOutput | BaseException
Delivery = list[tuple[asyncio.Queue[Item], Item]]
T = TypeVar("T")


@dataclass
class Command:
    """Work that must run on the engine thread between steps (adapter changes)."""

    action: Callable[[], None]
    future: asyncio.Future[None]


@dataclass
class Taken(Generic[T]):
    """What the engine thread took from the inbox in one go."""

    submitted: list[T]
    cancelled: set[str]
    commands: list[Command]


@dataclass
class _Inbox(Generic[T]):
    """Everything other threads hand to the engine thread, behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)
    submitted: list[T] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    commands: list[Command] = field(default_factory=list)
    waiting: int = 0  # submitted but not yet admitted (read by submit for the 429 bound)
    running: int = 0


class ThreadBridge(Generic[T]):
    def __init__(self) -> None:
        self._inbox: _Inbox[T] = _Inbox()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- asyncio side ------------------------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Outputs go to queues of this loop."""
        self._loop = loop

    @property
    def bound(self) -> bool:
        return self._loop is not None

    def submit(self, item: T, max_queue: int) -> None:
        """Queue `item` for admission, or raise QueueFullError once `max_queue` are waiting."""
        inbox = self._inbox
        with inbox.lock:
            if inbox.waiting >= max_queue:
                raise QueueFullError(
                    f"{inbox.waiting} requests are already waiting (max_queue "
                    f"{max_queue}); retry later"
                )
            inbox.waiting += 1
            inbox.submitted.append(item)
        inbox.wake.set()

    def cancel(self, request_id: str) -> None:
        with self._inbox.lock:
            self._inbox.cancelled.add(request_id)
        self._inbox.wake.set()

    async def command(self, action: Callable[[], None]) -> None:
        """Run `action` on the engine thread between two steps; its exception is raised here."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._inbox.lock:
            self._inbox.commands.append(Command(action, future))
        self._inbox.wake.set()
        await future

    def counts(self) -> tuple[int, int]:
        """(waiting, running) requests."""
        with self._inbox.lock:
            return self._inbox.waiting, self._inbox.running

    def wake(self) -> None:
        self._inbox.wake.set()

    # -- engine thread side ------------------------------------------------------------------
    def take(self) -> Taken[T]:
        inbox = self._inbox
        with inbox.lock:
            submitted, inbox.submitted = inbox.submitted, []
            cancelled, inbox.cancelled = inbox.cancelled, set()
            commands, inbox.commands = inbox.commands, []
            inbox.wake.clear()
        return Taken(submitted, cancelled, commands)

    def sleep(self) -> None:
        """Block until the asyncio side hands something over."""
        self._inbox.wake.wait()
        self._inbox.wake.clear()

    def count(self, *, waiting: int = 0, running: int = 0) -> None:
        """Move the waiting and running counts by the given amounts."""
        with self._inbox.lock:
            self._inbox.waiting += waiting
            self._inbox.running += running

    def drain(self) -> list[T]:
        """Take every submission not yet taken and zero the counts (the engine gives up)."""
        with self._inbox.lock:
            doomed, self._inbox.submitted = self._inbox.submitted, []
            self._inbox.waiting = 0
            self._inbox.running = 0
        return doomed

    def run_command(self, command: Command) -> None:
        loop = self._loop
        assert loop is not None
        try:
            command.action()
        except Exception as exc:
            error = exc
            loop.call_soon_threadsafe(_settle, command.future, error)
        else:
            loop.call_soon_threadsafe(_settle, command.future, None)

    def deliver(self, batch: Delivery) -> None:
        """Put each item on its queue, in order, on the loop's thread."""
        loop = self._loop
        if not batch or loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(_put_all, batch)


async def stream_outputs(
    queue: asyncio.Queue[Item], on_abandon: Callable[[], None]
) -> AsyncGenerator[GenerationOutput, None]:
    """Yield a request's outputs until one is finished; `on_abandon` runs if the consumer
    stops early (or an error is raised through)."""
    finished = False
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            finished = item.finished
            yield item
            if finished:
                return
    finally:
        if not finished:
            on_abandon()


def _put_all(batch: Delivery) -> None:
    for queue, item in batch:
        queue.put_nowait(item)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
