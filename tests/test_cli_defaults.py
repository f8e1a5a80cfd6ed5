"""The stage commands' flag defaults are the pipeline config's defaults (one set of defaults per stage)."""

from __future__ import annotations

import argparse

import pytest

from eftnas_deploy.app.cli import build_parser
from eftnas_deploy.app.commands.config_flags import config_default
from eftnas_deploy.app.pipeline.config import (
    DataConfig,
    ExportConfig,
    ImportanceConfig,
    LutConfig,
    ModelConfig,
    SearchSettings,
    SpaceConfig,
    SupernetConfig,
    TeacherConfig,
)
from eftnas_deploy.training import KDConfig

DATA = {name: (DataConfig, name) for name in ("train_file", "columns", "max_length", "max_train_rows")}
TIMING = {"warmup": (LutConfig, "warmup"), "repeats": (LutConfig, "repeats"), "min_time": (LutConfig, "min_time_s")}
TIMING["stack"] = (LutConfig, "stack")

# command path -> {argparse dest: (config class, field)}: every flag of a stage command that maps to a config field.
MAPPED = {
    ("importance",): {
        **DATA, "task": (DataConfig, "task"),
        **{name: (ImportanceConfig, name) for name in ("criterion", "steps", "lr", "batch_size")},
    },
    ("space",): {name: (SpaceConfig, name) for name in (
        "kind", "num_targets", "seq_len", "tolerance", "skip_fraction", "ffn_multiple",
    )},
    ("train-teacher",): {
        **DATA, "group_by_length": (DataConfig, "group_by_length"), "model_type": (ModelConfig, "model_type"),
        **{name: (TeacherConfig, name) for name in ("epochs", "lr", "batch_size", "warmup_ratio")},
    },
    ("train-supernet",): {
        **DATA, "group_by_length": (DataConfig, "group_by_length"),
        "held_out_fraction": (DataConfig, "held_out_fraction"),
        **{name: (SupernetConfig, name) for name in (
            "epochs", "lr", "batch_size", "warmup_ratio", "strategy", "num_random", "distill_from", "save_steps",
        )},
        "kd_temperature": (KDConfig, "temperature"), "kd_task_weight": (KDConfig, "task_weight"),
        "kd_distill_weight": (KDConfig, "distill_weight"),
    },
    ("search",): {name: (SearchSettings, name) for name in (
        "algorithm", "evals", "population", "selection", "delta", "remeasure_top",
    )},
    ("lut", "measure"): {
        **TIMING,
        **{name: (LutConfig, name) for name in ("runtime", "precision", "threads", "seq_len", "batch", "grid",
                                                "calibration")},
    },
    ("export",): {"calibration_size": (ExportConfig, "calibration_size")},
}  # fmt: skip


def _subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("path", sorted(MAPPED), ids=" ".join)
def test_cli_defaults_are_the_config_defaults(path):
    parser = _subparser(path)
    dests = {a.dest for a in parser._actions}
    for dest, (cls, name) in MAPPED[path].items():
        assert dest in dests, f"{' '.join(path)}: no flag for {cls.__name__}.{name}"
        assert parser.get_default(dest) == config_default(cls, name), f"{' '.join(path)} --{dest}"


def test_space_fraction_range_defaults_to_the_config_fractions():
    default = _subparser(("space",)).get_default("fraction_range")
    assert tuple(default) == (SpaceConfig.min_fraction, SpaceConfig.max_fraction)


def test_registry_choices_are_the_registry_names():
    from eftnas_deploy.search.searcher import ALGORITHMS
    from eftnas_deploy.space.kinds import SPACE_KINDS
    from eftnas_deploy.training import STRATEGIES

    def choices(path, dest):
        return next(a for a in _subparser(path)._actions if a.dest == dest).choices

    assert tuple(choices(("search",), "algorithm")) == tuple(ALGORITHMS)
    assert tuple(choices(("train-supernet",), "strategy")) == tuple(STRATEGIES)
    assert tuple(choices(("space",), "kind")) == tuple(SPACE_KINDS)
