"""How the super-network's learning rate and distillation source set its accuracy on a pretrained checkpoint.

Reuses the teacher, the importance-ordered model and the search space of a `real_checkpoint.py` run
(default: runs/bench_real_sst2/pick_50) and trains the super-network with each setting for the same steps,
then scores the largest (full), middle and smallest sub-networks on the pipeline's held-out rows and the
teacher on the same rows. The pipeline's defaults (`supernet.lr`, `supernet.distill_from`) come from here.

    python benchmarks/real_checkpoint.py --task sst2      # first: makes the run dir
    python benchmarks/supernet_lr.py --steps 300
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from transformers import AutoTokenizer

from eftnas_deploy.app.pipeline.config import PipelineConfig
from eftnas_deploy.app.pipeline.context import SPACE, TEACHER, RunContext
from eftnas_deploy.core.io import write_json
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.evaluation import evaluate
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.training import KDConfig, SuperNetTrainer, collator_for, load_teacher, training_arguments

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "bench_real_sst2" / "pick_50")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-5, 5e-5, 1e-4])
    parser.add_argument("--sources", nargs="+", default=["teacher", "largest"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "supernet_lr_minilm.json")
    args = parser.parse_args()
    config = PipelineConfig.from_dict(__import__("yaml").safe_load((args.run / "pipeline.yaml").read_text()))
    ctx = RunContext(config, args.run)
    source = args.run / SPACE / "model"
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    space = SearchSpace.load(args.run / SPACE / "search_space.json")
    train, held_out = ctx.split("train", tokenizer), ctx.split("held_out", tokenizer)
    teacher = load_teacher(str(args.run / TEACHER), ctx.task)
    corners = {"largest": space.largest(), "middle": space.middle(), "smallest": space.smallest()}
    teacher_net = SuperNetwork(load_teacher(str(args.run / TEACHER), ctx.task))
    teacher_score = evaluate(teacher_net, corners["largest"], held_out)
    before = SuperNetwork.from_pretrained(str(source), task=ctx.task.model_task)
    result = {
        "run": str(args.run),
        "steps": args.steps,
        "held_out_rows": len(held_out),
        "teacher_held_out": teacher_score["score"],
        "before_training": {k: evaluate(before, s, held_out)["score"] for k, s in corners.items()},
        "settings": [],
    }
    print(result, flush=True)
    for distill_from in args.sources:
        for lr in args.lrs:
            net = SuperNetwork.from_pretrained(str(source), task=ctx.task.model_task)
            work = args.run.parent / "lr_sweep_tmp"
            start = time.perf_counter()
            SuperNetTrainer(
                supernet=net, search_space=space, strategy="full", teacher=teacher, kd=KDConfig(),
                distill_from=distill_from,
                args=training_arguments(work, max_steps=args.steps, learning_rate=lr, warmup_ratio=0.06,
                                        seed=config.seed, disable_tqdm=True),
                train_dataset=train.features, data_collator=collator_for(train, tokenizer), processing_class=tokenizer,
            ).train()  # fmt: skip
            shutil.rmtree(work, ignore_errors=True)
            scores = {k: evaluate(net, s, held_out)["score"] for k, s in corners.items()}
            row = {"distill_from": distill_from, "lr": lr, "wall_s": time.perf_counter() - start, **scores}
            result["settings"].append(row)
            print(row, flush=True)
            write_json(args.out, result)
    best = max(result["settings"], key=lambda r: r["largest"] + r["middle"] + r["smallest"])
    result["best_mean_of_corners"] = best
    result["full_vs_teacher_pt"] = {
        f"{r['distill_from']}@{r['lr']:g}": 100 * (r["largest"] - result["teacher_held_out"])
        for r in result["settings"]
    }
    write_json(args.out, result)
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
