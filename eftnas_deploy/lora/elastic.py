"""Elastic-rank LoRA super-adapters (LoNAS / Shears NLS) on a frozen BERT/RoBERTa, built with peft.

`attach_lora(model, max_rank)` puts one peft LoRA adapter of rank `max_rank` on the projection groups of
every encoder layer (Q-K-V, FFN up, FFN down; see `LORA_GROUPS`). Each LoRA layer is then switched to
`ElasticLoraLinear`, which runs only the first r rows of `lora_A` and the first r columns of `lora_B`
(sliced at forward time, so gradients reach the shared tensors). `ElasticLoRA.set_subnet(subnet)` reads
the per-layer ranks from the sub-network's `lora_qkv` / `lora_up` / `lora_down` values.

Scaling rule (NLS): every sub-adapter keeps the super-adapter's scaling `alpha / max_rank`, whatever its
rank. That is what Shears does (BootstrapNAS elastic width slices the peft `lora_A`/`lora_B` linears and
leaves peft's `scaling` alone), and it makes a sub-adapter an exact truncation of the super-adapter's
weight update. An extracted sub-adapter of rank r stores `alpha * r / max_rank` in `alpha_pattern` so
stock peft (scaling `alpha_r / r`) computes the same update.

A sparsity mask per module (`set_masks`, from `eftnas_deploy.sparsity`) multiplies the adapter's weight
update, so training sees the masked update and `merged_model` keeps exactly the base's zeros (SQFT's
SparsePEFT).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora.layer import Linear as PeftLoraLinear
from peft.utils import get_peft_model_state_dict
from transformers import PreTrainedModel

from eftnas_deploy.core.dimensions import LORA_DIMENSIONS, dimension
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import FamilySpec, get_family
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import family_of, task_of
from eftnas_deploy.supernet.switchable import Switchable

ADAPTER = "default"


def lora_groups(family: FamilySpec) -> dict[str, str]:
    """Full-path module-name patterns (peft's regex `target_modules` form) of each projection group.

    Built from the family's layout, so BERT's FFN down `layer.N.output.dense` is anchored right after the
    layer index and the attention output projection (`layer.N.attention.output.dense`) does not match it.
    """
    layer = rf".*\.{re.escape(family.layers)}\.(\d+)\."
    qkv = "|".join(re.escape(path) for path in family.attention.rows)
    return {
        "lora_qkv": rf"{layer}(?:{qkv})",
        "lora_up": rf"{layer}{re.escape(family.ffn.up)}",
        "lora_down": rf"{layer}{re.escape(family.ffn.down)}",
    }


LORA_GROUPS: dict[str, str] = lora_groups(get_family("bert"))  # BERT's, for reference and tests
_TASK_TYPES = {"text-classification": "SEQ_CLS", "question-answering": "QUESTION_ANS"}
_PREFIX = "base_model.model."


class ElasticLoraLinear(PeftLoraLinear):
    """A peft `lora.Linear` whose adapter runs a prefix of its rank, optionally with a masked update.

    `active_rank` (None: the full rank) slices `lora_A` rows and `lora_B` columns; `delta_mask` (bool, the
    base weight's shape) zeroes update entries where the base weight is pruned. `get_delta_weight`, which
    peft's merge uses, follows both, so `merge_and_unload` merges the active sub-adapter.
    """

    active_rank: int | None
    delta_mask: torch.Tensor | None

    def _rank(self, adapter: str) -> int:
        full = self.r[adapter]
        return full if self.active_rank is None else self.active_rank

    def _sliced(self, adapter: str) -> tuple[torch.Tensor, torch.Tensor]:
        rank = self._rank(adapter)
        return self.lora_A[adapter].weight[:rank], self.lora_B[adapter].weight[:, :rank]

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        a, b = self._sliced(adapter)
        delta = (b @ a) * self.scaling[adapter]  # out x in (fan_in_fan_out layers are refused)
        if self.delta_mask is not None:
            delta = delta * self.delta_mask.to(delta.dtype)
        return delta

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if kwargs.get("adapter_names") is not None:
            raise EftnasError("adapter_names: mixed-adapter batches are not supported by elastic LoRA")
        if self.disable_adapters or self.merged:
            return super().forward(x, *args, **kwargs)
        return self.sliced_forward(x)

    def sliced_forward(self, x: torch.Tensor, rows: int | None = None, cols: int | None = None) -> torch.Tensor:
        """The layer on its first `rows` outputs and `cols` inputs, adapter included (elastic-width layers call it).

        Equal to `forward` followed by slicing, so a width + rank sub-network trains and evaluates unmerged.
        """
        weight, bias = self.base_layer.weight, self.base_layer.bias
        if rows is not None:
            weight, bias = weight[:rows], None if bias is None else bias[:rows]
        if cols is not None:
            weight = weight[:, :cols]
        result = F.linear(x, weight, bias)
        if self.disable_adapters or self.merged:
            return result
        dtype = result.dtype
        for adapter in self.active_adapters:
            if adapter not in self.lora_A:
                continue
            a, b = self._sliced(adapter)
            h = self.lora_dropout[adapter](self._cast_input_dtype(x, a.dtype))
            if self.delta_mask is None:
                a = a if cols is None else a[:, :cols]
                b = b if rows is None else b[:rows]
                result = result + F.linear(F.linear(h, a), b) * self.scaling[adapter]
            else:
                delta = self.get_delta_weight(adapter)
                delta = delta if rows is None else delta[:rows]
                result = result + F.linear(h, delta if cols is None else delta[:, :cols])
        return result.to(dtype)


def _group_of(name: str, groups: dict[str, str]) -> tuple[str, int] | None:
    for group, pattern in groups.items():
        match = re.fullmatch(pattern, name)
        if match:
            return group, int(match.group(1))
    return None


class ElasticLoRA(Switchable):
    """Controls the active sub-adapter of a peft model made by `attach_lora`.

    Duck-compatible with `SuperNetwork` where `SuperNetTrainer` needs it (`model`, `geometry`,
    `set_subnet`, `reset`), so the project's trainer and sampling strategies train it unchanged. It sets
    ranks only: a sub-network's `heads`/`ffn`, if stated, must be the full widths.
    """

    def __init__(self, model: PeftModel, geometry: ModelGeometry) -> None:
        config = model.peft_config[ADAPTER]
        plain = isinstance(config, LoraConfig) and not (config.use_dora or config.use_rslora or config.lora_bias)
        if not plain or config.fan_in_fan_out:
            raise EftnasError(
                "model: elastic LoRA needs a plain peft LoRA adapter on nn.Linear (no DoRA, rsLoRA, LoRA bias)"
            )
        self.model = model
        self.geometry = geometry
        self.max_rank = int(config.r)
        self.alpha = float(config.lora_alpha)
        self.modules: dict[str, ElasticLoraLinear] = {}  # base-model module name -> layer
        self.groups: dict[str, tuple[str, int]] = {}  # base-model module name -> (dimension, layer index)
        patterns = lora_groups(family_of(model.get_base_model()))
        for name, module in model.named_modules():
            if not isinstance(module, PeftLoraLinear):
                continue
            base_name = name.removeprefix(_PREFIX)
            group = _group_of(base_name, patterns)
            if group is None:
                raise EftnasError(f"{base_name}: a LoRA module outside the projection groups {list(patterns)}")
            if module.r[ADAPTER] != self.max_rank:
                raise EftnasError(f"{base_name}: rank {module.r[ADAPTER]}, the super-adapter has {self.max_rank}")
            if not isinstance(module, ElasticLoraLinear):
                module.__class__ = ElasticLoraLinear
                module.active_rank = None
                module.delta_mask = None
            self.modules[base_name] = module
            self.groups[base_name] = group
        if not self.modules:
            raise EftnasError("model: no LoRA modules on the projection groups")
        self.dimensions = tuple(d for d in LORA_DIMENSIONS if any(g == d for g, _ in self.groups.values()))
        self._active = self.full()

    @classmethod
    def from_pretrained(cls, base: PreTrainedModel, directory: str | Path, is_trainable: bool = True) -> ElasticLoRA:
        """Load a super-adapter saved with `model.save_pretrained` onto its base model."""
        geometry = ModelGeometry.from_config(base.config, task=task_of(base))
        return cls(PeftModel.from_pretrained(base, str(directory), is_trainable=is_trainable), geometry)

    def full(self) -> SubnetConfig:
        """Full widths and the full rank in every adapted group."""
        full = SubnetConfig.full(self.geometry)
        return full.replace(**{d: (self.max_rank,) * self.geometry.num_layers for d in self.dimensions})

    def ranks_only(self, subnet: SubnetConfig) -> SubnetConfig:
        """`subnet`'s LoRA ranks with full widths: the part of a width + rank sub-network this wrapper sets.

        For a combined search, merge `ranks_only(s)` (`merged_model`) and give the widths to a
        `SuperNetwork` of the merged model: elastic-width layers slice the base weights directly.
        """
        full = SubnetConfig.full(self.geometry)
        return subnet.replace(**{name: getattr(full, name) for name in full.dimensions})

    def set_subnet(self, subnet: SubnetConfig) -> None:
        """Activate the sub-adapter whose per-layer ranks `subnet` states (omitted groups: full rank)."""
        subnet.validate(self.geometry)
        full = SubnetConfig.full(self.geometry)
        for name in full.dimensions:
            if name in subnet.dimensions and getattr(subnet, name) != getattr(full, name):
                raise EftnasError(f"{name}: elastic LoRA sets ranks only; {name} must be the full width")
        stated = [d for d in subnet.dimensions if d in LORA_DIMENSIONS]
        for name in stated:
            if name not in self.dimensions:
                raise EftnasError(f"{name}: the super-adapter has no {name} adapters")
            for i, rank in enumerate(getattr(subnet, name)):
                if rank > self.max_rank:
                    raise EftnasError(
                        f"layer {i}: {dimension(name).describe(rank)} > super-adapter rank {self.max_rank}"
                    )
        for base_name, module in self.modules.items():
            group, layer = self.groups[base_name]
            module.active_rank = getattr(subnet, group)[layer] if group in stated else None
        self._active = self.full().replace(**{d: getattr(subnet, d) for d in stated})

    set_ranks = set_subnet

    def set_masks(self, masks: Mapping[str, torch.Tensor] | None) -> None:
        """Mask each adapter's weight update with the base weight's keep-mask (by base module name).

        Modules without a mask get an unmasked update; None clears every mask.
        """
        masks = dict(masks or {})
        for name, module in self.modules.items():
            mask = masks.pop(name, None)
            if mask is not None and mask.shape != module.base_layer.weight.shape:
                raise EftnasError(
                    f"{name}: mask shape {tuple(mask.shape)} != weight {tuple(module.base_layer.weight.shape)}"
                )
            module.delta_mask = None if mask is None else mask.to(torch.bool).to(module.base_layer.weight.device)
        # Masks of pruned modules without an adapter (e.g. attention output) need no merge handling.

    def merged_model(self, subnet: SubnetConfig | None = None) -> PreTrainedModel:
        """A plain HF model with `subnet`'s sub-adapter (default: the active one) merged into a copy of the base.

        Masks set with `set_masks` apply, so a pruned base stays exactly as sparse.
        """
        model = copy.deepcopy(self.model)  # the copy keeps each module's delta_mask
        ElasticLoRA(model, self.geometry).set_subnet(subnet or self._active)
        return model.merge_and_unload()

    def save_sub_adapter(self, directory: str | Path, subnet: SubnetConfig | None = None) -> Path:
        """Write `subnet`'s sub-adapter (default: the active one) as a stock peft adapter directory.

        Ranks are per module (`rank_pattern`), with `alpha_pattern` keeping the NLS scaling; modules of
        rank 0 are left out. `PeftModel.from_pretrained(base, directory)` loads it with no eftnas code.
        Masks are not stored: merge a masked sub-adapter with `merged_model`.
        """
        from safetensors.torch import save_file

        subnet = subnet or self._active
        with self.activate(subnet):
            ranks = {name: module._rank(ADAPTER) for name, module in self.modules.items()}
        kept = sorted(name for name, rank in ranks.items() if rank > 0)
        if not kept:
            raise EftnasError("subnet: every LoRA rank is 0; the sub-adapter is empty (use the base model)")
        state = get_peft_model_state_dict(self.model, adapter_name=ADAPTER)
        out: dict[str, torch.Tensor] = {}
        for key, tensor in state.items():
            match = re.fullmatch(rf"{re.escape(_PREFIX)}(.+)\.lora_([AB])\.weight", key)
            if match is None:
                out[key] = tensor.detach().clone().contiguous()
                continue
            name, which = match.groups()
            rank = ranks[name]
            if rank == 0:
                continue
            sliced = tensor[:rank] if which == "A" else tensor[:, :rank]
            out[key] = sliced.detach().clone().contiguous()
        base = self.model.peft_config[ADAPTER]
        config = LoraConfig(
            r=self.max_rank,
            lora_alpha=self.alpha,
            target_modules=kept,
            rank_pattern={re.escape(name): ranks[name] for name in kept},
            alpha_pattern={re.escape(name): self.alpha * ranks[name] / self.max_rank for name in kept},
            lora_dropout=base.lora_dropout,
            modules_to_save=base.modules_to_save,
            task_type=base.task_type,
            base_model_name_or_path=base.base_model_name_or_path,
            bias="none",
        )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(str(directory))
        save_file(out, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
        (directory / "eftnas_subnet.json").write_text(json.dumps(subnet.to_dict()) + "\n")
        return directory


def attach_lora(
    model: PreTrainedModel,
    max_rank: int = 8,
    groups: tuple[str, ...] = LORA_DIMENSIONS,
    alpha: float | None = None,
    dropout: float = 0.0,
) -> ElasticLoRA:
    """Wrap `model` in peft with a rank-`max_rank` LoRA super-adapter on `groups`; returns its controller.

    The base weights are frozen; the adapters and the task head (peft's `modules_to_save` for the task
    type) train. `alpha` defaults to `2 * max_rank` (scaling 2).
    """
    patterns = lora_groups(family_of(model))
    unknown = [g for g in groups if g not in patterns]
    if unknown or not groups:
        raise EftnasError(f"groups: {unknown or 'none'} given; choose from {list(patterns)}")
    if max_rank <= 0:
        raise EftnasError(f"max_rank: must be positive, got {max_rank}")
    task = task_of(model)
    geometry = ModelGeometry.from_config(model.config, task=task)
    if max_rank > geometry.hidden_size:
        raise EftnasError(f"max_rank: {max_rank} exceeds hidden_size {geometry.hidden_size}")
    pattern = "|".join(f"(?:{patterns[g]})" for g in groups)
    config = LoraConfig(
        r=max_rank,
        lora_alpha=2 * max_rank if alpha is None else alpha,
        target_modules=pattern,
        lora_dropout=dropout,
        task_type=_TASK_TYPES[task],
        bias="none",
        base_model_name_or_path=getattr(model.config, "_name_or_path", None) or None,
    )
    return ElasticLoRA(get_peft_model(model, config), geometry)
