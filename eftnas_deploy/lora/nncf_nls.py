"""Drive the elastic ranks of NNCF's `FQ_LORA_NLS` weight compression (SQFT-style QA-NLS) from a SubnetConfig.

`nncf.compress_weights(model, mode=INT4_*, compression_format=nncf.CompressionFormat.FQ_LORA_NLS, ...)` on a
torch model puts a fake quantizer with its own LoRA pair on every linear weight it compresses: the forward
weight is `fq(W + B[:, :r] @ A[:r])` with r the quantizer's `active_lora_rank` (no alpha scaling; adapters
in bfloat16, SVD-initialised). This maps those quantizers to the `lora_qkv` / `lora_up` / `lora_down`
groups so the search space, samplers and searcher drive them like peft super-adapters. Quantizers on other
linears (attention output, pooler, head) keep their full rank. Note: the quantized sum does not keep a
pruned base's zeros once the adapter update exceeds half a quantization step (no delta mask).
"""

from __future__ import annotations

import re

from torch import nn

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import family_of
from eftnas_deploy.lora.elastic import lora_groups

# NNCF names a weight's post-hook quantizer after the weight's path with ':' separators.
_HOOK = re.compile(r"__nncf_hooks\.post_hooks\.(.+):weight__\d+\.\d+")


def nls_quantizers(model: nn.Module) -> dict[str, tuple[str, int, nn.Module]]:
    """The NLS LoRA quantizers on the projection groups: module name -> (dimension, layer, quantizer)."""
    from nncf.torch.quantization.layers import LoraNLSMixin

    found: dict[str, tuple[str, int, nn.Module]] = {}
    groups = lora_groups(family_of(model))
    for hook_name, module in model.named_modules():
        match = _HOOK.fullmatch(hook_name)
        if not isinstance(module, LoraNLSMixin) or match is None:
            continue
        name = match.group(1).replace(":", ".")
        for group, pattern in groups.items():
            layer = re.fullmatch(pattern, name)
            if layer:
                found[name] = (group, int(layer.group(1)), module)
    if not found:
        raise EftnasError("model: no FQ_LORA_NLS quantizers on the projection groups (compress_weights first)")
    return found


def set_nls_ranks(model: nn.Module, subnet: SubnetConfig) -> dict[str, int]:
    """Set every group quantizer's active rank from `subnet`'s lora dimensions (omitted: full rank)."""
    ranks: dict[str, int] = {}
    for name, (group, layer, quantizer) in nls_quantizers(model).items():
        rank = getattr(subnet, group)[layer] if group in subnet.dimensions else quantizer.max_lora_rank
        if rank > quantizer.max_lora_rank:
            raise EftnasError(
                f"layer {layer}: {group} rank {rank} > the quantizer's LoRA rank {quantizer.max_lora_rank}"
            )
        quantizer.set_active_rank(rank)
        ranks[name] = rank
    return ranks
