"""Dense sub-networks cut from an EFTNAS super-network.

This file is self-contained (it imports only torch and transformers): the toolkit copies it beside
the weights of every sliced model and points `auto_map` in config.json at it, so that
`AutoModelFor*.from_pretrained(dir, trust_remote_code=True)` loads the model with stock transformers.
`config.eftnas_subnet` holds the per-layer head counts and FFN widths; 0 drops that block.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.models.bert.modeling_bert import BertForQuestionAnswering, BertForSequenceClassification
from transformers.models.roberta.modeling_roberta import (
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
)


class SkippedAttention(nn.Module):
    """A dropped attention block: the layer's input passes through unchanged."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor]:
        return (hidden_states,)


class SkippedIntermediate(nn.Module):
    """First half of a dropped FFN block."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states


class SkippedOutput(nn.Module):
    """Second half of a dropped FFN block: returns the residual input unchanged."""

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return input_tensor


def apply_subnet_shapes(layers: nn.ModuleList, config: Any) -> None:
    """Resize each layer's Linear modules to the sub-network in `config.eftnas_subnet`."""
    spec = config.eftnas_subnet
    hidden = config.hidden_size
    head_dim = hidden // config.num_attention_heads
    for layer, heads, ffn in zip(layers, spec["heads"], spec["ffn"]):
        if heads == 0:
            layer.attention = SkippedAttention()
        else:
            attn = layer.attention.self
            width = heads * head_dim
            attn.query = nn.Linear(hidden, width)
            attn.key = nn.Linear(hidden, width)
            attn.value = nn.Linear(hidden, width)
            attn.num_attention_heads = heads
            attn.all_head_size = width
            layer.attention.output.dense = nn.Linear(width, hidden)
        if ffn == 0:
            layer.intermediate = SkippedIntermediate()
            layer.output = SkippedOutput()
        else:
            layer.intermediate.dense = nn.Linear(hidden, ffn)
            layer.output.dense = nn.Linear(ffn, hidden)


class EftnasBertForSequenceClassification(BertForSequenceClassification):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        apply_subnet_shapes(self.bert.encoder.layer, config)


class EftnasBertForQuestionAnswering(BertForQuestionAnswering):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        apply_subnet_shapes(self.bert.encoder.layer, config)


class EftnasRobertaForSequenceClassification(RobertaForSequenceClassification):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        apply_subnet_shapes(self.roberta.encoder.layer, config)


class EftnasRobertaForQuestionAnswering(RobertaForQuestionAnswering):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        apply_subnet_shapes(self.roberta.encoder.layer, config)


DENSE_CLASSES = {
    ("bert", "text-classification"): EftnasBertForSequenceClassification,
    ("bert", "question-answering"): EftnasBertForQuestionAnswering,
    ("roberta", "text-classification"): EftnasRobertaForSequenceClassification,
    ("roberta", "question-answering"): EftnasRobertaForQuestionAnswering,
}
