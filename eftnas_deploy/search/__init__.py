"""Multi-objective sub-network search (accuracy vs cost) on Optuna samplers."""

from eftnas_deploy.search.pareto import (
    ParetoPoint,
    hypervolume,
    non_dominated,
    select_cheapest_within_delta,
    select_most_accurate,
)
from eftnas_deploy.search.searcher import ALGORITHMS, SearchConfig, SearchResult, run_search

__all__ = [
    "ALGORITHMS",
    "ParetoPoint",
    "SearchConfig",
    "SearchResult",
    "hypervolume",
    "non_dominated",
    "run_search",
    "select_cheapest_within_delta",
    "select_most_accurate",
]
