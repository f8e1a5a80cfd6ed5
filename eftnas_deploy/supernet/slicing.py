"""Physical slicing: a SubnetConfig of a super-network becomes a dense, smaller HF model."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import family_names, get_family
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.io import atomic_output_dir
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import AUTO_CLASSES, family_of, layer_prefix, task_of
from eftnas_deploy.supernet import modeling_eftnas
from eftnas_deploy.supernet.dims import HANDLERS
from eftnas_deploy.supernet.elastic import SuperNetwork

MODELING_FILE = "modeling_eftnas.py"

# (model type, task) -> dense sliced class, as each family file names it in modeling_eftnas.
DENSE_CLASSES: dict[tuple[str, str], type[PreTrainedModel]] = {
    (m, task): getattr(modeling_eftnas, name)
    for m in family_names()
    for task, name in get_family(m).dense_classes.items()
}


def sliced_state_dict(model: PreTrainedModel, subnet: SubnetConfig, geometry: ModelGeometry) -> dict[str, torch.Tensor]:
    """The super-network's weights cut to the prefix shapes of `subnet` (dropped blocks removed)."""
    state = model.state_dict()
    family = family_of(model)
    out: dict[str, torch.Tensor] = {}
    cuts: dict[str, tuple[slice, ...] | None] = {}
    for i in range(subnet.num_layers):
        p = layer_prefix(model, i)
        for handler in HANDLERS.values():
            units = handler.active(subnet)[i]
            cuts.update(handler.state_cuts(p, family, geometry, units))
            if units == 0:
                dropped = handler.dropped_prefixes(p, family)
                for key in state:
                    if any(key.startswith(d) for d in dropped):
                        cuts[key] = None
    for key, tensor in state.items():
        cut = cuts.get(key, ())
        if cut is None:
            continue
        out[key] = tensor[cut].detach().clone().contiguous()
    return out


def slice_subnet(source: SuperNetwork | PreTrainedModel, subnet: SubnetConfig) -> PreTrainedModel:
    """Build the dense model of `subnet`; its outputs equal the super-network's with `subnet` active."""
    model = source.model if isinstance(source, SuperNetwork) else source
    if getattr(model.config, "eftnas_subnet", None):
        raise EftnasError("model: already a sliced sub-network; slice from the super-network instead")
    task = task_of(model)
    geometry = ModelGeometry.from_config(model.config, task=task)
    subnet.validate(geometry)
    cls = DENSE_CLASSES[(geometry.model_type, task)]
    config = copy.deepcopy(model.config)
    config.eftnas_subnet = subnet.to_dict()
    config.eftnas_parent = geometry.to_dict()
    config.eftnas_layout = family_of(model).dense_layout(geometry.head_dim)
    config.architectures = [cls.__name__]
    config.auto_map = own_auto_map(cls, task)
    dense = cls(config)
    dense.load_state_dict(sliced_state_dict(model, subnet, geometry), strict=True)
    dense.to(next(model.parameters()).dtype)
    dense.eval()
    return dense


def own_auto_map(cls: type, task: str) -> dict[str, str]:
    """The only `auto_map` a sliced model may carry: the toolkit's own modeling file, copied beside the weights."""
    return {AUTO_CLASSES[task].__name__: f"{Path(MODELING_FILE).stem}.{cls.__name__}"}


def _own_class(config: Any) -> type | None:
    by_name = {cls.__name__: cls for cls in DENSE_CLASSES.values()}
    return by_name.get((getattr(config, "architectures", None) or [""])[0])


def check_auto_map(directory: str | Path, config: Any) -> None:
    """Refuse a sliced directory whose config (or tokenizer config) names code other than the toolkit's own.

    Exporters load sliced models with `trust_remote_code=True`; a directory from elsewhere must not be able
    to make them import (or download) the code its `auto_map` names.
    """
    directory = Path(directory)
    auto_map = getattr(config, "auto_map", None)
    cls = _own_class(config)
    allowed = [own_auto_map(cls, task) for task in AUTO_CLASSES] if cls is not None else []
    if auto_map and auto_map not in allowed:
        raise EftnasError(
            f"auto_map: {directory / 'config.json'} names code that is not the toolkit's ({auto_map}); "
            "refusing to load it (slice the super-network again with `eftnas-deploy slice`)"
        )
    tokenizer_config = directory / "tokenizer_config.json"
    if tokenizer_config.is_file():
        from eftnas_deploy.core.io import read_json

        data = read_json(tokenizer_config, "tokenizer")
        if isinstance(data, dict) and data.get("auto_map"):
            raise EftnasError(f"auto_map: {tokenizer_config} names tokenizer code ({data['auto_map']}); refusing it")


def save_sliced(
    dense: PreTrainedModel,
    out_dir: str | Path,
    tokenizer: Any | None = None,
    overwrite: bool = False,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a sliced model as an HF directory (safetensors + modeling file), atomically."""
    if not getattr(dense.config, "eftnas_subnet", None):
        raise EftnasError("model: not a sliced sub-network (config.eftnas_subnet is missing)")
    cls = _own_class(dense.config)
    if cls is None or not isinstance(dense, cls):
        raise EftnasError(f"model: {type(dense).__name__} is not one of the toolkit's sliced model classes")
    # Whatever the model was loaded from, the written directory only ever points at the toolkit's own code.
    dense.config.auto_map = own_auto_map(cls, task_of_dense(dense))
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        dense.save_pretrained(tmp, safe_serialization=True)
        shutil.copyfile(modeling_eftnas.__file__, tmp / MODELING_FILE)
        SubnetConfig.from_dict(dense.config.eftnas_subnet).save(tmp / "subnet.json")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return Path(out_dir)


def load_sliced(directory: str | Path, **kwargs: Any) -> PreTrainedModel:
    """Load a sliced model directory with the toolkit's own classes (no remote code is run)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(directory)
    spec = getattr(config, "eftnas_subnet", None)
    if not spec:
        raise EftnasError(f"model: {directory} is not a sliced EFTNAS sub-network (no eftnas_subnet in config)")
    by_name = {cls.__name__: cls for cls in DENSE_CLASSES.values()}
    arch = (config.architectures or [""])[0]
    if arch not in by_name:
        raise EftnasError(f"architectures: {arch!r} is not one of {sorted(by_name)}")
    check_auto_map(directory, config)
    return by_name[arch].from_pretrained(directory, **kwargs)


def task_of_dense(dense: PreTrainedModel) -> str:
    """The task of a sliced model class."""
    for (_, task), cls in DENSE_CLASSES.items():
        if isinstance(dense, cls):
            return task
    raise EftnasError(f"model: {type(dense).__name__} is not a sliced model class")
