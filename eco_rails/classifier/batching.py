"""Batched classifier scoring that a prompt's batch-mates cannot change.

Two things would let batch-mates move a prompt's score, and each is removed here:

* **Padding.** A batch pads its windows to one length, and padding changes a quantised model's numbers. Each
  window is instead padded to its own *bucket* (its length rounded up to :data:`BUCKET`), a length that depends
  on that window alone, and only windows of one bucket share an ONNX Runtime call.
* **Activation ranges.** Dynamic int8 quantisation measures the activations' range over the whole input tensor,
  so another user's prompt in the same batch changes this prompt's quantisation. ``eco-rails fit`` therefore
  quantises statically (activation scales fixed at fit time, ``int8-static``); artifacts quantised dynamically by
  older versions are scored one window at a time, unpadded, exactly as they were calibrated.

What is left is row-independent arithmetic (integer GEMMs, row-wise softmax and layer norm), so a window scores
bit for bit the same alone or among 31 others; ``tests/integration/test_classifier.py`` checks it.

:class:`Coalescer` turns concurrent callers (the NeMo server runs each request's rail in a thread) into
batches without a timer: whoever finds the scorer idle runs everything pending, up to ``max_batch`` windows,
while later callers queue for the next batch. One caller alone pays no wait.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Callable, Generic, Sequence, TypeVar

import numpy as np

BUCKET = 8  # windows are padded to a multiple of this many tokens (at most BUCKET - 1 padding tokens each)
MAX_BATCH = 32  # windows per ONNX Runtime call

T = TypeVar("T")
R = TypeVar("R")


def bucket_length(n_tokens: int, bucket: int = BUCKET) -> int:
    """The padded length of an ``n_tokens`` window: the next multiple of ``bucket`` (a window's own property)."""
    if n_tokens < 1:
        raise ValueError(f"a window has at least one token, got {n_tokens}")
    return -(-n_tokens // bucket) * bucket


def group_by_bucket(lengths: Sequence[int], bucket: int, max_batch: int) -> list[tuple[int, list[int]]]:
    """Indices of windows grouped by padded length, in first-seen order, at most ``max_batch`` per group."""
    groups: dict[int, list[list[int]]] = {}
    for i, n in enumerate(lengths):
        chunks = groups.setdefault(bucket_length(n, bucket), [[]])
        if len(chunks[-1]) == max_batch:
            chunks.append([])
        chunks[-1].append(i)
    return [(length, chunk) for length, chunks in groups.items() for chunk in chunks]


def pad_windows(windows: Sequence[dict[str, list[int]]], length: int, pad_id: int) -> dict[str, np.ndarray]:
    """Stack tokenised windows padded to ``length``: ``input_ids`` with ``pad_id``, every other input with 0
    (``attention_mask`` 0 keeps the padding out of attention)."""
    feeds: dict[str, np.ndarray] = {}
    for name in windows[0]:
        fill = pad_id if name == "input_ids" else 0
        rows = np.full((len(windows), length), fill, dtype=np.int64)
        for r, window in enumerate(windows):
            values = window[name]
            if len(values) > length:
                raise ValueError(f"a window of {len(values)} tokens does not fit a bucket of {length}")
            rows[r, : len(values)] = values
        feeds[name] = rows
    return feeds


class Coalescer(Generic[T, R]):
    """Runs ``run_batch`` over the items of concurrent :meth:`submit` calls, ``max_batch`` at a time.

    A combining queue: a caller adds its items, then, until its own results are in, either runs the next batch
    (when nobody else is running one) or waits. Items are taken first come, first served, so no caller starves,
    and an exception in a batch is raised in every caller whose items were in it (a rail then fails closed).
    """

    def __init__(self, run_batch: Callable[[list[T]], list[R]], max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self._pending: deque[tuple[T, Future[R]]] = deque()
        self._running = False
        self._cond = threading.Condition()
        self.batches = 0  # batches run so far (the bench reports the mean batch size)
        self.items = 0

    @property
    def pending(self) -> int:
        """Items queued and not yet taken into a batch."""
        with self._cond:
            return len(self._pending)

    def submit(self, items: Sequence[T]) -> list[R]:
        """Results for ``items``, in order; blocks until they are computed (possibly by another caller)."""
        futures: list[Future[R]] = [Future() for _ in items]
        with self._cond:
            self._pending.extend(zip(items, futures))
            while not all(f.done() for f in futures):
                if self._running or not self._pending:
                    self._cond.wait()
                    continue
                self._running = True
                batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
        return [f.result() for f in futures]

    def _run(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            results = self._run_batch([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the batch function returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # handed to every caller of this batch, raised there
            for _, future in batch:
                future.set_exception(exc)
            return
        self.batches += 1
        self.items += len(batch)
        for (_, future), result in zip(batch, results):
            future.set_result(result)
