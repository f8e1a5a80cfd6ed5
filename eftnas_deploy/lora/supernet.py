"""A LoNAS super-network: elastic widths (heads, FFN) of a frozen base and elastic LoRA ranks, trained together.

`LoraSuperNetwork` drives a `SuperNetwork` (widths) over the base model of an `ElasticLoRA` (ranks). The
elastic-width layers call each LoRA layer's `sliced_forward`, so a sub-network's adapter update is sliced
with its base weight: the unmerged width + rank sub-network computes what the merged, sliced model does.
It is duck-compatible with `SuperNetwork` (`model`, `geometry`, `set_subnet`, `reset`, `activate`), so the
project's trainer, evaluation and search use it unchanged.

On disk (the pipeline's super-network stage): the frozen (reordered, possibly pruned) base model as a plain
HF directory, the super-adapter as a peft directory, and the sparsity keep-masks as safetensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from eftnas_deploy.core.dimensions import LORA_DIMENSIONS
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.lora.elastic import ADAPTER, ElasticLoRA
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.supernet.loading import load_model
from eftnas_deploy.supernet.switchable import Switchable

MASKS_FILE = "masks.safetensors"


def widths_only(subnet: SubnetConfig) -> SubnetConfig:
    """`subnet` without its LoRA ranks: what a merged model is sliced to (ranks cost nothing once merged)."""
    return SubnetConfig(**{d: getattr(subnet, d) for d in subnet.dimensions if d not in LORA_DIMENSIONS})


def ranks_of(subnet: SubnetConfig) -> dict[str, tuple[int, ...]]:
    return {d: getattr(subnet, d) for d in subnet.dimensions if d in LORA_DIMENSIONS}


class LoraSuperNetwork(Switchable):
    """Widths and LoRA ranks of one frozen base model, set together from one `SubnetConfig`."""

    def __init__(self, elastic: ElasticLoRA) -> None:
        self.elastic = elastic
        self.widths = SuperNetwork(elastic.model.get_base_model())
        self.model = self.widths.model  # the base HF model with the LoRA layers injected (peft works in place)
        self.geometry = elastic.geometry
        self._active = self.full()

    def full(self) -> SubnetConfig:
        """Full widths and the super-adapter's full rank."""
        return self.elastic.full()

    def set_subnet(self, subnet: SubnetConfig) -> None:
        """Activate `subnet`'s widths and ranks (omitted rank groups: full rank)."""
        self.widths.set_subnet(subnet)
        self.elastic.set_subnet(self.elastic.ranks_only(subnet))
        self._active = self.elastic.active.replace(**{d: getattr(subnet, d) for d in ("heads", "ffn")})

    def merged(self, subnet: SubnetConfig) -> SuperNetwork:
        """A plain super-network of `subnet`'s sub-adapter merged into a copy of the base (masks kept).

        Slice it to `widths_only(subnet)` for deployment.
        """
        merged = self.elastic.merged_model(self.elastic.ranks_only(subnet))
        return SuperNetwork(merged)

    def adapter_parameters(self, subnet: SubnetConfig) -> dict[str, int]:
        """Trainable parameters of `subnet`'s sub-adapter: LoRA (at its ranks) and the task head."""
        ranks = self.elastic.ranks_only(subnet)
        with self.elastic.activate(ranks):
            lora = sum(
                m._rank(ADAPTER) * (m.in_features + m.out_features)
                for m in self.elastic.modules.values()
                if m._rank(ADAPTER) > 0
            )
        head = sum(p.numel() for n, p in self.elastic.model.named_parameters() if p.requires_grad and "lora_" not in n)
        return {"lora": int(lora), "head": int(head), "total": int(lora + head)}

    def save_adapter(self, directory: str | Path) -> None:
        """The super-adapter as a peft directory (LoRA at the full rank and the task head); the base is saved apart."""
        self.elastic.model.save_pretrained(str(directory))

    @classmethod
    def from_pretrained(
        cls,
        base_dir: str | Path,
        adapter_dir: str | Path,
        task: str = "text-classification",
        masks_file: str | Path | None = None,
        is_trainable: bool = True,
    ) -> LoraSuperNetwork:
        """Load the frozen base, put the saved super-adapter on it and restore the keep-masks."""
        base = load_model(str(base_dir), task, what="supernet", strict_task=True)
        elastic = ElasticLoRA.from_pretrained(base, adapter_dir, is_trainable=is_trainable)
        if masks_file is not None and Path(masks_file).is_file():
            elastic.set_masks(load_masks(masks_file))
        return cls(elastic)


def save_masks(masks: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Keep-masks by module name (every pruned layer, adapted or not) as uint8 safetensors."""
    from safetensors.torch import save_file

    save_file({n: m.to(torch.uint8).contiguous() for n, m in masks.items()}, str(path))


def load_masks(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {n: m.to(torch.bool) for n, m in load_file(str(path)).items()}


def attach(base: PreTrainedModel, **kwargs: Any) -> LoraSuperNetwork:
    """`attach_lora(base, **kwargs)` wrapped for width + rank training."""
    from eftnas_deploy.lora.elastic import attach_lora

    return LoraSuperNetwork(attach_lora(base, **kwargs))
