"""`eftnas-deploy export`: write a deployment bundle (PyTorch, ONNX, OpenVINO IR, INT8 IR) of a sub-network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eftnas_deploy.app.commands.config_flags import add_config_flag
from eftnas_deploy.app.pipeline.config import ExportConfig
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import SUPPORTED_TASKS
from eftnas_deploy.core.io import read_json
from eftnas_deploy.core.subnet import SubnetConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a sub-network as a deployment bundle (ONNX, OpenVINO, INT8)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--supernet", help="super-network HF directory (with --subnet or --pareto/--index)")
    src.add_argument("--sliced", help="an already sliced model directory")
    p.add_argument("--subnet", help="subnet.json (heads and ffn per layer)")
    p.add_argument("--pareto", help="pareto.json: a list of points, each with a 'subnet' object")
    p.add_argument("--index", type=int, help="which point of --pareto")
    p.add_argument(
        "--task",
        default=None,
        help=f"model head {SUPPORTED_TASKS}, or a task (sst2, mrpc, stsb, squad, ...): labels are named after it "
        "and --calibration-file is read as in training (headerless files, --columns); default: the task in the "
        "super-network's supernet.json (older directories: the model's head)",
    )
    p.add_argument(
        "--allow-untrained-subnet", action="store_true", help="accept a sub-network outside the trained search space"
    )
    p.add_argument(
        "--formats", default="pytorch,onnx,openvino",
        help="comma list of pytorch,onnx,openvino,int8 (INT8 activations and weights), int8-weights, int4-weights "
        "(weight-only compression)",
    )  # fmt: skip
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--ort-optimize", action="store_true", help="also write onnx/model_optimized.onnx (ORT fusion)")
    q = p.add_argument_group("INT8 calibration (required for the int8 format)")
    q.add_argument("--calibration-file", help="labelled .tsv/.csv/.json(l) task data")
    q.add_argument("--eval-file", help="held-out split for accuracy before/after (default: rest of the file)")
    q.add_argument("--columns", default=None, help="with a --task name: canonical=file_column or =position, comma list")
    q.add_argument("--text-column", default="sentence")
    q.add_argument("--text-pair-column", default=None)
    q.add_argument("--label-column", default="label")
    add_config_flag(q, ExportConfig, "calibration_size")
    # Not ExportConfig.eval_size (None: every dev row): the rows after the calibration rows of one file.
    q.add_argument("--eval-size", type=int, default=500)
    q.add_argument("--max-length", type=int, default=128)
    q.add_argument("--max-drop", type=float, default=None, help="absolute accuracy drop for accuracy control")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eftnas_deploy.core.io import check_output_dir
    from exporters.bundle import apply_task_labels, export_bundle, parse_formats

    formats = parse_formats(args.formats)
    check_output_dir(args.out, args.overwrite)
    if "int8" in formats and not args.calibration_file:
        raise EftnasError("calibration-file: the int8 format needs a calibration data set (--calibration-file)")
    head, task = _task(args)
    source = _source(args, head)
    apply_task_labels(source.dense, task)
    calibration = evaluation = None
    if "int8" in formats or (args.calibration_file and {"int8-weights", "int4-weights"} & set(formats)):
        calibration, evaluation = _calibration(args, source, task)  # weight formats: scored on it when given
    manifest = export_bundle(
        source,
        args.out,
        formats,
        calibration=calibration,
        evaluation=evaluation,
        subset_size=args.calibration_size,
        max_drop=args.max_drop,
        ort_optimize=args.ort_optimize,
        overwrite=args.overwrite,
    )
    summary = {k: manifest.get(k) for k in ("subnet", "macs", "macs_full", "parity", "quantization") if k in manifest}
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")
    return 0


def _task(args: argparse.Namespace) -> tuple[str | None, object | None]:
    """(model head, task spec): --task, else the super-network's descriptor (a conflicting --task is refused)."""
    from eftnas_deploy.app.supernet_dir import resolve_task as supernet_task
    from exporters.calibration import resolve_task

    if args.supernet:
        return supernet_task(args.supernet, args.task)
    return resolve_task(args.task) if args.task else (None, None)


def _source(args: argparse.Namespace, head: str | None):
    from eftnas_deploy.families.models import load_tokenizer_if_present
    from exporters.bundle import ExportSource

    if args.sliced:
        if args.subnet or args.pareto:
            raise EftnasError("subnet: --sliced already fixes the sub-network; drop --subnet/--pareto")
        return ExportSource.from_sliced(args.sliced)
    from eftnas_deploy.app.supernet_dir import deployable, load_supernet
    from eftnas_deploy.core.subnet_checks import check_deployable

    subnet = _subnet(args)
    supernet = load_supernet(args.supernet, head)
    check_deployable(subnet, supernet.geometry, args.supernet, args.allow_untrained_subnet)
    supernet, subnet = deployable(supernet, subnet)  # LoRA: the sub-adapter merged, sliced to the widths
    return ExportSource.from_supernet(supernet, subnet, load_tokenizer_if_present(args.supernet))


def _subnet(args: argparse.Namespace) -> SubnetConfig:
    if bool(args.subnet) == bool(args.pareto):
        raise EftnasError("subnet: give exactly one of --subnet or --pareto with --index")
    if args.subnet:
        return SubnetConfig.load(args.subnet)
    if args.index is None:
        raise EftnasError("index: --pareto needs --index")
    data = read_json(args.pareto, "pareto")
    points = data.get("points", data) if isinstance(data, dict) else data
    if not isinstance(points, list) or not 0 <= args.index < len(points):
        size = len(points) if isinstance(points, list) else 0
        raise EftnasError(f"index: {args.index} is out of range for {args.pareto} ({size} points)")
    point = points[args.index]
    if not isinstance(point, dict) or "subnet" not in point:
        raise EftnasError(f"pareto: point {args.index} has no 'subnet' object")
    return SubnetConfig.from_dict(point["subnet"])


def _calibration(args: argparse.Namespace, source, task):
    from eftnas_deploy.core.geometry import ModelGeometry
    from exporters.calibration import class_names, read_rows, task_calibration, tokenize_rows
    from exporters.provenance import max_seq_len

    tokenizer = source.tokenizer
    if tokenizer is None:
        raise EftnasError("calibration-file: the model directory has no tokenizer to tokenize the calibration data")
    max_length = min(args.max_length, max_seq_len(ModelGeometry.from_config(source.dense.config)))
    if not Path(args.calibration_file).is_file():
        raise FileNotFoundError(f"calibration-file: {args.calibration_file} does not exist")
    if task is not None:
        generic = {"text_column": "sentence", "text_pair_column": None, "label_column": "label"}
        given = [name for name, default in generic.items() if getattr(args, name) != default]
        if given and not args.task:
            flag = given[0].replace("_", "-")
            raise EftnasError(
                f"{flag}: the super-network's task {task.name} (its supernet.json) reads --calibration-file as in "
                "training; map columns with --columns (e.g. label=target) instead"
            )
        sizes = dict(calibration_size=args.calibration_size, eval_size=args.eval_size, max_length=max_length)
        return task_calibration(task, tokenizer, args.calibration_file, args.eval_file, args.columns, **sizes)
    rows = read_rows(args.calibration_file)
    columns = dict(
        text_column=args.text_column,
        text_pair_column=args.text_pair_column,
        label_column=args.label_column,
        max_length=max_length,
    )
    calibration_rows = rows[: args.calibration_size]
    if args.eval_file:
        eval_rows = read_rows(args.eval_file)[: args.eval_size]
    else:
        eval_rows = rows[args.calibration_size : args.calibration_size + args.eval_size]
    columns["label_names"] = class_names(calibration_rows + eval_rows, args.label_column)
    calibration = tokenize_rows(calibration_rows, tokenizer, **columns)
    evaluation = tokenize_rows(eval_rows, tokenizer, **columns) if eval_rows else None
    return calibration, evaluation
