"""Plain text for causal-LM training and perplexity: read, tokenize, group into fixed-length blocks.

`read_texts` takes a local .txt (one text per non-empty line) or .jsonl file (one object per line, its
`text_column`), or a dataset name for `datasets.load_dataset`. `group_texts` tokenizes the texts, ends each with
the tokenizer's eos token, concatenates them and cuts the stream into `block_size` blocks, dropping the last
partial block (as HF's run_clm.py does); every block is real text, so labels are its input ids.
`synthetic_corpus` and `train_causal_tokenizer` make a tiny offline corpus and its tokenizer (tests, demos).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.data.synthetic import make_dataset

TEXT_SUFFIXES = (".txt", ".jsonl")
PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
IGNORE_INDEX = -100  # label of positions the loss skips (padding)


def read_texts(
    source: str | Path,
    split: str = "train",
    text_column: str = "text",
    config: str | None = None,
    limit: int | None = None,
    **load_kwargs: Any,
) -> list[str]:
    """The texts of a local .txt/.jsonl file, or of `split` of the dataset `source` (its `text_column`).

    A dataset is a hub name or a local dataset directory; `load_kwargs` go to `datasets.load_dataset`
    (data_files, cache_dir, revision, ...). Blank texts are left out.
    """
    path = Path(source)
    if path.suffix in TEXT_SUFFIXES and path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        if path.suffix == ".txt":
            texts = [line for line in lines if line.strip()]
        else:
            texts = []
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or text_column not in row:
                    raise EftnasError(f"{path}:{number}: no {text_column!r} field")
                texts.append(str(row[text_column]))
    elif path.suffix in TEXT_SUFFIXES:
        raise EftnasError(f"text file: {path} does not exist")
    else:
        data = datasets.load_dataset(str(source), config, split=split, **load_kwargs)
        if text_column not in data.column_names:
            raise EftnasError(f"text_column: {text_column!r} is not a column of {source} ({data.column_names})")
        texts = [t for t in data[text_column] if t and t.strip()]
    return texts[:limit] if limit is not None else texts


def group_texts(texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, block_size: int) -> datasets.Dataset:
    """Blocks of `block_size` tokens (input_ids, attention_mask, labels) cut from the eos-joined token stream."""
    if block_size < 2:
        raise EftnasError(f"block_size: needs at least 2 tokens, got {block_size}")
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        stream.extend(ids + eos)
    count = len(stream) // block_size
    if count == 0:
        raise EftnasError(f"block_size: the texts hold {len(stream)} tokens, fewer than one block of {block_size}")
    blocks = [stream[i * block_size : (i + 1) * block_size] for i in range(count)]
    return datasets.Dataset.from_dict(
        {"input_ids": blocks, "attention_mask": [[1] * block_size] * count, "labels": [list(b) for b in blocks]}
    )


class CausalLMCollator:
    """Right-pads rows of input_ids (+ attention_mask, labels) into tensors; padded labels are -100.

    Rows without labels take their input ids as labels (the model shifts them itself).
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids, mask, labels = [], [], []
        for row in rows:
            row_ids = [int(t) for t in row["input_ids"]]
            row_mask = [int(m) for m in row.get("attention_mask", [1] * len(row_ids))]
            row_labels = [int(t) for t in row.get("labels", row_ids)]
            row_labels = [t if m else IGNORE_INDEX for t, m in zip(row_labels, row_mask)]
            pad = width - len(row_ids)
            ids.append(row_ids + [self.pad_token_id] * pad)
            mask.append(row_mask + [0] * pad)
            labels.append(row_labels + [IGNORE_INDEX] * pad)
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}


def synthetic_corpus(n: int, seed: int = 0) -> list[str]:
    """`n` sentences of the embedded grammar (`data.synthetic`), reproducible from `seed`."""
    return [example.text for example in make_dataset(n, seed=seed)]


def train_causal_tokenizer(
    texts: Sequence[str], vocab_size: int = 256, model_max_length: int = 128
) -> PreTrainedTokenizerFast:
    """A lowercase BPE tokenizer trained offline on `texts`: <pad>, <unk>, <eos>; no template (causal LM)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    suffix = "</w>"
    tokenizer = Tokenizer(models.BPE(unk_token=UNK, end_of_word_suffix=suffix))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, UNK, EOS], end_of_word_suffix=suffix)
    tokenizer.train_from_iterator(list(texts), trainer)
    tokenizer.decoder = decoders.BPEDecoder(suffix=suffix)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=EOS,
        model_max_length=model_max_length,
    )
