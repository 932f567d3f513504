# ruff: noqa: RUF001, RUF002 (CJK sentence punctuation is matched on purpose)
"""Compliance rules run on the trainee's text and on the customer's.

A *phrase* rule matches case-insensitively; a phrase that starts or ends with a Latin letter or
digit must sit on a word boundary there ("risk-free" does not match inside "brisk-freeze"),
while CJK characters match as a plain substring (Chinese has no spaces between words). Runs of
whitespace in a phrase match any run of whitespace. A *regex* rule is a Python regular
expression, compiled case-insensitively. A rule whose regex does not compile never matches and
is reported once in the log (the domain API validates patterns when a rule is saved).

Matching runs on the event loop, so it is bounded: patterns run on the `regex` engine (the
same syntax as `re`, with guards against most catastrophic backtracking) with a time limit
per rule and text (`MATCH_TIMEOUT_S`). A rule that runs out of time (a manager's
``(a+)+$`` against a long line, say) is skipped for that text and logged, instead of
freezing every session on the box.

Rules are compiled once and cached by (rule id, kind, pattern), so an edited rule recompiles.
``remove_blocked`` drops every sentence (split on Latin ``.!?`` and CJK ``。！？；`` and line
breaks) that overlaps a block-severity hit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import regex  # type: ignore[import-untyped]  # (no stubs) re's syntax, plus match timeouts

from appliance.practice.model import ComplianceFlag, ComplianceRule, Speaker

log = logging.getLogger(__name__)

CONTEXT_CHARS = 24
"""Characters of context kept on each side of a match in a flag's excerpt."""

MATCH_TIMEOUT_S = 0.05
"""Longest one rule may search one text; past it the rule is skipped for that text (logged)."""

_WORD = re.compile(r"[0-9A-Za-z]")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|[。！？；]+|\n+")


@lru_cache(maxsize=4096)
def _compile(rule_id: int, kind: str, pattern: str) -> Any:
    """The compiled pattern of a rule, a `regex` Pattern (None when a regex does not compile)."""
    if kind == "regex":
        try:
            re.compile(pattern)  # the syntax the domain API validated against
            return regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)
        except (re.error, regex.error) as err:
            log.warning("compliance rule %s: bad regex %r: %s", rule_id, pattern, err)
            return None
    phrase = pattern.strip()
    if not phrase:
        return None
    body = r"\s+".join(re.escape(part) for part in phrase.split())
    head = r"(?<![0-9A-Za-z])" if _WORD.match(phrase[0]) else ""
    tail = r"(?![0-9A-Za-z])" if _WORD.match(phrase[-1]) else ""
    return regex.compile(head + body + tail, regex.IGNORECASE | regex.VERSION0)


def _spans(rule: ComplianceRule, compiled: Any, text: str) -> list[tuple[int, int]]:
    """Non-empty match spans of one rule in ``text``; none when it runs out of time."""
    try:
        return [
            m.span()
            for m in compiled.finditer(text, timeout=MATCH_TIMEOUT_S)
            if m.end() > m.start()
        ]
    except TimeoutError:
        log.warning(
            "compliance rule %s (%r): pattern %r took over %.0f ms on a %d-character text; "
            "skipped for it (rewrite the pattern without nested repeats)",
            rule.id,
            rule.name,
            rule.pattern,
            MATCH_TIMEOUT_S * 1000,
            len(text),
        )
        return []


def _excerpt(text: str, start: int, end: int) -> str:
    lo = max(0, start - CONTEXT_CHARS)
    hi = min(len(text), end + CONTEXT_CHARS)
    return ("…" if lo > 0 else "") + text[lo:hi].strip() + ("…" if hi < len(text) else "")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, end punctuation included."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


class RuleCompliance:
    """The Compliance agent: phrase and regex rules, compiled once."""

    def check(
        self, text: str, who: Speaker, rules: Sequence[ComplianceRule]
    ) -> list[ComplianceFlag]:
        """Every hit of the rules that apply to ``who`` (or "both"), in text order."""
        flags: list[ComplianceFlag] = []
        for rule in rules:
            if rule.applies_to not in (who, "both"):
                continue
            compiled = _compile(rule.id, rule.kind, rule.pattern)
            if compiled is None:
                continue
            for start, end in _spans(rule, compiled, text):  # empty matches say nothing
                flags.append(
                    ComplianceFlag(
                        rule_id=rule.id,
                        rule=rule.name,
                        severity=rule.severity,
                        who=who,
                        excerpt=_excerpt(text, start, end),
                        start=start,
                        end=end,
                    )
                )
        flags.sort(key=lambda f: (f.start, f.rule_id))
        return flags

    def remove_blocked(self, text: str, flags: Sequence[ComplianceFlag]) -> str:
        """``text`` without the sentences that overlap a block-severity flag."""
        blocked = [(f.start, f.end) for f in flags if f.severity == "block"]
        if not blocked:
            return text
        kept = [
            text[s:e]
            for s, e in sentence_spans(text)
            if not any(fs < e and fe > s for fs, fe in blocked)
        ]
        return re.sub(r"[ \t]{2,}", " ", "".join(kept)).strip()
