"""One ``predict`` instance's model slots: blue and green, each an ONNX Runtime session.

The live pointer (``shared.serving.pointer.LivePointer``, read through a
``LivePointerStore``) says which slot serves which version. An instance keeps its own copy of
the pointer and follows it:

* **Re-read when old.** A request whose instance's copy is older than ``max_age_s``
  (``SHOPML_POINTER_MAX_AGE_SECONDS``) re-reads it before answering (``follow``); concurrent
  requests share one read. This is the guarantee, because Cloud Run may give an instance no CPU
  between requests. A request on a copy past half that age starts the re-read in the background
  and answers at once, so under steady traffic no request waits for a read. A snapshot
  listener (``LivePointerStore.watch``), where the store has one, applies changes as they happen
  on instances that keep their CPU. A read that fails or takes longer than ``read_timeout_s``
  leaves the copy as it was (answers keep coming; the next request tries again).
* **Load off the request path, switch when ready.** A version not yet in its slot is loaded by
  a background thread (files from the object store, one ``InferenceSession`` per slot and
  version, created once); requests keep the model they had until the new one is complete, then
  one reference assignment switches them. Only an instance with no model at all (cold start)
  waits for its first load, whether its own read started it or the listener did. A rollback to
  the version still loaded in the other slot is a switch alone, no load.
* **One version per answer.** A request takes ``current()`` once and uses that model for every
  item; a switch in between changes the next request, never this one.

ONNX Runtime threads: ``threads`` intra-op threads per session (``SHOPML_PREDICT_ONNX_THREADS``,
default 1: a request is a few hundred rows at most, where more threads cost more in handoff
than they save; bench/predict_bench.py measures it), one inter-op thread, sequential execution.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.errors import PermanentError
from shared.logs import StructuredLogger
from shared.ports import LivePointerStore, ObjectStore
from shared.registry import CARD_FILE, MODEL_FILE
from shared.serving.forecast import ModelSpec
from shared.serving.pointer import LivePointer, Slot
from shared.settings import Settings

INPUT_NAME = "features"  # shared.training.export.INPUT_NAME (the trainer's ONNX input)
RETRY_LOAD_AFTER_S = 5.0
# A request on a copy older than this share of ``max_age_s`` starts a re-read in the background
# without waiting for it: under steady traffic the copy never reaches ``max_age_s``, so no request
# waits for a pointer read (one every ~2 s stalled the requests queued behind it: the p99 tail).
REFRESH_AHEAD = 0.5

ModelFiles = Callable[[str, str], tuple[bytes, Mapping[str, Any]]]  # (model, version) → (onnx, card)


def onnx_session(onnx_model: bytes, threads: int) -> Any:
    """One ONNX Runtime session: ``threads`` intra-op threads, one inter-op, sequential."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class LoadedModel:
    """A version ready to serve: its card's facts and its session."""

    spec: ModelSpec
    session: Any
    slot: Slot
    load_seconds: float

    @property
    def version(self) -> str:
        return self.spec.version

    def run(self, matrix: np.ndarray) -> np.ndarray:
        chunk = np.ascontiguousarray(matrix, dtype=np.float32)
        return np.asarray(self.session.run(None, {INPUT_NAME: chunk})[0]).ravel()


def load_model(
    model: str, version: str, slot: Slot, files: ModelFiles, threads: int, clock: Callable[[], float]
) -> LoadedModel:
    """Read the version's files and build its session (raises ``PermanentError`` for a card
    serving cannot use, ``TransientError`` when the store is unreachable)."""
    started = clock()
    onnx_model, card = files(model, version)
    spec = ModelSpec.from_card(version, card)
    session = onnx_session(onnx_model, threads)
    loaded = LoadedModel(spec, session, slot, 0.0)
    # One row of missing values: a model whose input does not match its card fails here, at
    # load, never on a request (the slot is not switched to).
    probe = loaded.run(np.full((1, len(spec.features)), spec.missing_value, dtype=np.float32))
    if probe.shape != (1,):
        raise PermanentError(f"model {version}: one input row gave {probe.shape[0]} outputs, expected 1")
    return LoadedModel(spec, session, slot, clock() - started)


def object_store_files(store: ObjectStore) -> ModelFiles:
    """A version's files as every registry keeps them: ``<model>/<version>/model.onnx`` and
    ``card.json`` (``shared.registry``); no registry client (no Vertex import on this path)."""

    def files(model: str, version: str) -> tuple[bytes, Mapping[str, Any]]:
        onnx_model = store.get(f"{model}/{version}/{MODEL_FILE}")
        card = store.get(f"{model}/{version}/{CARD_FILE}")
        if onnx_model is None or card is None:
            raise PermanentError(f"{store.uri(f'{model}/{version}')}: model.onnx or card.json is missing")
        return onnx_model, json.loads(card)

    return files


def model_files_url(settings: Settings) -> str:
    """Where the registry keeps version folders: the file:// or gs:// registry itself, or the
    Vertex registry's staging folder (``gs://<staging bucket>/registry``)."""
    if settings.registry_url.startswith("vertex://"):
        bucket = settings.vertex_staging_bucket.removeprefix("gs://").strip("/").split("/", 1)[0]
        if not bucket:
            raise PermanentError("SHOPML_REGISTRY is vertex:// but SHOPML_VERTEX_STAGING_BUCKET is not set")
        return f"gs://{bucket}/registry"
    return settings.registry_url


@dataclass
class _State:
    pointer: LivePointer | None = None
    read_at: float = float("-inf")
    current: LoadedModel | None = None
    slots: dict[str, LoadedModel] = field(default_factory=dict)
    loading: dict[tuple[str, str], threading.Event] = field(default_factory=dict)  # set when done
    failed: dict[tuple[str, str], float] = field(default_factory=dict)


class ModelSlots:
    """The instance's slots and its copy of the live pointer (see the module docstring)."""

    def __init__(
        self,
        model: str,
        pointers: LivePointerStore,
        files: ModelFiles,
        *,
        max_age_s: float,
        threads: int = 1,
        read_timeout_s: float = 0.25,
        first_read_timeout_s: float = 10.0,
        logger: StructuredLogger | None = None,
        clock: Callable[[], float] = time.monotonic,
        background: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.model = model
        self.pointers = pointers
        self.files = files
        self.max_age_s = max_age_s
        self.threads = threads
        self.read_timeout_s = read_timeout_s
        self.first_read_timeout_s = first_read_timeout_s
        self.logger = logger
        self.clock = clock
        self.background = background or _thread
        self._state = _State()
        self._lock = threading.RLock()
        self._refresh: asyncio.Future[None] | None = None
        self._stop_watch: Callable[[], None] | None = None

    # -- what requests use ----------------------------------------------------------------

    def current(self) -> LoadedModel | None:
        """The model to answer with (None: nothing live or nothing loaded yet → fallback)."""
        return self._state.current

    @property
    def pointer(self) -> LivePointer | None:
        return self._state.pointer

    def pointer_age(self) -> float:
        return self.clock() - self._state.read_at

    async def follow(self) -> None:
        """Re-read the pointer when this instance's copy is older than ``max_age_s`` (shared by
        concurrent requests); waits at most ``read_timeout_s`` (longer for the very first read,
        which also loads the first model), then answers with what it has."""
        pending = self._first_load_pending()
        if pending is not None:  # the listener started this instance's first load: wait for it
            await asyncio.to_thread(pending.wait, self.first_read_timeout_s)
        age = self.pointer_age()
        if age <= self.max_age_s * REFRESH_AHEAD:
            return
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(asyncio.to_thread(self.refresh))
            self._refresh.add_done_callback(self._refreshed)
        if age <= self.max_age_s:
            return  # re-read ahead in the background; this answer keeps the copy it has
        first = self._state.pointer is None
        try:
            await asyncio.wait_for(
                asyncio.shield(self._refresh), self.first_read_timeout_s if first else self.read_timeout_s
            )
        except Exception as exc:  # a timeout or a failed read: answer with the copy we have
            self._log("warning", "live pointer not re-read in time; answering with the current copy", exc)

    def _refreshed(self, done: asyncio.Future[None]) -> None:
        """A read nobody waited for (ahead of the age, or past a request's wait) that failed."""
        if not done.cancelled() and done.exception() is not None:
            self._log("warning", "live pointer re-read failed; keeping the current copy", done.exception())

    def _first_load_pending(self) -> threading.Event | None:
        """The running load of the live version when this instance has no model yet, else None."""
        with self._lock:
            pointer = self._state.pointer
            if self._state.current is not None or pointer is None or pointer.live_slot is None:
                return None
            return self._state.loading.get((pointer.live_slot, pointer.live_version or ""))

    def refresh(self) -> None:
        """Read the pointer now and apply it (blocking; ``follow`` runs it in a thread)."""
        pointer = self.pointers.get(self.model)
        with self._lock:
            self._state.read_at = self.clock()
        self.apply(pointer, wait=self._state.current is None)

    def watch(self) -> bool:
        """Follow the store's snapshot listener too, where it has one; True when listening."""
        try:
            self._stop_watch = self.pointers.watch(self.model, self._on_snapshot)
        except NotImplementedError:
            return False
        return True

    def close(self) -> None:
        if self._stop_watch is not None:
            self._stop_watch()

    # -- following the pointer ------------------------------------------------------------

    def _on_snapshot(self, pointer: LivePointer) -> None:
        with self._lock:
            self._state.read_at = self.clock()
        self.apply(pointer)

    def apply(self, pointer: LivePointer, *, wait: bool = False) -> None:
        """Make ``pointer`` this instance's copy: switch at once when the live version is loaded
        in its slot, else load it (in the background, or here when ``wait``) and switch after."""
        with self._lock:
            previous = self._state.pointer
            if previous is not None and pointer.generation < previous.generation:
                return  # an older snapshot arriving late never moves us back
            self._state.pointer = pointer
            if not pointer.is_live or pointer.live_slot is None or pointer.live_version is None:
                self._state.current = None
                return
            slot, version = pointer.live_slot, pointer.live_version
            loaded = self._state.slots.get(slot)
            if loaded is not None and loaded.version == version:
                self._state.current = loaded
                return
            key = (slot, version)
            running = self._state.loading.get(key)
            if running is None:
                failed_at = self._state.failed.get(key)
                if failed_at is not None and self.clock() - failed_at < RETRY_LOAD_AFTER_S:
                    return
                self._state.loading[key] = threading.Event()
        if running is not None:
            # Already loading (the listener may have started it first): a caller that must wait
            # for its first model waits for that load instead of answering without one.
            if wait:
                running.wait(self.first_read_timeout_s)
            return
        if wait:
            self._load(slot, version)
        else:
            self.background(lambda: self._load(slot, version))

    def _load(self, slot: Slot, version: str) -> None:
        try:
            loaded = load_model(self.model, version, slot, self.files, self.threads, self.clock)
        except Exception as exc:
            with self._lock:
                self._state.loading.pop((slot, version)).set()
                self._state.failed[(slot, version)] = self.clock()
            self._log("error", f"loading {self.model} {version} into {slot} failed; serving what we had", exc)
            return
        with self._lock:
            done = self._state.loading.pop((slot, version))
            self._state.failed.pop((slot, version), None)
            self._state.slots[slot] = loaded
            pointer = self._state.pointer
            if pointer is not None and pointer.live_slot == slot and pointer.live_version == version:
                self._state.current = loaded  # complete: the switch is this one assignment
        done.set()
        self._log("info", f"{self.model} {version} loaded into {slot} in {loaded.load_seconds * 1000:.0f} ms")

    def _log(self, level: str, message: str, exc: BaseException | None = None) -> None:
        if self.logger is None:
            return
        fields: dict[str, Any] = {"model": self.model}
        if exc is not None:
            fields["error"] = f"{type(exc).__name__}: {exc}"
        getattr(self.logger, level)(message, **fields)


def _thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="predict-slot-load", daemon=True).start()
