"""Task data: registry, loading (hub or local files), tokenization and the held-out split."""

from eftnas_deploy.data.features import PreparedSplit, prepare_split
from eftnas_deploy.data.loading import load_split
from eftnas_deploy.data.split import held_out_split
from eftnas_deploy.data.tasks import TASKS, TaskSpec, get_task

__all__ = ["TASKS", "PreparedSplit", "TaskSpec", "get_task", "held_out_split", "load_split", "prepare_split"]
