"""Which held-out metric should the search rank sub-networks by? (`search.metric`)

Two measurements on finished `real_checkpoint.py` pick runs (stages 1-5 kept):

* `rank`: every distinct feasible sub-network the run's search (or `--trials`) evaluated is scored on the
  held-out rows by the task score, the label NLL, the KL divergence from the largest sub-network's outputs and
  the mean probability of the true label, and on the dev rows by the task score; the JSON gives each held-out
  metric's Spearman correlation with the dev score and the dev score of the sub-network it ranks first.
* `pick`: stages 6-7 (search, final fine-tune) re-run from the run's super-network with `search.metric` set to
  each of `--metrics`; the JSON gives each pick and its dev score after the final fine-tune.

    python benchmarks/search_metric.py rank --run runs/bench_real_sst2/pick_25 --out search_metric_rank_sst2_25 \\
        --trials runs/bench_real_sst2/score_metric_pick_25/06_search/search_trials.jsonl
    python benchmarks/search_metric.py pick --run runs/bench_real_sst2/pick_25 --out search_metric_pick_sst2_25
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_checkpoint import seed_run_dir

from eftnas_deploy.app.pipeline.config import PipelineConfig, load_config, set_dotted
from eftnas_deploy.app.pipeline.context import IMPORTANCE, LUT, SEARCH, SPACE, SUPERNET, TEACHER, RunContext
from eftnas_deploy.app.pipeline.runner import run_pipeline
from eftnas_deploy.app.supernet_dir import load_supernet
from eftnas_deploy.core.io import read_json, write_json
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.evaluation import predict_logits
from eftnas_deploy.metrics.task_metrics import classification_metrics
from eftnas_deploy.search.proxies import SEARCH_METRICS, output_divergence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HELD_OUT_METRICS = {"score": 1, "nll": -1, "kl": -1, "true_label_probability": 1}  # sign: higher ranks first


def _log_probs(net, subnet: SubnetConfig, split) -> np.ndarray:
    return torch.log_softmax(torch.tensor(np.stack(predict_logits(net, subnet, split)[0])).float(), -1).numpy()


def _metrics(log_probs: np.ndarray, reference: np.ndarray, labels: np.ndarray, task_metric: str) -> dict[str, float]:
    rows = np.arange(len(labels))
    return {
        "score": next(iter(classification_metrics(task_metric, log_probs.argmax(-1), labels).values())),
        "nll": float(-log_probs[rows, labels].mean()),
        "kl": output_divergence([list(reference)], [list(log_probs)], "classification"),
        "true_label_probability": float(np.exp(log_probs[rows, labels]).mean()),
    }


def evaluated_subnets(trials: Path, space: SearchSpace) -> list[SubnetConfig]:
    """The distinct feasible sub-networks of a search trial log, in trial order."""
    from eftnas_deploy.search.searcher import _decode

    lines = trials.read_text().splitlines()[1:]
    seen: dict[SubnetConfig, None] = {}
    for line in lines:
        trial = json.loads(line)
        if trial["user_attrs"]["eftnas"]["feasible"]:
            seen.setdefault(_decode(trial["params"], space))
    return list(seen)


def rank_study(run: Path, trials: Path) -> dict:
    ctx = RunContext(load_config(run / "pipeline.yaml"), run)
    source = ctx.stage_dir(SUPERNET)
    net = load_supernet(source, ctx.task.model_task)
    net.model.eval()
    space = SearchSpace.load(source / "search_space.json").validate(net.geometry)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    splits = {name: ctx.split(name, tokenizer) for name in ("held_out", "dev")}
    labels = {name: np.asarray(split.features["labels"]) for name, split in splits.items()}
    reference = {name: _log_probs(net, space.largest(), split) for name, split in splits.items()}
    rows = []
    for i, subnet in enumerate(evaluated_subnets(trials, space)):
        row = {"subnet": subnet.to_dict()}
        for name, split in splits.items():
            values = _metrics(_log_probs(net, subnet, split), reference[name], labels[name], ctx.task.metric)
            row.update({f"{name}_{k}": v for k, v in values.items()})
        rows.append(row)
        print(f"{i + 1}: held-out score {row['held_out_score']:.4f}, dev score {row['dev_score']:.4f}", flush=True)
    dev = np.array([r["dev_score"] for r in rows])
    ranking = {}
    for metric, sign in HELD_OUT_METRICS.items():
        values = sign * np.array([r[f"held_out_{metric}"] for r in rows])
        ranking[metric] = {
            "spearman_with_dev_score": float(spearmanr(values, dev).statistic),
            "dev_score_of_first": float(dev[values.argmax()]),
            "dev_score_of_top5_mean": float(dev[np.argsort(-values)[:5]].mean()),
        }
    return {
        "held_out_rows": len(labels["held_out"]),
        "dev_rows": len(labels["dev"]),
        "subnets": len(rows),
        "dev_score": {"best": float(dev.max()), "mean": float(dev.mean()), "worst": float(dev.min())},
        "ranking": ranking,
        "rows": rows,
    }


def pick_study(run: Path, metrics: list[str], work: Path) -> dict:
    """Stages 6-7 re-run from `run`'s stages 1-5 with each search metric (export: PyTorch only)."""
    shared = (TEACHER, IMPORTANCE, SPACE, LUT, SUPERNET)
    out = {}
    for metric in metrics:
        data = load_config(run / "pipeline.yaml").to_dict()
        set_dotted(data, "search.metric", metric)
        set_dotted(data, "export.formats", ["pytorch"])
        config = PipelineConfig.from_dict(data)
        run_dir = work / f"{run.parent.name}_{run.name}_{metric}"
        seed_run_dir(run, config, run_dir, shared)
        started = time.perf_counter()
        state = run_pipeline(config, run_dir)
        summary = read_json(run_dir / SEARCH / "search_summary.json", "search summary")
        out[metric] = {
            "subnet": summary["chosen"]["subnet"],
            "held_out_score_before_finetune": summary["held_out_scores"]["chosen"],
            "finetune_scores": state["stages"]["07_finetune"]["outputs"]["scores"],
            "dev_after_finetune": state["stages"]["07_finetune"]["outputs"]["scores"]["dev"]["after"],
            "wall_s": round(time.perf_counter() - started, 1),
            "run_dir": str(run_dir),
        }
        print(f"{metric}: dev {out[metric]['dev_after_finetune']:.4f} {out[metric]['subnet']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("rank", "pick"))
    parser.add_argument("--run", type=Path, required=True, help="a finished real_checkpoint.py pick run dir")
    parser.add_argument("--trials", type=Path, help="rank: the trial log (default: the run's 06_search one)")
    parser.add_argument("--metrics", nargs="+", choices=SEARCH_METRICS, default=list(SEARCH_METRICS))
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_search_metric")
    parser.add_argument("--out", required=True, help="results name (benchmarks/results/<out>.json)")
    args = parser.parse_args()
    trials = args.trials or args.run / SEARCH / "search_trials.jsonl"
    value = rank_study(args.run, trials) if args.part == "rank" else pick_study(args.run, args.metrics, args.work)
    record = {"run": str(args.run), "part": args.part, **({"trials": str(trials)} if args.part == "rank" else {})}
    write_json(RESULTS / f"{args.out}.json", {**record, "value": value})
    print(f"wrote {RESULTS / f'{args.out}.json'}")


if __name__ == "__main__":
    main()
