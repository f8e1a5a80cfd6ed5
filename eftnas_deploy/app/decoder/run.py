"""`eftnas-deploy decoder`: a decoder LLM from text to a stateful, weight-compressed OpenVINO model.

Stages (each written to a temporary directory and renamed when it succeeds; a killed run resumes at the
first unfinished stage, and super-network training from its last checkpoint):

  01_model     tokenizer (the model's, or trained on the texts for a model built from a config), importance
               of KV groups and MLP neurons on the causal-LM loss, function-preserving reorder
  02_supernet  super-network training (the project's trainer: causal-LM loss, sandwich rule, in-place KD)
  03_lut       generation LUT (prefill + per-token decode) measured on this CPU, or a target's from lut.file,
               validated end to end on held-out sub-networks
  04_search    held-out perplexity against predicted ms/token (or time to first token), within the budget
  05_export    the chosen sub-network sliced (stock AutoModelForCausalLM with remote code), stateful OpenVINO
               IRs (fp32 / int8 / int4 weights), greedy tokens checked against PyTorch, generation timed
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eftnas_deploy.app.decoder.config import DecoderRunConfig
from eftnas_deploy.core.errors import EftnasError, OutputDirError
from eftnas_deploy.core.io import LOCK_FILE, atomic_output_dir, read_json, write_json
from eftnas_deploy.core.locking import exclusive_dir

CONFIG_FILE = "decoder.yaml"
STATE_FILE = "decoder_state.json"
MODEL, SUPERNET, LUT, SEARCH, EXPORT = "01_model", "02_supernet", "03_lut", "04_search", "05_export"


class DecoderRun:
    """The run's inputs, loaded once and shared by the stages."""

    def __init__(self, config: DecoderRunConfig, run_dir: Path) -> None:
        self.config, self.dir = config, run_dir
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def texts(self) -> tuple[list[str], list[str]]:
        def make() -> tuple[list[str], list[str]]:
            from eftnas_deploy.data.text import read_texts

            data = self.config.data
            train = read_texts(data.train, text_column=data.text_column, config=data.dataset_config,
                               limit=data.max_train_texts)  # fmt: skip
            if data.dev:
                return train, read_texts(data.dev, split="validation", text_column=data.text_column,
                                         config=data.dataset_config)  # fmt: skip
            cut = max(1, int(len(train) * (1 - data.dev_fraction)))
            if cut >= len(train):
                raise EftnasError(f"data.train: {len(train)} texts leave none for the dev split; set data.dev")
            return train[:cut], train[cut:]

        return self._once("texts", make)

    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return self._once("tokenizer", lambda: AutoTokenizer.from_pretrained(self.dir / MODEL))

    def blocks(self, split: str) -> Any:
        from eftnas_deploy.data.text import group_texts

        def make() -> Any:
            train, dev = self.texts()
            size = self.config.data.block_size
            blocks = group_texts(train if split == "train" else dev, self.tokenizer(), size)
            if split == "dev":
                blocks = blocks.select(range(min(len(blocks), self.config.data.max_dev_blocks)))
            if not len(blocks):
                raise EftnasError(f"data: the {split} texts hold fewer than data.block_size ({size}) tokens")
            return blocks

        return self._once(f"blocks-{split}", make)

    def supernet(self, stage: str = SUPERNET) -> Any:
        def make() -> Any:
            import torch
            from transformers import AutoModelForCausalLM

            from eftnas_deploy.supernet.decoder import DecoderSuperNetwork

            model = AutoModelForCausalLM.from_pretrained(self.dir / stage, torch_dtype=torch.float32)
            return DecoderSuperNetwork(model)

        return self._once(f"supernet-{stage}", make)

    def trained(self, supernet: Any) -> None:
        """Hand the super-network trained in this process to the later stages (no second copy from disk)."""
        self._cache[f"supernet-{SUPERNET}"] = supernet

    def space(self) -> Any:
        from transformers import AutoConfig

        from eftnas_deploy.core.decoder_family import DecoderGeometry
        from eftnas_deploy.search.decoder import decoder_search_space

        geometry = DecoderGeometry.from_config(AutoConfig.from_pretrained(self.dir / MODEL))
        widths = [round(f * geometry.intermediate_size) for f in self.config.space.ffn_fractions]
        return decoder_search_space(geometry, widths, self.config.space.kv_groups, self.config.space.drop_layers)

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer().pad_token_id)


# -- stages ----------------------------------------------------------------------------------------------
def model_stage(run: DecoderRun, out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eftnas_deploy.data.text import CausalLMCollator, group_texts, train_causal_tokenizer
    from eftnas_deploy.importance.decoder import (
        decoder_magnitude_importance,
        decoder_taylor_importance,
        reorder_decoder_by_importance,
    )
    from eftnas_deploy.supernet.decoder import build_decoder

    cfg = run.config
    torch.manual_seed(cfg.seed)
    train, _ = run.texts()
    if cfg.model.from_config:
        if cfg.model.tokenizer:
            tokenizer = AutoTokenizer.from_pretrained(cfg.model.tokenizer)
        else:
            tokenizer = train_causal_tokenizer(train, cfg.model.vocab_size, model_max_length=cfg.data.block_size)
        options = dict(cfg.model.from_config)
        model = build_decoder(options.pop("model_type", "llama"), **options, vocab_size=len(tokenizer))
    else:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model.tokenizer or cfg.model.name)
        model = AutoModelForCausalLM.from_pretrained(cfg.model.name, torch_dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.importance.criterion == "taylor":
        blocks = group_texts(train, tokenizer, cfg.data.block_size)
        collate = CausalLMCollator(tokenizer.pad_token_id)
        size = cfg.supernet.batch_size
        batches = [collate(list(blocks.select(range(i, min(i + size, len(blocks))))))
                   for i in range(0, min(len(blocks), size * cfg.importance.batches), size)]  # fmt: skip
        scores = decoder_taylor_importance(model, batches)
    else:
        scores = decoder_magnitude_importance(model)
    orders = reorder_decoder_by_importance(model, scores)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_json(out / "importance.json", {"criterion": cfg.importance.criterion, "orders": orders})
    return {"criterion": cfg.importance.criterion, "parameters": sum(p.numel() for p in model.parameters())}


def supernet_stage(run: DecoderRun, out: Path) -> dict[str, Any]:
    from transformers.trainer_utils import get_last_checkpoint

    from eftnas_deploy.data.text import CausalLMCollator
    from eftnas_deploy.evaluation.perplexity import perplexity
    from eftnas_deploy.search.decoder import cheapest_built
    from eftnas_deploy.training import SuperNetTrainer, training_arguments
    from eftnas_deploy.training.setup import label_progress

    cfg, supernet, space = run.config.supernet, run.supernet(MODEL), run.space()
    partial = run.dir / f"{SUPERNET}.partial"  # checkpoints survive a kill; removed once the stage is done
    trainer = SuperNetTrainer(
        supernet=supernet, search_space=space, strategy=cfg.strategy,
        args=training_arguments(
            partial, max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
            warmup_ratio=cfg.warmup_ratio, save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=1,
            seed=run.config.seed, logging_steps=max(1, cfg.steps // 10),
        ),
        train_dataset=run.blocks("train"), data_collator=CausalLMCollator(run.pad_id),
    )  # fmt: skip
    label_progress(trainer, "super-network training")
    last = get_last_checkpoint(str(partial)) if partial.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    supernet.set_subnet(supernet.full())
    run.trained(supernet)
    supernet.model.save_pretrained(out, safe_serialization=True)
    run.tokenizer().save_pretrained(out)
    space.save(out / "search_space.json")
    dev = run.blocks("dev")
    scores = {name: perplexity(supernet, subnet, dev, pad_token_id=run.pad_id)["perplexity"]
              for name, subnet in (("full", space.largest()), ("smallest", cheapest_built(space)))}  # fmt: skip
    write_json(out / "supernet.json", {"strategy": cfg.strategy, "steps": cfg.steps, "dev_perplexity": scores,
                                       "resumed_from": last})  # fmt: skip
    shutil.rmtree(partial, ignore_errors=True)
    return {"dev_perplexity": scores}


def lut_stage(run: DecoderRun, out: Path) -> dict[str, Any]:
    from exporters.runtime import RuntimeSpec
    from latency_lut.decoder import build_decoder_lut, sample_decoder_subnets
    from latency_lut.decoder_table import PHASES, DecoderLatencyTable
    from latency_lut.decoder_validate import plot_decoder_validation, validate_decoder_lut
    from latency_lut.measure import TimingSettings

    cfg, supernet, space = run.config.lut, run.supernet(), run.space()
    groups = sorted({g for choices in space.heads for g in choices if g})
    if cfg.file:
        table = DecoderLatencyTable.load(cfg.file, geometry=supernet.geometry)
        source = f"file {cfg.file}"
    else:
        spec = RuntimeSpec(cfg.runtime, cfg.threads, RuntimeSpec.default_for(cfg.runtime).precision)
        widths = sorted({w for choices in space.ffn for w in choices if w})
        timing = TimingSettings(warmup=2, repeats=cfg.repeats, min_time_s=0.0, stack=4, clock=cfg.clock)
        table = build_decoder_lut(
            supernet, spec, prompt_len=cfg.prompt_len, new_tokens=cfg.new_tokens, kv_groups=groups,
            ffn_widths=widths, timing=timing, calibration_samples=cfg.calibration, seed=run.config.seed,
        )  # fmt: skip
        source = "measured on this machine"
    table.save(out / "decoder_lut.json")
    info: dict[str, Any] = {"source": source, "runtime": table.runtime, "precision": table.precision}
    if cfg.validate:
        measured = table.phases["decode"].measured("ffn")  # held-out widths inside what the table interpolates
        held_out = sample_decoder_subnets(supernet.geometry, cfg.validate, seed=run.config.seed + 1, kv_groups=groups,
                                          ffn_range=(min(measured), max(measured)))  # fmt: skip
        report = validate_decoder_lut(table, supernet, held_out)
        write_json(out / "validation.json", report)
        plot_decoder_validation(report, out / "validation.png", title=f"decoder LUT ({table.runtime})")
        info["median_abs_pct"] = {phase: report[phase]["median_abs_pct"] for phase in PHASES}
    return info


def search_stage(run: DecoderRun, out: Path) -> dict[str, Any]:
    from eftnas_deploy.search.decoder import search_decoder
    from eftnas_deploy.search.searcher import SearchConfig
    from latency_lut.decoder_table import DecoderLatencyTable

    cfg, supernet, space = run.config.search, run.supernet(), run.space()
    table = DecoderLatencyTable.load(run.dir / LUT / "decoder_lut.json", geometry=supernet.geometry)
    latency = {"ms_per_token": table.predict_ms_per_token, "ttft_ms": table.predict_ttft_ms}
    budgets = {cost: cfg.budget_of(cost) for cost in latency}
    if cfg.max_fraction is not None:
        budgets[cfg.objective] = cfg.max_fraction * latency[cfg.objective](space.largest())
    summary = search_decoder(
        supernet, space, run.blocks("dev"), out,
        SearchConfig(algorithm=cfg.algorithm, evals=cfg.evals, population=cfg.population, seed=run.config.seed),
        latency, objective=cfg.objective, max_ms_per_token=budgets["ms_per_token"], max_ttft_ms=budgets["ttft_ms"],
        pad_token_id=run.pad_id,
    )  # fmt: skip
    return {"chosen": summary["chosen"], "trials": summary["trials"], "warning": summary["warning"]}


def export_stage(run: DecoderRun, out: Path) -> dict[str, Any]:
    import torch

    from eftnas_deploy.core.subnet import SubnetConfig
    from eftnas_deploy.supernet.decoder_slicing import save_sliced_decoder, slice_decoder
    from exporters.openvino_decoder import export_decoder_openvino
    from exporters.runtime import RuntimeSpec
    from latency_lut.decoder import open_decoder

    cfg, lut = run.config.export, run.config.lut
    chosen = SubnetConfig.load(run.dir / SEARCH / "subnet.json")
    dense = slice_decoder(run.supernet(), chosen)
    sliced = save_sliced_decoder(dense, out / "pytorch", tokenizer=run.tokenizer())
    prompt = torch.tensor([run.blocks("dev")[0]["input_ids"][: min(16, run.config.data.block_size)]])
    with torch.no_grad():
        reference = dense.generate(prompt, max_new_tokens=cfg.check_tokens, do_sample=False,
                                   pad_token_id=run.pad_id)[0, prompt.shape[1]:].tolist()  # fmt: skip
    spec = RuntimeSpec("openvino", lut.threads, "f32")
    formats: dict[str, Any] = {}
    for weights in cfg.weights:
        xml = export_decoder_openvino(sliced, out / f"openvino-{weights}", weights=weights)
        ir_dir = xml.parent
        tokens = _ov_greedy(ir_dir, prompt, cfg.check_tokens, run.pad_id)
        if weights == "fp32" and tokens != reference:
            raise EftnasError(f"export: the fp32 IR generated {tokens}, PyTorch {reference} (parity failed)")
        timing = open_decoder(xml, spec, dense.config.vocab_size, run.config.seed).time_generation(
            lut.prompt_len, lut.new_tokens, runs=3, clock=lut.clock
        )
        formats[weights] = {
            "greedy_tokens_match_pytorch": tokens == reference,
            "size_mb": round(sum(f.stat().st_size for f in ir_dir.iterdir() if f.is_file()) / 2**20, 2),
            "ttft_ms": timing["prefill"].median_us / 1000,
            "ms_per_token": timing["decode"].median_us / 1000,
        }
    write_json(out / "export.json", {"subnet": chosen.to_dict(), "formats": formats, "reference_tokens": reference})
    return {"formats": formats}


def _ov_greedy(ir_dir: Path, prompt: Any, new_tokens: int, pad_id: int) -> list[int]:
    from optimum.intel import OVModelForCausalLM

    model = OVModelForCausalLM.from_pretrained(ir_dir, ov_config={"INFERENCE_PRECISION_HINT": "f32"}, compile=True)
    return model.generate(prompt, max_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_id)[
        0, prompt.shape[1] :
    ].tolist()


STAGES: dict[str, Callable[[DecoderRun, Path], dict[str, Any]]] = {
    MODEL: model_stage,
    SUPERNET: supernet_stage,
    LUT: lut_stage,
    SEARCH: search_stage,
    EXPORT: export_stage,
}


# -- the run ---------------------------------------------------------------------------------------------
def run_decoder(config: DecoderRunConfig, overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) every stage in `config.out`; returns the report (also report.json / report.md there)."""
    run_dir = Path(config.out)
    preflight(config)
    with exclusive_dir(run_dir, "out"):
        _open(config, run_dir, overwrite)
        run = DecoderRun(config, run_dir)
        state_path = run_dir / STATE_FILE
        state = read_json(state_path, "state") if state_path.is_file() else {"stages": {}}
        for number, (name, stage) in enumerate(STAGES.items(), start=1):
            prefix = f"[{number}/{len(STAGES)}] {name}"
            if name in state["stages"] and (run_dir / name).is_dir():
                print(f"{prefix}: done earlier", flush=True)
                continue
            print(f"{prefix} ...", flush=True)
            start = time.perf_counter()
            with atomic_output_dir(run_dir / name, overwrite=True) as tmp:
                info = stage(run, tmp)
            state["stages"][name] = {"wall_s": round(time.perf_counter() - start, 1), **info}
            write_json(state_path, state)
            print(f"{prefix}: done in {state['stages'][name]['wall_s']} s", flush=True)
        from eftnas_deploy.app.decoder.report import write_decoder_report

        return write_decoder_report(run_dir, config, state)


def preflight(config: DecoderRunConfig) -> None:
    """Checks against the model and the LUT file that need no training: KV groups, the family, the LUT's
    geometry and lengths (a mismatch would otherwise surface after super-network training)."""
    from transformers import AutoConfig

    from eftnas_deploy.core.decoder_family import DecoderGeometry

    geometry = None
    if config.model.name:
        geometry = DecoderGeometry.from_config(AutoConfig.from_pretrained(config.model.name))
        kv_heads = geometry.num_kv_heads
    else:
        options = config.model.from_config or {}
        kv_heads = options.get("num_kv_heads", options.get("num_heads"))
    groups = config.space.kv_groups
    if groups is not None and kv_heads is not None and groups > kv_heads:
        raise EftnasError(f"space.kv_groups: {groups} > the model's {kv_heads} KV groups")
    if config.lut.file:  # a model built from a config has its vocabulary (part of the geometry) only later
        from latency_lut.decoder_table import DecoderLatencyTable

        lut = config.lut
        table = DecoderLatencyTable.load(lut.file).check(geometry, prompt_len=lut.prompt_len, new_tokens=lut.new_tokens)
        if geometry is not None:  # the space's MLP widths must lie where the table interpolates
            measured = table.phases["decode"].measured("ffn")
            widths = {round(f * geometry.intermediate_size) for f in config.space.ffn_fractions} - {0}
            outside = sorted(w for w in widths if not measured[0] <= w <= measured[-1])
            if outside:
                raise EftnasError(f"space.ffn_fractions: MLP widths {outside} lie outside the LUT's measured "
                                  f"[{measured[0]}, {measured[-1]}] ({lut.file})")  # fmt: skip


def _open(config: DecoderRunConfig, run_dir: Path, overwrite: bool) -> None:
    """Start a run dir, or resume one holding the same config (anything else is refused before any work)."""
    saved = run_dir / CONFIG_FILE
    if overwrite:
        for entry in run_dir.iterdir():
            if entry.name != LOCK_FILE:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    elif saved.is_file():
        from eftnas_deploy.app.decoder.config import load_decoder_config

        old = load_decoder_config(saved).to_dict()
        changed = sorted(k for k in old if old[k] != config.to_dict()[k] and k != "out")
        if changed:
            raise OutputDirError(f"out: {run_dir} holds a run with other {', '.join(changed)} settings; "
                                 "pass --overwrite or another --out")  # fmt: skip
        return
    elif any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        raise OutputDirError(f"out: {run_dir} is not empty and holds no decoder run; pass --overwrite")
    config.save(saved)
