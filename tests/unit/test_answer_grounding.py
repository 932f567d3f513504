# ruff: noqa: RUF001 - Chinese text with full-width punctuation on purpose
"""A knowledge answer shows no sentence that names a figure no passage has.

The cases are what the bundled 270M model wrote on the demo pack (2026-11-25, QA of
``POST /api/knowledge/ask``): figures no passage has, a loop of one, and right answers that
must pass untouched.
"""

from __future__ import annotations

from appliance.knowledge.answer import _figures, grounded
from appliance.llm.sentences import split_sentences

PASSAGES = (
    "[1] aurora-platinum-faq: Question: What is the annual fee? | Answer: The annual fee is "
    "USD 695, charged once per card year. Question: Can the annual fee be waived? | Answer: "
    "Spend USD 25,000 or more in a card year. Travel credit USD 300 every card year.\n"
    "[2] 极光白金卡：年费 695 美元；附属卡 第一张免费，此后每张每年 95 美元；逾期还款费 40 美元；"
    "预借现金手续费 交易金额的 5%。"
)


def test_figures_compare_without_thousands_commas_or_trailing_zeros() -> None:
    assert _figures("USD 25,000 and 25000, 25.00 or 25.50; [2] cites") == {"25000", "25", "25.5"}
    assert _figures("5% 和 0%") == {"5", "0"}


def test_right_answers_pass_untouched() -> None:
    for answer in (
        "The annual fee is USD 695, charged once per card year.",
        "Spend USD 25,000 [1] and next year's fee is waived.",
        "年费为 695 美元，每个卡年收取一次。",
        "40 美元。",
        "The travel credit is USD 300.00 every card year.",
        "Yes, it can be waived.",
    ):
        assert grounded(answer, PASSAGES) == (answer, 0), answer


def test_a_sentence_with_a_figure_no_passage_has_is_left_out() -> None:
    assert grounded("旅行礼遇金有 100000 美元。", PASSAGES) == ("", 1)
    mixed = "The annual fee is USD 695. You get 1000 points per dollar. Points never expire."
    assert grounded(mixed, PASSAGES) == ("The annual fee is USD 695. Points never expire.", 1)
    loop = "预借现金手续费为 40 美元，每期 100 美元，每期 100 美元，每期 100 美元"
    assert grounded(loop, PASSAGES) == ("", 1)


def test_the_question_counts_as_a_source() -> None:
    source = PASSAGES + "\nIs the fee 1,200 a year?"
    assert grounded("No, it is not 1200; it is USD 695.", source)[1] == 0


def test_sentences_split_where_whole_sentences_does() -> None:
    assert split_sentences("Mr. Chen pays USD 25.00. Yes! 好的。还有") == [
        "Mr. Chen pays USD 25.00.",
        " Yes!",
        " 好的。",
        "还有",
    ]
