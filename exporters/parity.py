"""Parity of exported artifacts with the PyTorch sliced model, on random inputs with padding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.families.models import model_input_names
from exporters.runtime import RuntimeSpec, open_model

ONNX_ATOL = 1e-4
OPENVINO_ATOL = 1e-3


class ParityError(EftnasError):
    """An exported artifact does not reproduce the PyTorch model."""


ALL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def padded_inputs(
    vocab_size: int, batch: int = 3, seq_len: int = 24, seed: int = 0, input_names: tuple[str, ...] = ALL_INPUTS
) -> dict[str, np.ndarray]:
    """Random token ids; every row but the first is right-padded (mask 0, pad id 0).

    `input_names` picks the inputs to return (a model's family's: DistilBERT takes no token_type_ids).
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, size=(batch, seq_len), dtype=np.int64)
    mask = np.ones_like(ids)
    for row in range(1, batch):
        keep = max(2, seq_len - 5 * row)
        mask[row, keep:] = 0
        ids[row, keep:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {name: feeds[name] for name in input_names}


@torch.no_grad()
def pytorch_outputs(model: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Named outputs (logits, or start_logits/end_logits) of an HF model."""
    out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    names = ("start_logits", "end_logits") if getattr(out, "start_logits", None) is not None else ("logits",)
    return {name: getattr(out, name).numpy() for name in names}


def max_abs_diff(model_path: Path, spec: RuntimeSpec, expected: dict[str, np.ndarray], feeds: dict) -> float:
    compiled = open_model(model_path, spec)
    missing_inputs = set(compiled.input_names) - set(feeds)
    if missing_inputs:
        raise ParityError(f"inputs: {model_path} takes {sorted(missing_inputs)}, which the PyTorch model does not")
    outputs = dict(zip(compiled.output_names, compiled({n: feeds[n] for n in compiled.input_names})))
    missing = set(expected) - set(outputs)
    if missing:
        raise ParityError(f"outputs: {model_path} lacks {sorted(missing)} (has {compiled.output_names})")
    return max(float(np.abs(outputs[name] - value).max()) for name, value in expected.items())


def check_parity(
    model: Any, artifacts: dict[str, tuple[Path, RuntimeSpec, float]], seq_len: int = 24
) -> dict[str, dict[str, Any]]:
    """Compare each artifact (path, runtime spec, tolerance) with the PyTorch model; raise on a miss."""
    feeds = padded_inputs(model.config.vocab_size, seq_len=seq_len, input_names=model_input_names(model))
    expected = pytorch_outputs(model, feeds)
    report = {}
    for name, (path, spec, atol) in artifacts.items():
        diff = max_abs_diff(path, spec, expected, feeds)
        report[name] = {"max_abs_diff": diff, "atol": atol, "precision": spec.precision, "ok": diff <= atol}
        if diff > atol:
            raise ParityError(f"{name}: max abs diff {diff:.2e} vs PyTorch exceeds {atol:.0e} ({path})")
    return report
