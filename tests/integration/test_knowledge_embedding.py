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
