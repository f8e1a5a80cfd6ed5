"""`eftnas-deploy lut measure|validate`: build a latency LUT on this CPU and check its prediction error."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eftnas_deploy.app.commands.config_flags import add_config_flag
from eftnas_deploy.app.pipeline.config import LutConfig
from eftnas_deploy.core.errors import EftnasError, OutputDirError
from eftnas_deploy.core.geometry import SUPPORTED_TASKS
from eftnas_deploy.core.io import read_json, write_json
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from exporters.runtime import PRECISIONS, RUNTIMES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("lut", help="latency lookup table: measure on this CPU, validate end to end")
    sub = p.add_subparsers(dest="lut_command", required=True, metavar="ACTION")

    m = sub.add_parser("measure", help="measure a LUT for a model geometry on this machine")
    m.add_argument("--model", required=True, help="model directory, hub name or config.json (weights are not used)")
    m.add_argument("--task", default=None, choices=SUPPORTED_TASKS)
    add_config_flag(m, LutConfig, "runtime", choices=RUNTIMES)
    add_config_flag(m, LutConfig, "precision", help=f"none: fp32 / f32; choices {PRECISIONS}")
    add_config_flag(m, LutConfig, "threads")
    add_config_flag(m, LutConfig, "seq_len", nargs="+", help="one length, or several: a length set (see lut.file)")
    add_config_flag(m, LutConfig, "batch")
    m.add_argument("--search-space", help="search_space.json (default: every head count, 8 FFN widths)")
    add_config_flag(m, LutConfig, "grid", help="measure only this many widths per block kind, interpolate")
    add_config_flag(m, LutConfig, "calibration", help="end-to-end sub-networks to fit the overhead on")
    _timing_args(m)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", required=True, help="LUT JSON file to write")
    m.add_argument("--overwrite", action="store_true")
    m.set_defaults(func=run_measure)

    v = sub.add_parser("validate", help="compare LUT predictions with end-to-end measurements")
    v.add_argument("--lut", required=True)
    v.add_argument("--model", default=None, help="super-network directory (default: random weights, LUT geometry)")
    v.add_argument("--samples", type=int, default=10)
    v.add_argument("--subnets", default=None, help="JSON file with a list of {heads, ffn} (instead of sampling)")
    v.add_argument("--search-space", default=None, help="space to sample from (default: the LUT's)")
    v.add_argument("--seed", type=int, default=1)
    _timing_args(v)
    v.add_argument("--plot", default=None, help="PNG scatter plot path")
    v.add_argument("--allow-approximate", action="store_true", help="use a LUT measured for another target")
    v.add_argument("--json", action="store_true", help="print the full report as JSON")
    v.set_defaults(func=run_validate)


def _timing_args(p: argparse.ArgumentParser) -> None:
    add_config_flag(p, LutConfig, "warmup")
    add_config_flag(p, LutConfig, "repeats")
    add_config_flag(
        p, LutConfig, "min_time_s", "--min-time", dest="min_time", help="seconds each model is timed at least"
    )
    add_config_flag(p, LutConfig, "stack", help="identical layers per block measurement")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default=None,
        help="wall time (default) or process CPU time (1 thread, on a machine shared with other jobs); "
        "validate defaults to the LUT's clock",
    )


def _timing(args: argparse.Namespace, default_clock: str = "wall"):
    from latency_lut.measure import TimingSettings

    return TimingSettings(
        warmup=args.warmup,
        repeats=args.repeats,
        min_time_s=args.min_time,
        stack=args.stack,
        clock=args.clock or default_clock,
    )


def run_measure(args: argparse.Namespace) -> int:
    from exporters.runtime import RuntimeSpec
    from latency_lut.config import load_model_config
    from latency_lut.measure import build_lut

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise OutputDirError(f"out: {out} exists; pass --overwrite to replace it")
    from eftnas_deploy.app.pipeline.preflight import usable_cores

    if args.threads > usable_cores():
        raise EftnasError(
            f"threads: {args.threads} threads asked, this machine has {usable_cores()} usable core(s); "
            "a LUT is measured on the CPU it is for, at a thread count it can run"
        )
    spec = RuntimeSpec(args.runtime, args.threads, args.precision or PRECISIONS[args.runtime][0])
    lengths = sorted(set(args.seq_len if isinstance(args.seq_len, list) else [args.seq_len]))
    config, geometry = load_model_config(args.model, args.task, lengths[-1])
    space = SearchSpace.load(args.search_space) if args.search_space else None
    tables = [
        build_lut(config, geometry, spec, n, args.batch, space, args.grid, _timing(args), args.calibration, args.seed)
        for n in lengths
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    if len(tables) > 1:
        from latency_lut.lengths import LengthTables

        LengthTables(tables).save(out)
    else:
        tables[0].save(out)
    table = tables[0]
    print(
        f"wrote {out} ({table.runtime} {table.precision}, {table.threads} thread(s), seq len {lengths}, "
        f"built in {sum(t.metadata['build_time_s'] for t in tables):.0f} s)"
    )
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from eftnas_deploy.core.space import sample_across_cost
    from latency_lut.config import load_supernet
    from latency_lut.table import LatencyTable
    from latency_lut.validate import plot_validation, validate_luts

    table = LatencyTable.load(args.lut)
    supernet = load_supernet(args.model, table.geometry, table.seq_len, args.allow_approximate)
    if args.subnets:
        raw = read_json(args.subnets, "subnets")
        if not isinstance(raw, list):
            raise EftnasError(f"subnets: {args.subnets} must hold a JSON list of {{heads, ffn}} objects")
        subnets = [SubnetConfig.from_dict(d).validate(table.geometry) for d in raw]
    else:
        if args.search_space:
            space = SearchSpace.load(args.search_space)
        elif isinstance(table.metadata.get("search_space"), dict):
            space = SearchSpace.from_dict(table.metadata["search_space"])
        else:
            raise EftnasError(f"search-space: {args.lut} records no search space to sample from; pass --search-space")
        subnets = sample_across_cost(space.validate(table.geometry), args.samples, seed=args.seed)
    clock = table.metadata.get("timing", {}).get("clock", "wall")
    (report,) = validate_luts([table], supernet, subnets, _timing(args, default_clock=clock))
    if args.plot:
        plot_validation([report], args.plot)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['runtime']} ({report['precision']}), {report['n']} sub-networks: median |error| "
            f"{report['median_abs_pct']:.1f}%, p95 {report['p95_abs_pct']:.1f}%, within ±5%: "
            f"{report['within_5pct']:.0%}, within ±10%: {report['within_10pct']:.0%}"
        )
    if args.plot:
        write_json(Path(args.plot).with_suffix(".json"), report)
    if report["warning"]:
        print(f"warning: {report['warning']}", file=sys.stderr)
    return 0
