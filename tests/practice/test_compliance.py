# ruff: noqa: RUF001 (Chinese test text has full-width punctuation)
"""Compliance rules: phrase and regex, English and Chinese, applies_to, remove_blocked, speed."""

from __future__ import annotations

import time

from appliance.practice.agents.compliance import RuleCompliance
from appliance.practice.model import ComplianceRule

from tests.practice.conftest import RULES

agent = RuleCompliance()


def test_phrase_rule_case_insensitive_on_word_boundaries() -> None:
    text = "Honestly, this card is guaranteed RISK-FREE for you."
    flags = agent.check(text, "trainee", RULES)
    names = [f.rule for f in flags]
    assert "No risk-free claims" in names
    hit = next(f for f in flags if f.rule == "No risk-free claims")
    assert text[hit.start : hit.end] == "RISK-FREE"
    assert hit.severity == "block" and hit.who == "trainee" and hit.rule_id == 1
    assert "RISK-FREE" in hit.excerpt and len(hit.excerpt) < len(text) + 4
    # inside another word it is not a hit
    assert agent.check("a brisk-freedom walk", "trainee", RULES) == []


def test_acceptance_sentence_names_the_rule() -> None:
    flags = agent.check("This card is guaranteed risk-free", "trainee", RULES)
    assert {f.rule for f in flags} >= {"No risk-free claims", "No guaranteed returns"}


def test_regex_rule_and_applies_to() -> None:
    text = "We guarantee a return of 5% on the points."
    trainee = agent.check(text, "trainee", RULES)
    assert [f.rule for f in trainee] == ["No guaranteed returns"]
    # the regex rule applies to the trainee only; the customer saying it raises nothing
    assert agent.check(text, "customer", RULES) == []
    # "both" applies to the customer too
    assert [f.rule for f in agent.check("Is it risk-free?", "customer", RULES)] == [
        "No risk-free claims"
    ]
    # warn severity
    warn = agent.check("You should sign today.", "trainee", RULES)
    assert [(f.rule, f.severity) for f in warn] == [("No pressure", "warn")]


def test_chinese_phrase_and_regex_match_as_substrings() -> None:
    text = "这张卡完全无风险，而且我们保证您的收益。"
    flags = agent.check(text, "trainee", RULES)
    assert [f.rule for f in flags] == ["无风险", "保证收益"]
    assert text[flags[0].start : flags[0].end] == "无风险"
    assert agent.check(text, "customer", RULES)[0].rule == "无风险"
    assert [f.rule for f in agent.check(text, "customer", RULES)] == ["无风险"]


def test_remove_blocked_drops_only_offending_sentences() -> None:
    text = "Thanks for calling. It is risk-free, trust me! The annual fee is 695 USD."
    flags = agent.check(text, "customer", RULES)
    assert agent.remove_blocked(text, flags) == "Thanks for calling. The annual fee is 695 USD."
    zh = "感谢您的来电。这张卡无风险！年费是695美元。"
    zh_flags = agent.check(zh, "customer", RULES)
    assert agent.remove_blocked(zh, zh_flags) == "感谢您的来电。年费是695美元。"
    # warn flags remove nothing
    warn_text = "Please sign today. It helps."
    assert agent.remove_blocked(warn_text, agent.check(warn_text, "trainee", RULES)) == warn_text


def test_bad_regex_never_matches_and_edited_rule_recompiles() -> None:
    bad = ComplianceRule(
        id=99, name="broken", kind="regex", pattern="(unclosed", severity="warn", applies_to="both"
    )
    assert agent.check("(unclosed paren", "trainee", [bad]) == []
    v1 = ComplianceRule(
        id=98, name="v", kind="phrase", pattern="cheap", severity="warn", applies_to="both"
    )
    v2 = ComplianceRule(
        id=98, name="v", kind="phrase", pattern="costly", severity="warn", applies_to="both"
    )
    assert len(agent.check("cheap and costly", "trainee", [v1])) == 1
    assert agent.check("cheap and costly", "trainee", [v2])[0].start == 10


def test_check_is_fast() -> None:
    text = "Good morning Mr. Chen, thanks for taking my call about your Platinum Card. " * 4
    agent.check(text, "trainee", RULES)  # compile once
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        agent.check(text, "trainee", RULES)
    per_call_ms = (time.perf_counter() - started) * 1000 / runs
    assert per_call_ms < 1.0, per_call_ms


def test_a_catastrophic_regex_is_cut_off_not_a_frozen_server() -> None:
    """Nested repeats against a long line: skipped after its time limit, other rules still run."""
    slow = ComplianceRule(
        id=99,
        name="nested repeats",
        kind="regex",
        pattern=r"(a+)+$",
        severity="warn",
        applies_to="both",
        message="m",
    )
    text = "a" * 1900 + "! This card is guaranteed risk-free."
    start = time.perf_counter()
    flags = agent.check(text, "trainee", [slow, *RULES])
    assert time.perf_counter() - start < 1.0
    assert "No risk-free claims" in {f.rule for f in flags}
    assert "nested repeats" not in {f.rule for f in flags}
    # the same rule still matches where it can in time
    assert [f.rule for f in agent.check("aaa", "trainee", [slow])] == ["nested repeats"]
