"""Which offsets may be committed: the contiguous run of finished records (pure).

Knative's dispatcher commits, per partition, only up to the first record whose delivery has
not finished (data-plane ``OffsetManager``): a record still in flight, or failed and being
retried, blocks the commit even when later records are done. Offsets are tracked in the
order records were consumed, so offsets Kafka never returns (compacted records, transaction
markers) do not block anything.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["OffsetTracker", "PartitionOffsets"]

P = TypeVar("P", bound=Hashable)


class PartitionOffsets:
    """Consumed and finished offsets of one partition."""

    __slots__ = ("_done", "_next", "_pending", "committed")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # consumed, in order, up to the first unfinished
        self._done: set[int] = set()  # finished but behind an unfinished one
        self._next: int | None = None  # the offset after the last consumed record
        self.committed: int | None = None  # the last offset committed (set by the caller)

    def consumed(self, offset: int) -> None:
        """Record that ``offset`` was handed out; offsets must increase."""
        if self._next is not None and offset < self._next:
            raise ValueError(f"offset {offset} consumed after {self._next - 1}")
        self._pending.append(offset)
        self._next = offset + 1

    def finished(self, offset: int) -> None:
        """Record that the event of ``offset`` needs no more work."""
        pending = self._pending
        if pending and pending[0] == offset:
            pending.popleft()
            done = self._done
            while pending and pending[0] in done:
                done.discard(pending.popleft())
        elif self._next is not None and offset < self._next:
            self._done.add(offset)

    @property
    def in_flight(self) -> int:
        """Records consumed and not finished."""
        return len(self._pending) - len(self._done)

    def committable(self) -> int | None:
        """The offset to commit (the next record to read), or None when nothing was consumed."""
        if self._pending:
            return self._pending[0]
        return self._next

    def to_commit(self) -> int | None:
        """``committable()`` when it is ahead of what was committed, else None."""
        offset = self.committable()
        if offset is None or (self.committed is not None and offset <= self.committed):
            return None
        return offset


class OffsetTracker(Generic[P]):
    """Offsets of every partition a consumer owns, keyed by partition (e.g. TopicPartition)."""

    def __init__(self) -> None:
        self._partitions: dict[P, PartitionOffsets] = {}

    def partition(self, key: P) -> PartitionOffsets:
        """The tracker of one partition, created on first use."""
        offsets = self._partitions.get(key)
        if offsets is None:
            offsets = self._partitions[key] = PartitionOffsets()
        return offsets

    def get(self, key: P) -> PartitionOffsets | None:
        """The tracker of one partition, or None when it is not tracked."""
        return self._partitions.get(key)

    def consumed(self, key: P, offset: int) -> PartitionOffsets:
        """Record a consumed record; returns its partition's tracker (to finish it later)."""
        offsets = self.partition(key)
        offsets.consumed(offset)
        return offsets

    def committable(self) -> dict[P, int]:
        """Offsets ahead of the last commit, per partition."""
        result: dict[P, int] = {}
        for key, offsets in self._partitions.items():
            offset = offsets.to_commit()
            if offset is not None:
                result[key] = offset
        return result

    def mark_committed(self, offsets: dict[P, int]) -> None:
        """Record a successful commit."""
        for key, offset in offsets.items():
            tracker = self._partitions.get(key)
            if tracker is not None and (tracker.committed is None or offset > tracker.committed):
                tracker.committed = offset

    def revoke(self, keys: Iterable[P]) -> dict[P, int]:
        """Forget partitions; returns what may still be committed for them.

        Outcomes that arrive later for a revoked partition go to the forgotten tracker and
        are ignored: the partition's new owner reads again from the committed offset.
        """
        result: dict[P, int] = {}
        for key in keys:
            offsets = self._partitions.pop(key, None)
            if offsets is None:
                continue
            offset = offsets.to_commit()
            if offset is not None:
                result[key] = offset
        return result

    def in_flight(self, keys: Iterable[P] | None = None) -> int:
        """Records consumed and not finished (in the given partitions, or all)."""
        chosen = self._partitions.keys() if keys is None else keys
        return sum(self._partitions[k].in_flight for k in chosen if k in self._partitions)

    def __contains__(self, key: object) -> bool:
        return key in self._partitions

    def __iter__(self) -> Iterator[P]:
        return iter(self._partitions)
