"""Physical slicing of a decoder super-network: a sub-network becomes a dense causal LM with per-layer shapes."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, PreTrainedModel

from eftnas_deploy.core.decoder_family import DecoderGeometry
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import atomic_output_dir, read_json
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.supernet import modeling_eftnas_decoder
from eftnas_deploy.supernet.decoder import DecoderSuperNetwork, decoder_spec, decoder_unit_groups

DECODER_MODELING_FILE = "modeling_eftnas_decoder.py"
AUTO_CLASS = "AutoModelForCausalLM"


def _dense_class(name: str) -> type[PreTrainedModel]:
    return getattr(modeling_eftnas_decoder, name)


def sliced_decoder_state(model: PreTrainedModel, subnet: SubnetConfig) -> dict[str, torch.Tensor]:
    """The super-network's weights cut to `subnet`'s prefixes; a skipped block loses its weights and pre-norm."""
    spec = decoder_spec(model)
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    cuts: dict[str, tuple[slice, ...] | None] = {}
    for i, (groups, width) in enumerate(zip(subnet.heads, subnet.ffn)):
        prefix = f"{spec.layers}.{i}."
        for dim, kept, layout in (("heads", groups, spec.attention), ("ffn", width, spec.mlp)):
            if kept == 0:
                cuts.update({f"{prefix}{layout.norm}.weight": None, f"{prefix}{layout.module}.": None})
                continue
            for linear, axis, unit in decoder_unit_groups(model, dim, i):
                keep = slice(0, kept * unit)
                cuts[names[id(linear.weight)]] = (keep,) if axis == 0 else (slice(None), keep)
                if linear.bias is not None and axis == 0:  # a column cut leaves the output (and bias) whole
                    cuts[names[id(linear.bias)]] = (keep,)
    dropped = tuple(key for key, cut in cuts.items() if cut is None)
    renumber = {f"{spec.layers}.{i}.": f"{spec.layers}.{j}." for j, i in enumerate(kept_layers(subnet))}
    out = {}
    for key, tensor in model.state_dict().items():
        if key.startswith(dropped):
            continue
        if key.startswith(f"{spec.layers}."):
            prefix = f"{spec.layers}.{key[len(spec.layers) + 1 :].split('.', 1)[0]}."
            if prefix not in renumber:  # a layer whose blocks are both dropped is not built
                continue
            key_out = renumber[prefix] + key[len(prefix) :]
        else:
            key_out = key
        out[key_out] = tensor[cuts.get(key, ())].detach().clone().contiguous()
    return out


def kept_layers(subnet: SubnetConfig) -> list[int]:
    """Parent layers a dense model builds: those keeping a block (layer 0 alone if none does, so that the
    KV cache still counts tokens)."""
    return [i for i, (groups, width) in enumerate(zip(subnet.heads, subnet.ffn)) if groups or width] or [0]


def slice_decoder(source: DecoderSuperNetwork | PreTrainedModel, subnet: SubnetConfig) -> PreTrainedModel:
    """The dense causal LM of `subnet`; its logits and greedy tokens equal the super-network's with it active."""
    model = source.model if isinstance(source, DecoderSuperNetwork) else source
    if getattr(model.config, "eftnas_subnet", None):
        raise EftnasError("model: already a sliced sub-network; slice from the super-network instead")
    spec, geometry = decoder_spec(model), DecoderGeometry.from_config(model.config)
    geometry.validate(subnet)
    cls = _dense_class(spec.dense_class)
    config = copy.deepcopy(model.config)
    config.eftnas_subnet = subnet.to_dict()
    config.eftnas_parent = geometry.to_dict()
    widest = max(max(subnet.heads), 1)
    config.head_dim = geometry.head_dim
    config.num_key_value_heads = widest
    config.num_attention_heads = widest * geometry.group_size
    config.intermediate_size = max(max(subnet.ffn), 1)
    kept = kept_layers(subnet)
    config.eftnas_layers = kept
    config.num_hidden_layers = len(kept)
    if getattr(config, "layer_types", None) is not None:  # Qwen2: full / sliding attention per layer
        config.layer_types = [config.layer_types[i] for i in kept]
    config.architectures = [cls.__name__]
    config.auto_map = own_auto_map(cls.__name__)
    dense = cls(config)
    dense.load_state_dict(sliced_decoder_state(model, subnet), strict=True)
    dense.to(next(model.parameters()).dtype)
    if model.generation_config is not None:
        dense.generation_config = copy.deepcopy(model.generation_config)
    return dense.eval()


def own_auto_map(class_name: str) -> dict[str, str]:
    """The only `auto_map` a sliced decoder may carry: the toolkit's modeling file, copied beside the weights."""
    return {AUTO_CLASS: f"{Path(DECODER_MODELING_FILE).stem}.{class_name}"}


def check_decoder_dir(directory: str | Path) -> Any:
    """The config of a sliced decoder directory; EftnasError unless it is one whose `auto_map` (and tokenizer
    config) name only the toolkit's own code, so exporters may load it with `trust_remote_code=True`."""
    directory = Path(directory)
    config = AutoConfig.from_pretrained(directory)
    if not getattr(config, "eftnas_subnet", None):
        raise EftnasError(f"model: {directory} is not a sliced EFTNAS decoder (no eftnas_subnet in config)")
    arch = (config.architectures or [""])[0]
    cls = getattr(modeling_eftnas_decoder, arch, None)
    if not (isinstance(cls, type) and issubclass(cls, PreTrainedModel)):
        raise EftnasError(f"architectures: {arch!r} is not one of the toolkit's sliced decoder classes")
    if getattr(config, "auto_map", None) != own_auto_map(arch):
        raise EftnasError(f"auto_map: {directory / 'config.json'} names code that is not the toolkit's; refusing it")
    tokenizer_config = directory / "tokenizer_config.json"
    if tokenizer_config.is_file() and "auto_map" in read_json(tokenizer_config, "tokenizer"):
        raise EftnasError(f"auto_map: {tokenizer_config} names tokenizer code; refusing it")
    return config


def save_sliced_decoder(
    dense: PreTrainedModel, out_dir: str | Path, tokenizer: Any | None = None, overwrite: bool = False
) -> Path:
    """Write a sliced decoder as an HF directory (safetensors + the self-contained modeling file), atomically."""
    if not getattr(dense.config, "eftnas_subnet", None) or type(dense).__module__ != modeling_eftnas_decoder.__name__:
        raise EftnasError(f"model: {type(dense).__name__} is not one of the toolkit's sliced decoder classes")
    dense.config.auto_map = own_auto_map(type(dense).__name__)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        dense.save_pretrained(tmp, safe_serialization=True)
        shutil.copyfile(modeling_eftnas_decoder.__file__, tmp / DECODER_MODELING_FILE)
        SubnetConfig.from_dict(dense.config.eftnas_subnet).save(tmp / "subnet.json")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return Path(out_dir)


def load_sliced_decoder(directory: str | Path, **kwargs: Any) -> PreTrainedModel:
    """Load a sliced decoder directory with the toolkit's own classes (no remote code is run)."""
    config = check_decoder_dir(directory)
    return getattr(modeling_eftnas_decoder, config.architectures[0]).from_pretrained(directory, **kwargs)
