"""Only the contiguous run of finished records is committable."""

from __future__ import annotations

import pytest

from knray.sources.offsets import OffsetTracker, PartitionOffsets


def test_nothing_consumed_nothing_to_commit() -> None:
    offsets = PartitionOffsets()
    assert offsets.committable() is None
    assert offsets.to_commit() is None


def test_a_gap_blocks_the_commit_until_it_finishes() -> None:
    offsets = PartitionOffsets()
    for offset in range(10, 15):
        offsets.consumed(offset)
    assert offsets.committable() == 10
    offsets.finished(10)
    offsets.finished(12)
    offsets.finished(13)
    assert offsets.committable() == 11  # 11 is still in flight
    assert offsets.in_flight == 2
    offsets.finished(11)
    assert offsets.committable() == 14
    offsets.finished(14)
    assert offsets.committable() == 15
    assert offsets.in_flight == 0


def test_out_of_order_completion() -> None:
    offsets = PartitionOffsets()
    for offset in range(5):
        offsets.consumed(offset)
    for offset in (4, 3, 2, 1):
        offsets.finished(offset)
        assert offsets.committable() == 0
    offsets.finished(0)
    assert offsets.committable() == 5


def test_offsets_kafka_skips_do_not_block() -> None:
    # Compaction and transaction markers leave holes in the offsets a consumer sees.
    offsets = PartitionOffsets()
    for offset in (3, 7, 8):
        offsets.consumed(offset)
    offsets.finished(3)
    offsets.finished(7)
    assert offsets.committable() == 8
    offsets.finished(8)
    assert offsets.committable() == 9


def test_consumed_offsets_must_increase() -> None:
    offsets = PartitionOffsets()
    offsets.consumed(5)
    with pytest.raises(ValueError, match="consumed after"):
        offsets.consumed(5)


def test_finishing_twice_or_unknown_offsets_is_harmless() -> None:
    offsets = PartitionOffsets()
    offsets.consumed(0)
    offsets.consumed(1)
    offsets.finished(1)
    offsets.finished(1)
    offsets.finished(99)  # never consumed
    assert offsets.committable() == 0
    offsets.finished(0)
    assert offsets.committable() == 2


def test_to_commit_only_when_ahead_of_the_last_commit() -> None:
    tracker: OffsetTracker[tuple[str, int]] = OffsetTracker()
    a, b = ("t", 0), ("t", 1)
    tracker.consumed(a, 0).finished(0)
    tracker.consumed(b, 0)
    assert tracker.committable() == {a: 1, b: 0}
    tracker.mark_committed({a: 1, b: 0})
    assert tracker.committable() == {}
    tracker.partition(b).finished(0)
    assert tracker.committable() == {b: 1}


def test_revoke_returns_final_offsets_and_forgets_the_partition() -> None:
    tracker: OffsetTracker[tuple[str, int]] = OffsetTracker()
    a, b = ("t", 0), ("t", 1)
    old = tracker.consumed(a, 0)
    tracker.consumed(a, 1)
    old.finished(0)
    tracker.consumed(b, 4)
    assert tracker.in_flight() == 2
    assert tracker.revoke([a, ("t", 9)]) == {a: 1}
    assert a not in tracker
    assert list(tracker) == [b]
    # A late outcome for the revoked partition goes to the forgotten tracker only.
    old.finished(1)
    assert tracker.committable() == {b: 4}
    assert tracker.get(a) is None
    assert tracker.in_flight([a, b]) == 1
