"""SQFT on all-MiniLM-L6-v2 / SST-2: quantization-aware elastic LoRA vs post-training quantization of the merge.

Two paths with the same base (all-MiniLM-L6-v2 + a new 2-label head), optimizer steps, batches, rank
choices and rank sampling (NLS: every step draws one rank per projection group and layer):

  FP32 + PTQ   peft elastic LoRA (`eftnas_deploy.lora`) trained in FP32, the sub-adapter merged, then the merged
               weights compressed after the fact (NNCF round-to-nearest, `eftnas_deploy.lora.sqft.post_training`)
  SQFT (QA)    NNCF FQ_LORA_NLS (`eftnas_deploy.lora.sqft.quantization_aware`): the adapters (and NNCF's
               quantizer ranges) train through the fake quantizer, then `strip_to_compressed` absorbs them
               into integer weights (nothing left to merge)

Both compress the same weights (every linear and embedding but the head and token-type embeddings), for
INT8 (per channel) and INT4 (asymmetric, group 128, embeddings INT8). Reported: SST-2 dev accuracy of every
model at the evaluated sub-adapter (uniform `--eval-rank`), OpenVINO IR size, training time.

    python benchmarks/sqft_merge.py --quick     # minutes: a smoke run, no evidence
    python benchmarks/sqft_merge.py             # ~30 min on 1 core: 8,000 train rows, 2,000 dev rows, 250 steps
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import itertools
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from nls_sparsity import DATA, GROUPS, base_model, model_path  # noqa: E402

from eftnas_deploy.core.subnet import SubnetConfig  # noqa: E402
from eftnas_deploy.data import get_task, load_split, prepare_split  # noqa: E402
from eftnas_deploy.evaluation import evaluate  # noqa: E402
from eftnas_deploy.lora import sqft  # noqa: E402
from eftnas_deploy.lora.elastic import attach_lora  # noqa: E402
from eftnas_deploy.lora.nncf_nls import set_nls_ranks  # noqa: E402
from eftnas_deploy.lora.supernet import LoraSuperNetwork  # noqa: E402
from eftnas_deploy.training import training_batches  # noqa: E402


class Plain:
    """A fixed model in the shape `evaluate` takes (nothing to switch)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def activate(self, subnet: SubnetConfig) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


def rank_subnet(full: SubnetConfig, layers: int, pick) -> SubnetConfig:
    return full.replace(**{g: [pick() for _ in range(layers)] for g in GROUPS})


def train(model: torch.nn.Module, set_ranks, full: SubnetConfig, layers: int, args, splits, tokenizer) -> float:
    """`args.steps` AdamW steps, one random rank per group and layer each step; returns seconds."""
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.06 * args.steps), args.steps)
    batches = itertools.cycle(training_batches(splits["train"], tokenizer, args.batch_size, args.seed))
    model.train()
    start = time.perf_counter()
    for step in range(args.steps):
        set_ranks(rank_subnet(full, layers, lambda: rng.choice(args.ranks)))
        loss = model(**next(batches)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 25 == 0 or step == args.steps - 1:
            print(f"  step {step + 1}/{args.steps} loss {loss.item():.4f}", flush=True)
    model.eval()
    return time.perf_counter() - start


def accuracy(model: torch.nn.Module, split) -> float:
    return evaluate(Plain(model), None, split)["score"]


def ir_megabytes(model: torch.nn.Module, example: dict) -> float:
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.xml"
        ov.save_model(ov.convert_model(model, example_input=example), path, compress_to_fp16=False)
        return round((path.stat().st_size + path.with_suffix(".bin").stat().st_size) / 2**20, 2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ranks", type=int, nargs="+", default=[32, 24, 16])
    p.add_argument("--eval-rank", type=int, default=24, help="uniform rank of the evaluated sub-adapter (median)")
    p.add_argument("--modes", nargs="+", choices=tuple(sqft.SQFT_MODES), default=["int8", "int4"])
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--train-rows", type=int, default=8000)
    p.add_argument("--dev-rows", type=int, default=2000)
    p.add_argument("--calibration-batches", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    if args.quick:
        args.ranks, args.eval_rank = [8, 6, 4], 6
        args.train_rows, args.dev_rows, args.steps, args.batch_size = 512, 200, 20, 16
    if args.eval_rank not in args.ranks:
        p.error(f"--eval-rank: {args.eval_rank} is not one of --ranks {args.ranks}")
    task = get_task("sst2")
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    train_rows = load_split(task, DATA / "train.tsv").shuffle(seed=args.seed).select(range(args.train_rows))
    dev_rows = load_split(task, DATA / "dev.tsv").select(range(args.dev_rows))
    splits = {
        "train": prepare_split(task, train_rows, tokenizer, args.max_length, train=True),
        "dev": prepare_split(task, dev_rows, tokenizer, args.max_length),
    }
    loader = training_batches(splits["train"], tokenizer, 16, args.seed + 1)
    calibration = [
        {k: v for k, v in b.items() if k != "labels"} for b in itertools.islice(loader, args.calibration_batches)
    ]
    example = calibration[0]
    max_rank = max(args.ranks)
    result: dict[str, Any] = {
        "benchmark": "sqft_merge",
        "model": "all-MiniLM-L6-v2",
        "task": "sst2",
        "quick": args.quick,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "modes": {m: sqft.SQFT_MODES[m].as_dict() for m in args.modes},
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
    }

    print("FP32 elastic LoRA (peft) ...", flush=True)
    net = LoraSuperNetwork(attach_lora(base_model(args.seed), max_rank=max_rank, alpha=2.0 * max_rank))
    layers, full = net.geometry.num_layers, net.full()
    wall = train(net.model, net.set_subnet, full, layers, args, splits, tokenizer)
    chosen = rank_subnet(full, layers, lambda: args.eval_rank)
    merged = base_model(args.seed).eval()  # a stock model holding the merge (the wrapper's forwards are elastic)
    merged.load_state_dict(net.merged(chosen).model.state_dict())
    fp32 = {"train_wall_s": round(wall, 1), "unmerged": evaluate(net, chosen, splits["dev"])["score"]}
    fp32["merged"] = accuracy(merged, splits["dev"])
    fp32["ir_mb"] = ir_megabytes(merged, example)
    for mode in args.modes:
        ptq = sqft.post_training(copy.deepcopy(merged), mode, calibration)
        fp32[f"ptq_{mode}"] = accuracy(ptq, splits["dev"])
        fp32[f"ptq_{mode}_ir_mb"] = ir_megabytes(ptq, example)
        fp32[f"ptq_{mode}_decompressors"] = sqft.decompressors(ptq)
    result["fp32_then_ptq"] = fp32
    del net, merged

    for mode in args.modes:
        print(f"SQFT {mode} (NNCF FQ_LORA_NLS) ...", flush=True)
        model = sqft.quantization_aware(base_model(args.seed), mode, max_rank, calibration)
        wall = train(model, functools.partial(set_nls_ranks, model), full, layers, args, splits, tokenizer)
        set_nls_ranks(model, chosen)
        stripped = sqft.strip_to_compressed(model, example)
        result[f"sqft_{mode}"] = {
            "train_wall_s": round(wall, 1),
            "fake_quantized": accuracy(model, splits["dev"]),
            "stripped": accuracy(stripped, splits["dev"]),
            "decompressors": sqft.decompressors(stripped),
            "ir_mb": ir_megabytes(stripped, example),
        }
        del model, stripped
    rows = [("FP32 merged", result["fp32_then_ptq"]["merged"])]
    for mode in args.modes:
        rows += [
            (f"{mode} PTQ of the merge", fp32[f"ptq_{mode}"]),
            (f"{mode} SQFT", result[f"sqft_{mode}"]["stripped"]),
        ]
    result["table"] = {name: score for name, score in rows}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sqft_merge{'_quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, path.with_suffix(".png"))
    for name, score in rows:
        print(f"{name:>22}: {score:.4f}")
    print(f"wrote {path}")
    return 0


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, scores = zip(*result["table"].items())
    colors = ["#888888"] + ["#d08c2a" if "PTQ" in n else "#2a9d55" for n in names[1:]]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.bar(range(len(names)), [100 * s for s in scores], color=colors)
    for x, s in enumerate(scores):
        ax.text(x, 100 * s + 0.2, f"{100 * s:.1f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
    ax.set_ylim(max(0, 100 * min(scores) - 8), 100 * max(scores) + 2)
    ax.set_ylabel("SST-2 dev accuracy (%)")
    ax.set_title(f"QA merge (SQFT) vs PTQ of the FP32 merge, rank {result['settings']['eval_rank']} sub-adapter")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
