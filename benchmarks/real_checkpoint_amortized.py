"""Baseline (c) of `real_checkpoint.py` with the amortised budget: uniform pruning + fine-tune for `steps` per target.

One super-network training (300 steps) and two 100-step final fine-tunes serve both the 50% and the 25% target:
500 steps for two, 250 per target. This fine-tunes the uniform sub-network of `fraction` (importance-ordered
teacher, KD from the teacher, the pipeline's final fine-tune recipe, the benchmark's own dev rows) for `steps`,
once per seed, from a finished `real_checkpoint.py` run in runs/bench_real_sst2, and writes
benchmarks/results/real_checkpoint_sst2_amortized_<fraction>.json.

    python benchmarks/real_checkpoint_amortized.py 0.25 250 0 1
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_checkpoint as rc
from transformers import AutoTokenizer

from eftnas_deploy.app.pipeline.config import load_config
from eftnas_deploy.app.pipeline.context import RunContext
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.supernet.slicing import slice_subnet
from eftnas_deploy.training import load_teacher

fraction, steps = float(sys.argv[1]), int(sys.argv[2])
seeds = [int(s) for s in sys.argv[3:]]
work = Path("runs/bench_real_sst2")
first_dir = work / "pick_50"
config = load_config(first_dir / "pipeline.yaml")
task = get_task("sst2")
tokenizer = AutoTokenizer.from_pretrained(rc.minilm_path())
ctx = RunContext(config, first_dir)
train, dev = ctx.split("train", tokenizer), ctx.split("dev", tokenizer)
teacher = load_teacher(str(first_dir / "01_teacher"), task)
ordered_dir = first_dir / "03_space" / "model"
g = ModelGeometry.from_config(teacher.config, task=task.model_task)
h, f = rc.uniform_head_ffn_for_fraction(
    g.num_layers,
    g.num_heads,
    g.head_dim,
    g.hidden_size,
    g.intermediate_size,
    rc.SEQ_LEN,
    fraction,
    num_labels=g.num_labels,
)
uniform = SubnetConfig(heads=[h] * g.num_layers, ffn=[f] * g.num_layers)
out = {"fraction": fraction, "steps": steps, "uniform": uniform.to_dict(), "runs": {}}
for seed in seeds:
    dense = slice_subnet(SuperNetwork.from_pretrained(str(ordered_dir), task=task.model_task), uniform)
    dense.train()
    wall = rc.finetune_dense(
        dense, teacher, train, tokenizer, steps, config, seed, work / f"ft_amortized_{fraction}_{seed}"
    )
    out["runs"][seed] = {"dev": rc.dense_score(dense, dev), "wall_s": wall}
    print(fraction, seed, out["runs"][seed], flush=True)
    Path(f"benchmarks/results/real_checkpoint_sst2_amortized_{fraction}.json").write_text(json.dumps(out, indent=1))
