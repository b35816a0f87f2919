"""Chunk sizes follow the handler's measured speed."""

from __future__ import annotations

from knray.serving import ChunkSizer


def test_unknown_speed_uses_the_initial_size() -> None:
    assert ChunkSizer(initial_size=8).size() == 8


def test_slow_handlers_get_small_chunks_and_cheap_ones_large() -> None:
    slow = ChunkSizer(target_call_s=0.1)
    slow.observe(4, 0.2)  # 50 ms per event
    assert slow.size() == 2
    cheap = ChunkSizer(target_call_s=0.1, max_size=500)
    cheap.observe(100, 0.001)
    assert cheap.size() == 500


def test_chunks_respect_the_concurrency_limit_and_minimum() -> None:
    sizer = ChunkSizer(initial_size=50)
    assert sizer.size(limit=4) == 4
    sizer.observe(1, 10.0)
    assert sizer.size() == 1


def test_speed_is_smoothed() -> None:
    sizer = ChunkSizer(target_call_s=1.0, smoothing=0.5)
    sizer.observe(10, 1.0)  # 0.1 s per event
    sizer.observe(10, 0.0)
    assert sizer.seconds_per_event == 0.05
    assert sizer.size() == 20
