"""An embedded, offline text-classification task and its WordPiece tokenizer (for the demo and tests).

Sentences come from a small grammar in which the label depends on negation and on word order:
"X but Y" takes Y's polarity, "although X, Y" takes Y's, "X although Y" takes X's, and "not",
"never" or "hardly" flip a clause. A bag of words cannot solve it; attention heads must carry signal.

A framing clause may wrap the sentence: "i doubt that ...", "it is false that ...", "nobody thinks
that ..." flip its judgement, "i think that ...", "everyone agrees that ...", "it is clear that ..." keep it.
The label is then a parity over clause polarity, negation and frames: small sub-networks learn the flips
more slowly and less often than the full model, so accuracy falls as the model shrinks (without frames
every sub-network of the demo's space scored 100% and the Pareto front showed no trade-off).
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
FLIP_FRAMES = ("i doubt that", "it is false that", "nobody thinks that")
KEEP_FRAMES = ("i think that", "everyone agrees that", "it is clear that")
FRAME_WEIGHTS = (0.7, 0.3)  # how often 0 or 1 frame wraps a sentence (a second level left the teacher at 74%)


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


def make_sentence(rng: random.Random) -> Example:
    """One unframed sentence and its label (1 = positive)."""
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


def make_example(rng: random.Random, frame_weights: tuple[float, ...] = FRAME_WEIGHTS) -> Example:
    """A sentence wrapped in 0..len(frame_weights)-1 frames; each flipping frame flips the label."""
    inner = make_sentence(rng)
    text, label = inner.text, inner.label
    for _ in range(rng.choices(range(len(frame_weights)), weights=frame_weights)[0]):
        flip = rng.random() < 0.5
        text = f"{rng.choice(FLIP_FRAMES if flip else KEEP_FRAMES)} {text}"
        label ^= int(flip)
    return Example(text, label)


def make_dataset(n: int, seed: int = 0, frame_weights: tuple[float, ...] = FRAME_WEIGHTS) -> list[Example]:
    """`n` examples, reproducible from `seed` (`frame_weights=(1.0,)`: no frames, the easier task)."""
    rng = random.Random(seed)
    return [make_example(rng, frame_weights) for _ in range(n)]


def train_tokenizer(texts: list[str], vocab_size: int = 256, model_max_length: int = 128) -> PreTrainedTokenizerFast:
    """A lowercase WordPiece tokenizer (BERT special tokens) trained on `texts` with `tokenizers`.

    `model_max_length` should be the position count of the model it feeds.
    """
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
    return BertTokenizerFast(tokenizer_object=tokenizer, model_max_length=model_max_length)
