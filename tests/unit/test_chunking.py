# ruff: noqa: RUF001 (Chinese test text has full-width punctuation)
"""Parent-child chunking: hypothesis properties with a character counter, and the real MiniLM tokenizer."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from appliance.knowledge.chunking import MAX_CHARS_PER_TOKEN, Parent, chunk
from appliance.knowledge.extract.base import Block, ExtractedDocument
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

TOKENIZER = Path(__file__).resolve().parents[2] / "models" / "all-MiniLM-L6-v2" / "tokenizer.json"


def chars(text: str) -> int:
    """A counter where every character is a token (exact, so bounds are checked exactly)."""
    return len(text)


def words(text: str) -> int:
    """A whitespace counter: a huge single word is one token (the char cap must still hold)."""
    return len(text.split())


def non_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _one_character(text: str) -> bool:
    """One user-perceived character: a base plus combining marks / joined parts (indivisible)."""
    return bool(text) and all(
        unicodedata.combining(c) or c in "\u200d\ufe0f" or text[i] == "\u200d"
        for i, c in enumerate(text[1:])
    )


def check(
    doc: ExtractedDocument, parents: list[Parent], count, parent_tokens: int, child_tokens: int
) -> None:  # type: ignore[no-untyped-def]
    child_limit = min(child_tokens, parent_tokens)
    # no text lost, in order
    assert "".join(non_space(p.text) for p in parents) == "".join(
        non_space(b.text) for b in doc.blocks
    )
    indices = [c.index for p in parents for c in p.children]
    assert indices == list(range(len(indices)))
    for number, parent in enumerate(parents):
        assert parent.index == number
        assert parent.text.strip() == parent.text and parent.text
        assert count(parent.text) <= parent_tokens or len(parent.children) == 1
        assert len(parent.text) <= parent_tokens * MAX_CHARS_PER_TOKEN or len(parent.children) == 1
        covered = [False] * len(parent.text)
        previous_start = -1
        for child in parent.children:
            assert child.parent_index == parent.index
            assert parent.text[child.start : child.end] == child.text  # inside the parent
            assert child.text and child.start > previous_start
            previous_start = child.start
            single_char = _one_character(child.text.strip())
            assert count(child.text) <= child_limit or single_char
            assert len(child.text) <= child_limit * MAX_CHARS_PER_TOKEN
            for i in range(child.start, child.end):
                covered[i] = True
        # children cover every non-space character of their parent
        assert all(covered[i] or parent.text[i].isspace() for i in range(len(parent.text)))


TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from([*"abc xyz.!?;\n\t。！？；，金卡年费美元", "\u0301", "\u200d", "😀", "𠀀"]),
        st.characters(codec="utf-8"),
    ),
    max_size=400,
)
BLOCK = st.builds(
    Block,
    text=TEXT,
    kind=st.sampled_from(["heading", "paragraph", "table", "table_row", "list_item", "line"]),
    level=st.integers(0, 4),
    page=st.one_of(st.none(), st.integers(1, 5)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=st.lists(BLOCK, max_size=12),
    parent_tokens=st.integers(8, 200),
    child_tokens=st.integers(2, 60),
    overlap=st.integers(0, 30),
)
@example(  # one character of 3 code points over a 2-token child limit: kept whole
    blocks=[Block(text="0\u0300\u0300", kind="heading", level=0, page=None)],
    parent_tokens=8,
    child_tokens=2,
    overlap=0,
)
def test_properties_with_a_character_counter(
    blocks: list[Block], parent_tokens: int, child_tokens: int, overlap: int
) -> None:
    doc = ExtractedDocument("text/plain", blocks, [])
    parents = chunk(
        doc, chars, parent_tokens=parent_tokens, child_tokens=child_tokens, overlap_tokens=overlap
    )
    check(doc, parents, chars, parent_tokens, child_tokens)


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(BLOCK, max_size=8),
    child_tokens=st.integers(1, 20),
)
def test_properties_with_a_word_counter(blocks: list[Block], child_tokens: int) -> None:
    doc = ExtractedDocument("text/plain", blocks, [])
    parents = chunk(
        doc, words, parent_tokens=child_tokens * 3, child_tokens=child_tokens, overlap_tokens=2
    )
    check(doc, parents, words, child_tokens * 3, child_tokens)


def test_terminates_on_huge_single_words_and_empty_documents() -> None:
    assert (
        chunk(
            ExtractedDocument("text/plain", [], []),
            chars,
            parent_tokens=64,
            child_tokens=16,
            overlap_tokens=4,
        )
        == []
    )
    blank = ExtractedDocument("text/plain", [Block("  \n\t ")], [])
    assert chunk(blank, chars, parent_tokens=64, child_tokens=16, overlap_tokens=4) == []
    doc = ExtractedDocument("text/plain", [Block("x" * 200_000), Block("金" * 50_000)], [])
    parents = chunk(doc, words, parent_tokens=64, child_tokens=16, overlap_tokens=4)
    check(doc, parents, words, 64, 16)
    assert max(len(c.text) for p in parents for c in p.children) == 16 * MAX_CHARS_PER_TOKEN


def test_cjk_is_never_split_inside_a_character() -> None:
    text = "金卡年费为九十五美元。首年免年费！持卡人可免费使用机场贵宾室？𠀀😀👍🏽é" * 20
    doc = ExtractedDocument("text/plain", [Block(text)], [])
    parents = chunk(doc, chars, parent_tokens=60, child_tokens=15, overlap_tokens=3)
    check(doc, parents, chars, 60, 15)
    for parent in parents:
        for child in parent.children:
            child.text.encode("utf-8")  # no lone surrogate, no mojibake
            assert not child.text.startswith("\u0301")
    # sentence ends are the preferred cut points
    assert all(
        c.text.endswith(("。", "！", "？"))
        for p in parents
        for c in p.children[:-1]
        if len(c.text) < 15
    )


def test_structure_sections_pages_and_rows_with_the_real_tokenizer() -> None:
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    rows = [
        Block(f"Product: Card {n} | Code: PX-{n:04d} | Annual fee: ${n * 5}", "table_row", page=3)
        for n in range(60)
    ]
    blocks = [
        Block("Card guide", "heading", 1),
        Block("Overview", "heading", 2),
        Block("The Gold card suits frequent travellers. It has lounge access. " * 12, page=1),
        Block("年费为九十五美元。金卡专享机场贵宾室。" * 10, page=2),
        Block("Fees", "heading", 2),
        *rows,
    ]
    doc = ExtractedDocument("application/pdf", blocks, [])
    parents = chunk(doc, count, parent_tokens=512, child_tokens=128, overlap_tokens=24)
    check(doc, parents, count, 512, 128)
    assert parents[0].section == ["Card guide", "Overview"]
    assert parents[0].text.startswith("Card guide\n\nOverview\n\nThe Gold card")
    fee_parents = [p for p in parents if p.section == ["Card guide", "Fees"]]
    assert fee_parents and fee_parents[0].text.startswith("Fees\n\nProduct: Card 0")
    assert {3} == {page for p in fee_parents for page in p.pages}
    for parent in fee_parents:
        for child in parent.children:
            # table rows are never split mid-row
            for line in filter(None, child.text.splitlines()):
                assert line == "Fees" or line.startswith("Product: Card ")
                assert re.search(r"Annual fee: \$\d+$", line) or line == "Fees"
    children = [c for p in parents for c in p.children]
    assert all(count(c.text) <= 128 for c in children)
    assert max(count(c.text) for c in children) > 90  # children are near the target, not tiny
    # neighbouring children of a long paragraph overlap
    first = parents[0].children
    assert len(first) > 1 and first[1].start < first[0].end
    assert {c.page for c in children} >= {1, 2, 3}


@pytest.mark.parametrize("overlap", [0, 200])
def test_overlap_bounds_always_make_progress(overlap: int) -> None:
    doc = ExtractedDocument("text/plain", [Block("One. Two. Three. Four. Five. Six. " * 30)], [])
    parents = chunk(doc, words, parent_tokens=40, child_tokens=10, overlap_tokens=overlap)
    check(doc, parents, words, 40, 10)


def test_a_child_cites_the_page_most_of_its_text_is_on() -> None:
    """QA: a passage that starts with one short line at the foot of page 1 and goes on down
    page 2 was cited as page 1, where what matched was not."""

    def words(text: str) -> int:
        return len(text.split())

    blocks = [
        Block("Zephyr Gold card.", page=1),
        Block("The annual fee is 120 dollars and the first year is free of charge. " * 2, page=2),
    ]
    doc = ExtractedDocument("application/pdf", blocks, [])
    parents = chunk(doc, words, parent_tokens=200, child_tokens=60, overlap_tokens=5)
    child = parents[0].children[0]
    assert child.text.startswith("Zephyr Gold card.")  # it starts on page 1...
    assert child.page == 2  # ...but most of it is on page 2
    assert parents[0].pages == [1, 2]
    alone = chunk(
        ExtractedDocument("application/pdf", blocks[:1], []),
        words,
        parent_tokens=200,
        child_tokens=60,
        overlap_tokens=5,
    )
    assert alone[0].children[0].page == 1
