"""Tokenization: sentence(-pair) classification and SQuAD sliding-window features with offsets."""

from __future__ import annotations

from dataclasses import dataclass

import datasets
from transformers import PreTrainedTokenizerBase

from eftnas_deploy.data.tasks import TaskSpec


@dataclass
class PreparedSplit:
    """A tokenized split ready for training or `evaluate`.

    `features` holds model inputs (plus `labels`, or `start_positions`/`end_positions` for QA training).
    For QA evaluation `examples` are the raw rows and `features` carry `example_id` and `offset_mapping`.
    """

    task: TaskSpec
    features: datasets.Dataset
    examples: datasets.Dataset | None = None

    def __len__(self) -> int:
        return len(self.examples) if self.examples is not None else len(self.features)


def tokenize_classification(
    task: TaskSpec, data: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int = 128
) -> PreparedSplit:
    """Encode the task's text column(s) (truncated, unpadded) and keep the label as `labels`."""

    def encode(batch: dict) -> dict:
        texts = [batch[c] for c in task.text_columns]
        enc = tokenizer(*texts, truncation=True, max_length=max_length)
        enc["labels"] = batch["label"]
        return enc

    features = data.map(encode, batched=True, remove_columns=data.column_names, desc="tokenize")
    return PreparedSplit(task, features)


def _windows(tokenizer: PreTrainedTokenizerBase, max_length: int, stride: int) -> dict:
    pad_right = tokenizer.padding_side == "right"
    return dict(
        truncation="only_second" if pad_right else "only_first",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )


def _encode_qa(batch: dict, tokenizer: PreTrainedTokenizerBase, max_length: int, stride: int) -> dict:
    questions = [q.lstrip() for q in batch["question"]]
    _check_question_lengths(batch, questions, tokenizer, max_length, stride)
    return tokenizer(questions, batch["context"], **_windows(tokenizer, max_length, stride))


def _check_question_lengths(
    batch: dict, questions: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int, stride: int
) -> None:
    """Refuse a question that leaves no room for a context window (the tokenizer would abort the process)."""
    from eftnas_deploy.core.errors import EftnasError

    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for i, n in enumerate(lengths):
        if room - n <= stride:
            ident = batch["id"][i] if "id" in batch else i
            raise EftnasError(
                f"question: example {ident!r} has {n} tokens; with max_length {max_length} and stride {stride} no "
                f"context window fits (questions must stay under {room - stride} tokens): raise max_length "
                "or drop the example"
            )


def tokenize_qa_train(
    task: TaskSpec, data: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int = 384, stride: int = 128
) -> PreparedSplit:
    """Sliding windows over the context; a window without the answer points at [CLS] (index 0)."""

    def encode(batch: dict) -> dict:
        enc = _encode_qa(batch, tokenizer, max_length, stride)
        starts, ends = [], []
        for i, offsets in enumerate(enc["offset_mapping"]):
            example = enc["overflow_to_sample_mapping"][i]
            answers = batch["answers"][example]
            sequence_ids = enc.sequence_ids(i)
            start, end = 0, 0
            if answers["answer_start"]:
                char_start = answers["answer_start"][0]
                char_end = char_start + len(answers["text"][0])
                context = [k for k, s in enumerate(sequence_ids) if s == 1]
                first, last = context[0], context[-1]
                if offsets[first][0] <= char_start and offsets[last][1] >= char_end:
                    start = next(k for k in range(first, last + 1) if offsets[k][1] > char_start)
                    end = next(k for k in range(last, first - 1, -1) if offsets[k][0] < char_end)
            starts.append(start)
            ends.append(end)
        enc["start_positions"] = starts
        enc["end_positions"] = ends
        enc.pop("offset_mapping")
        enc.pop("overflow_to_sample_mapping")
        return enc

    features = data.map(encode, batched=True, remove_columns=data.column_names, desc="QA train windows")
    return PreparedSplit(task, features)


def tokenize_qa_eval(
    task: TaskSpec, data: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int = 384, stride: int = 128
) -> PreparedSplit:
    """Windows with `example_id` and context-only `offset_mapping` (None elsewhere) for answer extraction."""

    def encode(batch: dict) -> dict:
        enc = _encode_qa(batch, tokenizer, max_length, stride)
        enc["example_id"] = [batch["id"][j] for j in enc.pop("overflow_to_sample_mapping")]
        enc["offset_mapping"] = [
            [o if s == 1 else None for o, s in zip(offsets, enc.sequence_ids(i))]
            for i, offsets in enumerate(enc["offset_mapping"])
        ]
        return enc

    features = data.map(encode, batched=True, remove_columns=data.column_names, desc="QA eval windows")
    return PreparedSplit(task, features, examples=data)


def prepare_split(
    task: TaskSpec,
    data: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int = 128,
    stride: int = 128,
    train: bool = False,
) -> PreparedSplit:
    """Tokenize a split for training (`train=True`) or evaluation."""
    if task.kind != "qa":
        return tokenize_classification(task, data, tokenizer, max_length)
    fn = tokenize_qa_train if train else tokenize_qa_eval
    return fn(task, data, tokenizer, max_length, min(stride, max_length // 2))
