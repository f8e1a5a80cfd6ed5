"""`eftnas-deploy cost`: MACs and parameters of a sub-network."""

from __future__ import annotations

import argparse
import json

from transformers import AutoConfig

from eftnas_deploy.geometry import SUPPORTED_TASKS, ModelGeometry
from eftnas_deploy.metrics import count_macs, count_params
from eftnas_deploy.subnet import SubnetConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cost", help="MACs and parameters of a sub-network")
    p.add_argument("--model", required=True, help="super-network directory or hub name (config only)")
    p.add_argument("--subnet", help="subnet.json (default: the full network)")
    p.add_argument("--task", default=None, choices=SUPPORTED_TASKS)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    geometry = ModelGeometry.from_config(AutoConfig.from_pretrained(args.model), task=args.task)
    subnet = SubnetConfig.load(args.subnet) if args.subnet else SubnetConfig.full(geometry)
    full = SubnetConfig.full(geometry)
    macs = count_macs(subnet, geometry, args.seq_len, args.batch)
    result = {
        "subnet": subnet.to_dict(),
        "macs": macs,
        "macs_fraction": macs / count_macs(full, geometry, args.seq_len, args.batch),
        "params": count_params(subnet, geometry),
        "seq_len": args.seq_len,
        "batch": args.batch,
    }
    print(json.dumps(result, indent=2))
    return 0
