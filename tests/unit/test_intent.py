# ruff: noqa: RUF001  (Chinese test utterances use full-width punctuation on purpose)
"""The intent classifier: training data, held-out accuracy floors, context rules, storage."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from appliance.config import Settings, load_settings
from appliance.errors import AppError
from appliance.practice.agents.intent import (
    HELDOUT_FILE,
    TRAIN_FILE,
    IntentModel,
    LinearIntentClassifier,
    check_request,
    load_examples,
    load_intent_classifier,
    model_dir,
    model_status,
    normalise,
    training_hash,
)
from appliance.practice.model import INTENTS, StageState
from appliance.practice.stages import StageFSM, missed_slots, proposes

# measured on dev-2c: 0.861 overall, en 0.871, zh 0.852 (BENCHMARKS.md); floors = that minus ~5 pts
FLOOR = {"all": 0.81, "en": 0.82, "zh": 0.80}


def settings_for(models: Path, **env: str) -> Settings:
    environ = {"SALESBOOST__PATHS__MODELS_DIR": str(models), **env}
    return load_settings(None, environ=environ).settings


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def classifier(models: Path) -> LinearIntentClassifier:
    """Trained in-process from the bundled set (the models dir starts empty) and saved."""
    return load_intent_classifier(settings_for(models))


def test_training_set_covers_every_label_in_both_languages() -> None:
    train = load_examples(TRAIN_FILE)
    heldout = load_examples(HELDOUT_FILE)
    train_counts = Counter((e.label, e.lang) for e in train)
    held_counts = Counter((e.label, e.lang) for e in heldout)
    for label in INTENTS:
        for lang in ("en", "zh"):
            assert train_counts[label, lang] >= 25, (label, lang)
            assert held_counts[label, lang] >= 8, (label, lang)
    normalised = {" ".join(e.text.lower().split()) for e in train}
    assert not [e.text for e in heldout if " ".join(e.text.lower().split()) in normalised]


def test_heldout_accuracy_floors_per_language(classifier: LinearIntentClassifier) -> None:
    heldout = load_examples(HELDOUT_FILE)
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for e in heldout:
        ok = classifier.classify(e.text).label == e.label
        for key in ("all", e.lang):
            total[key] += 1
            right[key] += ok
    accuracy = {k: right[k] / total[k] for k in total}
    for key, floor in FLOOR.items():
        assert accuracy[key] >= floor, accuracy


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("How much is the annual fee?", "price_inquiry"),
        ("年费是多少钱？", "price_inquiry"),
        ("That fee is way too expensive for me.", "price_objection"),
        ("Good morning, Mr. Chen.", "greeting"),
        ("I'm fine. Thank you.", "greeting"),  # the answer to "How are you?", not a refusal
        ("No thanks, I'm fine with my current card.", "soft_rejection"),
        ("I'm in a meeting, call me later.", "time_pressure"),
        ("我现在很忙，请长话短说。", "time_pressure"),
        ("Can you waive the fee this year?", "negotiation"),
        ("I spend about four thousand a month.", "unclear"),
    ],
)
def test_clear_examples(classifier: LinearIntentClassifier, text: str, label: str) -> None:
    result = classifier.classify(text)
    assert result.label == label
    assert 0 < result.confidence <= 1


@pytest.mark.parametrize("text", ["", "   ", "...", "？！", "--"])
def test_noise_is_unclear(classifier: LinearIntentClassifier, text: str) -> None:
    assert classifier.classify(text).label == "unclear"
    assert classifier.classify(text).confidence == 1.0


def test_price_mentioned_again_is_an_objection(classifier: LinearIntentClassifier) -> None:
    text = "How much is the annual fee again?"
    assert classifier.classify(text).label == "price_inquiry"
    again = classifier.classify(text, previous=["greeting", "price_inquiry", "filler"])
    assert again.label == "price_objection"
    assert classifier.classify("年费是多少？", previous=["price_objection"]).label == (
        "price_objection"
    )
    assert classifier.classify(text, previous=["greeting"]).label == "price_inquiry"


def test_positive_signal_in_closing_is_final_confirmation(
    classifier: LinearIntentClassifier,
) -> None:
    text = "That sounds really good."
    assert classifier.classify(text).label == "positive_feedback"
    assert classifier.classify(text, stage="PRODUCT_INTRO").label == "positive_feedback"
    assert classifier.classify(text, stage="CLOSING").label == "final_confirmation"
    assert classifier.classify("好的", stage="CLOSING").label == "final_confirmation"
    assert classifier.classify("Okay.", stage="CLOSING").label == "final_confirmation"


def test_nothing_proposed_means_nothing_to_confirm(classifier: LinearIntentClassifier) -> None:
    """A "yes" answering a discovery question is not a final confirmation (rule 6)."""
    text = "Yes, I have a debit card."
    assert classifier.classify(text).label == "final_confirmation"  # what the model alone says
    answer = classifier.classify(text, confirmable=False)
    assert answer.label not in ("final_confirmation", "positive_feedback")
    assert classifier.classify("是的，我有一张借记卡。", confirmable=False).label != (
        "final_confirmation"
    )
    # rule 4's positive signal in CLOSING falls back to the label it replaced
    closing = classifier.classify("That sounds really good.", stage="CLOSING", confirmable=False)
    assert closing.label == "positive_feedback"
    deal = "Okay, I'll keep the card then."
    assert classifier.classify(deal, confirmable=True).label == "final_confirmation"


def test_a_proposal_is_a_benefit_an_answered_objection_or_a_closing_question() -> None:
    opening = StageState(stage="OPENING", slots={"greeting_done": True})
    assert not proposes(opening, "May I ask how you use your card at the moment?")
    assert proposes(opening, "Shall we keep the card for another year?")
    assert proposes(opening, "You get unlimited lounge access.")
    answered = StageState(stage="OBJECTION_HANDLING", slots={"objection_addressed": True})
    assert proposes(answered, "How does that sound?")


def test_repeated_hesitation_is_a_soft_rejection(classifier: LinearIntentClassifier) -> None:
    text = "I'm not sure, let me think about it."
    assert classifier.classify(text).label == "hesitation"
    assert classifier.classify(text, previous=["hesitation"]).label == "soft_rejection"
    assert classifier.classify("我还要再考虑考虑。", previous=["hesitation"]).label == (
        "soft_rejection"
    )
    old = ["hesitation", "filler", "filler", "filler"]  # outside the window of 3
    assert classifier.classify(text, previous=old).label == "hesitation"


def test_low_confidence_is_unclear(classifier: LinearIntentClassifier) -> None:
    strict = LinearIntentClassifier(classifier.model, min_confidence=0.999)
    raw = classifier.predict("Maybe the thing about the stuff.")
    result = strict.classify("Maybe the thing about the stuff.")
    assert result.label == "unclear"
    assert result.confidence == pytest.approx(1 - raw.confidence, abs=1e-3)


def test_the_stored_model_is_plain_data_and_round_trips(
    classifier: LinearIntentClassifier, models: Path
) -> None:
    directory = models / "intent"
    assert sorted(p.name for p in directory.iterdir()) == ["intent.json", "intent.npz"]
    meta = json.loads((directory / "intent.json").read_text(encoding="utf-8"))
    assert meta["train_hash"] == training_hash(TRAIN_FILE, "chars")
    assert sorted(meta["labels"]) == sorted(INTENTS)
    with np.load(directory / "intent.npz", allow_pickle=False) as arrays:
        assert arrays["coef"].shape == (len(INTENTS), len(meta["vocabulary"]))
    loaded = IntentModel.load(directory)
    for text in ("How much is it?", "太贵了", "hello"):
        np.testing.assert_allclose(
            loaded.probabilities(text), classifier.model.probabilities(text), rtol=1e-12
        )


def test_serving_features_equal_scikit_learns_tfidf(classifier: LinearIntentClassifier) -> None:
    """Serving computes the TF-IDF row in numpy (no scikit-learn import); it must be the row
    the training's TfidfVectorizer gives, on every utterance we have and on edge cases."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    model = classifier.model
    vectorizer = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(1, 4),
        sublinear_tf=True,
        lowercase=False,
        vocabulary=model.vocabulary,
    )
    vectorizer.idf_ = model.idf
    examples = load_examples(TRAIN_FILE) + load_examples(HELDOUT_FILE)
    texts = [normalise(e.text) for e in examples]
    texts += ["", "a", "ab", "i  am", "价格" * 40, "zzzz qqqq", "a-b.c, d!"]
    for text in texts:
        expected = vectorizer.transform([text]).toarray().ravel()
        columns, weights = model.char_features(text)
        got = np.zeros_like(expected)
        got[columns] = weights
        np.testing.assert_allclose(got, expected, atol=1e-12, err_msg=text)


def test_a_stale_or_broken_model_is_retrained_at_load(
    classifier: LinearIntentClassifier, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    assert model_status(settings)[0] == "missing"
    load_intent_classifier(settings)
    assert model_status(settings)[0] == "ok"
    meta_path = model_dir(settings) / "intent.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["train_hash"] = "0" * 64  # as if the training set had changed
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    assert model_status(settings)[0] == "stale"
    assert load_intent_classifier(settings).classify("hello").label == "greeting"
    assert model_status(settings)[0] == "ok"
    (model_dir(settings) / "intent.npz").write_bytes(b"not an npz")
    assert model_status(settings)[0] == "unreadable"
    load_intent_classifier(settings)
    assert model_status(settings)[0] == "ok"


def test_a_feature_change_makes_the_model_stale(
    classifier: LinearIntentClassifier, models: Path
) -> None:
    other = settings_for(models, SALESBOOST__INTENT__FEATURES="chars+embedding")
    assert model_status(other)[0] == "stale"


def test_check_request_errors() -> None:
    assert check_request("hi", None) is None
    assert check_request("hi", "CLOSING") == "CLOSING"
    with pytest.raises(AppError) as empty:
        check_request("  \n", None)
    assert empty.value.code == "empty_message"
    with pytest.raises(AppError) as long:
        check_request("x" * 2001, None)
    assert long.value.code == "message_too_long"
    assert check_request("x" * 2000, None) is None
    with pytest.raises(AppError) as stage:
        check_request("hi", "closing")
    assert stage.value.code == "unknown_stage"
    assert "OPENING" in stage.value.message


CALLS = {
    ("en", "Mr. Chen"): [
        (
            "Good morning Mr. Chen, this is Anna from First City Bank. How are you today?",
            "I'm fine. What's this about?",
        ),
        (
            "I saw you asked to cancel your card. What made you want to cancel?",
            "The annual fee is too expensive for me.",
        ),
        (
            "I understand. Actually, if you spend 50,000 a year, the fee is waived. "
            "How much do you spend a month?",
            "About 5,000 a month, I guess.",
        ),
        (
            "That's 60,000 a year, so you'd pay no fee, which means you keep the lounge "
            "access for free.",
            "Oh, that makes sense.",
        ),
        ("Shall we go ahead and apply the waiver to your account?", "Okay, let's do it."),
    ],
    ("zh", "陈先生"): [
        ("陈先生您好，我是第一城市银行的安娜，感谢您接听电话。", "你好，什么事？"),
        ("看到您想销卡，请问是什么原因呢？", "年费太贵了，我不想交。"),
        ("理解您的顾虑。其实年消费满五万就能免年费。您每个月大概消费多少？", "一个月五千左右吧。"),
        ("那一年就是六万，这样您不用交年费，还能继续用贵宾厅。", "有道理。"),
        ("要不要我现在就帮您办理免年费？", "好，就这么办。"),
    ],
}


@pytest.mark.parametrize(("lang", "persona"), list(CALLS))
def test_a_scripted_retention_call_through_classifier_and_stage_fsm(
    classifier: LinearIntentClassifier, lang: str, persona: str
) -> None:
    """Real classifier + real FSM, as the coordinator drives them, in both languages."""
    fsm = StageFSM()
    state = StageState()
    trainee: list[str] = []
    customer: list[str] = []
    reasons: list[str] = []
    for trainee_text, npc_text in CALLS[lang, persona]:
        t = classifier.classify(trainee_text, stage=state.stage, previous=trainee)
        c = classifier.classify(
            npc_text,
            stage=state.stage,
            previous=customer,
            confirmable=proposes(state, trainee_text),  # as the coordinator asks
        )
        trainee.append(t.label)
        customer.append(c.label)
        update = fsm.update(
            state,
            trainee_text=trainee_text,
            npc_text=npc_text,
            trainee_intent=t,
            customer_intent=c,
            persona_name=persona,
        )
        reasons += [f"{ch.to_stage}:{ch.reason}" for ch in update.changes]
        state = update.state
    assert customer[1] == "price_objection"
    assert customer[2] == "unclear"  # a factual answer, no sales intent
    assert customer[-1] == "final_confirmation"
    assert reasons[:2] == ["NEEDS_DISCOVERY:coverage", "OBJECTION_HANDLING:early_objection"]
    assert state.stage == "COMPLETED"
    assert missed_slots(state) == ["timeline", "decision_maker"]


def test_a_customer_does_not_greet_past_the_discovery(classifier: LinearIntentClassifier) -> None:
    """Rule 7: "I'm fine." answers "How are you?" at the start (it read soft_rejection, and the
    coach's first tip said "respect the no"); the same n-grams in a closing are not hello."""
    assert classifier.classify("I'm fine.", stage="OPENING").label == "greeting"
    assert classifier.classify("我很好。", stage="OPENING").label == "greeting"
    text = "Fine, I'm keeping it."
    late = classifier.classify(text, stage="CLOSING")
    assert late.label != "greeting"
    ranked = [r.label for r in classifier.ranked(text) if r.label != "greeting"]
    assert late.label in (ranked[0], "unclear", "final_confirmation")
    assert classifier.classify("Thanks, goodbye.", stage="OBJECTION_HANDLING").label != "greeting"
