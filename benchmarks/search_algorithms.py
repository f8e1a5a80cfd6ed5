"""Benchmark: hypervolume of each search algorithm at the same evaluation budget, over 3 seeds.

Uses the super-network trained by `benchmarks/supernet_sst2.py` (accuracy on its held-out SST-2 split,
shared weights) and a latency LUT measured here (ONNX Runtime, 1 thread, fp32). Also times a
1000-evaluation latency-only NSGA-II search with the LUT (goal <= 10 s), in memory and with the
resumable trial log the CLI uses. Writes `benchmarks/results/search_algorithms.{json,png}`.

    .venv/bin/python benchmarks/search_algorithms.py [--supernet DIR] [--evals 60] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from transformers import AutoTokenizer

from eftnas_deploy.app.supernet_dir import held_out_from_supernet
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import PreparedSplit
from eftnas_deploy.evaluation import evaluate
from eftnas_deploy.metrics import count_params
from eftnas_deploy.search import ALGORITHMS, SearchConfig, hypervolume, non_dominated, run_search
from eftnas_deploy.supernet.elastic import SuperNetwork
from exporters.runtime import RuntimeSpec, cpu_info
from latency_lut.config import config_from_geometry
from latency_lut.measure import TimingSettings, build_lut
from latency_lut.predict import LatencyPredictor

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SUPERNET = ROOT / "runs" / "bench_supernet_sst2" / "full_external_kd" / "supernet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=str(DEFAULT_SUPERNET))
    parser.add_argument("--evals", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--held-out-rows", type=int, default=500, help="held-out rows per evaluation (subsample)")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_algorithms.json"))
    args = parser.parse_args()
    supernet_dir = Path(args.supernet)
    if not supernet_dir.is_dir():
        raise SystemExit(f"{supernet_dir} not found: run benchmarks/supernet_sst2.py first")

    supernet = SuperNetwork.from_pretrained(str(supernet_dir))
    supernet.model.eval()
    space = SearchSpace.load(supernet_dir / "search_space.json")
    held = held_out_from_supernet(supernet_dir, AutoTokenizer.from_pretrained(str(supernet_dir)))
    rows = min(args.held_out_rows, len(held.features))
    held = PreparedSplit(held.task, held.features.select(range(rows)))

    start = time.perf_counter()
    spec = RuntimeSpec("onnxruntime", 1, "fp32")
    table = build_lut(
        config_from_geometry(supernet.geometry), supernet.geometry, spec, seq_len=args.seq_len, space=space,
        timing=TimingSettings(clock="cpu"), calibration_samples=6,
    )  # fmt: skip
    lut_build_s = time.perf_counter() - start
    predictor = LatencyPredictor(table)

    memo: dict[SubnetConfig, float] = {}  # accuracy is deterministic: share evaluations across runs

    def accuracy(subnet: SubnetConfig) -> float:
        if subnet not in memo:
            memo[subnet] = evaluate(supernet, subnet, held, batch_size=128)["score"]
        return memo[subnet]

    cost_scale = predictor(SubnetConfig.full(supernet.geometry))
    runs: dict[str, list[dict]] = {}
    for algorithm in ALGORITHMS:
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            result = run_search(
                space, accuracy, predictor,
                SearchConfig(algorithm=algorithm, evals=args.evals, seed=seed, show_progress=False),
                cost_scale=cost_scale,
            )  # fmt: skip
            runs.setdefault(algorithm, []).append(
                {
                    "seed": seed,
                    "front_size": len(result.front),
                    "best_accuracy": max(p.accuracy for p in result.front),
                    "wall_s": round(time.perf_counter() - t0, 2),
                    "points": result.points,  # feasible evaluated points in trial order
                }
            )
            print(f"{algorithm} seed {seed}: front {len(result.front)}", flush=True)
    # Reference accuracy: the worst accuracy any run evaluated (the same for every algorithm), so that the
    # hypervolume measures the region where fronts differ rather than the area below every sub-network.
    accuracy_ref = min(memo.values())
    for results in runs.values():
        for r in results:
            points = r.pop("points")
            r["hypervolume_by_trial"] = [
                hypervolume(non_dominated(points[: i + 1]), cost_scale, accuracy_ref) for i in range(len(points))
            ]
            r["hypervolume"] = r["hypervolume_by_trial"][-1]

    full_params = count_params(SubnetConfig.full(supernet.geometry), supernet.geometry)

    def params_kept(subnet: SubnetConfig) -> float:
        """A free accuracy stand-in, so that the timing measures the search machinery and the LUT only."""
        return count_params(subnet, supernet.geometry) / full_params

    timing = {}
    for mode in ("in_memory", "trial_log"):
        with tempfile.TemporaryDirectory() as tmp:
            storage = Path(tmp) / "trials.jsonl" if mode == "trial_log" else None
            t0 = time.perf_counter()
            run_search(space, params_kept, predictor, SearchConfig(evals=1000, storage=storage, show_progress=False))
            timing[mode] = round(time.perf_counter() - t0, 2)

    summary = {
        algorithm: {
            "hypervolume_median": statistics.median(r["hypervolume"] for r in results),
            "hypervolume_min": min(r["hypervolume"] for r in results),
            "hypervolume_max": max(r["hypervolume"] for r in results),
        }
        for algorithm, results in runs.items()
    }
    report = {
        "benchmark": "search_algorithms",
        "supernet": str(supernet_dir.relative_to(ROOT) if supernet_dir.is_relative_to(ROOT) else supernet_dir),
        "evals_per_run": args.evals,
        "seeds": args.seeds,
        "held_out_rows": rows,
        "objectives": "held-out accuracy (shared weights) vs LUT-predicted latency (ms)",
        "hypervolume_definition": (
            "area in (-accuracy, latency / full-network latency) above the reference point "
            "(accuracy_ref, 1.1); accuracy_ref = the worst accuracy evaluated by any run"
        ),
        "accuracy_ref": accuracy_ref,
        "lut": {
            "runtime": "onnxruntime",
            "threads": 1,
            "precision": table.precision,
            "seq_len": args.seq_len,
            "clock": "process CPU time (1 thread)",
            "build_s": round(lut_build_s, 1),
        },
        "full_network_predicted_ms": cost_scale,
        "distinct_subnets_evaluated": len(memo),
        "summary": summary,
        "runs": runs,
        "latency_only_1000_evals_wall_s": {**timing, "goal_s": 10, "accuracy_stand_in": "fraction of parameters"},
        "cpu": cpu_info(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(runs, out.with_suffix(".png"))
    print(json.dumps({k: report[k] for k in ("summary", "latency_only_1000_evals_wall_s")}, indent=2))


def plot(runs: dict[str, list[dict]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for algorithm, results in runs.items():
        curves = [r["hypervolume_by_trial"] for r in results]
        length = min(len(c) for c in curves)
        median = [statistics.median(c[i] for c in curves) for i in range(length)]
        low = [min(c[i] for c in curves) for i in range(length)]
        high = [max(c[i] for c in curves) for i in range(length)]
        line = ax.plot(range(1, length + 1), median, label=algorithm)[0]
        ax.fill_between(range(1, length + 1), low, high, color=line.get_color(), alpha=0.15)
    ax.set_xlim(left=3)  # the first three trials are the seeded largest/smallest/middle sub-networks
    ax.set_xlabel("evaluations (feasible)")
    ax.set_ylabel("hypervolume (median, min-max over seeds)")
    ax.set_title("Search algorithms at the same evaluation budget")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
