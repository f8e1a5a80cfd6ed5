import random
from collections import Counter

from eftnas_deploy.data.synthetic import FLIP_FRAMES, KEEP_FRAMES, make_dataset, make_sentence, train_tokenizer


def test_dataset_is_reproducible_balanced_and_order_dependent():
    data = make_dataset(2000, seed=3)
    assert data == make_dataset(2000, seed=3)
    counts = Counter(e.label for e in data)
    assert 0.4 < counts[1] / len(data) < 0.6
    # The same bag of words can carry both labels: word order decides (shown on unframed sentences, where
    # bags repeat often enough; a frame only adds a flip).
    by_bag: dict[tuple[str, ...], set[int]] = {}
    rng = random.Random(0)
    for e in (make_sentence(rng) for _ in range(20000)):
        by_bag.setdefault(tuple(sorted(e.text.split())), set()).add(e.label)
    assert any(len(labels) == 2 for labels in by_bag.values())


def _unframe(text: str) -> tuple[str, int]:
    """The sentence inside the frames and how many of them flip it."""
    flips = 0
    while True:
        frame = next((f for f in (*FLIP_FRAMES, *KEEP_FRAMES) if text.startswith(f + " ")), None)
        if frame is None:
            return text, flips
        flips += frame in FLIP_FRAMES
        text = text[len(frame) + 1 :]


def test_negation_but_and_frame_rules():
    seen_frames = set()
    for e in make_dataset(500, seed=1):
        text, flips = _unframe(e.text)
        seen_frames.add(flips)
        if " but " in text:
            clause = text.split(" but ")[1].split()
            positive = clause[-1] in {"good", "great", "wonderful", "excellent", "charming", "brilliant",
                                      "pleasant", "superb", "lovely", "delightful", "fun", "clever"}  # fmt: skip
            negated = any(w in clause for w in ("not", "never", "hardly"))
            assert e.label == int(positive ^ negated) ^ (flips % 2)
    assert seen_frames == {0, 1}
    assert all(_unframe(e.text)[1] == 0 for e in make_dataset(200, seed=1, frame_weights=(1.0,)))


def test_tokenizer_round_trip(tmp_path):
    data = make_dataset(500)
    tokenizer = train_tokenizer([e.text for e in data], vocab_size=200, model_max_length=64)
    assert tokenizer.model_max_length == 64
    encoded = tokenizer(data[0].text)
    assert encoded["input_ids"][0] == tokenizer.cls_token_id and encoded["input_ids"][-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in encoded["input_ids"]
    tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(data[1].text)["input_ids"] == tokenizer(data[1].text)["input_ids"]
