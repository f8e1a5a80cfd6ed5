"""A self-describing super-network directory: one descriptor file, one writer, one reader.

`supernet.json` records what every later step needs without being told again: the task (and so the model
head), the model family, the search space and its kind, the data settings the held-out split is rebuilt
from, the training settings and the teacher. `train-supernet` and the pipeline's super-network stage both
write it with `write_descriptor`; `search`, `export`, `slice` and the pipeline stages read it with
`read_descriptor` / `resolve_task`. Directories written before it existed still load: search rebuilds the
held-out split from their `train_config.json` (either the command's or the pipeline's schema), export and
slice go by the model's head as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.io import read_json, write_json

DESCRIPTOR_FILE = "supernet.json"
LEGACY_CONFIG_FILE = "train_config.json"  # written before the descriptor, by two writers with two schemas
FORMAT_VERSION = 1
DATA_KEYS = ("train_file", "columns", "max_train_rows", "held_out_fraction", "max_length")


@dataclass(frozen=True)
class SupernetDescriptor:
    """The contents of `supernet.json` (or what an old directory's side files say)."""

    task: str | None  # a task of the registry (sst2, squad, ...); None: an old directory that names none
    model_type: str | None = None
    head: str | None = None  # text-classification / question-answering / ...
    search_space: dict[str, Any] = field(default_factory=dict)  # {"kind": ..., "file": ..., "size": ...}
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    teacher: str | None = None
    seed: int = 0
    format_version: int = FORMAT_VERSION
    source: str = DESCRIPTOR_FILE  # the file this was read from (the legacy side file for old directories)
    # LoRA super-adapters on a frozen base (`supernet.adapters: lora`): {"kind": "lora", "dir": "adapter",
    # "max_rank", "alpha", "groups", ...}; the directory's weights are then the frozen base. None: plain.
    adapters: dict[str, Any] | None = None
    sparsity: dict[str, Any] | None = None  # {"method": "wanda", "target", "masks": "masks.safetensors", ...}

    def to_dict(self) -> dict[str, Any]:
        extra = {k: v for k, v in (("adapters", self.adapters), ("sparsity", self.sparsity)) if v is not None}
        return {**self._core(), **extra}

    def _core(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "task": self.task,
            "model": {"type": self.model_type, "head": self.head},
            "search_space": self.search_space,
            "data": self.data,
            "training": self.training,
            "teacher": self.teacher,
            "seed": self.seed,
        }


def write_descriptor(
    directory: str | Path,
    *,
    task: str,
    model_type: str,
    head: str,
    space: Any,
    space_kind: str,
    data: dict[str, Any],
    training: dict[str, Any],
    teacher: str | None,
    seed: int,
    adapters: dict[str, Any] | None = None,
    sparsity: dict[str, Any] | None = None,
) -> SupernetDescriptor:
    """Write `directory/supernet.json` (the search space itself stays in search_space.json beside it)."""
    descriptor = SupernetDescriptor(
        task=task,
        model_type=model_type,
        head=head,
        search_space={"kind": space_kind, "file": "search_space.json", "size": space.size()},
        data={k: data.get(k) for k in DATA_KEYS},
        training=training,
        teacher=teacher,
        seed=seed,
        adapters=adapters,
        sparsity=sparsity,
    )
    write_json(Path(directory) / DESCRIPTOR_FILE, descriptor.to_dict())
    return descriptor


def read_descriptor(directory: str | Path) -> SupernetDescriptor:
    """The descriptor of a super-network directory; old directories fall back to their train_config.json.

    A directory with neither file gives a descriptor with `task=None` (the caller then goes by the model head).
    """
    directory = Path(directory)
    path = directory / DESCRIPTOR_FILE
    if path.is_file():
        record = read_json(path, "supernet descriptor")
        if not isinstance(record, dict) or not isinstance(record.get("model"), dict):
            raise EftnasError(f"supernet: {path} is not a super-network descriptor (no 'model' object)")
        version = record.get("format_version")
        if version != FORMAT_VERSION:
            raise EftnasError(
                f"format_version: {path} has format_version {version!r}; this eftnas-deploy reads {FORMAT_VERSION}"
            )
        if not record.get("task"):
            raise EftnasError(f"task: {path} names no task")
        return SupernetDescriptor(
            task=record["task"],
            model_type=record["model"].get("type"),
            head=record["model"].get("head"),
            search_space=record.get("search_space") or {},
            data=record.get("data") or {},
            training=record.get("training") or {},
            teacher=record.get("teacher"),
            seed=int(record.get("seed", 0)),
            adapters=record.get("adapters"),
            sparsity=record.get("sparsity"),
        )
    legacy = directory / LEGACY_CONFIG_FILE
    if legacy.is_file():
        record = read_json(legacy, "supernet train_config")
        if not isinstance(record, dict):
            raise EftnasError(f"supernet: {legacy} is not a mapping")
        return SupernetDescriptor(
            task=record.get("task") or None,
            data={k: record.get(k) for k in DATA_KEYS if k in record},
            training={k: record[k] for k in ("strategy", "num_random", "epochs", "lr") if k in record},
            teacher=record.get("teacher"),
            seed=int(record.get("seed", 0)),
            format_version=0,
            source=LEGACY_CONFIG_FILE,
        )
    return SupernetDescriptor(task=None, format_version=0, source="")


def resolve_task(
    directory: str | Path, asked: str | None, what: str = "supernet", flag: str = "--task"
) -> tuple[str, Any | None]:
    """(model head, task spec or None) for a super-network directory, with an optional `--task` from the user.

    Without `asked` the descriptor's task is used (old directories without one: the model's head). An `asked`
    head or task that disagrees with the descriptor is refused, naming the field.
    """
    from eftnas_deploy.data.tasks import get_task
    from eftnas_deploy.families.sources import infer_task
    from exporters.calibration import resolve_task as parse_task

    descriptor = read_descriptor(directory)
    # Old directories keep their old behaviour here (the model's head decides): their train_config.json was
    # never read for the head, and for the command's schema it also named data flags export does not share.
    described = descriptor.task and descriptor.source == DESCRIPTOR_FILE
    recorded = get_task(descriptor.task) if described else None
    if asked is None:
        if recorded is not None:
            return recorded.model_task, recorded
        return infer_task(str(directory), what), None
    head, spec = parse_task(asked)
    if recorded is not None:
        where = Path(directory) / descriptor.source
        if head != recorded.model_task or (spec is not None and spec.name != recorded.name):
            raise EftnasError(
                f"task: {flag} {asked} conflicts with field 'task' of {where}: the super-network was trained for "
                f"{recorded.name} (a {recorded.model_task} model), not {asked}; drop {flag} to use the recorded task"
            )
        return head, spec or recorded
    return head, spec


def load_supernet(directory: str | Path, head: str, adapter_dir: str | Path | None = None) -> Any:
    """The super-network a directory holds, as its descriptor says: a `SuperNetwork`, or for LoRA super-adapters
    a `LoraSuperNetwork` (frozen base + the peft super-adapter in `adapter_dir`, default the recorded one, and
    the sparsity keep-masks)."""
    from eftnas_deploy.supernet.elastic import SuperNetwork

    directory = Path(directory)
    descriptor = read_descriptor(directory)
    adapters = descriptor.adapters
    if not adapters or adapters.get("kind") in (None, "none"):
        if adapter_dir is not None:
            raise EftnasError(f"supernet: {directory} holds no adapters ({DESCRIPTOR_FILE} records none)")
        return SuperNetwork.from_pretrained(str(directory), task=head)
    if adapters.get("kind") != "lora":
        raise EftnasError(f"adapters: {directory / DESCRIPTOR_FILE} records adapters of kind {adapters.get('kind')!r}")
    from eftnas_deploy.lora.supernet import LoraSuperNetwork

    masks = (descriptor.sparsity or {}).get("masks")
    return LoraSuperNetwork.from_pretrained(
        directory, adapter_dir or directory / adapters.get("dir", "adapter"), task=head,
        masks_file=directory / masks if masks else None,
    )  # fmt: skip


def deployable(supernet: Any, subnet: Any) -> tuple[Any, Any]:
    """(super-network, sub-network) to slice for deployment: a LoRA super-network's sub-adapter is merged into a
    copy of its base first (sparsity kept) and the merged model sliced to the widths; others as they are."""
    if not hasattr(supernet, "merged"):
        return supernet, subnet
    from eftnas_deploy.lora.supernet import widths_only

    merged = supernet.merged(subnet)
    merged.model.eval()
    return merged, widths_only(subnet)


def timing_supernet(supernet: Any, directory: str | Path) -> Any:
    """A plain super-network to time sub-networks with (LoRA: the base alone; ranks cost nothing once merged)."""
    if not hasattr(supernet, "merged"):
        return supernet
    from eftnas_deploy.supernet.elastic import SuperNetwork

    return SuperNetwork.from_pretrained(str(directory), task=supernet.geometry.task)


def require_descriptor(directory: str | Path) -> SupernetDescriptor:
    """The descriptor of a super-network directory, refused when it has none or it names no task."""
    directory = Path(directory)
    descriptor = read_descriptor(directory)
    if not descriptor.source:
        raise EftnasError(
            f"supernet: {directory} has neither {DESCRIPTOR_FILE} nor {LEGACY_CONFIG_FILE} "
            "(a `train-supernet` output is expected)"
        )
    if not descriptor.task:
        raise EftnasError(f"task: {directory / descriptor.source} names no task")
    return descriptor


def held_out_from_supernet(directory: str | Path, tokenizer: Any, max_length: int | None = None):
    """The tokenized held-out split of a super-network directory, rebuilt from its descriptor and held_out.json."""
    from eftnas_deploy.data import get_task, held_out_split, load_split, prepare_split
    from eftnas_deploy.data.loading import parse_columns, subsample_rows

    directory = Path(directory)
    descriptor = require_descriptor(directory)
    task, data = get_task(descriptor.task), descriptor.data
    rows = load_split(task, data.get("train_file"), columns=parse_columns(data.get("columns")))
    rows = subsample_rows(rows, data.get("max_train_rows"), descriptor.seed)
    _, held = held_out_split(rows, directory, data.get("held_out_fraction") or 0.1, descriptor.seed)
    return prepare_split(task, held, tokenizer, max_length or data.get("max_length") or 128)
