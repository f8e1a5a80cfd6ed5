"""SQFT: quantization-aware elastic LoRA whose merge lands on the INT8/INT4 grid, with NNCF.

`quantization_aware(model, "int4", rank, calibration)` compresses a frozen base with
`nncf.compress_weights(..., compression_format=FQ_LORA_NLS)`: every compressed linear weight computes
`fq(W + B[:, :r] @ A[:r])`, so training the adapters (and NNCF's quantizer ranges) trains the model that will
be deployed. `strip_to_compressed` then turns each fake quantizer into integer weights plus a dequantize
step (NNCF's DQ format; the adapters are absorbed, nothing is left to merge), which `openvino.convert_model`
turns into an IR with u4/u8 weights. `post_training(model, "int4", calibration)` is the baseline SQFT is
measured against: the same weight compression of an already-merged FP32 model, after the fact.

Both paths compress the same weights: every linear and embedding except the task head (classifier, pooler)
and the token-type embeddings (two rows: narrower than any adapter rank). INT4 keeps NNCF's default backup
(embeddings in INT8, without adapters). Stripping needs `torchao` (NNCF imports it there): `pip install torchao`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from eftnas_deploy.core.errors import EftnasError

IGNORED_PATTERNS = (".*classifier.*", ".*pooler.*", ".*token_type_embeddings.*")


@dataclass(frozen=True)
class WeightMode:
    """One NNCF weight-compression setting, recorded with every figure it produces."""

    nncf_mode: str  # a CompressWeightsMode member name
    group_size: int  # -1: one scale per output channel

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.nncf_mode.lower(), "group_size": self.group_size}


SQFT_MODES: dict[str, WeightMode] = {
    "int8": WeightMode("INT8_ASYM", -1),
    "int4": WeightMode("INT4_ASYM", 128),
}


def _mode(name: str) -> WeightMode:
    if name not in SQFT_MODES:
        raise EftnasError(f"sqft.mode: {name!r} is not one of {tuple(SQFT_MODES)}")
    return SQFT_MODES[name]


def _group_size(mode: WeightMode, model: nn.Module) -> int:
    """The mode's group size, or per-channel where it does not divide some compressed width."""
    if mode.group_size <= 0:
        return mode.group_size
    widths = {m.in_features for m in model.modules() if isinstance(m, nn.Linear)}
    return mode.group_size if all(w % mode.group_size == 0 for w in widths) else -1


def _compress(model: nn.Module, mode_name: str, calibration: Iterable[Mapping[str, torch.Tensor]], **kwargs: Any):
    import nncf

    mode = _mode(mode_name)
    batches = [{k: v for k, v in batch.items() if k != "labels"} for batch in calibration]
    if not batches:
        raise EftnasError("calibration: no batches (the compression traces the model on at least one)")
    return nncf.compress_weights(
        model,
        mode=getattr(nncf.CompressWeightsMode, mode.nncf_mode),
        group_size=_group_size(mode, model),
        ratio=1.0,
        dataset=nncf.Dataset(batches),
        ignored_scope=nncf.IgnoredScope(patterns=list(IGNORED_PATTERNS), validate=False),
        **kwargs,
    )


def quantization_aware(
    model: nn.Module, mode: str, rank: int, calibration: Iterable[Mapping[str, torch.Tensor]]
) -> nn.Module:
    """`model` (in place) with fake-quantized weights carrying rank-`rank` elastic LoRA (NNCF FQ_LORA_NLS).

    Trainable afterwards: the adapters, NNCF's quantizer ranges and the classifier (left in full precision,
    as peft's `modules_to_save` for sequence classification).
    Drive the adapters' ranks with `eftnas_deploy.lora.nncf_nls.set_nls_ranks`.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedCompressionParameters

    if rank < 1:
        raise EftnasError(f"sqft.rank: must be >= 1, got {rank}")
    model.requires_grad_(False)
    compressed = _compress(
        model, mode, calibration,
        compression_format=nncf.CompressionFormat.FQ_LORA_NLS,
        advanced_parameters=AdvancedCompressionParameters(lora_adapter_rank=rank),
    )  # fmt: skip
    for name, parameter in compressed.named_parameters():
        if not name.startswith("__nncf_hooks") and "classifier" in name:
            parameter.requires_grad_(True)
    return compressed


def post_training(model: nn.Module, mode: str, calibration: Iterable[Mapping[str, torch.Tensor]]) -> nn.Module:
    """`model` (in place) with the same weights compressed after training, round to nearest (the PTQ baseline)."""
    return _compress(model.requires_grad_(False), mode, calibration)


def strip_to_compressed(model: nn.Module, example_input: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of a `quantization_aware` model with integer weights and dequantize steps (adapters absorbed)."""
    import nncf

    try:
        import torchao  # noqa: F401  (NNCF's strip imports it)
    except ImportError as error:
        raise EftnasError("sqft: stripping NNCF's fake quantizers needs torchao (pip install torchao)") from error
    return nncf.strip(model, do_copy=True, strip_format=nncf.StripFormat.DQ, example_input=dict(example_input))


def decompressors(model: nn.Module) -> dict[str, int]:
    """NNCF weight decompressors by class (e.g. INT4AsymmetricWeightsDecompressor) in a DQ-format model."""
    return dict(Counter(type(m).__name__ for m in model.modules() if type(m).__name__.endswith("WeightsDecompressor")))
