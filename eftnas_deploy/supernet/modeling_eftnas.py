"""Dense sub-networks cut from an EFTNAS super-network.

This file is self-contained (it imports only torch and transformers): the toolkit copies it beside
the weights of every sliced model and points `auto_map` in config.json at it, so that
`AutoModelFor*.from_pretrained(dir, trust_remote_code=True)` loads the model with stock transformers.
`config.eftnas_subnet` holds the per-layer head counts and FFN widths; 0 drops that block.
`config.eftnas_layout` (written by the toolkit from the model family's registry entry) names, per
dimension, the Linear modules whose rows/columns shrink, the attributes that hold the new sizes and what
replaces a dropped block's modules; directories sliced before it existed are BERT/RoBERTa (BERT_LAYOUT).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.models.bert.modeling_bert import BertForQuestionAnswering, BertForSequenceClassification
from transformers.models.distilbert.modeling_distilbert import (
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
)
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


def _first_input(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else next(iter(kwargs.values()))


class SkippedZero(nn.Module):
    """A dropped block whose caller adds the residual itself (then LayerNorm, replaced by an identity)."""

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return torch.zeros_like(_first_input(args, kwargs))


class SkippedZeroTuple(nn.Module):
    """A dropped attention block called as attention(query=x, ...) that returns a tuple."""

    def forward(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor]:
        return (torch.zeros_like(_first_input(args, kwargs)),)


class SkippedLayerNorm(nn.Identity):
    """The residual LayerNorm of a dropped block."""


SKIP_MODULES = {
    "pass_tuple": SkippedAttention,
    "pass": SkippedIntermediate,
    "residual": SkippedOutput,
    "zero": SkippedZero,
    "zero_tuple": SkippedZeroTuple,
    "identity": SkippedLayerNorm,
}

BERT_LAYOUT = {
    "layers": "encoder.layer",
    "heads": {
        "unit": None,  # head_dim, from the config
        "rows": ["attention.self.query", "attention.self.key", "attention.self.value"],
        "columns": ["attention.output.dense"],
        "attrs": {"attention.self.num_attention_heads": "units", "attention.self.all_head_size": "width"},
        "skip": {"attention": "pass_tuple"},
    },
    "ffn": {
        "unit": 1,
        "rows": ["intermediate.dense"],
        "columns": ["output.dense"],
        "attrs": {},
        "skip": {"intermediate": "pass", "output": "residual"},
    },
}


def _resolve(root: Any, path: str) -> tuple[Any, str]:
    *parents, name = path.split(".")
    for part in parents:
        root = getattr(root, part)
    return root, name


def layout_of(config: Any) -> dict:
    return getattr(config, "eftnas_layout", None) or BERT_LAYOUT


def apply_subnet_shapes(layers: nn.ModuleList, config: Any) -> None:
    """Resize each layer's Linear modules to the sub-network in `config.eftnas_subnet`."""
    spec = config.eftnas_subnet
    layout = layout_of(config)
    head_dim = config.hidden_size // config.num_attention_heads
    for i, layer in enumerate(layers):
        for dim in ("heads", "ffn"):
            units = spec[dim][i]
            d = layout[dim]
            if units == 0:
                for path, kind in d["skip"].items():
                    parent, name = _resolve(layer, path)
                    setattr(parent, name, SKIP_MODULES[kind]())
                continue
            width = units * (d["unit"] or head_dim)
            for path in d["rows"]:
                parent, name = _resolve(layer, path)
                setattr(parent, name, nn.Linear(getattr(parent, name).in_features, width))
            for path in d["columns"]:
                parent, name = _resolve(layer, path)
                setattr(parent, name, nn.Linear(width, getattr(parent, name).out_features))
            for path, value in d["attrs"].items():
                parent, name = _resolve(layer, path)
                setattr(parent, name, units if value == "units" else width)


class SlicedModel:
    """Mixin: after the stock HF constructor, shape the encoder layers to the sub-network."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        parent, name = _resolve(self.base_model, layout_of(config)["layers"])
        apply_subnet_shapes(getattr(parent, name), config)


class EftnasBertForSequenceClassification(SlicedModel, BertForSequenceClassification):
    pass


class EftnasBertForQuestionAnswering(SlicedModel, BertForQuestionAnswering):
    pass


class EftnasRobertaForSequenceClassification(SlicedModel, RobertaForSequenceClassification):
    pass


class EftnasRobertaForQuestionAnswering(SlicedModel, RobertaForQuestionAnswering):
    pass


class EftnasDistilBertForSequenceClassification(SlicedModel, DistilBertForSequenceClassification):
    pass


class EftnasDistilBertForQuestionAnswering(SlicedModel, DistilBertForQuestionAnswering):
    pass
