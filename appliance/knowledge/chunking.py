"""Parent-child (small-to-big) chunking of an extracted document.

Blocks are cut into *pieces*, each at most ``child_tokens`` long: structure first (a block that
fits is one piece; a table splits only between rows), then sentences (CJK full stop, !, ?, ; and Latin
.!?; followed by a space) and lines, then words, and characters as the last resort. Pieces are
packed into *parents* of at most ``parent_tokens`` (a heading opens a new parent; a block that
fits a parent is not torn across two), and each parent is covered by *children*: windows of
consecutive pieces of at most ``child_tokens`` that overlap by up to ``overlap_tokens``. A child's
text is ``parent.text[start:end]``. Token counts come from the caller (the embedder's tokenizer).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.knowledge.extract.base import Block, ExtractedDocument

# A piece is also capped in characters (tokens x this): a tokenizer may count a huge unbroken
# "word" as one [UNK] token, and no chunk should be megabytes long because of it.
MAX_CHARS_PER_TOKEN = 12

_SENTENCE_END = re.compile(
    r"(?:[.!?;]+[\"')\]\u201d\u2019]*(?=\s))|[\u3002\uff01\uff1f\uff1b\n]+[\"')\]\u201d\u2019\u300d\u300f]*"
)
_WORD_END = re.compile(r"\S(?=\s)")


@dataclass
class Child:
    """What is embedded and searched: a small window of its parent's text."""

    index: int
    parent_index: int
    text: str
    page: int | None  # the page most of its text is on (what a search result cites)
    section: list[str]
    start: int  # character offsets of the child inside its parent's text
    end: int


@dataclass
class Parent:
    """What the LLM is given: a bigger, structurally whole span of the document."""

    index: int
    text: str
    pages: list[int]
    section: list[str]
    children: list[Child] = field(default_factory=list)


@dataclass
class _Piece:
    text: str
    block: int
    kind: str
    page: int | None
    section: list[str]
    tokens: int
    gap_before: str  # the original whitespace before it inside its block ("" at a block start)


class _Splitter:
    def __init__(self, count: Callable[[str], int], limit: int) -> None:
        self.count = count
        self.limit = limit
        self.max_chars = limit * MAX_CHARS_PER_TOKEN

    def fits(self, text: str) -> bool:
        return len(text) <= self.max_chars and self.count(text) <= self.limit

    def split(self, text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
        """Spans (stripped, non-empty) covering every non-space char of text[start:end]."""
        start, end = _strip(text, start, end)
        if start >= end:
            return []
        if self.fits(text[start:end]):
            return [(start, end)]
        bounds = self._bounds(text, start, end, level)
        spans: list[tuple[int, int]] = []
        position = start
        while position < end:
            position, _ = _strip(text, position, end)
            if position >= end:
                break
            first = bisect.bisect_right(bounds, position)
            best = (
                self._greedy(text, position, bounds, first)
                if level < 2
                else self._longest(text, position, bounds, first, len(bounds) - 1)
            )
            if best is None:
                if level >= 2:  # a single character over the limit: take it anyway
                    best = _next_char(text, position, end)
                    spans.append((position, best))
                else:
                    cut = bounds[first]
                    spans.extend(self.split(text, position, cut, level + 1))
                    best = cut
            else:
                stripped = _strip(text, position, best)
                spans.append(stripped)
            position = best
        return [s for s in spans if s[0] < s[1]]

    def _bounds(self, text: str, start: int, end: int, level: int) -> list[int]:
        if level == 0:
            found = [m.end() for m in _SENTENCE_END.finditer(text, start, end)]
        elif level == 1:
            found = [m.end() for m in _WORD_END.finditer(text, start, end)]
        else:
            found = [i for i in range(start + 1, end) if not _glued(text, i)]
        found.append(end)
        return sorted(set(found))

    def _greedy(self, text: str, position: int, bounds: list[int], first: int) -> int | None:
        """Like _longest, counting each sentence/word once and checking the sum once (linear)."""
        total = 0
        previous = position
        reached: int | None = None
        index = first
        while index < len(bounds):
            bound = bounds[index]
            if bound - position > self.max_chars + 64:
                break
            start, end = _strip(text, previous, bound)
            tokens = self.count(text[start:end]) if start < end else 0
            if total + tokens > self.limit:
                break
            total += tokens
            previous = bound
            reached = index
            index += 1
        if reached is None:
            return None
        start, end = _strip(text, position, bounds[reached])
        if self.fits(text[start:end]):
            return bounds[reached]
        # the sum of the parts was no guide (a tokenizer that merges across spaces): search
        return self._longest(text, position, bounds, first, reached)

    def _longest(
        self, text: str, position: int, bounds: list[int], first: int, last: int
    ) -> int | None:
        """The farthest bound b (from bounds[first:last + 1]) with text[position:b] fitting, else None."""
        low, high = first, last
        # only bounds within the char cap can fit
        high = min(high, bisect.bisect_right(bounds, position + self.max_chars + 64) - 1)
        best = None
        while low <= high:
            middle = (low + high) // 2
            span = _strip(text, position, bounds[middle])
            if self.fits(text[span[0] : span[1]]):
                best = bounds[middle]
                low = middle + 1
            else:
                high = middle - 1
        return best


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _glued(text: str, index: int) -> bool:
    """Whether text[index] must stay with the character before it (combining mark, joiner)."""
    char = text[index]
    return (
        bool(unicodedata.combining(char)) or char in "\u200d\ufe0f" or text[index - 1] == "\u200d"
    )


def _next_char(text: str, position: int, end: int) -> int:
    position += 1
    while position < end and _glued(text, position):
        position += 1
    return position


class _Sections:
    def __init__(self) -> None:
        self.trail: list[tuple[int, str]] = []

    def enter(self, block: Block) -> list[str]:
        if block.kind == "heading":
            level = max(block.level, 1)
            while self.trail and self.trail[-1][0] >= level:
                self.trail.pop()
            self.trail.append((level, " ".join(block.text.split())))
        return [title for _, title in self.trail]


def _pieces(doc: ExtractedDocument, splitter: _Splitter) -> list[_Piece]:
    sections = _Sections()
    pieces: list[_Piece] = []
    for number, block in enumerate(doc.blocks):
        section = sections.enter(block)
        text = block.text
        # tables split only between rows: no sentence boundaries inside a row
        level = 0
        spans = (
            _table_spans(text, splitter)
            if block.kind == "table"
            else splitter.split(text, 0, len(text), level)
        )
        previous_end: int | None = None
        for start, end in spans:
            piece_text = text[start:end]
            gap = "" if previous_end is None else text[previous_end:start]
            pieces.append(
                _Piece(
                    piece_text,
                    number,
                    block.kind,
                    block.page,
                    section,
                    splitter.count(piece_text),
                    gap,
                )
            )
            previous_end = end
    return pieces


def _table_spans(text: str, splitter: _Splitter) -> list[tuple[int, int]]:
    """A table block: whole if it fits, else groups of whole rows (a huge row is split inside)."""
    start, end = _strip(text, 0, len(text))
    if start >= end:
        return []
    if splitter.fits(text[start:end]):
        return [(start, end)]
    spans: list[tuple[int, int]] = []
    position = 0
    for line in text.splitlines(keepends=True):
        spans.extend(splitter.split(text, position, position + len(line), 1))
        position += len(line)
    return spans


def _separator(left: _Piece, right: _Piece) -> str:
    if left.block == right.block:
        return right.gap_before
    if left.kind == right.kind == "table_row":
        return "\n"
    return "\n\n"


def _assemble(pieces: list[_Piece]) -> tuple[str, list[tuple[int, int]]]:
    parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    length = 0
    for position, piece in enumerate(pieces):
        if position:
            separator = _separator(pieces[position - 1], piece)
            parts.append(separator)
            length += len(separator)
        parts.append(piece.text)
        offsets.append((length, length + len(piece.text)))
        length += len(piece.text)
    return "".join(parts), offsets


def _fill(
    pieces: list[_Piece], first: int, limit: int, splitter: _Splitter, stop: Callable[[int], bool]
) -> int:
    """The exclusive end of the longest run pieces[first:end] that fits ``limit`` (at least one)."""
    end = first + 1
    total = pieces[first].tokens
    length = len(pieces[first].text)
    max_chars = limit * MAX_CHARS_PER_TOKEN
    while end < len(pieces) and not stop(end):
        separator = _separator(pieces[end - 1], pieces[end])
        extra = pieces[end].tokens + (splitter.count(separator) if separator.strip() else 0)
        extra_chars = len(separator) + len(pieces[end].text)
        if total + extra > limit or length + extra_chars > max_chars:
            break
        total += extra
        length += extra_chars
        end += 1
    # the sum of piece counts is an estimate: check the real text and give back pieces if needed
    while end - first > 1:
        text, _ = _assemble(pieces[first:end])
        if len(text) <= max_chars and splitter.count(text) <= limit:
            break
        end -= 1
    return end


def chunk(
    doc: ExtractedDocument,
    count_tokens: Callable[[str], int],
    *,
    parent_tokens: int,
    child_tokens: int,
    overlap_tokens: int,
) -> list[Parent]:
    """Cut a document into parents (for the LLM) each covered by overlapping children (embedded)."""
    child_tokens = max(1, min(child_tokens, parent_tokens))
    overlap_tokens = max(0, min(overlap_tokens, child_tokens - 1))
    splitter = _Splitter(count_tokens, child_tokens)
    parent_splitter = _Splitter(count_tokens, parent_tokens)
    pieces = _pieces(doc, splitter)
    block_tokens: dict[int, int] = {}
    for piece in pieces:
        block_tokens[piece.block] = block_tokens.get(piece.block, 0) + piece.tokens

    parents: list[Parent] = []
    child_index = 0
    first = 0
    while first < len(pieces):

        def stop(position: int, first: int = first) -> bool:
            piece = pieces[position]
            if piece.block == pieces[position - 1].block:
                return False
            if piece.kind == "heading":  # a heading opens a section, unless only headings precede
                return any(p.kind != "heading" for p in pieces[first:position])
            return False

        end = _fill(pieces, first, parent_tokens, parent_splitter, stop)
        end = _keep_block_whole(pieces, first, end, block_tokens, parent_tokens)
        members = pieces[first:end]
        text, offsets = _assemble(members)
        parent = Parent(
            index=len(parents),
            text=text,
            pages=sorted({p.page for p in members if p.page is not None}),
            section=list(members[-1].section),
        )
        for child_first, child_end in _windows(members, splitter, overlap_tokens):
            start, end_offset = offsets[child_first][0], offsets[child_end - 1][1]
            parent.children.append(
                Child(
                    index=child_index,
                    parent_index=parent.index,
                    text=text[start:end_offset],
                    page=_main_page(members[child_first:child_end]),
                    section=list(members[child_first].section),
                    start=start,
                    end=end_offset,
                )
            )
            child_index += 1
        parents.append(parent)
        first = end
    return parents


def _main_page(members: list[_Piece]) -> int | None:
    """The page most of a child's tokens are on (the first such page on a tie): a child that
    starts with a line or two at the foot of page 1 and goes on down page 2 cites page 2,
    where what matched it most likely is."""
    tokens: dict[int, int] = {}
    for piece in members:
        if piece.page is not None:
            tokens[piece.page] = tokens.get(piece.page, 0) + piece.tokens
    if not tokens:
        return None
    most = max(tokens.values())
    return next(page for page, n in tokens.items() if n == most)


def _keep_block_whole(
    pieces: list[_Piece], first: int, end: int, block_tokens: dict[int, int], limit: int
) -> int:
    """Move a block torn at the parent's end to the next parent when it would fit there whole."""
    if end >= len(pieces) or pieces[end].block != pieces[end - 1].block:
        return end
    block = pieces[end].block
    start = end
    while start > first and pieces[start - 1].block == block:
        start -= 1
    if start > first and block_tokens[block] <= limit:
        return start
    return end


def _windows(
    members: list[_Piece], splitter: _Splitter, overlap_tokens: int
) -> list[tuple[int, int]]:
    windows: list[tuple[int, int]] = []
    first = 0
    while first < len(members):
        end = _fill(members, first, splitter.limit, splitter, lambda _: False)
        windows.append((first, end))
        if end >= len(members):
            break
        # step back over up to overlap_tokens of whole pieces, always moving forward
        next_first = end
        overlap = 0
        while next_first - 1 > first and overlap + members[next_first - 1].tokens <= overlap_tokens:
            next_first -= 1
            overlap += members[next_first].tokens
        first = next_first
    return windows
