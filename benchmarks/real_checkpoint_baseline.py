"""Baselines (c) and (d) of `real_checkpoint.py` re-run with another step budget or fine-tune recipe.

Fine-tunes, from a finished `real_checkpoint.py` run (runs/bench_real_sst2 by default), either the uniform
sub-network of `--fraction` (baseline c) or the sub-network a run picked (`--arch RUN_DIR`, baseline d), both
cut from the importance-ordered teacher, for `--steps` with the pipeline's final fine-tune recipe (KD from the
teacher; `--hidden-kd-weight` adds layer-wise KD), once per seed, scored on the benchmark's dev rows.

    # amortised budget: one super-network (300 steps) + two 100-step fine-tunes serve two targets, 250 per target
    python benchmarks/real_checkpoint_baseline.py --fraction 0.25 --steps 250 --seeds 0 1 \\
        --out real_checkpoint_sst2_amortized_0.25
    # the recipe with layer-wise KD
    python benchmarks/real_checkpoint_baseline.py --fraction 0.25 --hidden-kd-weight 1 --out hidden_kd_c_0.25
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_checkpoint as rc
from transformers import AutoTokenizer

from eftnas_deploy.app.pipeline.config import PipelineConfig, load_config, set_dotted
from eftnas_deploy.app.pipeline.context import EXPORT, RunContext
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.io import read_json, write_json
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.supernet.slicing import slice_subnet
from eftnas_deploy.training import load_teacher


def uniform_subnet(g: ModelGeometry, fraction: float) -> SubnetConfig:
    h, f = rc.uniform_head_ffn_for_fraction(
        g.num_layers, g.num_heads, g.head_dim, g.hidden_size, g.intermediate_size, rc.SEQ_LEN, fraction,
        num_labels=g.num_labels,
    )  # fmt: skip
    return SubnetConfig(heads=[h] * g.num_layers, ffn=[f] * g.num_layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.25, help="MAC fraction of the uniform sub-network")
    parser.add_argument("--arch", type=Path, default=None, help="a pipeline run dir: fine-tune its pick instead")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--hidden-kd-weight", type=float, default=0.0)
    parser.add_argument("--work", type=Path, default=rc.ROOT / "runs" / "bench_real_sst2")
    parser.add_argument("--out", required=True, help="results name (benchmarks/results/<out>.json)")
    args = parser.parse_args()
    first_dir = args.work / "pick_50"
    data = load_config(first_dir / "pipeline.yaml").to_dict()
    set_dotted(data, "finetune.hidden_kd_weight", args.hidden_kd_weight)
    config = PipelineConfig.from_dict(data)
    task = get_task("sst2")
    tokenizer = AutoTokenizer.from_pretrained(rc.minilm_path())
    ctx = RunContext(config, first_dir)
    train, dev = ctx.split("train", tokenizer), ctx.split("dev", tokenizer)
    teacher = load_teacher(str(first_dir / "01_teacher"), task)
    g = ModelGeometry.from_config(teacher.config, task=task.model_task)
    if args.arch is None:
        subnet, which = uniform_subnet(g, args.fraction), "c_uniform_finetuned"
    else:
        deployment = read_json(args.arch / EXPORT / "deployment.json", "deployment")
        subnet, which = SubnetConfig.from_dict(deployment["subnet"]), "d_pick_arch_finetuned_alone"
    out = {
        "baseline": which, "subnet": subnet.to_dict(), "arch_from": None if args.arch is None else str(args.arch),
        "steps": args.steps, "hidden_kd_weight": args.hidden_kd_weight, "dev_rows": len(dev.features), "runs": {},
    }  # fmt: skip
    path = rc.RESULTS / f"{args.out}.json"
    for seed in args.seeds:
        dense = slice_subnet(
            SuperNetwork.from_pretrained(str(first_dir / "03_space" / "model"), task=task.model_task), subnet
        )
        dense.train()
        scratch = args.work / f"ft_{args.out}_{seed}"
        wall = rc.finetune_dense(dense, teacher, train, tokenizer, args.steps, config, seed, scratch)
        out["runs"][str(seed)] = {"dev": rc.dense_score(dense, dev), "wall_s": round(wall, 1)}
        print(which, seed, out["runs"][str(seed)], flush=True)
        write_json(path, out)


if __name__ == "__main__":
    main()
