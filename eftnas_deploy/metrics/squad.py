"""SQuAD v1.1 / v2.0 exact match and F1 with the official answer normalisation."""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace (the official rule)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    if not pred_tokens or not truth_tokens:
        # No-answer cases: both empty counts as a match.
        return float(pred_tokens == truth_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """EM and F1 (0-100) over questions; an empty reference list means "no answer" (v2.0)."""
    totals = {"exact_match": 0.0, "f1": 0.0}
    has_ans = {"exact_match": [], "f1": []}
    no_ans = {"exact_match": [], "f1": []}
    for qid, truths in references.items():
        pred = predictions.get(qid, "")
        truths = [t for t in truths if normalize_answer(t)] or [""]
        em = max(exact_match(pred, t) for t in truths)
        f = max(f1(pred, t) for t in truths)
        bucket = has_ans if truths != [""] else no_ans
        bucket["exact_match"].append(em)
        bucket["f1"].append(f)
        totals["exact_match"] += em
        totals["f1"] += f
    n = max(1, len(references))
    out = {k: 100.0 * v / n for k, v in totals.items()}
    for name, bucket in (("HasAns", has_ans), ("NoAns", no_ans)):
        if bucket["f1"]:
            out[f"{name}_exact"] = 100.0 * sum(bucket["exact_match"]) / len(bucket["exact_match"])
            out[f"{name}_f1"] = 100.0 * sum(bucket["f1"]) / len(bucket["f1"])
    return out
