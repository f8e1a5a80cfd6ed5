"""Registry of supported tasks: GLUE (classification/regression) and SQuAD (extractive QA)."""

from __future__ import annotations

from dataclasses import dataclass

from eftnas_deploy.core.errors import EftnasError


@dataclass(frozen=True)
class TaskSpec:
    """What a task's data looks like and how it is scored.

    `text_columns` and `label_column` are canonical names; local files are mapped onto them.
    `label_names` maps string labels (e.g. RTE's "entailment") to ids; integer labels are kept.
    `class_names` names integer classes (the hub dataset's ClassLabel names) for `id2label`.
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
    class_names: tuple[str, ...] = ()

    @property
    def id2label(self) -> dict[int, str] | None:
        """Class names by id for a classification model's config (None for regression and QA)."""
        names = self.label_names or self.class_names
        return dict(enumerate(names)) if self.kind == "classification" and names else None

    def label_config(self) -> dict[str, dict]:
        """`id2label`/`label2id` keyword arguments for an HF config (empty where the task has no class names)."""
        id2label = self.id2label
        return {} if id2label is None else {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}

    @property
    def model_task(self) -> str:
        """The model head this task needs (see `eftnas_deploy.families.models`)."""
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
        _glue("cola", ("sentence",), "matthews", class_names=("unacceptable", "acceptable")),
        _glue("sst2", ("sentence",), "accuracy", class_names=("negative", "positive")),
        _glue(
            "mrpc",
            ("sentence1", "sentence2"),
            "accuracy_f1",
            headerless_columns=("label", "id1", "id2", "sentence1", "sentence2"),
            class_names=("not_equivalent", "equivalent"),
        ),
        _glue("qqp", ("question1", "question2"), "accuracy_f1", class_names=("not_duplicate", "duplicate")),
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
