"""Shared fixtures: tiny real HF models and the path to ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eftnas_deploy.families.models import build_model

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY = dict(
    hidden_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=128,
    vocab_size=120,
    max_position_embeddings=64,
)
MODEL_KINDS = [
    ("bert", "text-classification"),
    ("bert", "question-answering"),
    ("roberta", "text-classification"),
    ("roberta", "question-answering"),
    ("distilbert", "text-classification"),
    ("distilbert", "question-answering"),
]


def tiny_model(model_type: str = "bert", task: str = "text-classification", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = build_model(model_type, task, **{**TINY, **overrides})
    return model.eval()


def random_inputs(batch: int = 3, seq: int = 20, vocab: int = 120, seed: int = 1) -> dict[str, torch.Tensor]:
    """Token ids with right padding in all but the first row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    for row in range(1, batch):
        mask[row, seq - 3 * row :] = 0
    return {"input_ids": ids, "attention_mask": mask}


def outputs_of(model, inputs) -> torch.Tensor:
    """All output logits of a classification or QA model, concatenated."""
    with torch.no_grad():
        out = model(**inputs)
    if hasattr(out, "start_logits") and out.start_logits is not None:
        return torch.cat([out.start_logits, out.end_logits], dim=-1)
    return out.logits


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
