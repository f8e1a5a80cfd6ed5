"""Importance of KV groups and MLP neurons of a decoder LLM, and reordering by it (function-preserving).

Taylor (default; Molchanov et al., 2019) sums, over a few batches of token ids, the square of each unit's
first-order term (sum over its weights of W * dL/dW) under the causal-LM loss (labels = input ids; padding
labelled -100 where an attention mask is given). Only gradients are taken: the weights are not updated.
A KV group's weights are its query heads' q_proj rows and o_proj columns plus its K/V head's k/v_proj rows;
an MLP neuron's are its gate/up rows and its down_proj column. Magnitude is the L1 norm of the same groups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from eftnas_deploy.core.decoder_family import DecoderGeometry
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.supernet.decoder import decoder_unit_groups, permute_decoder_units

DECODER_CRITERIA = ("taylor", "magnitude")


@dataclass
class DecoderImportance:
    """Per-layer scores: `heads` [layers, KV groups], `ffn` [layers, MLP neurons]."""

    heads: torch.Tensor
    ffn: torch.Tensor
    criterion: str


def _per_unit(model: PreTrainedModel, fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]) -> dict:
    g = DecoderGeometry.from_config(model.config)
    out: dict[str, torch.Tensor] = {}
    for dim in ("heads", "ffn"):
        rows = []
        for layer in range(g.num_layers):
            total = 0
            for linear, axis, unit in decoder_unit_groups(model, dim, layer):
                values = fn(linear.weight, linear.weight.grad).sum(dim=1 - axis)
                total = total + values.view(-1, unit).sum(dim=1)
            rows.append(total)
        out[dim] = torch.stack(rows).double()
    return out


@torch.no_grad()
def decoder_magnitude_importance(model: PreTrainedModel) -> DecoderImportance:
    scores = _per_unit(model, lambda w, _: w.abs())
    return DecoderImportance(scores["heads"], scores["ffn"], "magnitude")


def decoder_taylor_importance(model: PreTrainedModel, batches: Iterable[dict[str, torch.Tensor]]) -> DecoderImportance:
    """Sum over batches of (sum_unit W * dL/dW)^2 for the causal-LM loss; `batches` yield input_ids (+ mask)."""
    was_training = model.training
    model.eval()  # no dropout: the scores describe the deployed function
    heads = ffn = None
    count = 0
    for batch in batches:
        ids, mask = batch["input_ids"], batch.get("attention_mask")
        labels = batch.get("labels", ids if mask is None else ids.masked_fill(mask == 0, -100))
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        with torch.no_grad():
            step = _per_unit(model, lambda w, grad: torch.zeros_like(w) if grad is None else w * grad)
        heads = step["heads"].square() if heads is None else heads + step["heads"].square()
        ffn = step["ffn"].square() if ffn is None else ffn + step["ffn"].square()
        count += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if not count:
        raise EftnasError("batches: no batches of token ids were given")
    return DecoderImportance(heads, ffn, "taylor")


def reorder_decoder_by_importance(model: PreTrainedModel, scores: DecoderImportance) -> dict[str, list[list[int]]]:
    """Permute every layer's KV groups and MLP neurons into descending importance (in place); returns the orders."""
    g = DecoderGeometry.from_config(model.config)
    expected = {"heads": (g.num_layers, g.num_kv_heads), "ffn": (g.num_layers, g.intermediate_size)}
    orders: dict[str, list[list[int]]] = {"heads": [], "ffn": []}
    for dim, shape in expected.items():
        values = getattr(scores, dim)
        if tuple(values.shape) != shape:
            raise EftnasError(f"importance: {dim} scores have shape {tuple(values.shape)}, the model needs {shape}")
        for layer in range(g.num_layers):
            order = torch.sort(values[layer], descending=True, stable=True).indices
            permute_decoder_units(model, dim, layer, order)
            orders[dim].append(order.tolist())
    return orders
