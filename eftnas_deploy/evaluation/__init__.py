"""Task metric of a sub-network with the super-network's shared weights (no model copy)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.data.features import PreparedSplit
from eftnas_deploy.families.models import model_input_names
from eftnas_deploy.metrics.squad import squad_metrics
from eftnas_deploy.metrics.task_metrics import classification_metrics
from eftnas_deploy.supernet.elastic import SuperNetwork

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # every input any family takes


def pad_batch(rows: list[dict], pad_id: int, input_names: tuple[str, ...] = INPUT_NAMES) -> dict[str, torch.Tensor]:
    """Right-pad the model inputs (`input_names`, e.g. the model family's) of some feature rows into tensors."""
    width = max(len(r["input_ids"]) for r in rows)
    out = {}
    for name in input_names:
        if name not in rows[0]:
            continue
        fill = pad_id if name == "input_ids" else 0
        out[name] = torch.tensor([list(r[name]) + [fill] * (width - len(r[name])) for r in rows])
    return out


@torch.no_grad()
def predict_logits(
    supernet: SuperNetwork, subnet: SubnetConfig, split: PreparedSplit, batch_size: int = 64, progress: bool = False
) -> list[np.ndarray]:
    """Logits per feature (classification: [logits]; QA: [start, end]), batched in length order."""
    model = supernet.model
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = model.config.pad_token_id or 0
    names = model_input_names(model)
    features = split.features.select_columns([c for c in names if c in split.features.column_names])
    lengths = [len(ids) for ids in features["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    outputs: list[list[np.ndarray]] = []
    try:
        with supernet.activate(subnet):
            for begin in tqdm(range(0, len(order), batch_size), desc="evaluate", disable=not progress, leave=False):
                rows = features.select(order[begin : begin + batch_size].tolist())
                batch = {k: v.to(device) for k, v in pad_batch(list(rows), pad_id).items()}
                out = model(**batch)
                if split.task.kind == "qa":
                    outputs.append([out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()])
                else:
                    outputs.append([out.logits.float().cpu().numpy()])
    finally:
        model.train(was_training)
    results: list[np.ndarray] = []
    for part in range(len(outputs[0]) if outputs else 0):
        rows_in_order = [row for batch_out in outputs for row in batch_out[part]]
        restored: list[np.ndarray] = [None] * len(order)  # type: ignore[list-item]
        for position, index in enumerate(order):
            restored[index] = rows_in_order[position]
        results.append(restored)  # type: ignore[arg-type]
    return results


def evaluate(
    supernet: SuperNetwork, subnet: SubnetConfig, split: PreparedSplit, batch_size: int = 64, progress: bool = False
) -> dict[str, float]:
    """The task metric of `subnet` on `split`; `score` is the headline number (higher is better)."""
    return metrics_of_logits(split, predict_logits(supernet, subnet, split, batch_size, progress))


def metrics_of_logits(split: PreparedSplit, logits: list[list[np.ndarray]]) -> dict[str, float]:
    """`evaluate` on outputs already predicted (`predict_logits` of `split`)."""
    task = split.task
    if task.kind == "qa":
        predictions = qa_predictions(split, logits[0], logits[1], allow_no_answer=task.name == "squad_v2")
        references = {ex_id: ans["text"] for ex_id, ans in zip(split.examples["id"], split.examples["answers"])}
        metrics = squad_metrics(predictions, references)
        return {"score": metrics["f1"], **metrics}
    scores = np.stack(logits[0])
    labels = np.asarray(split.features["labels"])
    predictions = scores[:, 0] if task.kind == "regression" else scores.argmax(-1)
    metrics = classification_metrics(task.metric, predictions, labels)
    return {"score": next(iter(metrics.values())), **metrics}


def qa_predictions(
    split: PreparedSplit,
    start_logits: list[np.ndarray],
    end_logits: list[np.ndarray],
    n_best: int = 20,
    max_answer_length: int = 30,
    allow_no_answer: bool = False,
) -> dict[str, str]:
    """Best span text per example across its windows; "" when no-answer wins (SQuAD v2.0)."""
    by_example: dict[str, list[int]] = defaultdict(list)
    for i, ex_id in enumerate(split.features["example_id"]):
        by_example[ex_id].append(i)
    offsets_all = split.features["offset_mapping"]
    predictions = {}
    for ex_id, context in zip(split.examples["id"], split.examples["context"]):
        best_text, best_score, null_score = "", -np.inf, np.inf
        for i in by_example.get(ex_id, []):
            start, end, offsets = start_logits[i], end_logits[i], offsets_all[i]
            null_score = min(null_score, float(start[0] + end[0]))
            top_start = np.argsort(start)[::-1][:n_best]
            top_end = np.argsort(end)[::-1][:n_best]
            for s in top_start:
                for e in top_end:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    score = float(start[s] + end[e])
                    if score > best_score:
                        best_score, best_text = score, context[offsets[s][0] : offsets[e][1]]
        if allow_no_answer and null_score > best_score:
            best_text = ""
        predictions[ex_id] = best_text
    return predictions
