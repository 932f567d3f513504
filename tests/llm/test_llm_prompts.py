"""Prompt formats, the long-prompt policy, stop handling and schema compilation (no decoding)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from appliance.llm.base import Message
from appliance.llm.engine import Job
from appliance.llm.errors import SchemaError
from appliance.llm.prompts.render import (
    ChatTemplateFormat,
    PromptTemplateError,
    TranscriptFormat,
    alternate_roles,
    build_prompt,
)
from appliance.llm.samples import StageUpdate, TurnScore, conversation
from appliance.llm.structured import compile_schema
from llama_cpp import Llama

from tests.llm.conftest import MODEL

GEMMA3_TEMPLATE = (Path(__file__).parent / "data" / "gemma3_chat_template.jinja").read_text()

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenize() -> Iterator[Any]:
    vocab = Llama(model_path=str(MODEL), vocab_only=True, verbose=False)

    def run(text: str, add_bos: bool, special: bool) -> list[int]:
        return list(vocab.tokenize(text.encode(), add_bos=add_bos, special=special))

    yield run
    vocab.close()


def test_transcript_format_for_base_models() -> None:
    rendered = TranscriptFormat().render(conversation("cars", 2).messages, "Customer")
    assert rendered.text.startswith("A customer at a car dealership")
    assert "\n\nSalesperson: Hello and welcome!" in rendered.text
    assert "\nCustomer: I see, go on.\n" in rendered.text
    assert rendered.text.endswith("\nCustomer:")
    assert "\nSalesperson:" in rendered.stops and "\nCustomer:" in rendered.stops


def test_chat_template_models_get_their_template() -> None:
    fmt = ChatTemplateFormat(CHATML, bos_token="<bos>", eos_token="<|im_end|>")
    rendered = fmt.render(
        [Message(role="system", content="Be brief."), Message(role="user", content="Hi")], ""
    )
    assert rendered.text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert "<|im_end|>" in rendered.stops
    assert rendered.parse_special


def test_strict_templates_get_alternating_turns_whatever_was_trimmed(tokenize: Any) -> None:
    """Gemma's template (like Mistral's, Llama 2's) raises unless the turns after the system
    prompt start with the user and alternate; trimming can drop an odd number of turns."""
    fmt = ChatTemplateFormat(GEMMA3_TEMPLATE, bos_token="<bos>", eos_token="<eos>")
    turns = []
    for i in range(30):
        turns += [
            Message(role="user", content=f"Question {i}: what about the fees? " * 6),
            Message(role="assistant", content=f"Answer {i}: they are high. " * 6),
        ]
    messages = [Message(role="system", content="You are Dana."), *turns, turns[0]]
    for budget in range(300, 1300, 97):  # odd and even numbers of dropped turns
        prompt = build_prompt(fmt, tokenize, messages, reply_name="", budget=budget)
        assert len(prompt.tokens) <= budget
        assert prompt.text.startswith("<bos><start_of_turn>user\nYou are Dana.\n\nQuestion")
        assert prompt.text.endswith("<start_of_turn>model\n")
    # consecutive turns of one role are joined; a leading assistant turn is dropped
    joined = alternate_roles(
        [
            Message(role="system", content="S"),
            Message(role="assistant", content="old reply"),
            Message(role="user", content="A"),
            Message(role="user", content="B"),
            Message(role="assistant", content="C"),
        ]
    )
    assert [(m.role, m.content) for m in joined] == [
        ("system", "S"),
        ("user", "A\n\nB"),
        ("assistant", "C"),
    ]
    assert fmt.render(joined, "").text == (
        "<bos><start_of_turn>user\nS\n\nA\n\nB<end_of_turn>\n"
        "<start_of_turn>model\nC<end_of_turn>\n<start_of_turn>model\n"
    )


def test_a_template_that_refuses_anyway_gives_a_typed_error() -> None:
    refusing = "{{ raise_exception('this template takes no system prompt') }}"
    fmt = ChatTemplateFormat(refusing, bos_token="<bos>", eos_token="<eos>")
    with pytest.raises(PromptTemplateError) as err:
        fmt.render([Message(role="system", content="S"), Message(role="user", content="U")], "")
    assert err.value.code == "llm_prompt_template_error"
    assert "takes no system prompt" in err.value.message


def test_long_prompts_keep_the_system_prompt_and_the_latest_turns(tokenize: Any) -> None:
    replies = [f"Reply number {i} from the customer." for i in range(60)]
    request = conversation("insurance", 60, replies=replies)
    prompt = build_prompt(
        TranscriptFormat(), tokenize, request.messages, reply_name="Customer", budget=300
    )
    assert len(prompt.tokens) <= 300
    assert prompt.dropped_turns > 0 and not prompt.truncated
    assert prompt.text.startswith("A young homeowner")
    assert "Reply number 58" in prompt.text and "Reply number 1 " not in prompt.text
    # fewest turns dropped: one more turn would not fit
    dropped = prompt.dropped_turns
    turns = [m for m in request.messages if m.role != "system"]
    longer = TranscriptFormat().render([request.messages[0], *turns[dropped - 1 :]], "Customer")
    assert len(tokenize(longer.text, True, False)) > 300


def test_a_single_huge_turn_is_cut_from_its_start(tokenize: Any) -> None:
    messages = [
        Message(role="system", content="Keep this."),
        Message(role="user", content="old " * 3000 + "the question at the end?"),
    ]
    prompt = build_prompt(TranscriptFormat(), tokenize, messages, reply_name="", budget=200)
    assert len(prompt.tokens) <= 200 and prompt.truncated
    assert prompt.text.startswith("Keep this.")
    assert "the question at the end?" in prompt.text


def feed(job: Job, pieces: list[bytes]) -> bool:
    return any(job.accept(p, False) for p in pieces)


def test_stop_sequences_are_held_back_and_cut_even_across_pieces() -> None:
    out: list[str] = []
    job = Job(prompt=[1], stops=["\nSalesperson:"], max_tokens=50, emit=out.append)
    assert feed(job, [b" Hello", b" there.", b"\nSales", b"person", b": more"])
    assert "".join(out) == "Hello there."
    assert job.finish_reason == "stop"


def test_a_partial_stop_that_does_not_complete_is_released() -> None:
    out: list[str] = []
    job = Job(prompt=[1], stops=["\n\n"], max_tokens=3, emit=out.append)
    assert feed(job, [b"a", b"\n", b"b"])
    assert "".join(out) == "a\nb"
    assert job.finish_reason == "length"


def test_utf8_split_across_tokens_is_joined() -> None:
    out: list[str] = []
    job = Job(prompt=[1], stops=[], max_tokens=3, emit=out.append)
    euro = "€".encode()
    feed(job, [euro[:1], euro[1:], b"5"])
    assert "".join(out) == "€5"


def test_bounded_ints_become_enums_and_strings_keep_their_max_length() -> None:
    compiled = compile_schema(TurnScore)
    props = compiled.json_schema["$defs"]["TurnScore"]["properties"]
    assert props["score"] == {"enum": list(range(11))}
    assert props["reason"]["maxLength"] == 80
    assert "root" in compiled.gbnf
    assert compiled.decode('{"score": 7, "reason": "good question"}') == TurnScore(
        score=7, reason="good question"
    )
    with pytest.raises(msgspec.ValidationError):
        compiled.decode('{"score": 11, "reason": "x"}')
    stage = compile_schema(StageUpdate)
    assert stage.json_schema["$defs"]["StageUpdate"]["properties"]["sentiment"] == {
        "enum": [-2, -1, 0, 1, 2]
    }


def test_types_without_a_json_schema_are_refused_at_compile_time() -> None:
    class Handle(msgspec.Struct):
        callback: type = int

    with pytest.raises(SchemaError, match="Handle"):
        compile_schema(Handle)
