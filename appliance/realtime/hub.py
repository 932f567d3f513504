"""The in-process hub: one Litestar channel per practice session (``practice:<id>``), memory backend.

The coordinator publishes every event of a session once, already encoded; the trainee's
connections and every observer's subscribe to the same channel, so all of them see the same
events in the same order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar.channels import ChannelsPlugin
from litestar.channels.subscriber import Subscriber


def channel_of(session_id: int) -> str:
    """The channel name of a practice session."""
    return f"practice:{session_id}"


class Hub:
    """Publish to and subscribe to practice sessions' channels."""

    def __init__(self, channels: ChannelsPlugin) -> None:
        self.channels = channels

    def publish(self, session_id: int, data: bytes) -> None:
        """Send an encoded event to everyone on the session's channel."""
        self.channels.publish(data, [channel_of(session_id)])

    @asynccontextmanager
    async def subscribe(self, session_id: int) -> AsyncIterator[Subscriber]:
        """A subscription to one session's channel for the life of a connection."""
        async with self.channels.start_subscription([channel_of(session_id)]) as subscriber:
            yield subscriber
