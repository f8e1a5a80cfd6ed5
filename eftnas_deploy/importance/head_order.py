"""Head orders for the reorder: by importance, by CKA diversity, or both (`space.head_order`).

"cka": greedy, starting from the most important head, repeatedly append the head whose largest CKA with the
heads already chosen is the lowest (the least redundant one; ties go to the more important head), so every
prefix the super-network keeps is the most dissimilar set found. "cka+importance": heads sorted by the mean of
their position in that CKA order and in the importance order (ties: importance).
"""

from __future__ import annotations

import torch

from eftnas_deploy.core.errors import EftnasError

HEAD_ORDERS = ("importance", "cka", "cka+importance")


def importance_order(importance: torch.Tensor) -> list[int]:
    """Heads by descending importance (stable)."""
    return torch.sort(importance, descending=True, stable=True).indices.tolist()


def cka_order(cka: torch.Tensor, importance: torch.Tensor) -> list[int]:
    """Greedy most-dissimilar-first order of one layer's heads from their [heads, heads] CKA matrix."""
    by_importance = importance_order(importance)
    rank = {h: i for i, h in enumerate(by_importance)}
    chosen = [by_importance[0]]
    remaining = by_importance[1:]
    while remaining:
        redundancy = {h: float(cka[h, chosen].max()) for h in remaining}
        best = min(remaining, key=lambda h: (redundancy[h], rank[h]))
        chosen.append(best)
        remaining.remove(best)
    return chosen


def combined_order(cka: torch.Tensor, importance: torch.Tensor) -> list[int]:
    """Heads by the mean of their CKA-order and importance-order positions (ties: importance)."""
    by_importance = importance_order(importance)
    imp_rank = {h: i for i, h in enumerate(by_importance)}
    cka_rank = {h: i for i, h in enumerate(cka_order(cka, importance))}
    return sorted(by_importance, key=lambda h: (cka_rank[h] + imp_rank[h], imp_rank[h]))


def head_orders(method: str, importance: torch.Tensor, cka: torch.Tensor | None = None) -> list[list[int]]:
    """Per-layer head orders ([layers, heads] importance, [layers, heads, heads] CKA for the CKA methods)."""
    if method not in HEAD_ORDERS:
        raise EftnasError(f"head_order: {method!r} is not one of {HEAD_ORDERS}")
    if method == "importance":
        return [importance_order(row) for row in importance]
    if cka is None or cka.shape != (*importance.shape, importance.shape[1]):
        raise EftnasError(f"head_order: {method!r} needs a [layers, heads, heads] CKA matrix per layer")
    order = cka_order if method == "cka" else combined_order
    return [order(c, row) for c, row in zip(cka, importance)]
