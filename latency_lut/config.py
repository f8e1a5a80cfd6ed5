"""Model configs for LUT work: from a directory, hub name or config.json, or rebuilt from a LUT's geometry."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import get_family
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.families.models import config_class, make_config, model_class
from eftnas_deploy.supernet.loading import load_model


def load_model_config(source: str | Path, task: str | None, seq_len: int) -> tuple[PretrainedConfig, ModelGeometry]:
    """The HF config and geometry of a model directory/hub name or a config.json file (no weights)."""
    path = Path(source)
    if path.is_file():
        try:
            model_type = json.loads(path.read_text()).get("model_type")
        except json.JSONDecodeError as exc:
            raise EftnasError(f"model: {path} is not valid JSON ({exc})") from exc
        try:
            get_family(model_type)
        except EftnasError as exc:
            raise EftnasError(f"{exc} in {path}") from None
        config = config_class(model_type).from_json_file(str(path))
    else:
        config = AutoConfig.from_pretrained(str(source))
    geometry = ModelGeometry.from_config(config, task=task)
    check_seq_len(geometry, seq_len)
    return config, geometry


def max_seq_len(geometry: ModelGeometry) -> int:
    """The longest input the model's position embeddings allow."""
    return geometry.max_seq_len


def check_seq_len(geometry: ModelGeometry, seq_len: int, what: str = "seq_len") -> None:
    if seq_len < 1 or seq_len > max_seq_len(geometry):
        raise EftnasError(
            f"{what}: {seq_len} does not fit the model's max_position_embeddings {geometry.max_position_embeddings} "
            f"(at most {max_seq_len(geometry)})"
        )


def config_from_geometry(geometry: ModelGeometry) -> PretrainedConfig:
    """A config with the LUT's geometry (other fields at their defaults: they do not change latency)."""
    return make_config(
        geometry.model_type,
        hidden_size=geometry.hidden_size,
        num_layers=geometry.num_layers,
        num_heads=geometry.num_heads,
        intermediate_size=geometry.intermediate_size,
        vocab_size=geometry.vocab_size,
        max_position_embeddings=geometry.max_position_embeddings,
        type_vocab_size=geometry.type_vocab_size,
        num_labels=geometry.num_labels,
    )


def load_supernet(
    source: str | Path | None, geometry: ModelGeometry, seq_len: int, allow_approximate: bool = False
) -> PreTrainedModel:
    """The model to slice for validation: `source` (checked against the LUT geometry) or random weights."""
    if source is None:
        model = model_class(geometry.model_type, geometry.task)(config_from_geometry(geometry))
        return model.eval()
    model = load_model(str(source), geometry.task).eval()
    problems = ModelGeometry.from_config(model.config, geometry.task).mismatches(geometry)
    if problems and not allow_approximate:
        raise EftnasError("model: does not match the LUT geometry (" + "; ".join(problems) + ")")
    check_seq_len(geometry, seq_len)
    return model
