"""`eftnas-deploy search`: multi-objective search of a trained super-network against a latency LUT."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from eftnas_deploy.app.commands.config_flags import add_config_flag
from eftnas_deploy.app.pipeline.config import SearchSettings
from eftnas_deploy.app.remeasure import remeasure_finalists
from eftnas_deploy.app.supernet_dir import held_out_from_supernet, load_supernet, require_descriptor, timing_supernet
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import LOCK_FILE, check_output_dir
from eftnas_deploy.core.locking import exclusive_dir
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.data import get_task
from eftnas_deploy.families.sources import load_tokenizer
from eftnas_deploy.search.proxies import SEARCH_METRICS
from eftnas_deploy.search.searcher import ALGORITHMS, SearchConfig
from eftnas_deploy.search.session import OBJECTIVES, SELECTIONS, Budget, search_supernet
from exporters.runtime import RUNTIMES
from latency_lut.config import check_seq_len, max_seq_len


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("search", help="search a super-network for the accuracy/latency Pareto front")
    p.add_argument("--supernet", required=True, help="super-network dir written by `train-supernet`")
    p.add_argument("--search-space", help="search_space.json (default: the one in --supernet)")
    p.add_argument("--lut", help="latency LUT (lut.json) measured on the target CPU")
    p.add_argument(
        "--allow-approximate-lut", action="store_true", help="accept a LUT measured for another target than asked"
    )
    p.add_argument("--runtime", choices=RUNTIMES, help="runtime the LUT must be measured for (default: the LUT's)")
    p.add_argument("--threads", type=int, help="thread count the LUT must be measured for (default: the LUT's)")
    p.add_argument("--precision", help="precision the LUT must be measured at (default: the LUT's)")
    p.add_argument("--objective", choices=OBJECTIVES, help="cost objective (default: latency with --lut, else macs)")
    p.add_argument("--max-latency-ms", type=float, help="hard latency budget (LUT-predicted)")
    p.add_argument("--max-macs", type=float, help="hard budget in millions of MACs")
    p.add_argument("--max-params", type=float, help="hard budget in millions of parameters")
    add_config_flag(p, SearchSettings, "algorithm", choices=ALGORITHMS)
    add_config_flag(p, SearchSettings, "evals", help="evaluation budget (EFTNAS: 1000)")
    add_config_flag(p, SearchSettings, "population", help="NSGA-II population (none: 40, less for small budgets)")
    add_config_flag(
        p, SearchSettings, "metric", choices=SEARCH_METRICS,
        help="what the search maximises on the held-out rows: the task score, or agreement with the largest subnet",
    )  # fmt: skip
    add_config_flag(p, SearchSettings, "selection", choices=SELECTIONS)
    add_config_flag(p, SearchSettings, "delta", help="accuracy drop allowed by cheapest-within-delta")
    p.add_argument("--seq-len", type=int, help="sequence length for MACs (default: the LUT's, else 128 or less)")
    add_config_flag(p, SearchSettings, "remeasure_top", help="re-measure this many front points end to end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.resume:
        check_output_dir(args.out, args.overwrite)
    supernet_dir = Path(args.supernet)
    if not supernet_dir.is_dir():
        raise EftnasError(f"supernet: {supernet_dir} is not a directory (a `train-supernet` output is expected)")
    descriptor = require_descriptor(supernet_dir)
    task = get_task(descriptor.task)
    supernet = load_supernet(supernet_dir, task.model_task)  # LoRA super-adapters: widths and ranks
    supernet.model.eval()
    space_path = Path(args.search_space) if args.search_space else supernet_dir / "search_space.json"
    space = SearchSpace.load(space_path).validate(supernet.geometry)
    tokenizer = load_tokenizer(str(supernet_dir), "supernet")
    held_out = held_out_from_supernet(supernet_dir, tokenizer)

    table = predictor = None
    seq_len, batch = args.seq_len or min(128, max_seq_len(supernet.geometry)), 1
    if args.lut:
        from latency_lut.predict import LatencyPredictor
        from latency_lut.target import describe, load_for_target, table_target

        asked = {"runtime": args.runtime, "threads": args.threads, "precision": args.precision, "seq_len": args.seq_len}
        table, approximations = load_for_target(args.lut, supernet.geometry, asked, args.allow_approximate_lut)
        predictor = LatencyPredictor(table)
        seq_len, batch = args.seq_len or table.seq_len, table.batch
        print(f"lut: {args.lut} measured for {describe(table_target(table))}", flush=True)
        if approximations:
            print(f"lut: used approximately ({'; '.join(approximations)})", flush=True)
    check_seq_len(supernet.geometry, seq_len, "seq-len")
    objective = args.objective or ("latency" if predictor else "macs")
    with exclusive_dir(args.out, what="out"):
        if args.overwrite and not args.resume:
            for entry in Path(args.out).iterdir():
                if entry.name != LOCK_FILE:
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        summary = _search(args, supernet, space, held_out, objective, predictor, seq_len, batch)
        if table is not None and args.remeasure_top > 0:
            remeasure_finalists(timing_supernet(supernet, supernet_dir), table, Path(args.out), args.remeasure_top)
    print(json.dumps({k: summary[k] for k in ("trials", "hypervolume", "chosen")}, indent=2))
    print(f"wrote {args.out}")
    return 0


def _search(args, supernet, space, held_out, objective, predictor, seq_len, batch) -> dict:
    return search_supernet(
        supernet,
        space,
        held_out,
        args.out,
        SearchConfig(algorithm=args.algorithm, evals=args.evals, population=args.population, seed=args.seed),
        objective=objective,
        latency_ms=predictor,
        budget=Budget(args.max_latency_ms, args.max_macs, args.max_params),
        seq_len=seq_len,
        batch=batch,
        selection=args.selection,
        delta=args.delta,
        metric=args.metric,
    )
