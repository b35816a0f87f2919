"""The Source protocol: what the runtime needs from every source kind's consumer."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Source"]


class Source(Protocol):
    """One running consumer of a source, delivering batches of CloudEvents to an EventSink.

    ``run()`` consumes until :meth:`stop`; cancelling it abandons in-flight events without
    acknowledging them (the server redelivers them). ``stop(drain)`` stops fetching, waits for
    in-flight events when ``drain`` and acknowledges what finished. A message is acknowledged
    (offset committed, XACK, ack) only after its event's delivery Outcome is finished.
    ``stats()`` returns plain counters (``consumed``, ``finished``, ``failed``, ...).
    """

    async def run(self) -> None: ...

    async def stop(self, drain: bool = True) -> None: ...

    def stats(self) -> dict[str, Any]: ...
