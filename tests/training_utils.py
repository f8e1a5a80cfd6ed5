"""Shared helpers for the training tests: a tiny super-network on real SST-2 rows and the shared tokenizer."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, TrainerCallback

from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data import get_task, load_split, prepare_split
from eftnas_deploy.evaluation import pad_batch
from eftnas_deploy.supernet.elastic import SuperNetwork
from tests.conftest import SHARED_DATA, tiny_model

TOKENIZER_DIR = SHARED_DATA / "tokenizers" / "bert-base-uncased"


def tokenizer():
    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


def sst2_split(rows: int = 64, max_length: int = 32, file: str = "train.tsv"):
    task = get_task("sst2")
    data = load_split(task, SHARED_DATA / "glue" / "SST-2" / file).select(range(rows))
    return prepare_split(task, data, tokenizer(), max_length=max_length, train=True)


def tiny_supernet(task: str = "text-classification", seed: int = 0, **overrides) -> SuperNetwork:
    model = tiny_model(
        "bert",
        task,
        seed=seed,
        **{"vocab_size": 30522, "max_position_embeddings": 128, "num_hidden_layers": 2, **overrides},
    )
    return SuperNetwork(model)


def small_space(supernet: SuperNetwork) -> SearchSpace:
    g = supernet.geometry
    return SearchSpace.full_range(g, head_step=1, ffn_step=g.intermediate_size // 4)


@torch.no_grad()
def mean_task_loss(supernet: SuperNetwork, subnet: SubnetConfig, split, batch_size: int = 64) -> float:
    """Mean task loss of a sub-network over a prepared split (eval mode)."""
    model = supernet.model
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    rows = list(split.features)
    label_keys = [k for k in ("labels", "start_positions", "end_positions") if k in rows[0]]
    with supernet.activate(subnet):
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            batch = pad_batch(chunk, model.config.pad_token_id or 0)
            batch.update({k: torch.tensor([r[k] for r in chunk]) for k in label_keys})
            total += model(**batch).loss.item() * len(chunk)
            n += len(chunk)
    model.train(was_training)
    return total / n


class StopAt(TrainerCallback):
    """Stops a Trainer after global step `step` (a kill between checkpoints, for resume tests)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control


def kd_trainer(tmp_path, kd, teacher, strategy: str = "standard", distill_from: str = "teacher"):
    """A 2-step SuperNetTrainer of a tiny super-network distilling from `teacher` with `kd`, and one batch."""
    from eftnas_deploy.training import SuperNetTrainer, collator_for, training_arguments

    net = tiny_supernet(hidden_size=32, intermediate_size=64)
    split = sst2_split(rows=24, max_length=16)
    args = training_arguments(
        tmp_path, max_steps=2, per_device_train_batch_size=8, logging_steps=1000, disable_tqdm=True, seed=0
    )
    trainer = SuperNetTrainer(
        supernet=net, search_space=small_space(net), strategy=strategy, teacher=teacher, kd=kd,
        distill_from=distill_from, args=args, train_dataset=split.features,
        data_collator=collator_for(split, tokenizer()),
    )  # fmt: skip
    batch = collator_for(split, tokenizer())([split.features[i] for i in range(8)])
    return trainer, dict(batch)


def kd_loss_and_outputs(tmp_path, kd, teacher):
    """The trainer's training loss on one batch under `kd` (dropout off), and the student's and teacher's outputs
    on that batch with hidden states: (loss, student outputs, teacher outputs, batch)."""
    trainer, batch = kd_trainer(tmp_path, kd, teacher)
    model = trainer.model.eval()
    model.training = True  # compute_loss distils only in training; dropout (its children) stays off
    trainer._teacher_logits = trainer._external_teacher_logits(batch)
    hidden_requested = trainer._teacher_hidden is not None
    loss = trainer.compute_loss(model, batch).item()
    model.eval()
    with torch.no_grad():
        student = model(**batch, output_hidden_states=True)
        reference = teacher(**{k: v for k, v in batch.items() if k != "labels"}, output_hidden_states=True)
    assert hidden_requested == kd.needs_hidden_states  # hidden states only when a term needs them
    return loss, student, reference, batch
