"""Whole sentences, each said once: what the coach keeps of a small model's script."""

from __future__ import annotations

import pytest
from appliance.llm.sentences import whole_sentences


@pytest.mark.parametrize(
    ("text", "truncated", "kept"),
    [
        # a loop ends at its first repeat, also when the repeat is unfinished
        (
            "I'm sorry to hear that. I'm sorry to hear that. I'm sorry",
            True,
            "I'm sorry to hear that.",
        ),
        ("I see. Tell me more. i see!", False, "I see. Tell me more."),
        ("I see. Tell me more. I see", False, "I see. Tell me more."),
        # cut off by the token limit: the unfinished sentence goes when a whole one precedes it
        (
            "Thank you, Mr. Chen. The fee is USD 25.00 a year. And I",
            True,
            "Thank you, Mr. Chen. The fee is USD 25.00 a year.",
        ),
        ("One long unfinished sentence about", True, "One long unfinished sentence about"),
        # the model's own end keeps its last words
        ("Sure. Maybe later", False, "Sure. Maybe later"),
        ("What matters most to you?", False, "What matters most to you?"),
        ("好的。我知道了。好的。", False, "好的。我知道了。"),
        ("您好。年费是六百九十五美元。如果", True, "您好。年费是六百九十五美元。"),
    ],
)
def test_whole_sentences(text: str, truncated: bool, kept: str) -> None:
    assert whole_sentences(text, truncated=truncated) == kept
