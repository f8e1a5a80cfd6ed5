"""Progressive growth (ELM): the super-network's FFN blocks are widened in stages, top PCA scores first.

Training runs in `stages` equal parts of its steps. In stage s (0-based) the first ceil(L * (s + 1) / stages)
layers of the ranking (most principal components first) sample from all their FFN choices; every other layer
is held at its narrowest non-zero FFN choice (or 0 where the space allows it). The last stage trains the whole
space. Heads are not restricted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.space import SearchSpace

GROWTH = ("none", "pca")


def pca_growth_ranking(space: SearchSpace) -> tuple[int, ...]:
    """Layers by descending PCA component count (ties: layer order), from a PCA-bounded space's metadata."""
    components = (space.metadata.get("elm") or {}).get("pca_components")
    if not components:
        raise EftnasError("growth: 'pca' needs a search space cut with space.ffn_bounds: pca (no PCA components)")
    return tuple(sorted(range(len(components)), key=lambda layer: (-components[layer], layer)))


def grown_layers(step: int, max_steps: int, num_layers: int, stages: int) -> int:
    """How many layers of the ranking are fully grown at `step` of `max_steps`."""
    stage = min(stages - 1, stages * step // max(1, max_steps))
    return math.ceil(num_layers * (stage + 1) / stages)


def growth_space(space: SearchSpace, ranking: Sequence[int], grown: int) -> SearchSpace:
    """`space` with every layer outside the first `grown` of `ranking` held at its narrowest FFN choices."""
    keep = set(ranking[:grown])
    ffn = []
    for layer, choices in enumerate(space.ffn):
        narrow = min((c for c in choices if c > 0), default=0)
        ffn.append(choices if layer in keep else tuple(c for c in choices if c <= narrow))
    choices = {name: getattr(space, name) for name in space.dimensions}
    return SearchSpace(metadata=space.metadata, **{**choices, "ffn": ffn})
