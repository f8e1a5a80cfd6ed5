"""Elastic super-network: a real HF BERT/RoBERTa whose layers run a prefix of heads and FFN neurons.

Weights are sliced at forward time (no masking), so a small sub-network costs less compute and
gradients flow into the shared full tensors. A skipped block (0 heads or 0 FFN width) is bypassed:
the block, including its residual LayerNorm, becomes the identity, exactly like the sliced model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer

from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import encoder_layers, task_of


class ElasticEncoderLayer(GradientCheckpointingLayer):
    """Drop-in replacement for BertLayer/RobertaLayer with an active prefix of heads and FFN neurons.

    It keeps the original `attention`, `intermediate` and `output` children, so parameter names
    and the state dict are those of the HF model.
    """

    def __init__(self, layer: nn.Module, head_dim: int) -> None:
        super().__init__()
        self.attention = layer.attention
        self.intermediate = layer.intermediate
        self.output = layer.output
        self.head_dim = head_dim
        self.max_heads = layer.attention.self.num_attention_heads
        self.max_ffn = layer.intermediate.dense.out_features
        self.active_heads = self.max_heads
        self.active_ffn = self.max_ffn

    def set_active(self, heads: int, ffn: int) -> None:
        self.active_heads = heads
        self.active_ffn = ffn

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor]:
        if self.active_heads > 0:
            hidden_states = self._attention(hidden_states, attention_mask)
        if self.active_ffn > 0:
            hidden_states = self._feed_forward(hidden_states)
        return (hidden_states,)

    def _attention(self, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        attn = self.attention.self
        width = self.active_heads * self.head_dim
        batch, seq, _ = x.shape

        def project(linear: nn.Linear) -> torch.Tensor:
            y = F.linear(x, linear.weight[:width], linear.bias[:width])
            return y.view(batch, seq, self.active_heads, self.head_dim).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            project(attn.query),
            project(attn.key),
            project(attn.value),
            attn_mask=attention_mask,
            dropout_p=attn.dropout.p if self.training else 0.0,
        )
        context = context.transpose(1, 2).reshape(batch, seq, width)
        out = self.attention.output
        y = F.linear(context, out.dense.weight[:, :width], out.dense.bias)
        return out.LayerNorm(out.dropout(y) + x)

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        width = self.active_ffn
        inter = self.intermediate
        h = inter.intermediate_act_fn(F.linear(x, inter.dense.weight[:width], inter.dense.bias[:width]))
        out = self.output
        y = F.linear(h, out.dense.weight[:, :width], out.dense.bias)
        return out.LayerNorm(out.dropout(y) + x)


class SuperNetwork:
    """Controls which sub-network of a (converted in place) HF model is active.

    `supernet.model` stays a normal HF model: save it, train it with Trainer, wrap it in DDP.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        task = task_of(model)
        self.model = model
        self.geometry = ModelGeometry.from_config(model.config, task=task)
        if getattr(model.config, "eftnas_subnet", None):
            from eftnas_deploy.core.errors import EftnasError

            raise EftnasError("model: this is an already sliced sub-network, not a super-network")
        layers = encoder_layers(model)
        for i, layer in enumerate(layers):
            if not isinstance(layer, ElasticEncoderLayer):
                layers[i] = ElasticEncoderLayer(layer, self.geometry.head_dim).train(layer.training)
        self._active = SubnetConfig.full(self.geometry)

    @property
    def layers(self) -> list[ElasticEncoderLayer]:
        return list(encoder_layers(self.model))

    @property
    def active(self) -> SubnetConfig:
        return self._active

    def set_subnet(self, subnet: SubnetConfig) -> None:
        """Make `subnet` the active sub-network (validated against the model)."""
        subnet.validate(self.geometry)
        for layer, heads, ffn in zip(self.layers, subnet.heads, subnet.ffn):
            layer.set_active(heads, ffn)
        self._active = subnet

    def reset(self) -> None:
        """Return to the full network."""
        self.set_subnet(SubnetConfig.full(self.geometry))

    @contextmanager
    def activate(self, subnet: SubnetConfig) -> Iterator[SuperNetwork]:
        """Temporarily activate a sub-network."""
        previous = self._active
        self.set_subnet(subnet)
        try:
            yield self
        finally:
            self.set_subnet(previous)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def save_pretrained(self, directory: str, **kwargs: Any) -> None:
        """Save the full shared weights as a plain HF model directory."""
        self.model.save_pretrained(directory, **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str, task: str = "text-classification", **kwargs: Any) -> SuperNetwork:
        from eftnas_deploy.families.models import load_model

        kwargs.setdefault("what", "supernet")
        return cls(load_model(directory, task=task, strict_task=True, **kwargs))
