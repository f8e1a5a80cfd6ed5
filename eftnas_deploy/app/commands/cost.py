"""`eftnas-deploy cost`: MACs and parameters of a sub-network."""

from __future__ import annotations

import argparse
import json

from eftnas_deploy.core.geometry import SUPPORTED_TASKS, ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.metrics import count_macs, count_params


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cost", help="MACs and parameters of a sub-network")
    p.add_argument("--model", required=True, help="super-network directory or hub name (config only)")
    p.add_argument("--subnet", help="subnet.json (default: the full network)")
    p.add_argument("--task", default=None, choices=SUPPORTED_TASKS)
    p.add_argument("--seq-len", type=int, default=None, help="default: 128, or the model's maximum if shorter")
    p.add_argument("--batch", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eftnas_deploy.families.sources import check_task_head, model_config
    from eftnas_deploy.search.outputs import deployed
    from latency_lut.config import check_seq_len, max_seq_len

    config = model_config(args.model, "model")
    if args.task:
        check_task_head(config, args.task, args.model)
    geometry = ModelGeometry.from_config(config, task=args.task)
    seq_len = args.seq_len or min(128, max_seq_len(geometry))
    check_seq_len(geometry, seq_len, "seq-len")
    subnet = SubnetConfig.load(args.subnet).validate(geometry) if args.subnet else SubnetConfig.full(geometry)
    full = SubnetConfig.full(geometry)
    macs = count_macs(subnet, geometry, seq_len, args.batch)
    result = {
        "subnet": subnet.to_dict(),
        "macs": macs,
        "macs_fraction": macs / count_macs(full, geometry, seq_len, args.batch),
        "params": count_params(deployed(subnet), geometry),  # merged LoRA adapters add nothing to the model
        "seq_len": seq_len,
        "batch": args.batch,
    }
    if deployed(subnet) != subnet:  # ranks given: the sub-adapter's trainable parameters, apart
        result["adapter_params"] = count_params(subnet, geometry) - result["params"]
    print(json.dumps(result, indent=2))
    return 0
