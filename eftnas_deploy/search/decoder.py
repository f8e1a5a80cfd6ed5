"""Search a decoder super-network: held-out perplexity against predicted ms per generated token (or TTFT).

Only sub-networks the stateful export takes are searched: every built layer keeps the same `kv_groups`
KV groups, and a layer either keeps its attention (with any MLP width, 0 included) or is dropped whole.
The space gives each layer the choices (kv_groups, 0) for attention and its MLP widths; `exportable`
maps a proposal to the sub-network that is evaluated and costed (a dropped attention drops the MLP too).
The searcher maximises 1 / perplexity, so its hypervolume stays in [0, 1]; outputs report perplexity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eftnas_deploy.core.decoder_family import DecoderGeometry
from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import write_json
from eftnas_deploy.core.space import SearchSpace
from eftnas_deploy.core.subnet import SubnetConfig
from eftnas_deploy.evaluation.perplexity import perplexity
from eftnas_deploy.search.pareto import ParetoPoint
from eftnas_deploy.search.searcher import SearchConfig, run_search

COSTS = ("ms_per_token", "ttft_ms")


def decoder_search_space(
    geometry: DecoderGeometry,
    ffn_widths: Sequence[int],
    kv_groups: int | None = None,
    drop_layers: bool = True,
) -> SearchSpace:
    """Per layer: attention with `kv_groups` (default: all) or none (`drop_layers`), MLP at `ffn_widths`."""
    groups = geometry.num_kv_heads if kv_groups is None else kv_groups
    if not 0 < groups <= geometry.num_kv_heads:
        raise EftnasError(f"kv_groups: must be in [1, {geometry.num_kv_heads}], got {groups}")
    widths = sorted({int(w) for w in ffn_widths}, reverse=True)
    if not widths or widths[-1] < 0 or widths[0] > geometry.intermediate_size:
        raise EftnasError(f"ffn_widths: {list(ffn_widths)} must lie in [0, {geometry.intermediate_size}]")
    heads = (groups, 0) if drop_layers else (groups,)
    return SearchSpace(heads=[heads] * geometry.num_layers, ffn=[tuple(widths)] * geometry.num_layers)


def cheapest_built(space: SearchSpace) -> SubnetConfig:
    """The space's smallest sub-network with its first layer's attention kept (the least that exports)."""
    smallest = space.smallest()
    return smallest.replace(heads=[space.heads[0][0], *smallest.heads[1:]])


def exportable(subnet: SubnetConfig) -> SubnetConfig:
    """`subnet` with the MLP of every layer without attention dropped too (the layer is then not built)."""
    return subnet.replace(ffn=[f if h else 0 for h, f in zip(subnet.heads, subnet.ffn)])


def search_decoder(
    supernet: Any,
    space: SearchSpace,
    blocks: Any,
    out_dir: str | Path,
    config: SearchConfig,
    latency: dict[str, Callable[[SubnetConfig], float]],
    objective: str = "ms_per_token",
    max_ms_per_token: float | None = None,
    max_ttft_ms: float | None = None,
    batch_size: int = 8,
    pad_token_id: int | None = None,
) -> dict[str, Any]:
    """Search `space` for the perplexity / latency front on held-out `blocks`; the summary is written to disk.

    `latency` maps "ms_per_token" and/or "ttft_ms" to predictors (a decoder LUT's `predict_ms_per_token`,
    `predict_ttft_ms`); `objective` names the one traded against perplexity, `max_*` are hard budgets.
    """
    if objective not in COSTS or objective not in latency:
        raise EftnasError(f"objective: {objective!r} needs a predictor in latency ({sorted(latency)})")
    limits = [(name, v) for name, v in (("ms_per_token", max_ms_per_token), ("ttft_ms", max_ttft_ms)) if v is not None]
    for name, value in limits:
        if name not in latency:
            raise EftnasError(f"max_{name}: a budget on {name} needs its predictor in latency")
        if value <= 0:
            raise EftnasError(f"max_{name}: must be > 0, got {value}")
    supernet.validate_space(space)
    scores: dict[SubnetConfig, float] = {}

    def ppl(subnet: SubnetConfig) -> float:
        subnet = exportable(subnet)
        if subnet not in scores:
            result = perplexity(supernet, subnet, blocks, batch_size=batch_size, pad_token_id=pad_token_id)
            scores[subnet] = result["perplexity"]
        return scores[subnet]

    floor = exportable(cheapest_built(space))

    def cost(name: str) -> Callable[[SubnetConfig], float]:
        """The predictor on the deployed sub-network; one that builds no layer (infeasible, see `violation`)
        is costed as the cheapest that builds one, since a LUT cannot price a model that does not export."""

        def predict(subnet: SubnetConfig) -> float:
            subnet = exportable(subnet)
            return latency[name](subnet if any(subnet.heads) else floor)

        return predict

    def violation(subnet: SubnetConfig) -> float:
        """≤ 1 when feasible: within every budget, and at least one layer built (else nothing exports)."""
        if not any(exportable(subnet).heads):
            return 2.0
        return 1.0 + max((cost(name)(subnet) - limit) / limit for name, limit in limits) if limits else 0.0

    if violation(cheapest_built(space)) > 1.0:
        raise EftnasError(f"budget: {dict(limits)} is below the smallest sub-network of the space; nothing fits")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(config, max_cost=1.0, storage=out_dir / "search_trials.jsonl", identity=None)
    result = run_search(space, lambda s: 1.0 / ppl(s), cost(objective), config, constraint_fn=violation)
    front = _unique_front(result.front)
    chosen = max(front, key=lambda p: (p.accuracy, -p.cost))
    summary = {
        "objective": objective,
        "budget": dict(limits),
        "trials": result.trials,
        "feasible_evaluated": result.feasible_evaluated,
        "warning": result.warning,
        "front": [_record(p.subnet, ppl, latency) for p in front],
        "chosen": _record(chosen.subnet, ppl, latency),
        "full": _record(space.largest(), ppl, latency),
    }
    exportable(chosen.subnet).save(out_dir / "subnet.json")
    write_json(out_dir / "decoder_search.json", summary)
    plot_decoder_front(out_dir / "perplexity_vs_latency.png", summary, objective)
    return summary


def _unique_front(front: list[ParetoPoint]) -> list[ParetoPoint]:
    """One point per exportable sub-network (proposals that differ only in a dropped layer's MLP coincide)."""
    seen: dict[SubnetConfig, ParetoPoint] = {}
    for point in front:
        seen.setdefault(exportable(point.subnet), dataclasses.replace(point, subnet=exportable(point.subnet)))
    return sorted(seen.values(), key=lambda p: p.cost)


def _record(
    subnet: SubnetConfig, ppl: Callable[[SubnetConfig], float], latency: dict[str, Callable[[SubnetConfig], float]]
) -> dict[str, Any]:
    subnet = exportable(subnet)
    return {"subnet": subnet.to_dict(), "perplexity": ppl(subnet), **{k: fn(subnet) for k, fn in latency.items()}}


def plot_decoder_front(path: str | Path, summary: dict[str, Any], objective: str) -> None:
    """Perplexity (lower is better) against the latency objective: the front, the chosen and the full model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = {"ms_per_token": "predicted ms per generated token", "ttft_ms": "predicted time to first token (ms)"}
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    front = summary["front"]
    ax.step([p[objective] for p in front], [p["perplexity"] for p in front], where="post", c="tab:blue", lw=1)
    ax.scatter([p[objective] for p in front], [p["perplexity"] for p in front], s=18, c="tab:blue", label="front")
    for key, style in (("full", dict(marker="*", s=120, c="tab:red")), ("chosen", dict(marker="D", s=60, c="g"))):
        ax.scatter([summary[key][objective]], [summary[key]["perplexity"]], label=key, zorder=5, **style)
    for name, limit in summary["budget"].items():
        if name == objective:
            ax.axvline(limit, ls="--", c="tab:green", label=f"budget {limit:g}")
    ax.set(xlabel=label[objective], ylabel="held-out perplexity", title="Perplexity vs latency")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
