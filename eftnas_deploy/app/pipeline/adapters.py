"""The pipeline with `supernet.adapters: lora`: LoRA super-adapters on a frozen (optionally Wanda-pruned) base.

Super-network stage: the space stage's reordered teacher is the frozen base; with `sparsity.method: wanda`
it is pruned on a few training batches first and the keep-masks mask every adapter update (Shears). LoRA
of `lora.max_rank` goes on the projection groups and the adapters plus the task head train with the
project's `SuperNetTrainer` over the space's widths and ranks (LoNAS / NLS). The directory then holds the
base (plain HF), `adapter/` (peft super-adapter), `masks.safetensors` and `sparsity.json` when pruned, and
`supernet.json` recording both, so search, fine-tune and export load it with `load_supernet`.

Export: the chosen sub-adapter is merged into a copy of the base (masks kept), the merged model is sliced to
the chosen widths and goes through the usual bundle export; the sub-adapter is also written as a stock peft
directory (`sub_adapter/`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from eftnas_deploy.app.pipeline.config import DataConfig, LoraSettings, SparsitySettings, SupernetConfig
from eftnas_deploy.app.pipeline.supernet_fit import fit_supernet
from eftnas_deploy.app.supernet_dir import write_descriptor
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import write_json
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task
from eftnas_deploy.data.split import HELD_OUT_FILE
from eftnas_deploy.lora.elastic import attach_lora
from eftnas_deploy.lora.supernet import MASKS_FILE, LoraSuperNetwork, load_masks, ranks_of, save_masks, widths_only
from eftnas_deploy.sparsity import wanda_prune
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.supernet.loading import load_model
from eftnas_deploy.training import KDConfig, load_teacher, training_batches
from eftnas_deploy.training.checkpoints import last_complete_checkpoint

ADAPTER_DIR = "adapter"
SUB_ADAPTER_DIR = "sub_adapter"
SPARSITY_FILE = "sparsity.json"


def adapters_enabled(config: Any) -> bool:
    return config.supernet.adapters == "lora"


def prune_base(base: Any, sparsity: SparsitySettings, train: Any, tokenizer: Any, seed: int, work: Path) -> dict:
    """Wanda-prune `base` in place (or re-apply the masks of an interrupted run); writes masks and the report."""
    masks_path = work / MASKS_FILE
    if masks_path.is_file() and (work / SPARSITY_FILE).is_file():  # resuming: the same masks, not re-scored
        masks = load_masks(masks_path)
        modules = dict(base.named_modules())
        with torch.no_grad():
            for name, mask in masks.items():
                modules[name].weight.mul_(mask.to(modules[name].weight.dtype))
        return json.loads((work / SPARSITY_FILE).read_text())
    from eftnas_deploy.families.models import model_input_names

    names = model_input_names(base)  # DistilBERT takes no token_type_ids
    loader = training_batches(train, tokenizer, sparsity.calibration_batch_size, seed)
    batches = [
        {k: v for k, v in b.items() if k in names} for b in itertools.islice(loader, sparsity.calibration_batches)
    ]
    start = time.perf_counter()
    pattern = sparsity.pattern
    result = wanda_prune(base, batches, sparsity=0.5 if pattern else float(sparsity.target), pattern=pattern)
    save_masks(result.masks, masks_path)
    report = {
        "method": sparsity.method,
        "target": sparsity.target,
        "calibration_batches": len(batches),
        "overall": result.sparsity,
        "per_layer": result.report,
        "wall_s": round(time.perf_counter() - start, 2),
    }
    write_json(work / SPARSITY_FILE, report)
    return report


def train_lora_supernet(
    cfg: SupernetConfig,
    lora: LoraSettings,
    sparsity: SparsitySettings,
    data: DataConfig,
    *,
    model_dir: str | Path,
    tokenizer: Any,
    search_space: SearchSpace,
    teacher_dir: str | Path | None,
    train: Any,
    held_out: Any,
    held_out_file: Path,
    work: Path,
    seed: int,
    trainer_args: Any,
    space_kind: str = "eftnas",
    kd: KDConfig | None = None,
) -> dict[str, Any]:
    """`train_supernet` for LoRA super-adapters on the frozen base in `model_dir` (see the module docstring)."""
    task = get_task(data.task)
    for name, choices in search_space.items():
        if name in lora.groups or name in ("lora_qkv", "lora_up", "lora_down"):
            top = max(c[0] for c in choices)
            if name not in lora.groups:
                raise EftnasError(f"search_space: {name} is searched but lora.groups {list(lora.groups)} omits it")
            if top > lora.max_rank:
                raise EftnasError(f"search_space: {name} rank {top} exceeds lora.max_rank {lora.max_rank}")
    base = load_model(str(model_dir), task.model_task, what="supernet", strict_task=True)
    report = prune_base(base, sparsity, train, tokenizer, seed, work) if sparsity.method == "wanda" else None
    base.save_pretrained(work)  # the frozen base: what the super-adapter and its sub-adapters apply to
    tokenizer.save_pretrained(work)
    elastic = attach_lora(base, max_rank=lora.max_rank, groups=lora.groups, alpha=lora.alpha, dropout=lora.dropout)
    if report is not None:
        elastic.set_masks(load_masks(work / MASKS_FILE))
    net = LoraSuperNetwork(elastic)
    search_space = search_space.validate(net.geometry)
    external = load_teacher(str(teacher_dir), task) if teacher_dir is not None else None
    out = work / "checkpoints"
    resume_from = last_complete_checkpoint(out)
    used_kd, wall, scores = fit_supernet(
        net,
        search_space,
        cfg,
        teacher=external,
        kd=kd,
        args=trainer_args(out),
        train=train,
        tokenizer=tokenizer,
        held_out=held_out,
        resume_from=resume_from,
    )
    net.save_adapter(work / ADAPTER_DIR)
    search_space.save(work / "search_space.json")
    if held_out_file.resolve() != (work / HELD_OUT_FILE).resolve():
        shutil.copy2(held_out_file, work / HELD_OUT_FILE)
    training = {**dataclasses.asdict(cfg), "external_teacher_kd": teacher_dir is not None, "wall_s": wall}
    training |= {"kd": dataclasses.asdict(used_kd)}
    training["resumed_from"] = Path(resume_from).name if resume_from else None
    params = net.adapter_parameters(net.full())
    adapters = {
        "kind": "lora", "dir": ADAPTER_DIR, "max_rank": elastic.max_rank, "alpha": elastic.alpha,
        "dropout": lora.dropout, "groups": list(elastic.dimensions), "rank_choices": list(lora.ranks),
        "elastic_widths": lora.elastic_widths, "trainable_parameters": params,
        "scaling": "NLS: alpha / max_rank for every rank",
    }  # fmt: skip
    sparsity_record = None
    if report is not None:
        sparsity_record = {
            "method": report["method"], "target": report["target"], "overall": report["overall"],
            "masks": MASKS_FILE, "report": SPARSITY_FILE,
        }  # fmt: skip
    write_descriptor(
        work, task=task.name, model_type=base.config.model_type, head=task.model_task, space=search_space,
        space_kind=search_space.metadata.get("kind", space_kind), data=dataclasses.asdict(data), training=training,
        teacher=str(teacher_dir) if teacher_dir is not None else None, seed=seed, adapters=adapters,
        sparsity=sparsity_record,
    )  # fmt: skip
    write_json(work / "held_out_scores.json", scores)
    return {
        "held_out_scores": scores,
        "resumed_from": resume_from,
        "trainable_parameters": params,
        "sparsity": None if report is None else report["overall"],
    }


def layer_sparsity(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Zeros per pruned layer of a (merged) model, and whether every pruned weight is still exactly zero."""
    modules = dict(model.named_modules())
    per_layer, kept = {}, True
    for name, mask in masks.items():
        weight = modules[name].weight.detach()
        per_layer[name] = float((weight == 0).float().mean())
        kept = kept and bool((weight[~mask.to(weight.device)] == 0).all())
    total = sum(m.numel() for m in masks.values())
    zeros = sum(per_layer[n] * m.numel() for n, m in masks.items())
    return {"overall": zeros / max(1, total), "per_layer": per_layer, "mask_kept": kept}


def export_adapters(
    net: LoraSuperNetwork, chosen: SubnetConfig, merged: SuperNetwork, supernet_dir: Path, work: Path, evaluation: Any
) -> dict[str, Any]:
    """The stock-peft sub-adapter, parity of the unmerged sub-adapter with the exported model, and sparsity."""
    from eftnas_deploy.evaluation import predict_logits
    from eftnas_deploy.supernet.slicing import load_sliced

    directory = net.elastic.save_sub_adapter(work / SUB_ADAPTER_DIR, net.elastic.ranks_only(chosen))
    config_path = directory / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(supernet_dir.resolve())  # the frozen (pruned) base it applies to
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    record: dict[str, Any] = {
        "kind": "lora",
        "ranks": {k: list(v) for k, v in ranks_of(chosen).items()},
        "trainable_parameters": net.adapter_parameters(chosen),
        "super_adapter_parameters": net.adapter_parameters(net.full()),
        "sub_adapter_dir": SUB_ADAPTER_DIR,
        "base": str(supernet_dir.resolve()),
    }
    sliced = work / "bundle" / "pytorch"
    if sliced.is_dir():
        dense = _Plain(load_sliced(sliced).eval())
        unmerged = predict_logits(net, chosen, evaluation)
        exported = predict_logits(dense, chosen, evaluation)
        record["unmerged_vs_exported_max_abs"] = max(
            float(abs(a - b).max()) for part_a, part_b in zip(unmerged, exported) for a, b in zip(part_a, part_b)
        )
        masks_path = supernet_dir / MASKS_FILE
        if masks_path.is_file():
            record["sparsity"] = layer_sparsity(merged.model, load_masks(masks_path))
    return record


class _Plain:
    """A dense (sliced) model behind the `activate` interface `predict_logits` uses; the sub-network is fixed."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def activate(self, subnet: SubnetConfig) -> Any:
        from contextlib import nullcontext

        return nullcontext(self)


__all__ = ["adapters_enabled", "export_adapters", "prune_base", "train_lora_supernet", "widths_only"]
