"""`eftnas-deploy slice`: cut a sub-network out of a super-network into a dense HF directory."""

from __future__ import annotations

import argparse

from eftnas_deploy.core.geometry import SUPPORTED_TASKS
from eftnas_deploy.core.io import check_output_dir
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.families.models import load_tokenizer_if_present
from eftnas_deploy.supernet.slicing import save_sliced, slice_subnet


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("slice", help="write the dense model of a sub-network (HF directory)")
    p.add_argument("--supernet", required=True, help="super-network HF directory")
    p.add_argument("--subnet", required=True, help="subnet.json (heads and ffn per layer)")
    p.add_argument(
        "--task", default=None, choices=SUPPORTED_TASKS,
        help="model head (default: the task in the super-network's supernet.json; older directories: its head)",
    )  # fmt: skip
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--allow-untrained-subnet", action="store_true", help="accept a sub-network outside the trained search space"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eftnas_deploy.app.supernet_dir import deployable, load_supernet, resolve_task
    from eftnas_deploy.core.subnet_checks import check_deployable

    check_output_dir(args.out, args.overwrite)
    subnet = SubnetConfig.load(args.subnet)
    head, _ = resolve_task(args.supernet, args.task)
    supernet = load_supernet(args.supernet, head)
    check_deployable(subnet, supernet.geometry, args.supernet, args.allow_untrained_subnet)
    supernet, subnet = deployable(supernet, subnet)  # LoRA: the sub-adapter merged, sliced to the widths
    tokenizer = load_tokenizer_if_present(args.supernet)
    save_sliced(slice_subnet(supernet, subnet), args.out, tokenizer=tokenizer, overwrite=args.overwrite)
    print(f"wrote {args.out}")
    return 0
