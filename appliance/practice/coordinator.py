# ruff: noqa: RUF001 (full-width CJK punctuation in the clause pattern and fallback)
"""The turn, as in DESIGN.md: intent + compliance, the customer's streamed reply, one commit, then coach.

A turn of a session runs like this (one at a time per session; another ``say`` meanwhile gets
``turn_in_progress``; the same ``client_turn_id`` again gets the stored result, never a second
reply):

1. the trainee's line: its intent (local classifier) and the compliance rules for the trainee;
   the customer's mood moves;
2. the customer's reply streams from the LLM at interactive priority. It passes a clause gate:
   text is released at clause punctuation, each clause is checked against the customer rules, a
   clause with a *block* hit is removed (and flagged), everything released is published at once
   as ``npc_delta``. So the concatenation of the deltas is exactly ``npc_done.text``;
3. the customer's intent, the stage FSM (slots filled, stage advanced);
4. one transaction: the turn row, the session's new stage/slots/mood, and its events
   (compliance flags, intent, npc_done, stage changes) with their seqs. Only then is any of it
   published, so an observer, a reconnecting client and the event log agree;
5. in the background at lower priority: the quick turn score and the coach's tip, each stored
   and published as its own event.

The turn runs in its own task: a client that goes away mid-turn does not lose it; it reconnects
and finds the turn committed. An LLM error (``busy``, ``llm_unavailable``, ``llm_timeout``) leaves
nothing committed, so the trainee can resend the same line. At the end the evaluator writes the
report (JSON-schema path) and ``report_ready`` follows; a report lost to a crash is regenerated
at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec

from appliance.config import RealtimeConfig
from appliance.db.database import Database
from appliance.db.practice import PracticeRepository, SessionRow, TurnRow
from appliance.errors import check_text
from appliance.practice import events as ev
from appliance.practice import validation
from appliance.practice.errors import (
    EmptyMessage,
    InvalidMessage,
    MessageTooLong,
    ReportPending,
    SessionEnded,
    SessionNotFound,
    TurnInProgress,
    UnknownReference,
)
from appliance.practice.model import (
    Coach,
    Compliance,
    ComplianceFlag,
    ComplianceIncident,
    ComplianceRule,
    Customer,
    Evaluator,
    IntentClassifier,
    Persona,
    Product,
    Report,
    Rubric,
    Scenario,
    SessionContext,
    StageState,
    StageTracker,
    StageUpdate,
    TurnRecord,
)
from appliance.practice.stages import proposes

log = logging.getLogger(__name__)

Publish = Callable[[int, bytes], None]
"""(session id, encoded event) -> send to everyone on that session's channel."""

_CLAUSE_END = re.compile(r"[.!?;,\n。！？；，、…]+[\"'”’)）]*\s*")
_MAX_WARMING = 2
"""Prefix warm-ups running at once (each is a prefill at background priority)."""
_MAX_WARMING_QUEUED = 16
"""Warm-ups waiting or running; past it a connection is not warmed (a thousand connections
must not queue a thousand prefills, nor evict each other's KV from the slots)."""
_FALLBACK = {"en": "Hmm. Go on.", "zh": "嗯，你继续说。"}


class DomainReader(Protocol):
    """What the coordinator reads of the configured domain (appliance.db.domain)."""

    async def get_scenario(self, scenario_id: int) -> Scenario | None: ...
    async def get_persona(self, persona_id: int) -> Persona | None: ...
    async def get_product(self, product_id: int) -> Product | None: ...
    async def get_rubric(self, rubric_id: int, version: int | None = None) -> Rubric | None: ...
    async def list_rules(self, *, include_archived: bool = False) -> list[ComplianceRule]: ...
    async def is_live(self, kind: Literal["scenario", "persona"], row_id: int) -> bool: ...


@dataclass
class TurnOutcome:
    """What a ``say`` produced: the committed turn, or the stored one when it was a resend."""

    turn: TurnRow
    duplicate: bool
    events: list[bytes] = field(default_factory=list)
    """For a resend: the stored events of that turn (sent to the asking connection only)."""


class ClauseGate:
    """Releases streamed text at clause boundaries so each clause can be checked before it is sent."""

    def __init__(self) -> None:
        self._buffer = ""
        self._started = False

    def feed(self, piece: str) -> Iterator[str]:
        """Clauses completed by this piece."""
        self._buffer += piece
        if not self._started:
            self._buffer = self._buffer.lstrip()
        ends = [m.end() for m in _CLAUSE_END.finditer(self._buffer)]
        if not ends:
            return
        cut = ends[-1]
        text, self._buffer = self._buffer[:cut], self._buffer[cut:]
        if text:
            self._started = True
            yield text

    def flush(self) -> Iterator[str]:
        """Whatever is left at the end."""
        text, self._buffer = self._buffer, ""
        if text.strip():
            self._started = True
            yield text


class Coordinator:
    """Runs practice sessions: creation, turns, the end and the report, and crash recovery."""

    def __init__(
        self,
        *,
        db: Database,
        domain: DomainReader,
        customer: Customer,
        coach: Coach,
        compliance: Compliance,
        evaluator: Evaluator,
        intent: IntentClassifier,
        stages: StageTracker,
        publish: Publish,
        config: RealtimeConfig,
        initial_slots: Callable[[], dict[str, bool]],
        session_over: Callable[[int], None] | None = None,
    ) -> None:
        self.db = db
        self.session_over = session_over
        """Told a session's id once its report is stored or it is deleted (the LLM drops its KV)."""
        self.repo = PracticeRepository(db)
        self.domain = domain
        self.customer = customer
        self.coach = coach
        self.compliance = compliance
        self.evaluator = evaluator
        self.intent = intent
        self.stages = stages
        self.publish = publish
        self.config = config
        self.initial_slots = initial_slots
        self._turn_locks: dict[int, asyncio.Lock] = {}
        self._event_locks: dict[int, asyncio.Lock] = {}
        self._background: dict[int, set[asyncio.Task[Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_seq: dict[int, int] = {}
        self._warming: dict[int, asyncio.Task[Any]] = {}
        self._warm_gate = asyncio.Semaphore(_MAX_WARMING)
        self._observers: dict[int, Counter[str]] = {}
        self._gone: weakref.WeakValueDictionary[int, asyncio.Event] = weakref.WeakValueDictionary()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Recovery: regenerate the reports a crash left unwritten."""
        for session_id in await self.repo.sessions_without_report():
            log.info("practice: regenerating the report of session %s", session_id)
            self._spawn(session_id, self._write_report(session_id))

    async def stop(self) -> None:
        """Cancel background work (coach tips, reports); committed turns are already safe."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, session_id: int, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        group = self._background.setdefault(session_id, set())
        group.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            group.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error(
                    "practice: background task of session %s failed",
                    session_id,
                    exc_info=t.exception(),
                )

        task.add_done_callback(done)
        return task

    # --- sessions -------------------------------------------------------------------------

    async def create_session(
        self, *, user_id: int, team_id: int | None, scenario_id: int, persona_id: int
    ) -> SessionRow:
        """A new session on a scenario with a persona (both must exist, be live and fit together).

        An archived scenario or persona keeps its old sessions and reports but starts no new one.
        """
        scenario = await self.domain.get_scenario(scenario_id)
        if scenario is None:
            raise UnknownReference(f"scenario {scenario_id} does not exist")
        if not await self.domain.is_live("scenario", scenario_id):
            raise UnknownReference(f"scenario {scenario_id} is archived")
        persona = await self.domain.get_persona(persona_id)
        if persona is None:
            raise UnknownReference(f"persona {persona_id} does not exist")
        if not await self.domain.is_live("persona", persona_id):
            raise UnknownReference(f"persona {persona_id} is archived")
        if scenario.persona_ids and persona_id not in scenario.persona_ids:
            raise UnknownReference(
                f"persona {persona_id} is not offered by scenario {scenario_id}",
                detail={"persona_ids": scenario.persona_ids},
            )
        validation.same_language("persona_id", scenario, persona)
        if scenario.rubric_id is None:
            raise UnknownReference(f"scenario {scenario_id} has no rubric")
        rubric = await self.domain.get_rubric(scenario.rubric_id)
        if rubric is None:
            raise UnknownReference(f"rubric {scenario.rubric_id} does not exist")
        session_id = await self.repo.create_session(
            user_id=user_id,
            team_id=team_id,
            scenario_id=scenario_id,
            persona_id=persona_id,
            rubric_id=rubric.id,
            rubric_version=rubric.version,
            language=persona.language,
            mood=persona.initial_mood,
            slots=self.initial_slots(),
        )
        session = await self.repo.get_session(session_id)
        assert session is not None
        return session

    async def session(self, session_id: int) -> SessionRow:
        """A session, or SessionNotFound."""
        session = await self.repo.get_session(session_id)
        if session is None:
            raise SessionNotFound(f"practice session {session_id} does not exist")
        return session

    async def context(self, session: SessionRow) -> SessionContext:
        """Everything the agents may know about the session now."""
        scenario = await self.domain.get_scenario(session.scenario_id)
        persona = await self.domain.get_persona(session.persona_id)
        rubric = await self.domain.get_rubric(session.rubric_id, session.rubric_version)
        if scenario is None or persona is None or rubric is None:
            raise UnknownReference(
                f"session {session.id} refers to a scenario, persona or rubric that is gone"
            )
        product = None
        if scenario.product_id is not None:
            product = await self.domain.get_product(scenario.product_id)
        turns = await self.repo.turns(session.id)
        return SessionContext(
            session_id=session.id,
            trainee_name=session.username,
            scenario=scenario,
            persona=persona,
            product=product,
            rubric=rubric,
            rules=await self.domain.list_rules(),
            history=[_record(t) for t in turns],
            stage=StageState(stage=session.stage, slots=dict(session.slots)),  # type: ignore[arg-type]
            mood=session.mood,
            language=persona.language,
        )

    def warm(self, session_id: int) -> None:
        """Prefill the customer's prompt prefix in the background (a trainee just connected)."""
        if session_id in self._warming or self.turn_in_flight(session_id):
            return
        if len(self._warming) >= _MAX_WARMING_QUEUED:  # a burst: the rest warm on first use
            return

        async def run() -> None:
            try:
                async with self._warm_gate:
                    session = await self.session(session_id)
                    if session.state == "active" and not self.turn_in_flight(session_id):
                        await self.customer.warm(await self.context(session))
            except Exception as err:  # only an optimisation: the turn works without it
                log.info("practice: warming session %s failed: %s", session_id, err)
            finally:
                self._warming.pop(session_id, None)

        self._warming[session_id] = self._spawn(session_id, run())

    def turn_in_flight(self, session_id: int) -> bool:
        """Whether a turn of this session is being generated now."""
        lock = self._turn_locks.get(session_id)
        return lock is not None and lock.locked()

    # --- events ---------------------------------------------------------------------------

    async def _append(
        self,
        session_id: int,
        items: Sequence[ev.ServerEvent],
        *,
        before: Callable[[Any], Awaitable[None]] | None = None,
    ) -> list[bytes]:
        """Store events (with ``before`` in the same transaction), then publish them in order."""
        lock = self._event_locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            bodies: list[bytes] = []

            def body_of(item: ev.ServerEvent) -> Callable[[int], bytes]:
                def encode(seq: int) -> bytes:
                    item.seq = seq
                    item.at = time.time()
                    data = ev.encoder.encode(item)
                    bodies.append(data)
                    return data

                return encode

            async with self.db.transaction() as conn:
                if before is not None:
                    await before(conn)
                seqs = await PracticeRepository.append_events(
                    conn,
                    session_id,
                    [
                        (ev.event_type(item), getattr(item, "turn", None), body_of(item))
                        for item in items
                    ],
                )
            if seqs:
                self._last_seq[session_id] = seqs[-1]
            for data in bodies:
                self.publish(session_id, data)
            return bodies

    async def store_event(self, session_id: int, event: ev.ServerEvent) -> bytes:
        """Store and publish one event (e.g. observer_joined)."""
        return (await self._append(session_id, [event]))[0]

    async def observer_joined(self, session_id: int, name: str) -> None:
        """Count an observer's connection in and tell the session (``observer_joined``)."""
        self._observers.setdefault(session_id, Counter())[name] += 1
        event = ev.ObserverJoined(observer=name, observers=self.observers_of(session_id))
        await self.store_event(session_id, event)

    async def observer_left(self, session_id: int, name: str) -> None:
        """Count an observer's connection out and tell the session (``observer_left``)."""
        watching = self._observers.get(session_id, Counter())
        watching[name] -= 1
        if watching[name] <= 0:
            del watching[name]
        if not watching:
            self._observers.pop(session_id, None)
        event = ev.ObserverLeft(observer=name, observers=self.observers_of(session_id))
        await self.store_event(session_id, event)

    def observers_of(self, session_id: int) -> list[str]:
        """Who observes the session now (live connections of this process), by name."""
        return sorted(self._observers.get(session_id, ()))

    def current_seq(self, session: SessionRow) -> int:
        """The seq of the last stored event of a session, as far as this process knows."""
        return max(self._last_seq.get(session.id, 0), session.last_seq)

    # --- deletion (an admin or manager, retention, erasure) ---------------------------------

    def deleted_signal(self, session_id: int) -> asyncio.Event:
        """An event set when the session is deleted; its sockets hold it and close on it.

        Kept in a weak mapping: it lives as long as some socket waits on it.
        """
        signal = self._gone.get(session_id)
        if signal is None:
            signal = self._gone[session_id] = asyncio.Event()
        return signal

    async def delete_session(self, session_id: int) -> SessionRow:
        """Delete one session, live or ended; SessionNotFound when there is no such session."""
        deleted = await self.delete_sessions([session_id])
        if not deleted:
            raise SessionNotFound(f"practice session {session_id} does not exist")
        return deleted[0]

    async def delete_sessions(self, session_ids: Sequence[int]) -> list[SessionRow]:
        """Delete sessions with everything stored of them, in one transaction; returns those
        that existed.

        A live session is stopped, not refused: a turn in flight completes first (the same lock
        as :meth:`end`), its background work (coach tip, score, report, warm-up) is cancelled,
        no report is written, and its sockets (trainee and observers) are closed with 4410.
        """
        ids = sorted(set(session_ids))
        async with contextlib.AsyncExitStack() as stack:
            for sid in ids:  # in id order, so two deleters cannot deadlock
                await stack.enter_async_context(self._turn_locks.setdefault(sid, asyncio.Lock()))
            rows = [row for sid in ids if (row := await self.repo.get_session(sid)) is not None]
            for row in rows:
                await self._cancel_background(row.id)
            for row in rows:  # nothing stores an event of these sessions meanwhile
                await stack.enter_async_context(
                    self._event_locks.setdefault(row.id, asyncio.Lock())
                )
            if rows:
                async with self.db.transaction() as conn:
                    await PracticeRepository.delete_sessions(conn, [r.id for r in rows])
        self.forget(ids)
        if rows:  # leave no copy of the deleted pages in the WAL (secure_delete zeroes the rest)
            await self.db.checkpoint()
        return rows

    async def _cancel_background(self, session_id: int) -> None:
        tasks = list(self._background.get(session_id, ()))
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def forget(self, session_ids: Sequence[int]) -> None:
        """Drop what this process holds of deleted sessions and close their sockets.

        Also called after a deletion made without the coordinator (a retention batch).
        """
        for sid in session_ids:
            for store in (
                self._turn_locks,
                self._event_locks,
                self._background,
                self._last_seq,
                self._warming,
                self._observers,
            ):
                store.pop(sid, None)
            signal = self._gone.pop(sid, None)
            if signal is not None:
                signal.set()
            if self.session_over is not None:
                self.session_over(sid)

    # --- a turn ---------------------------------------------------------------------------

    async def say(self, session_id: int, client_turn_id: str, text: str) -> TurnOutcome:
        """Run one turn (in its own task, so it completes even if the caller goes away)."""
        text = text.strip()
        if not text:
            raise EmptyMessage("say something: the message is empty")
        if len(text) > self.config.max_message_chars:
            raise MessageTooLong(
                f"the message is {len(text)} characters; the limit is "
                f"{self.config.max_message_chars}",
                detail={"limit": self.config.max_message_chars},
            )
        if not client_turn_id or len(client_turn_id) > 128:
            raise InvalidMessage("client_turn_id must be 1-128 characters")
        check_text("text", text, single_line=False)  # invalid_text: NUL and other controls
        check_text("client_turn_id", client_turn_id, single_line=True)
        session = await self.session(session_id)
        stored = await self.repo.turn_by_client_id(session_id, client_turn_id)
        if stored is not None:
            return await self._stored_outcome(stored)
        if session.state != "active":
            raise SessionEnded(f"session {session_id} has ended")
        lock = self._turn_locks.setdefault(session_id, asyncio.Lock())
        if lock.locked():
            raise TurnInProgress("a turn of this session is still being generated")
        await lock.acquire()
        task = asyncio.ensure_future(self._turn(session, client_turn_id, text))
        task.add_done_callback(lambda _: lock.release())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _stored_outcome(self, stored: TurnRow) -> TurnOutcome:
        events = await self.repo.events_after(stored.session_id, 0, turn=stored.turn)
        return TurnOutcome(turn=stored, duplicate=True, events=[e.body for e in events])

    async def _turn(self, session: SessionRow, client_turn_id: str, text: str) -> TurnOutcome:
        # a resend may have raced the first attempt to the lock: re-check under the lock
        stored = await self.repo.turn_by_client_id(session.id, client_turn_id)
        if stored is not None:
            return await self._stored_outcome(stored)
        session = await self.session(session.id)
        if session.state != "active":
            raise SessionEnded(f"session {session.id} has ended")
        ctx = await self.context(session)
        number = len(ctx.history) + 1
        stage = ctx.stage.stage
        # the classifier takes about a millisecond of CPU: off the event loop, so a burst of
        # turns does not hold up the delivery of every other session's events
        trainee_intent = await asyncio.to_thread(
            self.intent.classify,
            text,
            stage=stage,
            previous=[t.trainee_intent for t in ctx.history],
        )
        trainee_flags = self.compliance.check(text, "trainee", ctx.rules)
        mood = self.customer.next_mood(ctx, trainee_intent, trainee_flags)
        reply_ctx = msgspec.structs.replace(ctx, mood=mood)
        warming = self._warming.get(session.id)
        if warming is not None:  # its prefill is this reply's prefix: let it finish, not race it
            with contextlib.suppress(Exception):
                await asyncio.shield(warming)

        reply = await self._stream_reply(reply_ctx, text, number, self.current_seq(session))
        npc_text = reply.text
        customer_intent = await asyncio.to_thread(
            self.intent.classify,
            npc_text,
            stage=stage,
            previous=[t.intent for t in ctx.history],
            confirmable=proposes(ctx.stage, text),
        )
        update = self.stages.update(
            ctx.stage,
            trainee_text=text,
            npc_text=npc_text,
            trainee_intent=trainee_intent,
            customer_intent=customer_intent,
            persona_name=ctx.persona.name,
        )
        row = TurnRow(
            session_id=session.id,
            turn=number,
            client_turn_id=client_turn_id,
            trainee_text=text,
            npc_text=npc_text,
            trainee_intent=trainee_intent.label,
            intent=customer_intent.label,
            intent_confidence=customer_intent.confidence,
            stage=update.state.stage,
            mood=mood,
            ttft_ms=None if reply.ttft_s is None else round(reply.ttft_s * 1000, 1),
            created_at="",
        )
        items = _turn_events(number, row, trainee_flags, reply, update)

        async def write_turn(conn: Any) -> None:
            await PracticeRepository.insert_turn(conn, row)
            await PracticeRepository.update_state(
                conn,
                session.id,
                stage=update.state.stage,
                slots=update.state.slots,
                mood=mood,
                turns=number,
            )

        bodies = await self._append(session.id, items, before=write_turn)
        record = _record(row)
        after = msgspec.structs.replace(
            ctx, history=[*ctx.history, record], stage=update.state, mood=mood
        )
        self._spawn(session.id, self._after_turn(after, record, update.covered))
        return TurnOutcome(turn=row, duplicate=False, events=bodies)

    async def _stream_reply(
        self, ctx: SessionContext, text: str, number: int, delta_seq: int
    ) -> _Reply:
        """Stream the customer's reply through the clause gate, publishing each released clause."""
        started = time.perf_counter()
        reply = _Reply()
        gate = ClauseGate()

        def release(clause: str) -> None:
            flags = self.compliance.check(clause, "customer", ctx.rules)
            blocked = [f for f in flags if f.severity == "block"]
            if blocked:
                reply.removed.extend(blocked)
                return
            reply.warned.extend(flags)
            if reply.ttft_s is None:
                reply.ttft_s = time.perf_counter() - started
            delta = ev.NpcDelta(
                seq=delta_seq, at=time.time(), turn=number, index=len(reply.clauses), text=clause
            )
            reply.clauses.append(clause)
            self.publish(ctx.session_id, ev.encoder.encode(delta))

        stream = self.customer.reply(ctx, text)
        try:
            async for piece in stream:
                for clause in gate.feed(piece):
                    release(clause)
            for clause in gate.flush():
                release(clause)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if not reply.clauses:  # nothing usable, or every clause blocked: a neutral line
            release(_FALLBACK.get(ctx.language, _FALLBACK["en"]))
        return reply

    async def _after_turn(
        self, ctx: SessionContext, record: TurnRecord, covered: list[str]
    ) -> None:
        # deterministic and given the turn's slots (no replay of the history); the compliance
        # rules' regexes still run: off the event loop, like the classifier
        score = await asyncio.to_thread(self.evaluator.score_turn, ctx, record, covered)
        await self._append(
            ctx.session_id, [ev.TurnScoreEvent(turn=record.turn, scores=score.scores)]
        )
        tip, calls = await self.coach.tip(ctx, record)
        await self.repo.record_tool_calls(
            ctx.session_id,
            record.turn,
            [(c.name, c.args_digest, c.ms, c.ok, c.error) for c in calls],
        )
        await self._append(
            ctx.session_id,
            [
                ev.CoachTipEvent(
                    turn=record.turn,
                    advice=tip.advice,
                    script_example=tip.script_example,
                    stage_hint=tip.stage_hint,
                    citations=tip.citations,
                )
            ],
        )

    # --- the end and the report -----------------------------------------------------------

    async def end(
        self, session_id: int, reason: str = "trainee", *, idle_since: str | None = None
    ) -> bool:
        """End a session (after a turn in flight completes); the report is written in the background.

        Returns False when it had already ended. With ``idle_since`` (an ISO-8601 UTC time as
        the tables store it) it ends only a session with no turn since then: a line said while
        the idle check waited for the turn lock keeps the session going.
        """
        lock = self._turn_locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            session = await self.session(session_id)
            if session.state != "active":
                return False
            if idle_since is not None and session.updated_at >= idle_since:
                return False
            update = self.stages.end(
                StageState(stage=session.stage, slots=dict(session.slots))  # type: ignore[arg-type]
            )
            items: list[ev.ServerEvent] = [
                ev.StageChanged(
                    from_stage=c.from_stage,
                    to_stage=c.to_stage,
                    slots=update.state.slots,
                    reason=c.reason,
                    turn=session.turns,
                )
                for c in update.changes
            ]
            items.append(ev.SessionEnded(reason=reason))

            async def mark(conn: Any) -> None:
                if not await PracticeRepository.mark_ended(conn, session_id, reason):
                    raise _AlreadyEnded
                await PracticeRepository.update_state(
                    conn,
                    session_id,
                    stage=update.state.stage,
                    slots=update.state.slots,
                    mood=session.mood,
                    turns=session.turns,
                )

            try:
                await self._append(session_id, items, before=mark)
            except _AlreadyEnded:
                return False
        self._spawn(session_id, self._write_report(session_id))
        return True

    async def settled(self, session_id: int) -> None:
        """Wait for a session's background work (coach tip, score, report) to finish."""
        while tasks := [t for t in self._background.get(session_id, ()) if not t.done()]:
            await asyncio.wait(tasks)  # unlike gather, a cancelled waiter cancels none of them

    async def _write_report(self, session_id: int) -> None:
        me = asyncio.current_task()
        pending = [t for t in self._background.get(session_id, set()) if t is not me]
        if pending:  # the last turn's coach tip and score come first
            await asyncio.gather(*pending, return_exceptions=True)
        session = await self.session(session_id)
        ctx = await self.context(session)
        incidents = await self.incidents(session_id)
        report: Report | None = None
        for attempt in range(self.config.report_attempts):
            try:
                report = await self.evaluator.report(ctx, incidents)
                break
            except (
                Exception
            ) as err:  # an LLM error: try again a little later, then leave it pending
                log.warning(
                    "practice: report of session %s failed (attempt %s): %s",
                    session_id,
                    attempt + 1,
                    err,
                )
                await asyncio.sleep(2.0 * (attempt + 1))
        if report is None:
            return
        body = msgspec.json.encode(report)
        report_id = 0

        async def insert(conn: Any) -> None:
            nonlocal report_id
            report_id = await PracticeRepository.insert_report(
                conn,
                session_id=session_id,
                rubric_id=report.rubric_id,
                rubric_version=report.rubric_version,
                overall=report.overall,
                body=body,
            )

        ready = ev.ReportReady(report_id=0, overall=report.overall, scored=report.scored)

        async def insert_then_fill(conn: Any) -> None:
            await insert(conn)
            ready.report_id = report_id

        await self._append(session_id, [ready], before=insert_then_fill)
        if self.session_over is not None:
            self.session_over(session_id)

    async def incidents(self, session_id: int) -> list[ComplianceIncident]:
        """The session's compliance flags, from its event log."""
        out = []
        for row in await self.repo.events_after(session_id, 0):
            if row.type != "compliance_flag":
                continue
            flag = msgspec.json.decode(row.body, type=ev.ComplianceFlagEvent)
            out.append(
                ComplianceIncident(
                    turn=flag.turn,
                    who="trainee" if flag.who == "trainee" else "customer",
                    rule=flag.rule,
                    severity="block" if flag.severity == "block" else "warn",
                    excerpt=flag.excerpt,
                )
            )
        return out

    async def report(self, session_id: int) -> Report:
        """The stored report, or ReportPending."""
        row = await self.repo.report(session_id)
        if row is None:
            raise ReportPending(f"the report of session {session_id} is not ready yet")
        return msgspec.json.decode(row.body, type=Report)


class _AlreadyEnded(Exception):
    """Raised inside the end transaction to roll it back when the session had already ended."""


def _record(row: TurnRow) -> TurnRecord:
    return TurnRecord(
        turn=row.turn,
        trainee_text=row.trainee_text,
        npc_text=row.npc_text,
        intent=row.intent,
        intent_confidence=row.intent_confidence,
        trainee_intent=row.trainee_intent,
        stage=row.stage,  # type: ignore[arg-type]
        mood=row.mood,
    )


def _flag_event(turn: int, flag: ComplianceFlag, action: str) -> ev.ComplianceFlagEvent:
    return ev.ComplianceFlagEvent(
        turn=turn,
        who=flag.who,
        rule=flag.rule,
        severity=flag.severity,
        excerpt=flag.excerpt,
        action=action,
    )


@dataclass
class _Reply:
    """The customer's reply as released through the clause gate."""

    clauses: list[str] = field(default_factory=list)
    removed: list[ComplianceFlag] = field(default_factory=list)
    warned: list[ComplianceFlag] = field(default_factory=list)
    ttft_s: float | None = None

    @property
    def text(self) -> str:
        """Exactly the concatenation of the deltas sent."""
        return "".join(self.clauses)


def _turn_events(
    number: int,
    row: TurnRow,
    trainee_flags: Sequence[ComplianceFlag],
    reply: _Reply,
    update: StageUpdate,
) -> list[ev.ServerEvent]:
    """A turn's stored events, in the order they are sent."""
    items: list[ev.ServerEvent] = [_flag_event(number, f, "flagged") for f in trainee_flags]
    items += [_flag_event(number, f, "removed") for f in reply.removed]
    items += [_flag_event(number, f, "flagged") for f in reply.warned]
    items.append(ev.IntentEvent(turn=number, label=row.intent, confidence=row.intent_confidence))
    items.append(
        ev.NpcDone(
            turn=number,
            text=row.npc_text,
            mood=row.mood,
            stage=update.state.stage,
            client_turn_id=row.client_turn_id,
            trainee_text=row.trainee_text,
            slots=update.state.slots,
        )
    )
    items += [
        ev.StageChanged(
            from_stage=c.from_stage,
            to_stage=c.to_stage,
            slots=update.state.slots,
            reason=c.reason,
            turn=number,
        )
        for c in update.changes
    ]
    return items
