from collections import Counter

from eftnas_deploy.synthetic import make_dataset, train_tokenizer


def test_dataset_is_reproducible_balanced_and_order_dependent():
    data = make_dataset(2000, seed=3)
    assert data == make_dataset(2000, seed=3)
    counts = Counter(e.label for e in data)
    assert 0.4 < counts[1] / len(data) < 0.6
    # The same bag of words can carry both labels: word order decides.
    by_bag: dict[tuple[str, ...], set[int]] = {}
    for e in make_dataset(20000, seed=4):
        by_bag.setdefault(tuple(sorted(e.text.split())), set()).add(e.label)
    assert any(len(labels) == 2 for labels in by_bag.values())


def test_negation_and_but_rules():
    for e in make_dataset(500, seed=1):
        if " but " in e.text:
            clause = e.text.split(" but ")[1].split()
            positive = clause[-1] in {"good", "great", "wonderful", "excellent", "charming", "brilliant",
                                      "pleasant", "superb", "lovely", "delightful", "fun", "clever"}  # fmt: skip
            negated = any(w in clause for w in ("not", "never", "hardly"))
            assert e.label == int(positive ^ negated)


def test_tokenizer_round_trip(tmp_path):
    data = make_dataset(500)
    tokenizer = train_tokenizer([e.text for e in data], vocab_size=200)
    encoded = tokenizer(data[0].text)
    assert encoded["input_ids"][0] == tokenizer.cls_token_id and encoded["input_ids"][-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in encoded["input_ids"]
    tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(data[1].text)["input_ids"] == tokenizer(data[1].text)["input_ids"]
