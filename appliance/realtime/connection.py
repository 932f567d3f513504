"""One WebSocket connection to a practice session: its outbox, its rate limit, what it has seen.

The outbox is bounded (realtime.backlog). When a slow client lets it fill up, ``npc_delta``
frames are dropped first (the turn's ``npc_done`` carries the whole text anyway); stored events
are never dropped: a connection that is still full of them is closed (code 4429), and the client
reconnects with ``hello{last_seq}`` and gets them from the event log. So nothing is lost and the
server's memory stays bounded.

The token bucket is written here (a dozen lines) rather than taken from aiolimiter, whose
limiter waits for capacity: a flooding client must get an immediate ``rate_limited`` error
instead.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import msgspec
from appliance.auth import guards
from appliance.db.practice import SessionRow

CLOSE_NOT_AUTHENTICATED = guards.CLOSE_NOT_AUTHENTICATED
CLOSE_FORBIDDEN = guards.CLOSE_FORBIDDEN
CLOSE_NOT_FOUND = 4404
CLOSE_IDLE = 4408
CLOSE_GONE = 4410
"""The session was deleted (an admin or manager, the retention sweep, a person's erasure)."""
CLOSE_TOO_SLOW = 4429


class Head(msgspec.Struct):
    """The fields of an encoded event a connection needs to route it."""

    type: str
    seq: int = 0
    turn: int | None = None


head_decoder = msgspec.json.Decoder(Head)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take()`` says whether one was available."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Spend a token if there is one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_s(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1 - self.tokens) / self.rate)


class Outbox:
    """A bounded queue of encoded frames where deltas give way to stored events."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[tuple[bytes, bool]] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.dropped_deltas = 0

    def put(self, data: bytes, *, droppable: bool) -> None:
        """Queue a frame; drop the oldest delta when full; overflow when only final frames remain."""
        if len(self._items) >= self.limit:
            for i, (_, can_drop) in enumerate(self._items):
                if can_drop:
                    del self._items[i]
                    self.dropped_deltas += 1
                    break
            else:
                if droppable:
                    self.dropped_deltas += 1
                    return
                self.overflowed = True
                self._ready.set()
                return
        self._items.append((data, droppable))
        self._ready.set()

    async def get(self) -> bytes | None:
        """The next frame, or None when the connection must be closed for being too slow."""
        while not self._items:
            if self.overflowed:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self.overflowed:
            return None
        return self._items.popleft()[0]


@dataclass
class Connection:
    """State of one practice or observe connection."""

    session: SessionRow
    user_id: int
    username: str
    role: str
    """``trainee`` (drives the session) or ``observer`` (read-only)."""
    outbox: Outbox
    bucket: TokenBucket
    ready: bool = False
    """Set by ``hello``: before it, only ``ping`` is answered and live events are held back."""
    delivered_seq: int = 0
    """Highest stored seq queued for this client (replay and live events are deduplicated by it)."""
    done_turn: int = 0
    """Highest turn whose ``npc_done`` this client has: later deltas of it are stale."""
    greeted: bool = False
    """Whether this connection has had a ``welcome`` (an observer is announced once)."""
    held: list[bytes] = field(default_factory=list)
    """Live events that arrived before ``hello``."""
    last_rate_error: float = 0.0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def deliver(self, data: bytes) -> None:
        """A live event from the hub: held until ``hello`` has replayed the log, then queued."""
        if not self.ready:
            self.held.append(data)
            return
        self.enqueue(data)

    def release_held(self) -> None:
        """After the replay: queue what arrived meanwhile (repeats are skipped by seq)."""
        self.ready = True
        held, self.held = self.held, []
        for data in held:
            self.enqueue(data)

    def enqueue(self, data: bytes) -> None:
        """Queue an event for this client, in seq order, without repeats."""
        head = head_decoder.decode(data)
        if head.type == "npc_delta":
            if head.turn is not None and head.turn <= self.done_turn:
                return
            self.outbox.put(data, droppable=True)
            return
        if head.seq <= self.delivered_seq:
            return
        self.delivered_seq = head.seq
        if head.type == "npc_done" and head.turn is not None:
            self.done_turn = max(self.done_turn, head.turn)
        self.outbox.put(data, droppable=False)

    def send_direct(self, data: bytes) -> None:
        """Queue a frame for this client only (welcome, error, pong, a resend's stored events)."""
        self.outbox.put(data, droppable=False)
