"""Synthetic BGE-M3-shaped and cross-encoder-shaped models, written by the tests themselves.

No BGE-M3 or reranker ships in a PyPI package, and nothing may be downloaded, so the tests
that drive those code paths (FlagEmbedding's ``BGEM3FlagModel`` and ``FlagReranker``, the
manifest, the store's sparse column, fusion, reranking, reindex) build models with the real
architectures and file layouts but small, seeded random weights. What they check is the
plumbing (every part really runs on these files), not ranking quality. The tokenizer is the
bundled MiniLM's (a real WordPiece tokenizer), so token ids are real.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_MODELS = ROOT / "models"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
HIDDEN = 64


def models_dir_with_bundled(target: Path) -> Path:
    """A models directory holding the bundled models (linked) and a copy of the manifest."""
    target.mkdir(parents=True, exist_ok=True)
    for item in BUNDLED_MODELS.iterdir():
        if item.name == "manifest.toml":
            shutil.copyfile(item, target / item.name)
        elif not (target / item.name).exists():
            (target / item.name).symlink_to(item)
    return target


def _config(**extra: object) -> object:
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=30522,  # the MiniLM tokenizer's
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=514,
        type_vocab_size=2,  # a WordPiece tokenizer marks the second text of a pair
        pad_token_id=0,
        **extra,
    )


def _tokenizer(target: Path) -> None:
    source = BUNDLED_MODELS / "all-MiniLM-L6-v2"
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, target / name)
    # FlagEmbedding leaves the special tokens out of BGE-M3's lexical weights by their roles;
    # a WordPiece tokenizer ends a text with [SEP], so name it the end-of-sequence token
    config = json.loads((target / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["eos_token"] = "[SEP]"
    (target / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def write_bge_m3(target: Path, seed: int = 0) -> Path:
    """A BGE-M3 layout: XLM-RoBERTa encoder, ``colbert_linear.pt``, ``sparse_linear.pt``."""
    import torch
    from transformers import XLMRobertaModel

    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    XLMRobertaModel(_config()).save_pretrained(target)
    torch.save(torch.nn.Linear(HIDDEN, HIDDEN).state_dict(), target / "colbert_linear.pt")
    # the sparse head weighs every token 1.0 (relu of a zero weight and a bias of 1), so the
    # lexical score of two texts is the number of distinct tokens they share: random weights
    # would drop a random half of the tokens, in a way that depends on each token's context
    sparse = torch.nn.Linear(HIDDEN, 1)
    torch.nn.init.zeros_(sparse.weight)
    torch.nn.init.ones_(sparse.bias)
    torch.save(sparse.state_dict(), target / "sparse_linear.pt")
    _tokenizer(target)
    return target


def write_reranker(target: Path, seed: int = 1) -> Path:
    """A cross-encoder layout (bge-reranker's): XLM-RoBERTa with a one-logit classifier."""
    import torch
    from transformers import XLMRobertaForSequenceClassification

    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    XLMRobertaForSequenceClassification(_config(num_labels=1)).save_pretrained(target)
    _tokenizer(target)
    return target
