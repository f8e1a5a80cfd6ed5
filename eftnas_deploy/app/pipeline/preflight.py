"""Cross-field checks of a pipeline config before stage 1 writes anything.

`PipelineConfig` validates each field on its own; what only shows once the model, the tokenizer, the data,
the LUT and this machine are looked at is checked here, so a bad combination fails in seconds with one line
naming the field instead of after hours of training: sequence lengths against the model's position
embeddings, thread counts against the usable cores, the task against a fine-tuned model's head, the
tokenizer against the vocabulary, a LUT file against the configured target, a latency budget against
the least any sub-network can cost, and local data files against the task.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig

from eftnas_deploy.app.pipeline.config import PipelineConfig
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import ModelGeometry

ALLOW_FLAG = "lut.allow_approximate (--allow-approximate-lut)"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def configured_lut_target(config: PipelineConfig) -> dict[str, Any]:
    """The target the config asks a LUT for (runtime, threads, precision, seq_len, batch)."""
    from latency_lut.target import default_precision

    lut = config.lut
    return {
        "runtime": lut.runtime,
        "threads": lut.threads,
        "precision": lut.precision or default_precision(lut.runtime),
        "seq_len": lut.seq_len,
        "batch": lut.batch,
    }


def load_lut_file(config: PipelineConfig, geometry: ModelGeometry | None, quiet: bool = False):
    """(table, origin) of `lut.file`, refused unless measured for the configured target or approximate use is on.

    With `lut.allow_approximate`, the LUT's own target replaces the configured one (the search, the export's
    benchmark threads and sequence length all follow the LUT); that is printed and recorded in `origin`.
    """
    from latency_lut.target import describe, load_for_target, table_target

    asked = configured_lut_target(config)
    table, problems = load_for_target(
        config.lut.file, geometry, asked, config.lut.allow_approximate, ALLOW_FLAG, "lut.file"
    )
    origin: dict[str, Any] = {"source": "file", "file": str(Path(config.lut.file).resolve())}
    if problems:
        origin["replaces_config_target"] = {"config": asked, "lut": table_target(table), "differences": problems}
        if not quiet:
            print(
                f"lut.file: measured for {describe(table_target(table))}; it replaces the configured target "
                f"({describe(asked)}) because lut.allow_approximate is set",
                flush=True,
            )
    return table, origin


def _model_config(config: PipelineConfig) -> PretrainedConfig:
    from eftnas_deploy.families.models import make_config
    from eftnas_deploy.families.sources import model_config

    model = config.model
    if model.name:
        return model_config(model.name, "model.name")
    try:
        return make_config(model.model_type, **(model.from_config or {}))
    except (TypeError, ValueError) as exc:
        raise EftnasError(f"model.from_config: {' '.join(str(exc).split())}") from None


def _geometry(model_config: PretrainedConfig, task: str, field: str) -> ModelGeometry:
    try:
        return ModelGeometry.from_config(model_config, task)
    except EftnasError as exc:
        raise EftnasError(f"{field}: {exc}") from None
    except (AttributeError, TypeError, ZeroDivisionError) as exc:
        raise EftnasError(f"{field}: not an encoder config of a supported family ({exc})") from None


def _check_head(config: PipelineConfig, model_config: PretrainedConfig, task) -> list[str]:
    from eftnas_deploy.families.sources import head_task

    if not config.model.name:
        return []
    trained = head_task(model_config)
    name = config.model.name
    if config.model.fine_tuned and trained is not None and trained != task.model_task:
        return [f"data.task: {task.name} needs a {task.model_task} model; {name} is a fine-tuned {trained} model"]
    if trained == task.model_task == "text-classification" and model_config.num_labels != task.model_num_labels:
        return [
            f"model.name: {name} has a {model_config.num_labels}-label head, task {task.name} needs "
            f"{task.model_num_labels} (use a checkpoint without a trained head)"
        ]
    return []


def _check_lengths(config: PipelineConfig, geometry: ModelGeometry, lut_seq_len: int | None) -> list[str]:
    from latency_lut.config import max_seq_len

    limit = max_seq_len(geometry)
    source = "model.from_config" if config.model.from_config else f"model {config.model.name}"
    lengths = {"data.max_length": config.data.max_length, "space.seq_len": config.space.seq_len}
    if lut_seq_len is not None:
        lengths["lut.seq_len"] = lut_seq_len
    return [
        f"{field}: {value} is beyond the {geometry.max_position_embeddings} position embeddings of {source} "
        f"(at most {limit})"
        for field, value in lengths.items()
        if value > limit
    ]


def _check_tokenizer(config: PipelineConfig, model_config: PretrainedConfig) -> list[str]:
    from eftnas_deploy.families.sources import load_tokenizer

    field = "model.tokenizer" if config.model.tokenizer else "model.name"
    tokenizer = load_tokenizer(config.model.tokenizer or config.model.name, field)
    vocab = (config.model.from_config or {}).get("vocab_size") if config.model.from_config else model_config.vocab_size
    if vocab is not None and len(tokenizer) > vocab:
        where = "model.from_config.vocab_size" if config.model.from_config else f"{config.model.name}'s vocab_size"
        return [f"{field}: the tokenizer has {len(tokenizer)} tokens, more than {where} ({vocab})"]
    return []


def _check_data(config: PipelineConfig, task) -> list[str]:
    from eftnas_deploy.data.loading import load_split, parse_columns

    data = config.data
    out = []
    for field, path in (("data.train_file", data.train_file), ("data.dev_file", data.dev_file)):
        if path is None:
            continue
        try:
            rows = load_split(task, path, columns=parse_columns(data.columns))
        except EftnasError as exc:
            out.append(f"{field}: {exc}")
            continue
        if field == "data.train_file" and len(rows) < 2:
            out.append(f"{field}: {path} has {len(rows)} row(s); training and the held-out split need at least 2")
    return out


def _check_adapters(config: PipelineConfig, model_config: PretrainedConfig, geometry: ModelGeometry) -> list[str]:
    """Ranks fit the hidden size and N:M divides the layers' inputs (every family's layout has the LoRA groups)."""
    if config.supernet.adapters != "lora":
        return []
    out = []
    if config.lora.max_rank > geometry.hidden_size:
        out.append(f"lora.max_rank: {config.lora.max_rank} exceeds the model's hidden_size {geometry.hidden_size}")
    if config.sparsity.method == "wanda":
        pattern = config.sparsity.pattern
        if pattern is not None:
            widths = {"hidden_size": geometry.hidden_size, "intermediate_size": geometry.intermediate_size}
            out += [
                f"sparsity.target: {config.sparsity.target} needs {name} ({value}) divisible by {pattern[1]}"
                for name, value in widths.items()
                if value % pattern[1]
            ]
    return out


def preflight(config: PipelineConfig) -> None:
    """Raise EftnasError naming every cross-field problem of `config` (one per line when several)."""
    from eftnas_deploy.data.tasks import get_task

    task = get_task(config.data.task)
    model_config = _model_config(config)
    field = "model.from_config" if config.model.from_config else "model.name"
    geometry = _geometry(model_config, task.model_task, field)
    problems = _check_head(config, model_config, task) + _check_tokenizer(config, model_config)
    problems += _check_adapters(config, model_config, geometry)

    cores, lut = usable_cores(), config.lut
    table = None
    if lut.file:
        table, _ = load_lut_file(config, geometry)
    lut_seq_len = table.seq_len if table is not None else lut.seq_len if lut.measure else None
    problems += _check_lengths(config, geometry, lut_seq_len)
    if not lut.file and lut.measure and lut.threads > cores:
        problems.append(f"lut.threads: {lut.threads} threads asked, this machine has {cores} usable core(s)")
    bench = config.export.benchmark_threads
    if bench is not None and bench > cores:
        problems.append(f"export.benchmark_threads: {bench} threads asked, this machine has {cores} usable core(s)")
    elif bench is None and table is not None and table.threads > cores:
        problems.append(
            f"export.benchmark_threads: the bundle would be timed at the LUT's {table.threads} threads, this machine "
            f"has {cores} usable core(s); set export.benchmark_threads"
        )
    if table is not None and config.search.max_latency_ms is not None:
        from eftnas_deploy.core.subnet import SubnetConfig
        from latency_lut.predict import LatencyPredictor

        empty = SubnetConfig(heads=(0,) * geometry.num_layers, ffn=(0,) * geometry.num_layers)
        floor = LatencyPredictor(table)(empty)
        if config.search.max_latency_ms < floor:
            problems.append(
                f"search.max_latency_ms: {config.search.max_latency_ms:g} ms is below the {floor:.4g} ms the LUT "
                "predicts with every block dropped; no sub-network can meet it"
            )
    problems += _check_data(config, task)
    if len(problems) == 1:
        raise EftnasError(problems[0])
    if problems:
        raise EftnasError("pipeline config does not fit the model, data or machine:\n  " + "\n  ".join(problems))
