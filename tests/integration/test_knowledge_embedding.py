"""The embedder with the bundled MiniLM: FlagModel (mean pooling) equals sentence-transformers,
the ONNX export equals FlagEmbedding, and the content-hash cache avoids re-embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from appliance.config import PROJECT_ROOT, KnowledgeConfig
from appliance.knowledge.embedding import Embedder, resolve_model
from appliance.knowledge.store import cjk_part, latin_part

MODELS = PROJECT_ROOT / "models"
SENTENCES = [
    "The annual fee for the Platinum card is 95 dollars.",
    "Travel insurance covers lost luggage up to 2,000 euros.",
    "白金卡的年费是九十五美元。",
    "Product code ZX-4471-Q ships in March.",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(MODELS / "all-MiniLM-L6-v2"), device="cpu")
    vectors: np.ndarray = model.encode(SENTENCES, normalize_embeddings=True)
    return vectors


def test_minilm_uses_mean_pooling_and_no_query_instruction() -> None:
    spec = resolve_model(MODELS, "all-minilm-l6-v2")
    assert spec.pooling == "mean" and spec.query_instruction is None and not spec.m3


@pytest.mark.parametrize("backend", ["flagembedding", "onnx"])
def test_vectors_equal_sentence_transformers(
    backend: str, reference: np.ndarray, tmp_path: Path
) -> None:
    embedder = Embedder(KnowledgeConfig(), MODELS, tmp_path, backend=backend)  # type: ignore[arg-type]
    passages, sparse = embedder.embed_passages(SENTENCES)
    assert sparse is None
    assert passages.shape == (4, 384)
    np.testing.assert_allclose(passages, reference, atol=1e-5)
    query, _ = embedder.embed_query(SENTENCES[0])
    np.testing.assert_allclose(query, reference[0], atol=1e-5)
    embedder.close()


def test_cache_never_embeds_the_same_text_twice(tmp_path: Path) -> None:
    embedder = Embedder(KnowledgeConfig(), MODELS, tmp_path, backend="onnx")
    first, _ = embedder.embed_passages(SENTENCES + SENTENCES[:2])
    assert embedder.embedded == 4, "duplicates inside one call are embedded once"
    again, _ = embedder.embed_passages(list(reversed(SENTENCES)))
    assert embedder.embedded == 4
    np.testing.assert_array_equal(again, first[:4][::-1])
    embedder.close()
    reopened = Embedder(KnowledgeConfig(), MODELS, tmp_path, backend="onnx")
    reopened.embed_passages(SENTENCES)
    assert reopened.embedded == 0, "the cache survives a restart"
    reopened.close()


def test_cjk_and_latin_parts() -> None:
    text = "白金卡 annual fee 年费 95 dollars"
    assert cjk_part(text) == "白金卡 年费"
    assert latin_part(text).split() == ["annual", "fee", "95", "dollars"]


def test_the_onnx_path_keeps_torch_and_transformers_out_of_the_process(tmp_path: Path) -> None:
    """On the CPU path the server embeds, counts tokens and even exports the model (in a
    child) without importing torch or transformers: ~300 MB it would never give back."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from appliance.config import KnowledgeConfig\n"
        "from appliance.knowledge.embedding import Embedder\n"
        f"e = Embedder(KnowledgeConfig(), Path({str(MODELS)!r}), Path({str(tmp_path)!r}))\n"
        "assert e.backend_name == 'onnx', e.backend_name\n"
        "v, _ = e.embed_passages(['the annual fee is waived'])\n"
        "assert v.shape == (1, 384)\n"
        "assert e.count_tokens('the annual fee is waived') == 5\n"
        "loaded = sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules)\n"
        "print('LOADED', loaded)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "LOADED []" in run.stdout, run.stdout
    exports = list((tmp_path / "onnx").glob("*.onnx")) + list((MODELS / "onnx").glob("*.onnx"))
    assert exports, "the export (placed at install, or made in a child) is on disk"


def test_models_place_exports_onnx_once_and_the_embedder_uses_it(tmp_path: Path) -> None:
    """The install-time export (`salesboost models place`) lands in models/onnx; an embedder
    then finds it there and exports nothing into its state dir."""
    import shutil

    from appliance.knowledge.embedding import place_onnx_export

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(MODELS / "manifest.toml", models / "manifest.toml")
    (models / "all-MiniLM-L6-v2").symlink_to(MODELS / "all-MiniLM-L6-v2")
    written = place_onnx_export(models, "all-minilm-l6-v2")
    assert written is not None and written.parent == models / "onnx" and written.is_file()
    assert place_onnx_export(models, "all-minilm-l6-v2") is None, "already there: nothing to do"
    state = tmp_path / "state"
    embedder = Embedder(KnowledgeConfig(), models, state, backend="onnx")
    vectors, _ = embedder.embed_passages(SENTENCES[:1])
    assert vectors.shape == (1, 384)
    assert not (state / "onnx").exists()
    embedder.close()


def _varied_texts() -> list[str]:
    """A few hundred texts: English and Chinese, a word to several hundred tokens (some past
    the model's 512-token limit, so truncation is exercised too)."""
    import random

    rng = random.Random(17)
    words = [
        *[
            "the",
            "annual",
            "fee",
            "for",
            "our",
            "platinum",
            "card",
            "is",
            "waived",
            "when",
            "you",
            "spend",
            "over",
            "two",
        ],
        *[
            "thousand",
            "euros",
            "travel",
            "insurance",
            "covers",
            "lost",
            "luggage",
            "and",
            "medical",
            "costs",
        ],
    ]
    zh = "白金卡的年费是九十五美元。旅行保险涵盖行李丢失、航班延误和境外医疗费用。客户可以通过手机银行办理转账、还款和提高信用额度。积分可兑换机场贵宾室。"
    texts = [
        " ".join(rng.choices(words, k=rng.choice([1, 3, 8, 20, 60, 120, 250, 600])))
        for _ in range(220)
    ]
    for _ in range(90):
        start = rng.randrange(len(zh) - 4)
        texts.append(zh[start : rng.randint(start + 2, len(zh))] * rng.choice([1, 1, 2, 8]))
    texts += [f"{a} {b}" for a, b in zip(texts[:40], texts[220:260], strict=True)]  # mixed
    return [*texts, "ok", "年费", "Product code ZX-4471-Q ships in March."]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(plain export, as placed before the fused format; fused export), both of the real model."""
    from appliance.knowledge.embedding import export_onnx_in_child, onnx_export_name

    spec = resolve_model(MODELS, "all-minilm-l6-v2")
    where = tmp_path_factory.mktemp("exports")
    plain = export_onnx_in_child(spec, where / onnx_export_name(spec, fused=False), fused=False)
    placed = MODELS / "onnx" / onnx_export_name(spec)
    fused = placed if placed.is_file() else export_onnx_in_child(spec, where / placed.name)
    return plain, fused


def test_the_fused_export_with_length_batches_gives_the_plain_exports_vectors(
    exports: tuple[Path, Path], tmp_path: Path
) -> None:
    """The new CPU path (onnxruntime's fused graph, batches bucketed by token length under a
    token budget) against the old one (plain export, 64 texts a batch): same vectors, in the
    same order, on a few hundred varied texts."""
    import collections

    import onnx

    plain, fused = exports
    ops = collections.Counter(n.op_type for n in onnx.load(str(fused)).graph.node)
    assert ops["Attention"] == 6 and ops["SkipLayerNormalization"] == 12, ops
    assert ops["FastGelu"] == 0 and ops["BiasGelu"] == 6, "exact erf Gelu, not the approximation"
    texts = _varied_texts()
    old = Embedder(
        KnowledgeConfig(embedding_batch_tokens=0), MODELS, tmp_path / "old", onnx_export=plain
    )
    new = Embedder(KnowledgeConfig(), MODELS, tmp_path / "new", onnx_export=fused)
    assert new.batch_tokens > 0, "the default batches by a token budget"
    a, _ = old.embed_passages(texts)
    b, _ = new.embed_passages(texts)
    cosine = np.sum(a * b, axis=1)
    assert a.shape == b.shape == (len(texts), 384)
    assert float(cosine.min()) >= 0.9999, (float(cosine.min()), texts[int(cosine.argmin())][:80])
    for text in ("annual fee", "白金卡的年费", texts[5]):
        qa, _ = old.embed_query(text)
        qb, _ = new.embed_query(text)
        assert float(qa @ qb) >= 0.9999
    old.close()
    new.close()


def test_an_older_installs_plain_export_is_used_until_models_place_replaces_it(
    exports: tuple[Path, Path], tmp_path: Path
) -> None:
    """Existing installs keep working without torch in the server: the plain export in
    models/onnx is used as is (nothing exported into the state dir); doctor warns; `models
    place` writes the fused export and removes the plain one."""
    import shutil

    from appliance.config import PathsConfig, Settings
    from appliance.doctor import _onnx_export
    from appliance.knowledge.embedding import onnx_export_name, place_onnx_export

    plain, _ = exports
    models = tmp_path / "models"
    (models / "onnx").mkdir(parents=True)
    shutil.copy(MODELS / "manifest.toml", models / "manifest.toml")
    (models / "all-MiniLM-L6-v2").symlink_to(MODELS / "all-MiniLM-L6-v2")
    (models / "onnx" / plain.name).symlink_to(plain)
    settings = Settings(paths=PathsConfig(models_dir=str(models)))
    state = tmp_path / "state"
    embedder = Embedder(KnowledgeConfig(), models, state, backend="onnx")
    vectors, _ = embedder.embed_passages(SENTENCES[:2])
    assert vectors.shape == (2, 384)
    assert embedder.load().path == models / "onnx" / plain.name  # type: ignore[union-attr]
    assert not (state / "onnx").exists()
    embedder.close()
    check = _onnx_export(settings)
    assert check.status == "warn" and "models place" in check.detail, check
    spec = resolve_model(models, "all-minilm-l6-v2")
    written = place_onnx_export(models, "all-minilm-l6-v2")
    assert written == models / "onnx" / onnx_export_name(spec)
    assert not (models / "onnx" / plain.name).exists(), "the plain export is gone"
    import onnx

    ops = [n.op_type for n in onnx.load(str(written)).graph.node]
    assert ops.count("Attention") == 6, "models place writes the fused graph"
    assert _onnx_export(settings).status == "ok"


def test_a_query_waits_for_one_batch_not_for_the_whole_ingestion(tmp_path: Path) -> None:
    # search during a big upload: the query's turn comes after the batch that is running
    import threading
    import time

    embedder = Embedder(KnowledgeConfig(), MODELS, tmp_path, backend="onnx")
    embedder.embed_query("warm up")
    passages = [
        f"Passage {i}: the premier card's annual fee of {i} dollars is waived for clients "
        f"who spend {i * 7} dollars in the first {i % 12 + 1} months; travel cover applies."
        for i in range(240)  # one step of embed_passages (fewer than 4 x the batch size)
    ]
    finished: dict[str, float] = {}

    def ingest() -> None:
        embedder.embed_passages(passages)
        finished["passages"] = time.perf_counter()

    started = time.perf_counter()
    thread = threading.Thread(target=ingest)
    thread.start()
    deadline = time.monotonic() + 30
    while not embedder.turns.busy and time.monotonic() < deadline:
        time.sleep(0.001)
    vector, _ = embedder.embed_query("annual fee waiver")
    finished["query"] = time.perf_counter()
    thread.join()
    assert vector.shape == (384,)
    assert embedder.embedded == 240
    # the query came back in the first half of the ingestion, not after it
    assert finished["query"] - started < (finished["passages"] - started) / 2, finished
    embedder.close()
