"""EFTNAS stages 1-2 on SST-2: train a 4-layer BERT from scratch while accumulating movement
importance, reorder it, and generate the search space at 5 MAC targets. Writes JSON (+ PNG).

Usage: .venv/bin/python benchmarks/search_space_sst2.py [--out benchmarks/results] [--steps 250]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
import torch
from transformers import AutoTokenizer

from eftnas_deploy import SubnetConfig, build_model, count_macs
from eftnas_deploy.core.io import write_json
from eftnas_deploy.data import get_task, load_split, prepare_split
from eftnas_deploy.importance.scores import magnitude_importance, movement_importance, reorder_by_importance
from eftnas_deploy.space.generate import evenly_spaced_targets, generate_search_space
from eftnas_deploy.training import training_batches

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GEOMETRY = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)


@torch.no_grad()
def accuracy(model, batches) -> float:
    model.eval()
    correct = sum(int((model(**b).logits.argmax(-1) == b["labels"]).sum()) for b in batches)
    return correct / sum(len(b["labels"]) for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--train-rows", type=int, default=20000)
    parser.add_argument("--seq-len", type=int, default=128, help="sequence length MACs are counted at")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(DATA / "tokenizers/bert-base-uncased")
    sst2 = get_task("sst2")
    rows = load_split(sst2, DATA / "glue/SST-2/train.tsv")
    rows = rows.select(range(min(args.train_rows, len(rows))))
    train = training_batches(prepare_split(sst2, rows, tokenizer, 64, train=True), tokenizer, 32, seed=0)
    dev_split = prepare_split(sst2, load_split(sst2, DATA / "glue/SST-2/dev.tsv"), tokenizer, 64)
    dev = list(training_batches(dev_split, tokenizer, 128, seed=0))
    model = build_model("bert", vocab_size=tokenizer.vocab_size, max_position_embeddings=128, **GEOMETRY)

    start = time.perf_counter()
    scores = movement_importance(model, train, steps=args.steps, lr=5e-4)
    importance_s = time.perf_counter() - start
    dev_accuracy = accuracy(model, dev)

    start = time.perf_counter()
    reordered = reorder_by_importance(model, scores)
    reorder_s = time.perf_counter() - start
    geometry = reordered.geometry
    full = count_macs(SubnetConfig.full(geometry), geometry, seq_len=args.seq_len)
    targets = evenly_spaced_targets(0.3 * full, 0.9 * full, 5)
    spaces = {}
    for name, table in (
        ("movement", reordered),
        ("magnitude", reorder_by_importance(model, magnitude_importance(model))),
    ):
        start = time.perf_counter()
        space = generate_search_space(table, targets, seq_len=args.seq_len, ffn_multiple=32)
        spaces[name] = (space, time.perf_counter() - start)

    result = {
        "geometry": geometry.to_dict(),
        "train_rows": len(rows),
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "dev_accuracy_full": dev_accuracy,
        "importance_and_finetune_s": round(importance_s, 2),
        "reorder_s": round(reorder_s, 3),
        "macs_full": full,
        "seq_len": args.seq_len,
        "targets_fraction_of_full": [t / full for t in targets],
        "spaces": {
            name: {
                "generation_s": round(seconds, 4),
                "heads": [list(c) for c in space.heads],
                "ffn": [list(c) for c in space.ffn],
                "size": space.size(),
                "targets": [
                    {k: e[k] for k in ("target", "cost", "relative_error", "subnet")} for e in space.metadata["targets"]
                ],
            }
            for name, (space, seconds) in spaces.items()
        },
    }
    write_json(out / "search_space_sst2.json", result)
    _plot(spaces["movement"][0], full, out / "search_space_sst2.png")
    print(f"wrote {out / 'search_space_sst2.json'}")


def _plot(space, full: int, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for entry in space.metadata["targets"]:
        subnet = entry["subnet"]
        label = f"{entry['target'] / full:.0%} MACs"
        ax.plot(range(len(subnet["ffn"])), subnet["ffn"], marker="o", label=label)
    ax.set_xlabel("layer")
    ax.set_ylabel("kept FFN width")
    ax.set_title("Kept FFN width per layer at each MAC target (SST-2, movement importance)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
