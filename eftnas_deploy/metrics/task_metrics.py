"""Task metrics computed locally (scikit-learn / scipy): one function per GLUE metric family."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from eftnas_deploy.core.errors import EftnasError


def classification_metrics(metric: str, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Metrics of a GLUE task from predicted and true labels (regression: predicted scores).

    `metric` is the task's metric name; the first key of the result is the headline score.
    """
    if metric == "accuracy":
        return {"accuracy": float(accuracy_score(labels, predictions))}
    if metric == "accuracy_f1":
        acc = float(accuracy_score(labels, predictions))
        f1 = float(f1_score(labels, predictions, zero_division=0))
        return {"accuracy_f1": (acc + f1) / 2, "accuracy": acc, "f1": f1}
    if metric == "matthews":
        return {"matthews_correlation": float(matthews_corrcoef(labels, predictions))}
    if metric == "pearson_spearman":
        predictions = np.asarray(predictions, dtype=float).reshape(-1)
        labels = np.asarray(labels, dtype=float).reshape(-1)
        if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
            pearson = spearman = 0.0  # undefined for constant input; report no correlation
        else:
            pearson = float(pearsonr(predictions, labels)[0])
            spearman = float(spearmanr(predictions, labels)[0])
        return {"pearson_spearman": (pearson + spearman) / 2, "pearson": pearson, "spearmanr": spearman}
    raise EftnasError(f"metric: unknown metric {metric!r}")
