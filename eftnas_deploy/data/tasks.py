"""Registry of supported tasks: GLUE (classification/regression) and SQuAD (extractive QA)."""

from __future__ import annotations

from dataclasses import dataclass

from eftnas_deploy.errors import EftnasError


@dataclass(frozen=True)
class TaskSpec:
    """What a task's data looks like and how it is scored.

    `text_columns` and `label_column` are canonical names; local files are mapped onto them.
    `label_names` maps string labels (e.g. RTE's "entailment") to ids; integer labels are kept.
    """

    name: str
    kind: str  # "classification", "regression" or "qa"
    text_columns: tuple[str, ...] = ()
    label_column: str = "label"
    num_labels: int = 2
    label_names: tuple[str, ...] = ()
    metric: str = "accuracy"
    hub_path: tuple[str, ...] = ()
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("validation",)
    headerless_columns: tuple[str, ...] = ()

    @property
    def model_task(self) -> str:
        """The model head this task needs (see `eftnas_deploy.models`)."""
        return "question-answering" if self.kind == "qa" else "text-classification"

    @property
    def model_num_labels(self) -> int:
        return 1 if self.kind == "regression" else self.num_labels

    @property
    def required_columns(self) -> tuple[str, ...]:
        if self.kind == "qa":
            return ("id", "context", "question", "answers")
        return (*self.text_columns, self.label_column)


def _glue(name: str, text: tuple[str, ...], metric: str, **kw) -> TaskSpec:
    kind = "regression" if metric == "pearson_spearman" else "classification"
    return TaskSpec(name=name, kind=kind, text_columns=text, metric=metric, hub_path=("glue", name), **kw)


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        _glue("cola", ("sentence",), "matthews"),
        _glue("sst2", ("sentence",), "accuracy"),
        _glue(
            "mrpc",
            ("sentence1", "sentence2"),
            "accuracy_f1",
            headerless_columns=("label", "id1", "id2", "sentence1", "sentence2"),
        ),
        _glue("qqp", ("question1", "question2"), "accuracy_f1"),
        _glue(
            "mnli",
            ("premise", "hypothesis"),
            "accuracy",
            num_labels=3,
            label_names=("entailment", "neutral", "contradiction"),
            eval_splits=("validation_matched", "validation_mismatched"),
        ),
        _glue("qnli", ("question", "sentence"), "accuracy", label_names=("entailment", "not_entailment")),
        _glue("rte", ("sentence1", "sentence2"), "accuracy", label_names=("entailment", "not_entailment")),
        _glue("stsb", ("sentence1", "sentence2"), "pearson_spearman", num_labels=1),
        TaskSpec(name="squad", kind="qa", metric="squad", hub_path=("squad",)),
        TaskSpec(name="squad_v2", kind="qa", metric="squad_v2", hub_path=("squad_v2",)),
    )
}
ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "squad_v1": "squad", "squad1": "squad", "squad2": "squad_v2"}


def get_task(name: str) -> TaskSpec:
    """Look up a task by name (case-insensitive; `SST-2` and `sst2` both work)."""
    key = name.lower().strip()
    key = ALIASES.get(key, key)
    if key not in TASKS:
        raise EftnasError(f"task: unknown task {name!r} (expected one of {sorted(TASKS)})")
    return TASKS[key]
