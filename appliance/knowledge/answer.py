# ruff: noqa: RUF001, RUF002 - the Chinese messages and examples use full-width punctuation on purpose
"""Answers for ``POST /api/knowledge/ask``: search first, then the LLM writes from the passages.

The matched child chunks of the best few results go into a transcript-style prompt (the
bundled model is a base model) as numbered passages, with the instruction to answer only from
them and to cite them by number. The reply keeps whole sentences, each said once (a small
model loops, or stops at its token limit mid-sentence), ends where the model starts another
question, drops every sentence that names a figure no passage has (``grounded``), and is kept
only when it is usable (some words or figures, not the question again); otherwise, or when
the LLM is busy, down or too slow, the caller gets the passages themselves
(``retrieval_only``) and a message that says why. The citations are the search results either
way, best first.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

from appliance.knowledge.service import SearchResult
from appliance.llm.base import GenerateRequest, LLMBackend, Message
from appliance.llm.errors import LLMError
from appliance.llm.sentences import split_sentences, whole_sentences

log = logging.getLogger(__name__)

PASSAGES = 3  # the best results' matched children (~128 tokens each) given to the model
PASSAGE_CHARS = 900  # each passage is cut to this many characters (about 220 tokens)
ANSWER_TOKENS = 160
ANSWER_TIMEOUT_S = 30.0
STOPS = ("Question:", "问题:", "问题：")
"""The answer ends where the model starts the next question, as an FAQ passage it was given
does ("… 0%: you pay no extra abroad. Question: How much does a supplementary card cost?")."""
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass
class Answer:
    """The answer text, how it was made, and a sentence for the reader about it."""

    text: str
    mode: Literal["llm", "retrieval_only"]
    message: str


def passages_text(results: list[SearchResult]) -> str:
    """The passages as a numbered list, ``[n] title vN p.P: text``."""
    return "\n\n".join(
        f"[{n}] {r.citation.title} v{r.citation.version}"
        + (f" p.{r.citation.page}" if r.citation.page else "")
        + f": {r.citation.snippet}"
        for n, r in enumerate(results, start=1)
    )


def _blocks(results: list[SearchResult]) -> list[str]:
    """The passages the model is given, numbered: ``[n] title: text``, where the text is the
    child chunk the search matched (what the citation shows), not its whole parent: on the
    demo pack's 15 fee questions the bundled model answered 8 right from the matched children
    against 6 from the parents' first 900 characters (a parent holds many fees, the matched
    child mostly the one asked about; BENCHMARKS.md, "Knowledge answers")."""
    blocks = []
    for n, r in enumerate(results[:PASSAGES], start=1):
        text = " ".join(r.citation.snippet.split())
        if len(text) > PASSAGE_CHARS:
            text = text[:PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
        blocks.append(f"[{n}] {r.citation.title}: {text}")
    return blocks


def _prompt(question: str, blocks: list[str], zh: bool) -> list[Message]:
    if zh:
        head = (  # Chinese punctuation on purpose
            "以下是公司知识库中的资料，然后是一个问题和一个只根据这些资料写出的回答，"
            "回答用方括号注明资料编号，例如[1]。\n\n"
        )
    else:
        head = (
            "Below are passages from the company's knowledge base, then a question and an "
            "answer written only from these passages, citing them by number, like [1].\n\n"
        )
    return [
        Message(role="system", content=head + "\n\n".join(blocks)),
        Message(role="user", content=question, name="问题" if zh else "Question"),
    ]


_FIGURE = re.compile(r"\d+(?:[.,]\d+)*")
_CITATION_MARK = re.compile(r"\[\d+\]")


def _figures(text: str) -> set[str]:
    """The numbers in ``text``, as compared: no thousands commas, no trailing decimal zeros
    ("25,000" and "25000", "25.00" and "25" are the same figure)."""
    found = set()
    for raw in _FIGURE.findall(_CITATION_MARK.sub(" ", text)):
        number = raw.replace(",", "")
        if number.count(".") == 1:
            number = number.rstrip("0").rstrip(".")
        found.add(number)
    return found


def grounded(text: str, source: str) -> tuple[str, int]:
    """``text`` without the sentences that name a figure found nowhere in ``source`` (the
    passages and the question), and how many were left out.

    A small model answering "How much is the travel credit?" may write "100000 美元" or loop
    "每期 100 美元，…" about figures no passage has: for fee amounts a wrong figure does harm, so
    it is not shown. (A figure taken from the wrong row of a passage passes: it is there.)"""
    known = _figures(source)
    kept, dropped = [], 0
    for sentence in split_sentences(text):
        if _figures(sentence) <= known:
            kept.append(sentence)
        else:
            dropped += 1
    return "".join(kept).strip(), dropped


def _usable(text: str, question: str) -> bool:
    """Some words or figures ("14 days." is an answer), and not the question again."""
    words = re.findall(r"\w+", text.lower())
    return bool(words) and words != re.findall(r"\w+", question.lower())


# what the answer says about itself, in the question's language (English, Chinese)
_SAY: dict[str, tuple[str, str]] = {
    "nothing": (
        "Nothing in the knowledge base matches this question.",
        "知识库中没有与这个问题相符的内容。",
    ),
    "no_passage": (
        "No passage matched, so there is nothing to answer from.",
        "没有匹配的段落，因此无从作答。",
    ),
    "llm_failed": (
        "The language model could not answer ({code}): these are the passages an answer "
        "would be grounded in, best first, with their citations.",
        "语言模型未能作答（{code}）：以下是作答所依据的段落，按相关度排列，附出处。",
    ),
    "unusable": (
        "The language model gave no usable answer: these are the passages, best first, with "
        "their citations.",
        "语言模型没有给出可用的回答：以下是相关段落，按相关度排列，附出处。",
    ),
    "written": (
        "Written by the local language model from the first {n} passages below; check it "
        "against the citations.",
        "由本地语言模型根据下面前 {n} 个段落写成；请对照出处核实。",
    ),
    "left_out": (
        " {k} of its sentences named a figure that is in none of the passages and was left out.",
        "其中 {k} 句提到的数字不在任何段落中，已略去。",
    ),
    "ungrounded": (
        "The language model's answer named figures that are in none of the passages, so it is "
        "not shown: these are the passages, best first, with their citations.",
        "语言模型的回答中有段落里没有的数字，因此不予显示：以下是相关段落，按相关度排列，附出处。",
    ),
}


def _say(key: str, zh: bool, **values: object) -> str:
    return _SAY[key][1 if zh else 0].format(**values)


async def answer(llm: LLMBackend, question: str, results: list[SearchResult]) -> Answer:
    """An answer grounded in ``results`` (best first), or the passages when the LLM cannot;
    what it says about itself is in the question's language."""
    zh = bool(_CJK.search(question))
    if not results:
        return Answer(_say("nothing", zh), "retrieval_only", _say("no_passage", zh))
    blocks = _blocks(results)
    request = GenerateRequest(
        messages=_prompt(question, blocks, zh),
        max_tokens=ANSWER_TOKENS,
        temperature=0.0,
        priority="interactive",
        reply_name="回答" if zh else "Answer",
        stop=STOPS,
        timeout_s=ANSWER_TIMEOUT_S,
    )
    try:
        completion = await llm.generate(request)
    except LLMError as err:
        log.info("ask: LLM %s (%s); passages returned", err.code, err.message)
        return Answer(
            passages_text(results), "retrieval_only", _say("llm_failed", zh, code=err.code)
        )
    text = whole_sentences(
        " ".join(completion.text.split()), truncated=completion.finish_reason == "length"
    )
    if not _usable(text, question):
        return Answer(passages_text(results), "retrieval_only", _say("unusable", zh))
    text, dropped = grounded(text, "\n".join([question, *blocks]))
    if not _usable(text, question):
        log.info("ask: every sentence named a figure no passage has; passages returned")
        return Answer(passages_text(results), "retrieval_only", _say("ungrounded", zh))
    message = _say("written", zh, n=min(PASSAGES, len(results)))
    if dropped:
        message += _say("left_out", zh, k=dropped)
    return Answer(text, "llm", message)
