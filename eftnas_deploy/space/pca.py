"""PCA-guided FFN bounds (ELM): each layer's FFN widths follow the principal components its activations need.

`pca_ffn_scores` replaces the (sorted) FFN importance by a per-position score -(j + 0.5) / k_l, where k_l is
the number of principal components layer l's FFN activations need to explain the chosen variance fraction.
A global threshold on it keeps the first ~c * k_l neurons of every layer, so FFN widths at each MAC target
are proportional to k_l (capped at the full width): layers whose activations need more components stay
wider. The importance-threshold generator then cuts the space as usual (heads still by importance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from eftnas_deploy.core.errors import SearchSpaceError
from eftnas_deploy.importance.scores import ImportanceScores


def pca_ffn_scores(scores: ImportanceScores, components: Sequence[int]) -> ImportanceScores:
    """`scores` (importance-sorted) with FFN scores -(j + 0.5) / components[layer] for neuron position j."""
    g = scores.geometry
    if len(components) != g.num_layers or any(not 1 <= k <= g.intermediate_size for k in components):
        raise SearchSpaceError(
            f"pca components: need one count in [1, {g.intermediate_size}] per layer ({g.num_layers}), "
            f"got {list(components)}"
        )
    position = torch.arange(g.intermediate_size, dtype=torch.float32) + 0.5
    ffn = torch.stack([-position / k for k in components])
    metadata = {**scores.metadata, "ffn_scores": "pca", "pca_components": list(components)}
    return replace(scores, ffn=ffn, metadata=metadata)
