"""/api/intent: label any text with the local intent classifier (for managers checking it)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.datastructures import State
from litestar.params import JSONBody, KwargDefinition

from appliance.api.openapi import documented
from appliance.api.schema_hints import StageName
from appliance.auth.guards import access
from appliance.practice.agents.intent import MAX_TEXT_CHARS, LinearIntentClassifier, check_request


class IntentIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A text (1-2000 characters) and, optionally, the stage it was said in."""

    text: Annotated[str, KwargDefinition(min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"\S")]
    stage: StageName | None = None


class IntentOut(msgspec.Struct, kw_only=True):
    """A label of appliance.practice.model.INTENTS and its confidence in [0, 1]."""

    label: str
    confidence: float


@documented
class IntentController(Controller):
    """Classify one utterance (no conversation history: the context rules see none)."""

    path = "/api/intent"
    opt = access("user")

    @post("/", status_code=200)
    async def classify(self, state: State, data: JSONBody[IntentIn]) -> IntentOut:
        """The intent of ``text``; empty or too long text and unknown stages are 400s."""
        stage = check_request(data.text, data.stage)
        classifier: LinearIntentClassifier = state.intent
        if classifier.uses_embedding:  # the embedder may be busy with ingestion: off the loop
            result = await asyncio.to_thread(classifier.classify, data.text, stage=stage)
        else:  # about a millisecond of CPU
            result = classifier.classify(data.text, stage=stage)
        return IntentOut(label=result.label, confidence=result.confidence)
