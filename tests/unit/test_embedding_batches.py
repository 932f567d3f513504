"""Length-bucketed batching of the ONNX embedding path: every text once, shortest first,
within the padded-token budget and the count cap."""

from __future__ import annotations

import random

from appliance.knowledge.embedding import length_batches


def test_batches_respect_the_token_budget_and_the_count_cap() -> None:
    rng = random.Random(3)
    lengths = [rng.choice([3, 12, 40, 90, 130, 300, 512]) for _ in range(700)]
    batches = length_batches(lengths, 1024, 64)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths))), "every text exactly once"
    assert [lengths[i] for i in flat] == sorted(lengths), "shortest first, neighbours together"
    for batch in batches:
        assert 1 <= len(batch) <= 64
        assert len(batch) * max(lengths[i] for i in batch) <= 1024
    assert len(batches[0]) == 64, "short texts fill a batch up to the count cap"


def test_a_text_longer_than_the_budget_gets_a_batch_of_its_own() -> None:
    assert length_batches([600, 5, 700], 512, 64) == [[1], [0], [2]]


def test_budget_zero_batches_by_count_only() -> None:
    batches = length_batches([10] * 130, 0, 64)
    assert [len(b) for b in batches] == [64, 64, 2]
    assert length_batches([], 1024, 64) == []
