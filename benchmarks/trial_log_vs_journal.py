"""Search storage: the toolkit's JSONL TrialLog against Optuna's JournalStorage (JournalFileBackend).

Both persist every finished trial of an NSGA-II search with the toolkit's parameter shape (one integer per
layer and dimension) and two objectives, then resume it. Measured in one interleaved run (medians over
repeats, wall clock, `time.perf_counter`): storage overhead per trial (the objective is free, so this is all
storage and sampler time), resume time, and file size. The toolkit keeps TrialLog only if it wins.

    python benchmarks/trial_log_vs_journal.py            # JSON to benchmarks/results/trial_log_vs_journal.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import optuna
from optuna.distributions import IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from eftnas_deploy.search.trial_log import TrialLog

RESULTS = Path(__file__).resolve().parent / "results"


def distributions(layers: int) -> dict[str, IntDistribution]:
    return {f"{d}_{i}": IntDistribution(0, 7) for i in range(layers) for d in ("heads", "ffn")}


def objective(params: dict[str, int]) -> tuple[float, float]:
    size = sum(params.values())
    return 1.0 - 0.3 / (1 + size), float(size)


def run_trial_log(path: Path, trials: int, dists: dict[str, IntDistribution]) -> float:
    study = optuna.create_study(sampler=optuna.samplers.NSGAIISampler(seed=0), directions=["maximize", "minimize"])
    log = TrialLog(path)
    log.start({"bench": True})
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask(dists)
        trial.set_user_attr("eftnas", {"subnet": trial.params, "feasible": True})
        log.append(study.tell(trial, objective(trial.params)))
    return time.perf_counter() - start


def resume_trial_log(path: Path, dists: dict[str, IntDistribution]) -> tuple[float, int]:
    start = time.perf_counter()
    study = optuna.create_study(sampler=optuna.samplers.NSGAIISampler(seed=0), directions=["maximize", "minimize"])
    _, records = TrialLog(path).read()
    TrialLog.replay(study, records, dists)
    return time.perf_counter() - start, len(study.trials)


def run_journal(path: Path, trials: int, dists: dict[str, IntDistribution]) -> float:
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(
        storage=storage, study_name="s", sampler=optuna.samplers.NSGAIISampler(seed=0),
        directions=["maximize", "minimize"],
    )  # fmt: skip
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask(dists)
        trial.set_user_attr("eftnas", {"subnet": trial.params, "feasible": True})
        study.tell(trial, objective(trial.params))
    return time.perf_counter() - start


def resume_journal(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    study = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))
    n = len(study.trials)
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = distributions(args.layers)
    rows: dict[str, list[dict[str, float]]] = {"trial_log": [], "journal": []}
    for _ in range(args.repeats):  # interleaved: each repeat runs both
        with tempfile.TemporaryDirectory() as tmp:
            a, b = Path(tmp) / "trials.jsonl", Path(tmp) / "journal.log"
            run_s = run_trial_log(a, args.trials, dists)
            resume_s, n = resume_trial_log(a, dists)
            rows["trial_log"].append({"run_s": run_s, "resume_s": resume_s, "trials": n, "bytes": a.stat().st_size})
            run_s = run_journal(b, args.trials, dists)
            resume_s, n = resume_journal(b)
            rows["journal"].append({"run_s": run_s, "resume_s": resume_s, "trials": n, "bytes": b.stat().st_size})
    summary = {
        name: {
            "ms_per_trial": statistics.median(r["run_s"] for r in runs) / args.trials * 1e3,
            "resume_s": statistics.median(r["resume_s"] for r in runs),
            "bytes": runs[0]["bytes"],
            "trials_after_resume": runs[0]["trials"],
        }
        for name, runs in rows.items()
    }
    result = {
        "trials": args.trials, "params": len(dists), "repeats": args.repeats, "clock": "wall (perf_counter)",
        "optuna": optuna.__version__, "summary": summary, "runs": rows,
        "journal_over_trial_log": {
            "per_trial": summary["journal"]["ms_per_trial"] / summary["trial_log"]["ms_per_trial"],
            "resume": summary["journal"]["resume_s"] / summary["trial_log"]["resume_s"],
        },
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trial_log_vs_journal.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"summary": summary, "journal_over_trial_log": result["journal_over_trial_log"]}, indent=2))


if __name__ == "__main__":
    main()
