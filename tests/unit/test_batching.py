"""Batched classifier scoring: buckets, padding and the coalescing queue (no model; the ONNX side is tested in
tests/integration/test_classifier.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from eco_rails.classifier.batching import Coalescer, bucket_length, group_by_bucket, pad_windows


def test_bucket_length_rounds_up_to_the_bucket_and_depends_on_the_window_alone():
    assert [bucket_length(n, 8) for n in (1, 7, 8, 9, 16, 17, 128)] == [8, 8, 8, 16, 16, 24, 128]
    assert bucket_length(5, 1) == 5  # bucket 1: no padding (dynamically quantised artifacts)
    with pytest.raises(ValueError, match="at least one token"):
        bucket_length(0)


def test_group_by_bucket_keeps_each_length_apart_and_caps_the_group_size():
    groups = group_by_bucket([3, 12, 5, 9, 8, 1, 2], bucket=8, max_batch=2)
    assert groups == [(8, [0, 2]), (8, [4, 5]), (8, [6]), (16, [1, 3])]
    assert sorted(i for _, rows in groups for i in rows) == list(range(7))


def test_pad_windows_pads_ids_with_the_pad_token_and_masks_the_padding():
    feeds = pad_windows([{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1]}, {"input_ids": [9], "attention_mask": [1]}],
                        4, pad_id=0)
    assert feeds["input_ids"].tolist() == [[5, 6, 7, 0], [9, 0, 0, 0]]
    assert feeds["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert feeds["input_ids"].dtype == np.int64
    with pytest.raises(ValueError, match="does not fit"):
        pad_windows([{"input_ids": [1, 2, 3]}], 2, pad_id=0)


def test_coalescer_alone_runs_one_batch_per_call_and_keeps_order():
    calls: list[list[int]] = []
    c = Coalescer(lambda xs: calls.append(list(xs)) or [x * 10 for x in xs], max_batch=4)
    assert c.submit([1, 2, 3]) == [10, 20, 30]
    assert c.submit([4, 5, 6, 7, 8, 9]) == [40, 50, 60, 70, 80, 90]
    assert calls == [[1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_concurrent_callers_share_batches_and_each_gets_its_own_results():
    entered, gate = threading.Event(), threading.Event()

    def square(xs: list[int]) -> list[int]:
        entered.set()
        gate.wait(30)  # the first batch runs until every other caller has queued
        return [x * x for x in xs]

    c = Coalescer(square, max_batch=32)
    results: dict[int, list[int]] = {}

    def caller(k: int) -> None:
        results[k] = c.submit([k, k + 100])

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(24)]
    threads[0].start()
    entered.wait(30)
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 30
    while c.pending < 46 and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    for t in threads:
        t.join(30)
    assert results == {k: [k * k, (k + 100) ** 2] for k in range(24)}
    assert (c.batches, c.items) == (3, 48)  # the first caller's 2 items, then the 46 queued meanwhile as 32 + 14


def test_an_error_in_a_batch_reaches_every_caller_in_it_and_the_queue_keeps_working():
    fail = threading.Event()
    fail.set()

    def run(xs: list[str]) -> list[str]:
        if fail.is_set():
            raise RuntimeError("onnx failed")
        return [x.upper() for x in xs]

    c: Coalescer[str, str] = Coalescer(run)
    with pytest.raises(RuntimeError, match="onnx failed"):
        c.submit(["a", "b"])
    fail.clear()
    assert c.submit(["c"]) == ["C"]


def test_a_batch_function_returning_the_wrong_count_is_an_error_not_a_silent_mismatch():
    c = Coalescer(lambda xs: xs[:-1])
    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        c.submit([1, 2])
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(lambda xs: xs, max_batch=0)
