"""Perplexity of a causal-LM sub-network on held-out text, with the super-network's shared weights.

The NLL is token-weighted: the sum over every real predicted token (labels != -100 after the shift) of
-log p(token | prefix), divided by their count, over the whole set; perplexity is exp of that mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data.text import IGNORE_INDEX, CausalLMCollator
from eftnas_deploy.supernet.switchable import Switchable


def _rows(blocks: Iterable[dict[str, Any]] | Any) -> list[dict[str, Any]]:
    return [dict(row) for row in blocks]


@torch.no_grad()
def causal_lm_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
    """(sum of next-token NLL over real tokens, their count) of one batch with labels (-100: skipped)."""
    labels = batch["labels"]
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = labels[:, 1:]
    nll = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return nll.item(), int((targets != IGNORE_INDEX).sum())


@torch.no_grad()
def perplexity(
    supernet: Switchable,
    subnet: SubnetConfig | None,
    blocks: Sequence[dict[str, Any]] | Any,
    batch_size: int = 8,
    pad_token_id: int | None = None,
) -> dict[str, float]:
    """{"perplexity", "nll" (mean per token), "tokens"} of `subnet` (None: the active one) on token blocks.

    `blocks` are rows with input_ids (+ attention_mask, labels), e.g. `data.text.group_texts`' dataset.
    """
    model = supernet.model
    rows = _rows(blocks)
    if not rows:
        raise EftnasError("perplexity: no text blocks to evaluate")
    pad = pad_token_id if pad_token_id is not None else (model.config.pad_token_id or 0)
    collate = CausalLMCollator(pad)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with supernet.activate(subnet if subnet is not None else supernet.active):
            for begin in range(0, len(rows), batch_size):
                batch = {k: v.to(device) for k, v in collate(rows[begin : begin + batch_size]).items()}
                nll, n = causal_lm_nll(model, batch)
                total, count = total + nll, count + n
    finally:
        model.train(was_training)
    if count == 0:
        raise EftnasError("perplexity: the blocks hold no real token to predict")
    mean = total / count
    return {"perplexity": math.exp(mean), "nll": mean, "tokens": float(count)}
