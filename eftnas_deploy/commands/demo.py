"""`eftnas-deploy demo`: the offline end-to-end run on an embedded default (no downloads, no data)."""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from eftnas_deploy.elastic import SuperNetwork
from eftnas_deploy.io import atomic_output_dir, write_json
from eftnas_deploy.metrics import count_macs, count_params
from eftnas_deploy.models import build_model
from eftnas_deploy.slicing import load_sliced, save_sliced, slice_subnet
from eftnas_deploy.space import SearchSpace
from eftnas_deploy.subnet import SubnetConfig

SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
    "small": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="offline end-to-end run on an embedded default model")
    p.add_argument("--out", default="runs/demo", help="run directory")
    p.add_argument("--size", default="small", choices=sorted(SIZES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    with atomic_output_dir(args.out, overwrite=args.overwrite) as run_dir:
        model = build_model(
            "bert", "text-classification", vocab_size=1000, max_position_embeddings=128, **SIZES[args.size]
        )
        model.eval()
        supernet = SuperNetwork(model)
        supernet.save_pretrained(run_dir / "supernet")
        space = SearchSpace.full_range(supernet.geometry)
        subnet = space.sample(random.Random(args.seed))
        subnet.save(run_dir / "subnet.json")
        dense_dir = run_dir / "model"
        save_sliced(slice_subnet(supernet, subnet), dense_dir)
        parity = _check_reload(supernet, subnet, dense_dir)
        full = SubnetConfig.full(supernet.geometry)
        report = {
            "subnet": subnet.to_dict(),
            "macs": count_macs(subnet, supernet.geometry, seq_len=128),
            "macs_full": count_macs(full, supernet.geometry, seq_len=128),
            "params": count_params(subnet, supernet.geometry),
            "params_full": count_params(full, supernet.geometry),
            "max_abs_diff_supernet_vs_sliced": parity,
            "wall_s": round(time.perf_counter() - start, 2),
        }
        write_json(run_dir / "report.json", report)
    print(json.dumps(report, indent=2))
    print(f"demo finished: {Path(args.out).resolve()}")
    return 0 if parity <= 1e-5 else 1


@torch.no_grad()
def _check_reload(supernet: SuperNetwork, subnet: SubnetConfig, dense_dir: Path) -> float:
    """Max abs logit difference between the super-network and both reload paths of the sliced model."""
    ids = torch.randint(5, supernet.geometry.vocab_size, (2, 24))
    mask = torch.ones_like(ids)
    mask[1, 16:] = 0
    with supernet.activate(subnet):
        expected = supernet(input_ids=ids, attention_mask=mask).logits
    stock = AutoModelForSequenceClassification.from_pretrained(dense_dir, trust_remote_code=True).eval()
    native = load_sliced(dense_dir).eval()
    return max((m(input_ids=ids, attention_mask=mask).logits - expected).abs().max().item() for m in (stock, native))
