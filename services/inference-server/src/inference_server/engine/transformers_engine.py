"""The default engine: transformers models with continuous batching on CPU or GPU.

A dedicated thread owns the model: it loads it (`loader.py`), then runs the batch scheduler's
steps (`scheduler.py`) until the engine stops. The asyncio side only submits, cancels and sends
adapter commands through the bridge (`thread_bridge.py`) and reads the outputs it hands back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Mapping

import torch

from inference_server.engine import adapters as adapter_ops
from inference_server.engine.cpu_threads import CpuSource
from inference_server.engine.detokenizer import IncrementalDetokenizer
from inference_server.engine.errors import (
    AdapterConflictError,
    AdapterNotFoundError,
    EngineNotReadyError,
)
from inference_server.engine.hf_codec import HFTextCodec
from inference_server.engine.loader import LoadedModel, load_model
from inference_server.engine.sampling import RowState
from inference_server.engine.scheduler import BatchScheduler
from inference_server.engine.sequence import Sequence
from inference_server.engine.thread_bridge import ThreadBridge, stream_outputs
from inference_server.engine.types import (
    AdapterInfo,
    EngineStats,
    GenerationOutput,
    GenerationRequest,
    IterationReport,
)
from inference_server.settings import ServerSettings

log = logging.getLogger(__name__)


class TransformersEngine:
    def __init__(
        self,
        settings: ServerSettings,
        environ: Mapping[str, str] | None = None,
        cpu_source: CpuSource | None = None,
    ) -> None:
        self._settings = settings
        self._cpu_source = cpu_source
        self._environ = dict(environ or {})
        self._bridge: ThreadBridge[Sequence] = ThreadBridge()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._not_ready_reason = "Model is loading"
        self._loaded: LoadedModel | None = None
        self._scheduler: BatchScheduler | None = None
        # Called on the engine thread after every step with what the step did (tests, benchmarks).
        self.iteration_observer: Callable[[IterationReport], None] | None = None

    # -- interface -------------------------------------------------------------------------
    @property
    def codec(self) -> HFTextCodec:
        return self._model().codec

    @property
    def cpu_threads(self) -> int:
        """torch's CPU threads as last set by the engine."""
        governor = self._loaded.governor if self._loaded is not None else None
        return governor.threads if governor is not None else torch.get_num_threads()

    @property
    def uses_fast_path(self) -> bool:
        """True while batches run the lean Llama forward (no adapter loaded, known model)."""
        return self._loaded is not None and self._loaded.uses_fast_path

    async def start(self) -> None:
        self._bridge.bind(asyncio.get_running_loop())
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._thread.start()

    async def wait_ready(self, seconds: float) -> None:
        ok = await asyncio.to_thread(self._ready.wait, seconds)
        if not ok or self._loaded is None:
            raise EngineNotReadyError(self._not_ready_reason)

    async def stop(self) -> None:
        self._stopping = True
        self._bridge.wake()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
        log.info("Stopped engine")

    def submit(self, request: GenerationRequest) -> AsyncGenerator[GenerationOutput, None]:
        loaded = self._model()
        if request.adapter is not None and request.adapter not in loaded.adapters:
            raise AdapterNotFoundError(f"adapter {request.adapter!r} is not loaded")
        assert self._bridge.bound
        seq = Sequence(
            request=request,
            queue=asyncio.Queue(),
            row=RowState(request.sampling, list(request.prompt_token_ids), 0),
            detok=IncrementalDetokenizer(
                loaded.codec, request.prompt_token_ids, request.sampling.stop
            ),
        )
        self._bridge.submit(seq, self._settings.max_queue)
        return stream_outputs(seq.queue, lambda: self.cancel(request.request_id))

    def cancel(self, request_id: str) -> None:
        self._bridge.cancel(request_id)

    def stats(self) -> EngineStats:
        loaded, scheduler = self._loaded, self._scheduler
        max_model_len = loaded.max_model_len if loaded else self._settings.max_model_len
        capacity = max(1, self._settings.max_batch_size * max(1, max_model_len))
        cells = scheduler.kv_cells() if scheduler is not None else 0
        waiting, running = self._bridge.counts()
        return EngineStats(
            ready=loaded is not None,
            not_ready_reason="" if loaded is not None else self._not_ready_reason,
            num_running=running,
            num_waiting=waiting,
            kv_cache_usage=min(1.0, cells / capacity),
            max_model_len=max_model_len,
            adapters=tuple(loaded.adapters.values()) if loaded else (),
        )

    async def load_adapter(self, name: str, path: str) -> None:
        loaded = self._model()
        if loaded.merged:
            raise AdapterConflictError("adapters are merged into the base model (merged mode)")
        if name in loaded.adapters:
            raise AdapterConflictError(f"adapter {name!r} is already loaded")
        info = AdapterInfo(name=name, path=path)

        def action() -> None:
            loaded.model = adapter_ops.attach_adapter(loaded.model, info)
            loaded.model.eval()
            loaded.adapters[name] = info
            log.info("Loaded adapter name=%s path=%s", name, path)

        await self._bridge.command(action)

    async def unload_adapter(self, name: str) -> None:
        if self._loaded is None or name not in self._loaded.adapters:
            raise AdapterNotFoundError(f"adapter {name!r} is not loaded")
        loaded = self._loaded

        def action() -> None:
            users = self._scheduler.requests_using(name) if self._scheduler else 0
            if users:
                raise AdapterConflictError(f"adapter {name!r} has {users} requests in flight")
            loaded.model = adapter_ops.detach_adapter(loaded.model, name)
            del loaded.adapters[name]
            log.info("Unloaded adapter name=%s", name)

        await self._bridge.command(action)

    def _model(self) -> LoadedModel:
        if self._loaded is None:
            raise EngineNotReadyError(self._not_ready_reason)
        return self._loaded

    def _observe_iteration(self, report: IterationReport) -> None:
        if self.iteration_observer is not None:
            self.iteration_observer(report)

    # -- engine thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            loaded = load_model(self._settings, self._environ, self._cpu_source)
        except Exception as exc:
            self._not_ready_reason = f"Model failed to load: {exc}"
            log.exception("Failed to load model path=%s", self._settings.model)
            self._ready.set()
            return
        scheduler = BatchScheduler(loaded, self._settings, self._bridge, self._observe_iteration)
        self._scheduler = scheduler
        self._loaded = loaded
        self._ready.set()
        with torch.inference_mode():
            while not self._stopping:
                try:
                    scheduler.step()
                except Exception as exc:
                    log.exception("Engine step failed outside any request; ending every request")
                    scheduler.fail_all(exc)
        scheduler.fail_all(EngineNotReadyError("engine stopped"))
