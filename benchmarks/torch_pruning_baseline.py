"""Torch-Pruning baseline: the structured pruner a user would pick instead of EFTNAS.

Prunes a (fine-tuned) HF BERT/RoBERTa sequence-classification model with Torch-Pruning's first-order
Taylor importance (|w * dL/dw| accumulated over a few labelled batches), removing whole attention heads
and FFN neurons, the same number in every layer (local, per-layer ranking), to hit a fraction of the
dense MACs. Hidden size, embeddings, head_dim, pooler and classifier stay unchanged.

Head pruning is native Torch-Pruning (`tp.pruner.MetaPruner` with `num_heads`, `prune_num_heads=True`,
`prune_head_dims=False`): the dependency graph couples query/key/value output rows with the attention
output projection's input columns and removes the lowest-scoring heads as whole 32/64-column blocks.
No fallback slicing is used. Afterwards the attention modules get their new `num_attention_heads` /
`all_head_size`, and the config records the removed heads the HF way (`config.pruned_heads`, original
head ids) plus the new `intermediate_size`; `config.num_attention_heads` keeps the original count because
HF derives head_dim from `hidden_size / num_attention_heads`, and with `pruned_heads` set,
`save_pretrained` / `from_pretrained` rebuild the pruned shapes.

MACs follow the project's definition (`eftnas_deploy.metrics.count_macs`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from transformers import PreTrainedModel

from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.metrics import count_macs

BALANCE_TOLERANCE = 1e-3  # MAC-fraction slack within which the most balanced (heads vs FFN) pair wins


def uniform_head_ffn_for_fraction(
    num_layers: int,
    num_heads: int,
    head_dim: int,
    hidden: int,
    intermediate: int,
    seq_len: int,
    fraction: float,
    *,
    num_labels: int = 2,
) -> tuple[int, int]:
    """(heads kept per layer, FFN neurons kept per layer) whose encoder MACs are closest to `fraction` of the full.

    MACs are `count_macs(SubnetConfig(heads=[h]*L, ffn=[f]*L), geometry, seq_len)` (task head included). One
    FFN neuron is a tiny MAC step, so most head counts reach the target almost exactly; among the pairs within
    `BALANCE_TOLERANCE` of the best error, the one whose kept-head and kept-neuron ratios are closest wins
    (i.e. heads and FFN shrink alike, as a Torch-Pruning user with one ratio would do).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction: must be in (0, 1], got {fraction}")
    geometry = ModelGeometry(
        model_type="bert",
        num_layers=num_layers,
        num_heads=num_heads,
        head_dim=head_dim,
        hidden_size=hidden,
        intermediate_size=intermediate,
        vocab_size=1,
        max_position_embeddings=seq_len,
        type_vocab_size=1,
        num_labels=num_labels,
    )

    def macs(h: int, f: int) -> int:
        return count_macs(SubnetConfig((h,) * num_layers, (f,) * num_layers), geometry, seq_len)

    full = macs(num_heads, intermediate)
    target = fraction * full
    candidates = []  # (error as fraction of full, h, f)
    for h in range(1, num_heads + 1):
        base, step = macs(h, 0), macs(h, 1) - macs(h, 0)  # MACs are linear in f
        guess = round((target - base) / step)
        for f in {min(max(guess + d, 1), intermediate) for d in (-1, 0, 1)}:
            candidates.append((abs(macs(h, f) - target) / full, h, f))
    best_err = min(c[0] for c in candidates)
    close = [c for c in candidates if c[0] <= best_err + BALANCE_TOLERANCE]
    _, h, f = min(close, key=lambda c: (abs(c[1] / num_heads - c[2] / intermediate), c[0], -c[1]))
    return h, f


def _encoder_layers(model: nn.Module) -> list[nn.Module]:
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no `base_model.encoder.layer` (BERT/RoBERTa expected)")
    return list(layers)


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _accumulate_taylor_grads(model: nn.Module, batches: list[dict[str, Any]]) -> None:
    """Sum dL/dw over `batches` into .grad (eval mode: no dropout noise in the scores)."""
    model.zero_grad(set_to_none=True)
    for batch in batches:
        out = model(**batch)
        if getattr(out, "loss", None) is None:
            raise ValueError("batches: the model returned no loss; each batch needs `labels`")
        out.loss.backward()


def prune_with_torch_pruning(
    model: PreTrainedModel,
    batches: Iterable[Mapping[str, torch.Tensor]],
    heads_per_layer: int,
    ffn_per_layer: int,
    taylor_batches: int = 8,
) -> PreTrainedModel:
    """Accumulate TaylorImportance gradients on `batches` (dicts of tensors incl. labels) and prune in place to exactly
    heads_per_layer heads and ffn_per_layer neurons in every layer; returns a model whose config reflects the shapes.

    The removed head ids per layer are also left on `model.tp_pruned_heads` and the removed FFN neuron ids on
    `model.tp_pruned_ffn` (original numbering), for checks.
    """
    layers = _encoder_layers(model)
    attn = [layer.attention.self for layer in layers]
    ffn_in = [layer.intermediate.dense for layer in layers]
    n_heads = attn[0].num_attention_heads
    head_dim = attn[0].attention_head_size
    width = ffn_in[0].out_features
    hidden = model.config.hidden_size
    for a, lin in zip(attn, ffn_in):
        if (a.num_attention_heads, a.attention_head_size, lin.out_features) != (n_heads, head_dim, width):
            raise ValueError("model: layers differ in heads/FFN width; expected an unpruned, uniform model")
    if not 1 <= heads_per_layer <= n_heads:
        raise ValueError(f"heads_per_layer: must be in [1, {n_heads}], got {heads_per_layer}")
    if not 1 <= ffn_per_layer <= width:
        raise ValueError(f"ffn_per_layer: must be in [1, {width}], got {ffn_per_layer}")

    device = next(model.parameters()).device
    scored = [_to_device(b, device) for b in itertools.islice(batches, max(1, taylor_batches))]
    if not scored:
        raise ValueError("batches: need at least one batch to score importance")
    example = {k: v[:1] for k, v in scored[0].items() if k != "labels" and torch.is_tensor(v)}

    was_training = model.training
    grad_flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        _accumulate_taylor_grads(model, scored)

        heads_removed = n_heads - heads_per_layer
        # Torch-Pruning removes ceil(ratio * heads) heads per layer and keeps int(init * (1 - ratio)) FFN neurons;
        # half-unit offsets make both land exactly on the requested counts.
        head_ratio = (heads_removed - 0.5) / n_heads if heads_removed else 0.0
        ffn_ratio = 1.0 - (ffn_per_layer + 0.5) / width if ffn_per_layer < width else 0.0
        num_heads: dict[nn.Module, int] = {}
        ratios: dict[nn.Module, float] = {}
        for a, lin in zip(attn, ffn_in):
            for proj in (a.query, a.key, a.value):
                num_heads[proj] = n_heads
            # A positive width ratio on q/k/v is what triggers head pruning; with prune_head_dims=False
            # no dims inside the kept heads are removed.
            ratios[a] = head_ratio
            ratios[lin] = ffn_ratio
        prunable = {m for a in attn for m in (a.query, a.key, a.value)} | set(ffn_in)
        ignored = [m for m in model.modules() if isinstance(m, nn.Linear) and m not in prunable]
        ignored += [m for m in model.modules() if isinstance(m, nn.Embedding)]

        pruner = tp.pruner.MetaPruner(
            model,
            example,
            importance=tp.importance.TaylorImportance(),
            global_pruning=False,
            pruning_ratio=0.0,
            pruning_ratio_dict=ratios,
            num_heads=num_heads,
            prune_num_heads=True,
            prune_head_dims=False,
            head_pruning_ratio=head_ratio,
            ignored_layers=ignored,
            output_transform=lambda out: out.logits.sum(),
            in_channel_groups={},  # fresh dicts: Torch-Pruning mutates these (mutable defaults)
            out_channel_groups={},
        )
        query_index = {a.query: i for i, a in enumerate(attn)}
        ffn_index = {lin: i for i, lin in enumerate(ffn_in)}
        removed_heads: dict[int, list[int]] = {}
        removed_ffn: dict[int, list[int]] = {}
        for group in pruner.step(interactive=True):
            for dep, idxs in group:
                module, handler = dep.target.module, dep.handler
                if module in query_index and pruner.DG.is_out_channel_pruning_fn(handler):
                    heads = sorted({i // head_dim for i in idxs})
                    if sorted(idxs) != [h * head_dim + d for h in heads for d in range(head_dim)]:
                        raise RuntimeError("Torch-Pruning removed partial heads; expected whole heads only")
                    removed_heads[query_index[module]] = heads
                elif module in ffn_index and pruner.DG.is_out_channel_pruning_fn(handler):
                    removed_ffn[ffn_index[module]] = sorted(int(i) for i in idxs)
            group.prune()
    finally:
        model.zero_grad(set_to_none=True)
        for p, flag in zip(model.parameters(), grad_flags):
            p.requires_grad_(flag)
        model.train(was_training)

    kept = heads_per_layer * head_dim
    for i, (layer, a) in enumerate(zip(layers, attn)):
        a.num_attention_heads = heads_per_layer
        a.all_head_size = kept
        layer.attention.pruned_heads = set(removed_heads.get(i, []))
        assert pruner.num_heads[a.query] == heads_per_layer, (i, pruner.num_heads[a.query])
        assert len(removed_heads.get(i, [])) == heads_removed, (i, removed_heads.get(i))
        for proj in (a.query, a.key, a.value):
            assert tuple(proj.weight.shape) == (kept, hidden), (i, tuple(proj.weight.shape))
            assert tuple(proj.bias.shape) == (kept,)
        assert tuple(layer.attention.output.dense.weight.shape) == (hidden, kept)
        assert tuple(layer.intermediate.dense.weight.shape) == (ffn_per_layer, hidden)
        assert tuple(layer.output.dense.weight.shape) == (hidden, ffn_per_layer)
        assert layer.attention.output.LayerNorm.weight.shape[0] == hidden
    model.config.intermediate_size = ffn_per_layer
    model.config.pruned_heads = {i: heads for i, heads in removed_heads.items() if heads}
    model.tp_pruned_heads = removed_heads
    model.tp_pruned_ffn = removed_ffn
    return model
