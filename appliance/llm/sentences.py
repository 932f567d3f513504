# ruff: noqa: RUF001 (CJK punctuation and curly quotes on purpose)
"""Sentences of generated text: where they end, and the one a small model says twice.

The customer's reply, the coach's script and a knowledge answer come from a small local model
that can loop ("I'm sorry to hear that. I'm sorry to hear that. ...") or run out of tokens
mid-sentence. What is shown keeps whole sentences, each said once.
"""

from __future__ import annotations

import re

SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)）]*(?=\s|$)|[。！？]+[\"'”’)）]*")
"""Where a sentence ends: Latin punctuation before a space (not "25.00"), or a CJK full stop."""
CJK_END = re.compile(r"[。！？]")
_ABBREVIATION = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|etc|approx|e\.g|i\.e|[A-Z])$")
"""A word before a full stop that does not end the sentence ("Mr. Chen", "U.S.")."""


def ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Whether a ``SENTENCE_END`` match in ``text`` really ends a sentence (not "Mr.")."""
    return not (match[0].startswith(".") and _ABBREVIATION.search(text, 0, match.start()))


def sentence_key(sentence: str) -> str:
    """A sentence as compared for repeats: lower case, words only."""
    return " ".join(re.findall(r"\w+", sentence.lower()))


def sentence_keys(text: str) -> list[str]:
    """The :func:`sentence_key` of every sentence of ``text`` (its unpunctuated tail too)."""
    keys: list[str] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        if ends_sentence(text, match):
            keys.append(sentence_key(text[start : match.end()]))
            start = match.end()
    keys.append(sentence_key(text[start:]))
    return [k for k in keys if k]


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, each with its end punctuation (an unpunctuated tail too)."""
    found: list[str] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        if ends_sentence(text, match):
            found.append(text[start : match.end()])
            start = match.end()
    found.append(text[start:])
    return [s for s in found if s.strip()]


def whole_sentences(text: str, *, truncated: bool) -> str:
    """``text`` up to its first repeated sentence; when ``truncated`` (the model hit its token
    limit) also without an unfinished last sentence, if a whole one comes before it."""
    said: set[str] = set()
    start = kept = 0
    for match in SENTENCE_END.finditer(text):
        if not ends_sentence(text, match):
            continue
        key = sentence_key(text[start : match.end()])
        if key in said:
            return text[:kept].rstrip()
        if key:
            said.add(key)
        start = kept = match.end()
    tail = sentence_key(text[start:])
    if not tail or tail in said or (truncated and kept):
        return text[:kept].rstrip()
    return text.rstrip()
