# ruff: noqa: RUF001 (full-width CJK punctuation in the samples)
"""The realtime building blocks: the clause gate, the bounded outbox, the token bucket, decoding."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from appliance.practice import events as ev
from appliance.practice.coordinator import ClauseGate
from appliance.realtime.connection import Outbox, TokenBucket
from appliance.realtime.handlers import decode_error
from appliance.realtime.protocol import Hello, Say, client_decoder


def _gate(pieces: list[str]) -> list[str]:
    gate = ClauseGate()
    out = [c for p in pieces for c in gate.feed(p)]
    return out + list(gate.flush())


def test_clause_gate_releases_at_punctuation_and_loses_nothing() -> None:
    pieces = [" Well", ", I", " am not", " sure. The fee", " is high", "! Really"]
    clauses = _gate(pieces)
    assert clauses == ["Well, ", "I am not sure. ", "The fee is high! ", "Really"]
    assert "".join(clauses) == "".join(pieces).lstrip()


def test_clause_gate_cjk_punctuation() -> None:
    clauses = _gate(["年费", "太贵了，", "我想", "取消。", "你们"])
    assert clauses == ["年费太贵了，", "我想取消。", "你们"]


def test_outbox_drops_deltas_before_final_events_then_overflows() -> None:
    async def scenario() -> None:
        box = Outbox(3)
        box.put(b"d1", droppable=True)
        box.put(b"f1", droppable=False)
        box.put(b"d2", droppable=True)
        box.put(b"f2", droppable=False)  # full: the oldest delta goes
        assert box.dropped_deltas == 1
        box.put(b"d3", droppable=True)  # full again: d2 goes, d3 queued
        box.put(b"f3", droppable=False)  # d3 goes
        assert [await box.get() for _ in range(3)] == [b"f1", b"f2", b"f3"]
        for item in (b"f4", b"f5", b"f6"):
            box.put(item, droppable=False)
        box.put(b"f7", droppable=False)  # only final events: the connection must close
        assert box.overflowed
        assert await box.get() is None

    asyncio.run(scenario())


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(rate=1000.0, burst=5)
    assert all(bucket.take() for _ in range(5))
    bucket.rate = 0.001  # no refill to speak of
    assert not bucket.take()
    assert bucket.wait_s() > 0


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"not json", "bad_frame"),
        (b'{"type": "dance"}', "unknown_type"),
        (b'{"type": "say", "text": "hi"}', "invalid_message"),
        (b'{"type": "hello", "last_seq": "x"}', "invalid_message"),
        # past what SQLite can bind: refused here, not an OverflowError in the replay query
        (b'{"type": "hello", "last_seq": 100000000000000000000}', "invalid_message"),
        (b'{"type": "hello", "last_seq": -1}', "invalid_message"),
    ],
)
def test_bad_frames_map_to_codes(frame: bytes, code: str) -> None:
    with pytest.raises(msgspec.MsgspecError) as err:
        client_decoder.decode(frame)
    assert decode_error(err.value)[0] == code


def test_frames_decode_to_their_types() -> None:
    assert client_decoder.decode(b'{"type": "hello", "last_seq": 4}') == Hello(last_seq=4)
    say = client_decoder.decode(b'{"type": "say", "client_turn_id": "a", "text": "hi"}')
    assert isinstance(say, Say) and say.text == "hi"


def test_stage_changed_uses_from_and_to_on_the_wire() -> None:
    event = ev.StageChanged(
        from_stage="OPENING", to_stage="NEEDS_DISCOVERY", slots={}, reason="coverage", turn=2
    )
    wire = msgspec.json.decode(ev.encoder.encode(event))
    assert wire["type"] == "stage_changed" and wire["from"] == "OPENING"
    assert wire["to"] == "NEEDS_DISCOVERY"
    assert ev.stored_decoder.decode(ev.encoder.encode(event)) == event
