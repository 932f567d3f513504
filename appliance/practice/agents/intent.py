"""The intent classifier: character n-grams (+ optional MiniLM features) into a linear model.

Model
    TF-IDF over character n-grams (``char_wb``, 1-4, sublinear tf) of the NFKC-normalised,
    lower-cased text, which works for English and Chinese alike (no word segmentation), into a
    multinomial LogisticRegression (scikit-learn). The ``chars+embedding`` variant appends the
    bundled MiniLM sentence vector, for English text only (MiniLM is an English model: on Chinese
    it lowered held-out accuracy), zeros for text with CJK characters. ``salesboost bench
    intent`` compares both; ``chars`` is the default (see BENCHMARKS.md for why).

Training set
    ``appliance/practice/data/intent_train.jsonl`` (``{"text", "label", "lang"}``), written for
    this project; ``intent_heldout.jsonl`` is a separately written test set (other phrasings).
    ``unclear`` there means no sales intent: garbled or off-topic lines, asking to repeat, and
    plain factual answers ("About 5,000 a month.").

Stored model (no pickle)
    ``<models_dir>/intent/intent.json`` (labels, vocabulary, parameters, the training-set hash)
    and ``intent.npz`` (idf, coefficients, intercepts). Plain data: loading it runs no code.
    ``salesboost intent train`` writes it (install.sh runs that); when it is missing or stale
    (the training-set hash or the feature variant differs) the appliance trains in-process at
    start (about a second for ``chars``) and logs it.

Context rules, applied in order on top of the model's label
    1. Noise: empty text, or text with no letter, digit or CJK character -> ``unclear`` (1.0).
    2. Low confidence: the model's top probability below ``intent.min_confidence`` ->
       ``unclear``, with confidence 1 - that probability. Rules 3-5 only see confident labels.
    3. Price mentioned again: ``price_inquiry`` when ``previous`` already holds a
       ``price_inquiry`` or ``price_objection`` -> ``price_objection``.
    4. Positive signal in CLOSING: ``positive_feedback``, or an affirmative ``filler``
       ("ok", "yes", "好", "行", ...), while ``stage`` is CLOSING -> ``final_confirmation``.
    5. Repeated hesitation: ``hesitation`` when one of the last ``HESITATION_WINDOW`` entries of
       ``previous`` is ``hesitation`` -> ``soft_rejection``.
    6. Nothing to confirm: ``final_confirmation`` when the caller says nothing was proposed yet
       (``confirmable`` False: no offer, answer to an objection or closing question so far, see
       ``appliance.practice.stages.proposes``) -> the label rule 4 replaced, else the model's
       next most probable label (``unclear`` below ``intent.min_confidence``). "Yes, I have a
       debit card." answering a discovery question agrees to nothing.
    7. No greeting past the discovery: ``greeting`` while ``stage`` is PRODUCT_INTRO,
       OBJECTION_HANDLING or CLOSING -> the model's next most probable label (``unclear``
       below ``intent.min_confidence``), checked first, so rules 3-6 see that label. "Fine,
       I'm keeping it." reads like "I'm fine." to the n-grams; in a closing it is not hello.
    A rule-changed label keeps the model's confidence in the label it replaced (rules 6 and 7:
    the confidence of the label they fall back to).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from appliance.errors import InvalidInput
from appliance.practice.errors import EmptyMessage, MessageTooLong
from appliance.practice.model import INTENTS, STAGES, IntentClassifier, IntentResult, Stage

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from appliance.config import Settings

log = logging.getLogger(__name__)

Features = Literal["chars", "chars+embedding"]
Embed = Callable[[str], npt.NDArray[np.float32]]
Floats = npt.NDArray[np.float64]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TRAIN_FILE = DATA_DIR / "intent_train.jsonl"
HELDOUT_FILE = DATA_DIR / "intent_heldout.jsonl"
MODEL_SUBDIR = "intent"
FORMAT_VERSION = 1
NGRAM_RANGE = (1, 4)
C_VALUE = 30.0
EMBEDDING_WEIGHT = 1.0
HESITATION_WINDOW = 3
PRICE_LABELS = frozenset({"price_inquiry", "price_objection"})
LATE_STAGES: frozenset[Stage] = frozenset({"PRODUCT_INTRO", "OBJECTION_HANDLING", "CLOSING"})
"""Stages where a customer no longer greets (rule 7)."""
AFFIRMATIVE = frozenset(
    {
        "ok",
        "okay",
        "yes",
        "yeah",
        "yep",
        "sure",
        "alright",
        "fine",
        "好",
        "好的",
        "行",
        "可以",
        "嗯好",
        "对",
        "是的",
        "好吧",
    }
)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORDISH = re.compile(r"[^\W_]", re.UNICODE)
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


MAX_TEXT_CHARS = 2000


class UnknownStage(InvalidInput):
    """The stage is not one of appliance.practice.model.STAGES."""

    code = "unknown_stage"


def check_request(text: str, stage: str | None) -> Stage | None:
    """Validate an ad-hoc classify request (API, CLI): typed errors for empty/long text, bad stage."""
    if not text.strip():
        raise EmptyMessage("text is empty: give 1 to 2000 characters")
    if len(text) > MAX_TEXT_CHARS:
        raise MessageTooLong(
            f"text has {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted",
            detail={"max_chars": MAX_TEXT_CHARS, "chars": len(text)},
        )
    if stage is None:
        return None
    for known in STAGES:
        if stage == known:
            return known
    raise UnknownStage(
        f"unknown stage {stage!r}: use one of {', '.join(STAGES)}", detail={"stages": STAGES}
    )


class IntentModelError(Exception):
    """The stored intent model is unreadable or the training set is invalid."""


@dataclass(frozen=True)
class Example:
    """One labelled utterance."""

    text: str
    label: str
    lang: str


def load_examples(path: Path) -> list[Example]:
    """Read a JSONL file of ``{"text", "label", "lang"}``; unknown labels are an error."""
    out: list[Example] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row["label"] not in INTENTS:
            raise IntentModelError(f"{path.name}:{n}: unknown label {row['label']!r}")
        out.append(Example(row["text"], row["label"], row["lang"]))
    return out


def normalise(text: str) -> str:
    """NFKC (full-width -> half-width), lower case, collapsed whitespace."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def has_cjk(text: str) -> bool:
    """Whether the text holds a CJK ideograph."""
    return bool(_CJK.search(text))


def training_hash(train_file: Path = TRAIN_FILE, features: Features = "chars") -> str:
    """What the stored model must match: the training set, the parameters, the variant."""
    digest = hashlib.sha256(train_file.read_bytes())
    digest.update(json.dumps([FORMAT_VERSION, NGRAM_RANGE, C_VALUE, features]).encode())
    return digest.hexdigest()


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=NGRAM_RANGE,
        sublinear_tf=True,
        lowercase=False,  # normalise() already did
        vocabulary=vocabulary,
        dtype=np.float64,
    )


def char_wb_ngrams(text: str) -> list[str]:
    """scikit-learn's ``char_wb`` analyzer: n-grams inside each word padded with spaces."""
    low, high = NGRAM_RANGE
    grams: list[str] = []
    for word in text.split():
        padded = f" {word} "
        for n in range(low, high + 1):
            if len(padded) < n:  # a short word counts once, as its whole padded self
                if n == low:
                    grams.append(padded)
                break
            grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


class IntentModel:
    """The trained parameters: vocabulary + idf, linear coefficients, labels, variant."""

    def __init__(
        self,
        *,
        labels: list[str],
        vocabulary: dict[str, int],
        idf: Floats,
        coef: Floats,
        intercept: Floats,
        features: Features,
        train_hash: str,
    ) -> None:
        self.labels = labels
        self.vocabulary = vocabulary
        self.idf = idf
        self.coef = coef
        self.intercept = intercept
        self.features = features
        self.train_hash = train_hash
        self._n_chars = len(vocabulary)

    def save(self, directory: Path) -> Path:
        """Write intent.json + intent.npz into ``directory`` (atomically, file by file)."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "train_hash": self.train_hash,
            "features": self.features,
            "labels": self.labels,
            "ngram_range": list(NGRAM_RANGE),
            "vocabulary": self.vocabulary,
        }
        suffix = f".{os.getpid()}.tmp"  # two processes training at once do not collide
        npz_tmp = directory / f"intent.npz{suffix}"
        with npz_tmp.open("wb") as fh:
            np.savez(fh, idf=self.idf, coef=self.coef, intercept=self.intercept)
        json_tmp = directory / f"intent.json{suffix}"
        json_tmp.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        npz_tmp.replace(directory / "intent.npz")
        json_tmp.replace(directory / "intent.json")
        return directory / "intent.json"

    @classmethod
    def load(cls, directory: Path) -> IntentModel:
        """Read a model written by :meth:`save`."""
        try:
            meta = json.loads((directory / "intent.json").read_text(encoding="utf-8"))
            with np.load(directory / "intent.npz", allow_pickle=False) as arrays:
                idf, coef, intercept = arrays["idf"], arrays["coef"], arrays["intercept"]
        except (OSError, ValueError, KeyError) as err:
            raise IntentModelError(f"intent model in {directory} is unreadable: {err}") from err
        if meta.get("format") != FORMAT_VERSION:
            raise IntentModelError(f"intent model in {directory} has format {meta.get('format')}")
        return cls(
            labels=list(meta["labels"]),
            vocabulary={str(k): int(v) for k, v in meta["vocabulary"].items()},
            idf=np.asarray(idf, dtype=np.float64),
            coef=np.asarray(coef, dtype=np.float64),
            intercept=np.asarray(intercept, dtype=np.float64),
            features=meta["features"],
            train_hash=str(meta["train_hash"]),
        )

    def char_features(self, text: str) -> tuple[npt.NDArray[np.intp], Floats]:
        """The TF-IDF row of a text as (columns, weights): what the training's
        TfidfVectorizer(char_wb, sublinear_tf, l2) gives, in numpy, so serving does not import
        scikit-learn (~60 MB resident); equality is tested against scikit-learn."""
        counts: dict[int, int] = {}
        for gram in char_wb_ngrams(text):
            column = self.vocabulary.get(gram)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        weights = (1.0 + np.log(tf)) * self.idf[columns]
        norm = float(np.sqrt(weights @ weights))
        return columns, (weights / norm if norm > 0 else weights)

    def probabilities(self, text: str, embed: Embed | None = None) -> Floats:
        """Class probabilities (in ``labels`` order) of an already normalised text."""
        columns, weights = self.char_features(text)
        scores = self.coef[:, columns] @ weights + self.intercept
        if self.features == "chars+embedding" and embed is not None and not has_cjk(text):
            vector = np.asarray(embed(text), dtype=np.float64) * EMBEDDING_WEIGHT
            scores = scores + self.coef[:, self._n_chars :] @ vector
        scores -= scores.max()
        exp = np.exp(scores)
        return np.asarray(exp / exp.sum(), dtype=np.float64)


def train(
    examples: Sequence[Example],
    *,
    features: Features = "chars",
    embed: Embed | None = None,
    train_hash: str = "",
) -> IntentModel:
    """Fit the vectoriser and the LogisticRegression on ``examples``."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    texts = [normalise(e.text) for e in examples]
    labels = [e.label for e in examples]
    vec = _vectorizer()
    matrix = vec.fit_transform(texts)
    if features == "chars+embedding":
        if embed is None:
            raise IntentModelError("the chars+embedding variant needs an embedding function")
        dim = int(np.asarray(embed("dimension")).shape[0])
        dense = np.stack(
            [np.zeros(dim) if has_cjk(t) else np.asarray(embed(t), dtype=np.float64) for t in texts]
        )
        matrix = sparse.hstack([matrix, sparse.csr_matrix(dense * EMBEDDING_WEIGHT)]).tocsr()
    model = LogisticRegression(C=C_VALUE, max_iter=5000)
    model.fit(matrix, labels)
    return IntentModel(
        labels=[str(c) for c in model.classes_],
        vocabulary={str(k): int(v) for k, v in vec.vocabulary_.items()},
        idf=np.asarray(vec.idf_, dtype=np.float64),
        coef=np.asarray(model.coef_, dtype=np.float64),
        intercept=np.asarray(model.intercept_, dtype=np.float64),
        features=features,
        train_hash=train_hash,
    )


class LinearIntentClassifier:
    """The IntentClassifier of appliance.practice.model: the linear model plus context rules."""

    def __init__(
        self, model: IntentModel, *, min_confidence: float = 0.25, embed: Embed | None = None
    ) -> None:
        self.model = model
        self.min_confidence = min_confidence
        self._embed = embed

    @property
    def uses_embedding(self) -> bool:
        """Whether a call runs the embedding model (milliseconds, behind the embedder's lock)."""
        return self.model.features == "chars+embedding" and self._embed is not None

    def ranked(self, text: str) -> list[IntentResult]:
        """Every label with the model's probability, most probable first, no rules (only
        ``unclear`` at 1.0 for noise)."""
        clean = normalise(text)
        if not _WORDISH.search(clean):
            return [IntentResult(label="unclear", confidence=1.0)]
        probs = self.model.probabilities(clean, self._embed)
        order = np.argsort(-probs, kind="stable")
        return [IntentResult(label=self.model.labels[i], confidence=float(probs[i])) for i in order]

    def predict(self, text: str) -> IntentResult:
        """The model's own top label and probability, no rules (``unclear`` for noise)."""
        return self.ranked(text)[0]

    def classify(
        self,
        text: str,
        *,
        stage: Stage | None = None,
        previous: Sequence[str] = (),
        confirmable: bool = True,
    ) -> IntentResult:
        """Label ``text``; ``previous`` = the same speaker's earlier intents, oldest first;
        ``confirmable`` False: nothing has been proposed that the speaker could agree to."""
        ranked = self.ranked(text)
        raw = ranked[0]
        if raw.label == "unclear" and raw.confidence == 1.0:
            return raw  # rule 1: noise
        if raw.label == "greeting" and stage in LATE_STAGES:  # rule 7
            ranked = [r for r in ranked if r.label != "greeting"]
            raw = ranked[0]
        if raw.confidence < self.min_confidence:
            return IntentResult(label="unclear", confidence=round(1.0 - raw.confidence, 4))
        label = raw.label
        if label == "price_inquiry" and PRICE_LABELS.intersection(previous):
            label = "price_objection"
        elif stage == "CLOSING" and (
            label == "positive_feedback"
            or (label == "filler" and _PUNCT.sub("", normalise(text)) in AFFIRMATIVE)
        ):
            label = "final_confirmation"
        elif label == "hesitation" and "hesitation" in previous[-HESITATION_WINDOW:]:
            label = "soft_rejection"
        if label == "final_confirmation" and not confirmable:  # rule 6
            if raw.label != "final_confirmation":
                label = raw.label
            else:
                second = next(r for r in ranked if r.label != "final_confirmation")
                if second.confidence < self.min_confidence:
                    return IntentResult(
                        label="unclear", confidence=round(1.0 - second.confidence, 4)
                    )
                return IntentResult(label=second.label, confidence=round(second.confidence, 4))
        return IntentResult(label=label, confidence=round(raw.confidence, 4))


# --- building one: install-time training, start-up loading ------------------------------------


def model_dir(settings: Settings) -> Path:
    """Where the trained model lives: ``<models_dir>/intent``."""
    return settings.models_dir / MODEL_SUBDIR


def embedding_function(settings: Settings) -> Embed:
    """The bundled MiniLM (ONNX backend) as a text -> vector function."""
    from appliance.knowledge.embedding import Embedder

    embedder = Embedder(settings.knowledge, settings.models_dir, settings.state_dir, backend="onnx")

    def embed(text: str) -> npt.NDArray[np.float32]:
        return embedder.embed_query(text)[0]

    return embed


def train_and_save(
    settings: Settings, *, features: Features | None = None, embed: Embed | None = None
) -> tuple[IntentModel, Path | None, float]:
    """Train from the bundled set; save under the models dir (None when it is not writable)."""
    chosen: Features = features or settings.intent.features
    if chosen == "chars+embedding" and embed is None:
        embed = embedding_function(settings)
    started = time.perf_counter()
    model = train(
        load_examples(TRAIN_FILE),
        features=chosen,
        embed=embed,
        train_hash=training_hash(TRAIN_FILE, chosen),
    )
    seconds = time.perf_counter() - started
    try:
        path: Path | None = model.save(model_dir(settings))
    except OSError as err:
        log.warning("intent model trained but not saved (%s); kept in memory", err)
        path = None
    return model, path, seconds


def model_status(settings: Settings) -> tuple[str, str]:
    """("ok" | "missing" | "stale" | "unreadable", detail) of the stored model."""
    directory = model_dir(settings)
    if not (directory / "intent.json").is_file():
        return "missing", f"{directory} has no intent.json"
    try:
        model = IntentModel.load(directory)
    except IntentModelError as err:
        return "unreadable", str(err)
    expected = training_hash(TRAIN_FILE, settings.intent.features)
    if model.train_hash != expected or model.features != settings.intent.features:
        return "stale", "the training set or intent.features changed since it was trained"
    return "ok", f"{directory} ({model.features}, {len(model.labels)} labels)"


def load_intent_classifier(
    settings: Settings, *, embed: Embed | None = None
) -> LinearIntentClassifier:
    """The classifier from ``<models_dir>/intent``; trained in-process when missing or stale."""
    features = settings.intent.features
    if features == "chars+embedding" and embed is None:
        embed = embedding_function(settings)
    state, detail = model_status(settings)
    if state == "ok":
        model = IntentModel.load(model_dir(settings))
    else:
        model, path, seconds = train_and_save(settings, features=features, embed=embed)
        log.warning(
            "intent model %s (%s): trained in-process in %.1f s%s",
            state,
            detail,
            seconds,
            f", saved to {path}" if path else "",
        )
    return LinearIntentClassifier(model, min_confidence=settings.intent.min_confidence, embed=embed)


def describe(settings: Settings) -> dict[str, Any]:
    """For `salesboost doctor`: the stored model's state."""
    state, detail = model_status(settings)
    return {"state": state, "detail": detail}


def _conforms(classifier: LinearIntentClassifier) -> IntentClassifier:
    return classifier  # mypy: LinearIntentClassifier satisfies the IntentClassifier Protocol
