"""The eight pipeline stages. Each writes into its work dir `work` and returns a summary for pipeline_state.json.

Stages only wire existing building blocks (training, importance, space generation, LUT, search, export);
training and search keep their checkpoints/storage in `work`, so an interrupted stage resumes from them.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, set_seed

from eftnas_deploy.app.pipeline.config import (
    DataConfig,
    ImportanceConfig,
    SpaceConfig,
    SupernetConfig,
    TeacherConfig,
)
from eftnas_deploy.app.pipeline.context import (
    FINETUNE,
    IMPORTANCE,
    LUT,
    SEARCH,
    SPACE,
    SUPERNET,
    TEACHER,
    RunContext,
    first_rows,
    labeled_examples,
)
from eftnas_deploy.app.pipeline.supernet_fit import fit_supernet
from eftnas_deploy.app.supernet_dir import resolve_task, write_descriptor
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.geometry import ModelGeometry
from eftnas_deploy.core.io import read_json, write_json
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task
from eftnas_deploy.data.split import HELD_OUT_FILE
from eftnas_deploy.evaluation import evaluate
from eftnas_deploy.importance.scores import (
    ImportanceScores,
    magnitude_importance,
    movement_importance,
    reorder_by_importance,
)
from eftnas_deploy.metrics import count_macs
from eftnas_deploy.supernet.elastic import SuperNetwork
from eftnas_deploy.supernet.loading import load_model
from eftnas_deploy.training import (
    KDConfig,
    SuperNetTrainer,
    collator_for,
    label_progress,
    load_teacher,
    teacher_from_config,
    train_teacher,
    training_arguments,
    training_batches,
)
from eftnas_deploy.training.checkpoints import last_complete_checkpoint

IMPORTANCE_FILE = "importance.safetensors"
LUT_FILE = "lut.json"
LENGTHS_FILE = "lut_lengths.json"  # a length-set lut.file, kept for the per-length figures of the report
SPACE_FILE = "search_space.json"


def _checkpoints(work: Path) -> tuple[Path, str | None]:
    """The Trainer output dir inside `work` and its last checkpoint (None on a fresh start)."""
    path = work / "checkpoints"
    return path, last_complete_checkpoint(path)


def _trainer_args(out: Path, cfg: Any, seed: int, group_by_length: bool, save_steps: int, max_steps: int = -1):
    """Trainer arguments of a super-network or fine-tune section (epochs, lr, warmup, batch), checkpointed."""
    return training_arguments(
        out, num_train_epochs=cfg.epochs, learning_rate=cfg.lr, warmup_ratio=cfg.warmup_ratio,
        per_device_train_batch_size=cfg.batch_size, group_by_length=group_by_length, max_steps=max_steps,
        seed=seed, save_total_limit=1,
        **(dict(save_strategy="steps", save_steps=save_steps) if save_steps else dict(save_strategy="no")),
    )  # fmt: skip


def _full_score(model, split) -> float | None:
    if split is None:
        return None
    supernet = SuperNetwork(model)
    return evaluate(supernet, SubnetConfig.full(supernet.geometry), split)["score"]


def fit_teacher(
    cfg: TeacherConfig,
    model: Any,
    tokenizer: Any,
    train: Any,
    work: Path,
    seed: int,
    save_steps: int,
    group_by_length: bool = False,
    max_steps: int = -1,
) -> str | None:
    """Fine-tune `model` in place on `train` (checkpoints in work/checkpoints, resumed); returns the checkpoint
    it resumed from. The pipeline's teacher stage and `eftnas-deploy train-teacher` both call this."""
    out, resume = _checkpoints(work)
    train_teacher(
        model, train, tokenizer, out, resume_from_checkpoint=resume, num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr, per_device_train_batch_size=cfg.batch_size, warmup_ratio=cfg.warmup_ratio,
        seed=seed, save_total_limit=1, group_by_length=group_by_length, max_steps=max_steps,
        **(dict(save_strategy="steps", save_steps=save_steps) if save_steps else dict(save_strategy="no")),
    )  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    return resume


def teacher(ctx: RunContext, work: Path) -> dict[str, Any]:
    """Stage 1: fine-tune the model on the task (or train one from a config); skipped for a fine-tuned model."""
    cfg, task = ctx.config, ctx.task
    set_seed(cfg.seed)  # a model built from a config is initialised from the global RNG
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.tokenizer or cfg.model.name)
    if cfg.model.from_config:
        model = teacher_from_config(task, tokenizer, cfg.model.model_type, **cfg.model.from_config)
    else:
        model = load_teacher(cfg.model.name, task)
    trained = not cfg.model.fine_tuned
    resume = None
    if trained:
        resume = fit_teacher(
            cfg.teacher, model, tokenizer, ctx.split("train", tokenizer), work, cfg.seed, cfg.supernet.save_steps,
            cfg.data.group_by_length,
        )  # fmt: skip
    model.save_pretrained(work)
    tokenizer.save_pretrained(work)
    score = _full_score(model, ctx.split("dev", tokenizer))
    return {"trained": trained, "dev_score": score, "resumed_from": resume}


def compute_importance(
    cfg: ImportanceConfig,
    model: Any,
    tokenizer: Any,
    train: Any,
    seed: int,
    group_by_length: bool = False,
    epochs: int | None = None,
) -> ImportanceScores:
    """Score every head and FFN neuron of `model` (fine-tuned in place for `cfg.steps`, or `epochs` passes).

    The pipeline's importance stage and `eftnas-deploy importance` both call this (`train` is unused for the
    magnitude criterion), so they share `ImportanceConfig`'s defaults.
    """
    start = time.perf_counter()
    if cfg.criterion == "magnitude":
        scores = magnitude_importance(model)
    else:
        loader = training_batches(train, tokenizer, cfg.batch_size, seed, group_by_length=group_by_length)
        torch.manual_seed(seed)
        steps = None if epochs else cfg.steps
        scores = movement_importance(model, loader, steps=steps, epochs=epochs or 1, lr=cfg.lr, criterion=cfg.criterion)
    scores.metadata["wall_s"] = round(time.perf_counter() - start, 2)
    return scores


def importance(ctx: RunContext, work: Path) -> dict[str, Any]:
    """Stage 2: first-order importance of every head and FFN neuron while fine-tuning briefly."""
    cfg = ctx.config.importance
    source = ctx.stage_dir(TEACHER)
    model = load_model(str(source), ctx.task.model_task)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    train = ctx.split("train", tokenizer) if cfg.criterion != "magnitude" else None
    scores = compute_importance(cfg, model, tokenizer, train, ctx.config.seed, ctx.config.data.group_by_length)
    model.save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    scores.save(work / IMPORTANCE_FILE)
    return {"criterion": scores.criterion, "fingerprint": scores.fingerprint}


def build_space(
    cfg: SpaceConfig,
    model: Any,
    scores: ImportanceScores,
    out: Path,
    tokenizer_source: str | Path | None = None,
    cost_range: tuple[float, float] | None = None,
    calibration: list[dict[str, torch.Tensor]] | None = None,
    pca_model: Any = None,
) -> SearchSpace:
    """Reorder `model` in place by importance and build the `cfg.kind` space between `cfg`'s MAC fractions.

    Writes out/model (reordered, with the tokenizer found at `tokenizer_source`), out/importance.safetensors
    (reordered) and out/search_space.json. `cost_range` (absolute MACs) replaces the fractions. The pipeline's
    space stage and `eftnas-deploy space` both call this, so they share `SpaceConfig`'s defaults.
    `calibration` (batches) is needed by the ELM options (`cfg.head_order`, `cfg.ffn_bounds: pca`); PCA reads
    the FFN activations of `pca_model` (the teacher; default `model`), CKA the heads of `model` itself.
    """
    from eftnas_deploy.families.models import load_tokenizer_if_present
    from eftnas_deploy.importance.activations import ffn_pca_components, head_cka
    from eftnas_deploy.importance.head_order import head_orders
    from eftnas_deploy.space.kinds import SpaceRequest
    from eftnas_deploy.space.kinds import build_space as build_kind
    from eftnas_deploy.space.pca import pca_ffn_scores

    scores.check_model(model)
    if cfg.needs_calibration and not calibration:
        raise EftnasError("space: head_order / ffn_bounds other than 'importance' need calibration batches")
    start = time.perf_counter()
    elm: dict[str, Any] = {"head_order": cfg.head_order, "ffn_bounds": cfg.ffn_bounds}
    orders = None
    if cfg.head_order != "importance":
        cka = head_cka(model, calibration)
        orders = head_orders(cfg.head_order, scores.heads, cka)
        elm["head_cka"] = [[[round(float(v), 4) for v in row] for row in layer] for layer in cka]
    components = None
    if cfg.ffn_bounds == "pca":
        components = ffn_pca_components(pca_model if pca_model is not None else model, calibration, cfg.pca_variance)
        elm |= {"pca_variance": cfg.pca_variance, "pca_components": components}
    if calibration:
        elm["calibration_batches"] = len(calibration)
    reordered = reorder_by_importance(model, scores, orders)
    geometry = reordered.geometry
    if cost_range is None:
        full = count_macs(SubnetConfig.full(geometry), geometry, seq_len=cfg.seq_len)
        cost_range = (cfg.min_fraction * full, cfg.max_fraction * full)
    request = SpaceRequest(
        pca_ffn_scores(reordered, components) if components else reordered, *cost_range,
        num_targets=cfg.num_targets, seq_len=cfg.seq_len, tolerance=cfg.tolerance,
        skip_fraction=cfg.skip_fraction, ffn_multiple=cfg.ffn_multiple,
    )  # fmt: skip
    result = build_kind(cfg.kind, request)
    threshold = "importance-threshold" if cfg.kind == "eftnas" else cfg.kind
    elm["bounds"] = {"heads": threshold, "ffn": "pca-threshold" if components else threshold}
    result.metadata["elm"] = elm
    result.metadata["total_s"] = round(time.perf_counter() - start, 3)
    model.save_pretrained(out / "model")
    tokenizer = load_tokenizer_if_present(str(tokenizer_source)) if tokenizer_source else None
    if tokenizer is not None:
        tokenizer.save_pretrained(out / "model")
    reordered.save(out / IMPORTANCE_FILE)
    result.save(out / SPACE_FILE)
    return result


def calibration_batches(train: Any, tokenizer: Any, count: int, batch_size: int, seed: int) -> list[dict]:
    """The first `count` seeded, shuffled training batches (inputs for the ELM activation statistics)."""
    return list(itertools.islice(training_batches(train, tokenizer, batch_size, seed), count))


def space(ctx: RunContext, work: Path) -> dict[str, Any]:
    """Stage 3: reorder by importance and cut the search space at evenly spaced MAC targets."""
    source = ctx.stage_dir(IMPORTANCE)
    cfg = ctx.config.space
    scores = ImportanceScores.load(source / IMPORTANCE_FILE)
    model = load_model(str(source / "model"), ctx.task.model_task)
    calibration = pca_model = None
    if cfg.needs_calibration:
        tokenizer = AutoTokenizer.from_pretrained(str(source / "model"))
        calibration = calibration_batches(
            ctx.split("train", tokenizer), tokenizer, cfg.calibration_batches, ctx.config.importance.batch_size,
            ctx.config.seed,
        )  # fmt: skip
        if cfg.ffn_bounds == "pca":
            pca_model = load_model(str(ctx.stage_dir(TEACHER)), ctx.task.model_task)
    result = build_space(
        cfg, model, scores, work, tokenizer_source=source / "model", calibration=calibration, pca_model=pca_model
    )
    elm = result.metadata["elm"]
    methods = {"bounds": elm["bounds"], "head_order": elm["head_order"]}
    if ctx.config.supernet.adapters == "lora":  # LoNAS: widths and the LoRA rank dimensions in one space
        from eftnas_deploy.space.lora import with_rank_dimensions

        lora = ctx.config.lora
        geometry = ModelGeometry.from_config(model.config, ctx.task.model_task)
        result = with_rank_dimensions(result, lora.ranks, lora.groups, lora.elastic_widths, geometry)
        result.validate(geometry).save(work / SPACE_FILE)
    return {"size": result.size(), **{name: [list(c) for c in choices] for name, choices in result.items()}, **methods}


def _predicted_by_length(ctx: RunContext, chosen: SubnetConfig, full: SubnetConfig) -> dict[str, Any] | None:
    """Predicted ms of the chosen and the full network at every length of a length-set LUT (None without one)."""
    from latency_lut.lengths import LengthTables

    path = ctx.stage_dir(LUT) / LENGTHS_FILE
    if not path.is_file():
        return None
    tables = LengthTables.load(path)
    return {
        str(n): {"chosen": tables.predict_ms(chosen, n), "full": tables.predict_ms(full, n)} for n in tables.lengths
    }


def lut(ctx: RunContext, work: Path) -> dict[str, Any]:
    """Stage 4: a latency LUT measured on this CPU for the space's widths, or a target device's file, checked."""
    from eftnas_deploy.core.space import sample_across_cost
    from exporters.runtime import PRECISIONS, RuntimeSpec
    from latency_lut.measure import TimingSettings, build_lut
    from latency_lut.validate import plot_validation, validate_luts

    cfg = ctx.config.lut
    source = ctx.stage_dir(SPACE)
    config = AutoConfig.from_pretrained(str(source / "model"))
    geometry = ModelGeometry.from_config(config, ctx.task.model_task)
    search_space = SearchSpace.load(source / "search_space.json").validate(geometry)
    if set(search_space.dimensions) - {"heads", "ffn"}:  # LoRA ranks: merged away, no LUT block
        from eftnas_deploy.space.lora import widths_space

        search_space = widths_space(search_space)
    timing = TimingSettings(cfg.warmup, cfg.repeats, cfg.min_time_s, cfg.stack, clock=cfg.clock)
    if cfg.file:
        from eftnas_deploy.app.pipeline.preflight import load_lut_file
        from latency_lut.lengths import LengthTables, is_length_set

        table, origin = load_lut_file(ctx.config, geometry)
        if is_length_set(cfg.file):  # the search uses the table at lut.seq_len; the report shows every length
            LengthTables.load(cfg.file).save(work / LENGTHS_FILE)
            origin["lengths"] = LengthTables.load(cfg.file).lengths
    elif cfg.measure:
        spec = RuntimeSpec(cfg.runtime, cfg.threads, cfg.precision or PRECISIONS[cfg.runtime][0])
        table = build_lut(
            config, geometry, spec, cfg.seq_len, cfg.batch, search_space, cfg.grid, timing, cfg.calibration,
            ctx.config.seed,
        )  # fmt: skip
        origin = {"source": "measured here"}
    else:
        return {"source": "none", "note": "no LUT: lut.measure is false and no lut.file was given"}
    table.save(work / LUT_FILE)
    summary = {**origin, "runtime": table.runtime, "precision": table.precision, "threads": table.threads}
    if cfg.validate_samples and not cfg.file:  # a target device's LUT cannot be validated on this CPU
        model = load_model(str(source / "model"), ctx.task.model_task).eval()
        subnets = sample_across_cost(search_space, cfg.validate_samples, seed=ctx.config.seed + 1)
        (report,) = validate_luts([table], model, subnets, timing)
        write_json(work / "validation.json", report)
        plot_validation([report], work / "lut_validation.png")
        summary["validation_median_abs_pct"] = report["median_abs_pct"]
        if report["warning"]:
            summary["validation_warning"] = report["warning"]
            print(f"warning: {report['warning']}", flush=True)
    return summary


def train_supernet(
    cfg: SupernetConfig,
    data: DataConfig,
    *,
    model_dir: str | Path,
    tokenizer: Any,
    search_space: SearchSpace | None,
    teacher_dir: str | Path | None,
    train: Any,
    held_out: Any,
    held_out_file: Path,
    work: Path,
    seed: int,
    space_kind: str = "eftnas",
    resume: bool = True,
    max_steps: int = -1,
    kd: KDConfig | None = None,
    budget_for: Callable[[ModelGeometry, SearchSpace], Callable[[SubnetConfig], bool]] | None = None,
) -> dict[str, Any]:
    """Train the weight-sharing super-network of `model_dir` into `work` (checkpoints in work/checkpoints).

    Writes the weights, tokenizer, search_space.json, held_out.json (a copy of `held_out_file`), the held-out
    scores of the space's corners and the directory's descriptor (supernet.json). The pipeline's super-network
    stage and `eftnas-deploy train-supernet` both call this, so they share `SupernetConfig`'s defaults.
    `search_space` None: every head count and 8 FFN widths. `teacher_dir` None: no external-teacher KD.
    `budget_for(geometry, space)` gives the search's budget predicate (`supernet.sampling: budget`).
    """
    task = get_task(data.task)
    net = SuperNetwork.from_pretrained(str(model_dir), task=task.model_task)
    search_space = (search_space or SearchSpace.full_range(net.geometry)).validate(net.geometry)
    external = load_teacher(str(teacher_dir), task) if teacher_dir is not None else None
    out, last = _checkpoints(work)
    resume_from = last if resume else None
    used_kd, wall, scores = fit_supernet(
        net, search_space, cfg, teacher=external, kd=kd, train=train, tokenizer=tokenizer, held_out=held_out,
        args=_trainer_args(out, cfg, seed, data.group_by_length, cfg.save_steps, max_steps=max_steps),
        resume_from=resume_from, budget=budget_for(net.geometry, search_space) if budget_for else None,
    )  # fmt: skip
    net.save_pretrained(work)
    tokenizer.save_pretrained(work)
    search_space.save(work / SPACE_FILE)
    if held_out_file.resolve() != (work / HELD_OUT_FILE).resolve():
        shutil.copy2(held_out_file, work / HELD_OUT_FILE)
    training = {**dataclasses.asdict(cfg), "external_teacher_kd": teacher_dir is not None}
    training |= {"kd": dataclasses.asdict(used_kd), "max_steps": max_steps, "wall_s": wall}
    training["resumed_from"] = Path(resume_from).name if resume_from else None
    write_descriptor(
        work, task=task.name, model_type=net.model.config.model_type, head=task.model_task, space=search_space,
        space_kind=search_space.metadata.get("kind", space_kind), data=dataclasses.asdict(data), training=training,
        teacher=str(teacher_dir) if teacher_dir is not None else None, seed=seed,
    )  # fmt: skip
    write_json(work / "held_out_scores.json", scores)
    return {"held_out_scores": scores, "resumed_from": resume_from}


def supernet(ctx: RunContext, work: Path) -> dict[str, Any]:
    """Stage 5: train the weight-sharing super-network (resumes from its last checkpoint)."""
    cfg = ctx.config.supernet
    source = ctx.stage_dir(SPACE)
    tokenizer = AutoTokenizer.from_pretrained(str(source / "model"))
    if cfg.adapters == "lora":
        return _supernet_with_adapters(ctx, work, tokenizer)
    result = train_supernet(
        cfg, ctx.config.data, model_dir=source / "model", tokenizer=tokenizer,
        search_space=SearchSpace.load(source / SPACE_FILE),
        teacher_dir=ctx.stage_dir(TEACHER) if cfg.external_teacher_kd else None,
        train=ctx.split("train", tokenizer), held_out=ctx.split("held_out", tokenizer),
        held_out_file=ctx.run_dir / HELD_OUT_FILE, work=work, seed=ctx.config.seed,
        space_kind=ctx.config.space.kind,
        budget_for=(lambda geometry, space: _budget_fits(ctx, geometry, space)) if cfg.sampling == "budget" else None,
    )  # fmt: skip
    scores = {name: s["score"] for name, s in result["held_out_scores"].items()}
    return {"held_out_scores": scores, "resumed_from": result["resumed_from"]}


def _supernet_with_adapters(ctx: RunContext, work: Path, tokenizer: Any) -> dict[str, Any]:
    """Stage 5 with `supernet.adapters: lora`: super-adapters on the frozen (optionally pruned) base."""
    from eftnas_deploy.app.pipeline.adapters import train_lora_supernet

    cfg, source = ctx.config.supernet, ctx.stage_dir(SPACE)
    result = train_lora_supernet(
        cfg, ctx.config.lora, ctx.config.sparsity, ctx.config.data, model_dir=source / "model", tokenizer=tokenizer,
        search_space=SearchSpace.load(source / SPACE_FILE),
        teacher_dir=ctx.stage_dir(TEACHER) if cfg.external_teacher_kd else None,
        train=ctx.split("train", tokenizer), held_out=ctx.split("held_out", tokenizer),
        held_out_file=ctx.run_dir / HELD_OUT_FILE, work=work, seed=ctx.config.seed, space_kind=ctx.config.space.kind,
        trainer_args=lambda out: _trainer_args(out, cfg, ctx.config.seed, ctx.config.data.group_by_length,
                                               cfg.save_steps),
    )  # fmt: skip
    scores = {name: s["score"] for name, s in result["held_out_scores"].items()}
    return {**result, "held_out_scores": scores}


def _load_supernet(ctx: RunContext, directory: Path, adapter_dir: Path | None = None) -> SuperNetwork:
    """The super-network in `directory`, its descriptor checked against the config's task (data.task).

    A directory of LoRA super-adapters gives a `LoraSuperNetwork` (duck-compatible), `adapter_dir` replacing
    its recorded super-adapter (the fine-tuned one).
    """
    from eftnas_deploy.app.supernet_dir import load_supernet

    head, _ = resolve_task(directory, ctx.config.data.task, flag="data.task")
    return load_supernet(directory, head, adapter_dir)


def _predictor(ctx: RunContext):
    from latency_lut.predict import LatencyPredictor
    from latency_lut.table import LatencyTable

    path = ctx.stage_dir(LUT) / LUT_FILE
    return LatencyPredictor(LatencyTable.load(path)) if path.is_file() else None


def _search_budget(ctx: RunContext, geometry: ModelGeometry, space: SearchSpace):
    """(Budget in absolute units, LUT predictor or None, seq_len, batch) of the search settings."""
    from eftnas_deploy.search.session import Budget

    cfg = ctx.config.search
    predictor = _predictor(ctx)
    seq_len, batch = (predictor.table.seq_len, predictor.table.batch) if predictor else (ctx.config.space.seq_len, 1)
    max_ms = cfg.max_latency_ms
    if cfg.max_latency_fraction is not None:
        max_ms = relative_budget_ms(predictor, space, geometry, cfg.max_latency_fraction)
    return Budget(max_ms, cfg.max_macs, cfg.max_params), predictor, seq_len, batch


def _budget_fits(ctx: RunContext, geometry: ModelGeometry, space: SearchSpace) -> Callable[[SubnetConfig], bool]:
    from eftnas_deploy.search.session import budget_fits

    budget, predictor, seq_len, batch = _search_budget(ctx, geometry, space)
    return budget_fits(geometry, budget, seq_len, batch, predictor)


def relative_budget_ms(
    predictor: Callable[[SubnetConfig], float], space: SearchSpace, geometry: ModelGeometry, fraction: float
) -> float:
    """A budget `fraction` of the way from the space's smallest sub-network (0) to the full model (1).

    Relative to the reachable range, not to the full model alone: when the fixed part dominates (small
    models, short sequences) a fraction of the full latency can lie below every sub-network.
    """
    low = predictor(space.smallest())
    high = max(predictor(SubnetConfig.full(geometry)), low)  # tiny blocks: timer noise can invert them
    return low + fraction * (high - low)


def search(ctx: RunContext, work: Path) -> dict[str, Any]:
    """Stage 6: multi-objective search under the budget (resumes from its trial log), finalists re-measured."""
    from eftnas_deploy.app.remeasure import remeasure_finalists
    from eftnas_deploy.search.searcher import SearchConfig
    from eftnas_deploy.search.session import search_supernet

    cfg = ctx.config.search
    source = ctx.stage_dir(SUPERNET)
    net = _load_supernet(ctx, source)
    net.model.eval()
    search_space = SearchSpace.load(source / "search_space.json").validate(net.geometry)
    held_out = ctx.split("held_out", AutoTokenizer.from_pretrained(str(source)))
    budget, predictor, seq_len, batch = _search_budget(ctx, net.geometry, search_space)
    max_ms = budget.max_latency_ms
    summary = search_supernet(
        net, search_space, held_out, work,
        SearchConfig(algorithm=cfg.algorithm, evals=cfg.evals, population=cfg.population, seed=ctx.config.seed),
        objective=cfg.objective, latency_ms=predictor, budget=budget,
        seq_len=seq_len, batch=batch, selection=cfg.selection, delta=cfg.delta, metric=cfg.metric,
    )  # fmt: skip
    measured_here = predictor is not None and not ctx.config.lut.file
    adapters = hasattr(net, "adapter_parameters")
    if measured_here and cfg.remeasure_top:  # latency depends on the widths alone: the base model is timed
        timed = SuperNetwork.from_pretrained(str(source), task=net.geometry.task) if adapters else net
        remeasure_finalists(timed, predictor.table, work, cfg.remeasure_top)
    outputs = {"trials": summary["trials"], "max_latency_ms": max_ms, "chosen": summary["chosen"]}
    if adapters:
        chosen = SubnetConfig.load(work / "subnet.json")
        outputs["adapter_parameters"] = net.adapter_parameters(chosen)
    return outputs


FINETUNED_MODEL = "model"


def _finetune_teacher(ctx: RunContext, held_out: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Whom the final fine-tune distils from (`finetune.teacher`), and a record of the choice.

    "teacher": stage 1's model; "supernet": the super-network's largest sub-network as stage 5 trained it, sliced
    to a dense model (LoRA super-adapters merged first); "best": whichever of the two scores higher on the
    held-out rows (the teacher on a tie, or without held-out rows).
    """
    choice = ctx.config.finetune.teacher
    best = choice == "best" and held_out is not None
    models, scores = {}, {}
    if choice in ("teacher", "best"):
        models["teacher"] = load_teacher(str(ctx.stage_dir(TEACHER)), ctx.task)
        scores["teacher"] = _full_score(models["teacher"], held_out) if best else None
    if choice == "supernet" or best:
        models["supernet"], scores["supernet"] = _largest_subnet_model(ctx, held_out if best else None)
    name = max(models, key=lambda n: (scores[n] or 0.0, n == "teacher"))
    return models[name].eval(), {"teacher": name, **({"held_out_scores": scores} if best else {})}


def _largest_subnet_model(ctx: RunContext, held_out: Any) -> tuple[torch.nn.Module, float | None]:
    """Stage 5's largest sub-network as a dense model, and its held-out score (None without `held_out`)."""
    from eftnas_deploy.supernet.slicing import slice_subnet

    source = ctx.stage_dir(SUPERNET)
    net = _load_supernet(ctx, source)
    largest = SearchSpace.load(source / SPACE_FILE).validate(net.geometry).largest()
    score = evaluate(net, largest, held_out)["score"] if held_out is not None else None
    if hasattr(net, "merged"):
        from eftnas_deploy.lora.supernet import widths_only

        net, largest = net.merged(largest), widths_only(largest)
    return slice_subnet(net, largest), score


def finetune(ctx: RunContext, work: Path) -> dict[str, Any]:
    """Stage 7: fine-tune the chosen sub-network alone, distilled (`finetune.teacher`); resumes from checkpoints.

    Trains inside the super-network with only the chosen sub-network active (a one-point search space), so
    slicing, parity and export stay the same code path. Scores before and after are recorded on held-out and
    dev rows; with `finetune.keep_if_better` the result is dropped if the held-out score fell.
    """
    from eftnas_deploy.training import KDConfig

    cfg = ctx.config.finetune
    source = ctx.stage_dir(SUPERNET)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    net = _load_supernet(ctx, source)
    chosen = SubnetConfig.load(ctx.stage_dir(SEARCH) / "subnet.json").validate(net.geometry)
    splits = {name: ctx.split(name, tokenizer) for name in ("held_out", "dev")}
    scores = {name: {"before": evaluate(net, chosen, split)["score"]} for name, split in splits.items() if split}
    if not cfg.enabled:
        return {"enabled": False, "kept": False, "scores": scores}
    teacher_model, distilled_from = (
        _finetune_teacher(ctx, splits["held_out"]) if cfg.distill else (None, {"teacher": None})
    )
    train = ctx.split("train", tokenizer)
    out, resume = _checkpoints(work)
    trainer = SuperNetTrainer(
        supernet=net, search_space=SearchSpace.single(chosen), strategy="standard", teacher=teacher_model,
        kd=KDConfig(hidden_weight=cfg.hidden_kd_weight),
        args=_trainer_args(out, cfg, ctx.config.seed, ctx.config.data.group_by_length, ctx.config.supernet.save_steps),
        train_dataset=train.features, data_collator=collator_for(train, tokenizer), processing_class=tokenizer,
    )  # fmt: skip
    label_progress(trainer, "final fine-tune")
    trainer.train(resume_from_checkpoint=resume)
    shutil.rmtree(out, ignore_errors=True)
    for name, split in splits.items():
        if split is not None:
            scores[name]["after"] = evaluate(net, chosen, split)["score"]
    kept = not cfg.keep_if_better or scores["held_out"]["after"] >= scores["held_out"]["before"]
    if kept and hasattr(net, "save_adapter"):  # LoRA: only the sub-adapter (and head) trained; the base is stage 5's
        net.save_adapter(work / FINETUNED_MODEL / "adapter")
    elif kept:
        net.save_pretrained(work / FINETUNED_MODEL)
        tokenizer.save_pretrained(work / FINETUNED_MODEL)
    return {"enabled": True, "kept": kept, "scores": scores, "resumed_from": resume, "distilled_from": distilled_from}


def final_weights(ctx: RunContext) -> Path:
    """The super-network weights the chosen sub-network ships with: fine-tuned (stage 7) if kept, else stage 5's."""
    tuned = ctx.run_dir / FINETUNE / FINETUNED_MODEL
    return tuned if tuned.is_dir() else ctx.stage_dir(SUPERNET)


def export(ctx: RunContext, work: Path) -> dict[str, Any]:
    """Stage 8: the chosen sub-network's bundle (and the full model's, for the speedup), timed per runtime.

    Every accuracy figure (teacher, super-network, chosen in PyTorch, OpenVINO FP32 and INT8) is taken on the
    same rows: the dev split (held-out without one), cut to `export.eval_size` rows when that is set.
    """
    from eftnas_deploy.app.pipeline.deployment import benchmark_all, sliced_parity
    from exporters.bundle import ExportSource, export_bundle
    from exporters.weights import WEIGHT_MODES

    cfg = ctx.config.export
    trained = ctx.stage_dir(SUPERNET)
    tokenizer = AutoTokenizer.from_pretrained(str(trained))
    supernet_weights = _load_supernet(ctx, trained)
    weights = final_weights(ctx)
    adapters = hasattr(supernet_weights, "merged")
    if weights == trained:
        net = supernet_weights
    elif adapters:
        net = _load_supernet(ctx, trained, weights / "adapter")
    else:
        net = SuperNetwork.from_pretrained(str(weights), task=ctx.task.model_task)
    net.model.eval()
    chosen = SubnetConfig.load(ctx.stage_dir(SEARCH) / "subnet.json").validate(net.geometry)
    lora_net, searched = None, chosen
    if adapters:  # the chosen sub-adapter merged (masks kept) into a copy of the base, then sliced to its widths
        from eftnas_deploy.lora.supernet import widths_only

        lora_net, net, chosen = net, net.merged(chosen), widths_only(chosen)
        net.model.eval()
    full = SubnetConfig.full(net.geometry)
    dev = ctx.split("dev", tokenizer)
    evaluation = first_rows(dev if dev is not None else ctx.split("held_out", tokenizer), cfg.eval_size)
    calibration = evaluation_set = None
    if "int8" in cfg.formats:
        calibration = labeled_examples(ctx.split("train", tokenizer), cfg.calibration_size)
    if {"int8", *WEIGHT_MODES} & set(cfg.formats):  # every compressed format is scored on the same rows
        evaluation_set = labeled_examples(evaluation, None)
    bundle = export_bundle(
        ExportSource.from_supernet(net, chosen, tokenizer), work / "bundle", list(cfg.formats),
        calibration=calibration, evaluation=evaluation_set, subset_size=cfg.calibration_size, overwrite=True,
    )  # fmt: skip
    reference = [f for f in ("onnx", "openvino") if f in cfg.formats]
    if reference:
        export_bundle(ExportSource.from_supernet(net, full, tokenizer), work / "full_model", reference, overwrite=True)
    front = []
    if cfg.pareto_front:
        points = read_json(ctx.stage_dir(SEARCH) / "pareto.json", "pareto")["points"]
        for i, point in enumerate(points):
            subnet = SubnetConfig.from_dict(point["subnet"])
            out = work / "pareto" / f"{i:02d}"
            point_net = supernet_weights
            if adapters:
                from eftnas_deploy.lora.supernet import widths_only

                point_net, subnet = supernet_weights.merged(subnet), widths_only(subnet)
            source = ExportSource.from_supernet(point_net, subnet, tokenizer)
            export_bundle(source, out, ("pytorch", "onnx", "openvino"))
            front.append({"index": i, "dir": str(out.relative_to(work)), "subnet": point["subnet"]})
    predictor = _predictor(ctx)
    threads = cfg.benchmark_threads or (predictor.table.threads if predictor else 1)
    seq_len, batch = (predictor.table.seq_len, predictor.table.batch) if predictor else (ctx.config.space.seq_len, 1)
    timings = benchmark_all(work, threads, batch, seq_len, cfg.benchmark_repeats)
    teacher_net = SuperNetwork(load_teacher(str(ctx.stage_dir(TEACHER)), ctx.task).eval())
    accuracy = {
        "metric_split": "dev" if dev is not None else "held_out",
        "metric": ctx.task.metric,
        "rows": len(evaluation),
        "teacher": evaluate(teacher_net, full, evaluation)["score"],
        "supernet_full": evaluate(supernet_weights, full, evaluation)["score"],
        "pytorch_chosen": evaluate(net, chosen, evaluation)["score"],
        **({"pytorch_chosen_unmerged": evaluate(lora_net, searched, evaluation)["score"]} if adapters else {}),
        "weights": "fine-tuned (stage 7)" if weights != trained else "super-network (stage 5)",
        "quantization": bundle.get("quantization"),
    }
    parity = sliced_parity(net, chosen, work / "bundle") if "pytorch" in cfg.formats else None
    deployment = {
        "subnet": chosen.to_dict(),
        "predicted_ms": {"chosen": predictor(chosen), "full": predictor(full)} if predictor else None,
        "predicted_ms_by_length": _predicted_by_length(ctx, chosen, full),
        "lut": {"runtime": predictor.table.runtime, "precision": predictor.table.precision} if predictor else None,
        "threads": threads,
        "seq_len": seq_len,
        "batch": batch,
        "timings": timings,
        "accuracy": accuracy,
        "parity": {"supernet_vs_sliced_max_abs": parity, **bundle["parity"]},
        "pareto_bundles": front,
    }
    if adapters:
        from eftnas_deploy.app.pipeline.adapters import export_adapters

        deployment["subnet"] = searched.to_dict()
        deployment["adapters"] = export_adapters(lora_net, searched, net, trained, work, evaluation)
    write_json(work / "deployment.json", deployment)
    return {"bundle": "bundle", "formats": sorted(bundle["formats"]), "timings": len(timings)}
