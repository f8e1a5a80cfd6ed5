"""An embedded, offline text-classification task and its WordPiece tokenizer (for the demo and tests).

Sentences come from a small grammar in which the label depends on negation and on word order:
"X but Y" takes Y's polarity, "although X, Y" takes Y's, "X although Y" takes X's, and "not",
"never" or "hardly" flip a clause. A bag of words cannot solve it; attention heads must carry signal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from transformers import PreTrainedTokenizerFast

SUBJECTS = (
    "the movie", "this film", "the plot", "the acting", "the soundtrack", "our dinner", "the service",
    "the hotel", "the book", "the ending", "the cast", "the script", "the trip", "the show", "the game",
)  # fmt: skip
VERBS = ("was", "is", "seemed", "felt", "looked", "sounded")
INTENSIFIERS = ("", "", "very", "really", "quite", "truly", "rather")
POSITIVE = (
    "good", "great", "wonderful", "excellent", "charming", "brilliant", "pleasant", "superb", "lovely",
    "delightful", "fun", "clever",
)  # fmt: skip
NEGATIVE = (
    "bad", "awful", "boring", "terrible", "dull", "poor", "weak", "messy", "bland", "tedious", "clumsy",
    "dreadful",
)  # fmt: skip
NEGATIONS = ("not", "never", "hardly")
LABELS = ("negative", "positive")


@dataclass(frozen=True)
class Example:
    text: str
    label: int


def _clause(rng: random.Random) -> tuple[str, int]:
    polarity = rng.randint(0, 1)
    adjective = rng.choice(POSITIVE if polarity else NEGATIVE)
    negated = rng.random() < 0.4
    words = [rng.choice(SUBJECTS), rng.choice(VERBS)]
    if negated:
        words.append(rng.choice(NEGATIONS))
    if intensifier := rng.choice(INTENSIFIERS):
        words.append(intensifier)
    words.append(adjective)
    return " ".join(words), polarity ^ negated


def make_example(rng: random.Random) -> Example:
    """One sentence and its label (1 = positive)."""
    first, first_label = _clause(rng)
    form = rng.random()
    if form < 0.3:
        return Example(first, first_label)
    second, second_label = _clause(rng)
    if form < 0.6:
        return Example(f"{first} but {second}", second_label)
    if form < 0.8:
        return Example(f"although {first} , {second}", second_label)
    return Example(f"{first} although {second}", first_label)


def make_dataset(n: int, seed: int = 0) -> list[Example]:
    """`n` examples, reproducible from `seed`."""
    rng = random.Random(seed)
    return [make_example(rng) for _ in range(n)]


def train_tokenizer(texts: list[str], vocab_size: int = 256) -> PreTrainedTokenizerFast:
    """A lowercase WordPiece tokenizer (BERT special tokens) trained on `texts` with `tokenizers`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece()
    return BertTokenizerFast(tokenizer_object=tokenizer, model_max_length=128)
