import json

from eftnas_deploy import SearchSpace, SuperNetwork
from eftnas_deploy.app.cli import main
from eftnas_deploy.importance.scores import ImportanceScores
from eftnas_deploy.supernet.loading import load_model
from tests.conftest import tiny_model


def test_importance_and_space_commands(tmp_path, capsys):
    SuperNetwork(tiny_model()).save_pretrained(tmp_path / "m")
    assert main(["importance", "--model", str(tmp_path / "m"), "--criterion", "magnitude",
                 "--out", str(tmp_path / "imp")]) == 0  # fmt: skip
    imp = tmp_path / "imp" / "importance.safetensors"
    assert ImportanceScores.load(imp).criterion == "magnitude"
    args = ["space", "--model", str(tmp_path / "imp" / "model"), "--importance", str(imp), "--fraction-range",
            "0.4", "0.9", "--num-targets", "3", "--seq-len", "64", "--out", str(tmp_path / "s")]  # fmt: skip
    assert main(args) == 0
    space = SearchSpace.load(tmp_path / "s" / "search_space.json")
    assert len(space.metadata["targets"]) == 3
    reordered = ImportanceScores.load(tmp_path / "s" / "importance.safetensors")
    reordered.check_model(load_model(str(tmp_path / "s" / "model")))
    assert reordered.is_sorted()
    capsys.readouterr()
    # The importance file does not describe another model: clear error, nothing written.
    args[2] = str(tmp_path / "m2")
    SuperNetwork(tiny_model(seed=3)).save_pretrained(tmp_path / "m2")
    args[-1] = str(tmp_path / "s2")
    assert main(args) == 2
    assert "fingerprint" in capsys.readouterr().err and not (tmp_path / "s2").exists()


def test_space_command_refuses_unreachable_targets(tmp_path, capsys):
    SuperNetwork(tiny_model()).save_pretrained(tmp_path / "m")
    assert main(["importance", "--model", str(tmp_path / "m"), "--criterion", "magnitude",
                 "--out", str(tmp_path / "imp")]) == 0  # fmt: skip
    code = main(["space", "--model", str(tmp_path / "imp" / "model"), "--importance",
                 str(tmp_path / "imp" / "importance.safetensors"), "--fraction-range", "0.5", "1.2",
                 "--out", str(tmp_path / "s")])  # fmt: skip
    assert code == 2  # refused up front by the pipeline's own SpaceConfig check, named by the flag
    assert "fraction-range: must be ≤ 1, got 1.2" in capsys.readouterr().err and not (tmp_path / "s").exists()
    code = main(["space", "--model", str(tmp_path / "imp" / "model"), "--importance",
                 str(tmp_path / "imp" / "importance.safetensors"), "--cost-range", "1", "1e15",
                 "--out", str(tmp_path / "s")])  # fmt: skip
    assert code == 2
    assert "is outside" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_importance_command_on_sst2_defaults_to_taylor(tmp_path, shared_data, capsys):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared_data / "tokenizers/bert-base-uncased")
    model = tiny_model(vocab_size=tokenizer.vocab_size)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    assert main(["importance", "--model", str(tmp_path / "m"), "--train", str(shared_data / "glue/SST-2/train.tsv"),
                 "--limit", "64", "--steps", "4", "--batch-size", "16", "--max-length", "32",
                 "--out", str(tmp_path / "imp")]) == 0  # fmt: skip
    scores = ImportanceScores.load(tmp_path / "imp" / "importance.safetensors")
    assert scores.criterion == "taylor" and scores.metadata["steps"] == 4
    assert (tmp_path / "imp" / "model" / "tokenizer_config.json").is_file()
    json.dumps(scores.metadata)


def test_importance_command_reads_sentence_pairs_through_the_data_layer(tmp_path, shared_data):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared_data / "tokenizers/bert-base-uncased")
    tiny_model(vocab_size=tokenizer.vocab_size).save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    assert main(["importance", "--model", str(tmp_path / "m"), "--task", "rte", "--criterion", "taylor",
                 "--train-file", str(shared_data / "glue/RTE/train.tsv"), "--max-train-rows", "48", "--steps", "3",
                 "--batch-size", "16", "--max-length", "48", "--out", str(tmp_path / "imp")]) == 0  # fmt: skip
    scores = ImportanceScores.load(tmp_path / "imp" / "importance.safetensors")
    assert scores.criterion == "taylor" and scores.metadata["steps"] == 3 and (scores.heads >= 0).all()


def test_space_command_with_cka_heads_and_pca_ffn_bounds(tmp_path, shared_data):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(shared_data / "tokenizers" / "bert-base-uncased"))
    model = SuperNetwork(tiny_model(vocab_size=30522, max_position_embeddings=128))
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    assert main(["importance", "--model", str(tmp_path / "m"), "--criterion", "magnitude",
                 "--out", str(tmp_path / "imp")]) == 0  # fmt: skip
    assert main(["space", "--model", str(tmp_path / "imp" / "model"), "--importance",
                 str(tmp_path / "imp" / "importance.safetensors"), "--fraction-range", "0.4", "0.9",
                 "--num-targets", "3", "--seq-len", "64", "--ffn-multiple", "8", "--tolerance", "0.1",
                 "--head-order", "cka", "--ffn-bounds", "pca", "--pca-variance", "0.9", "--calibration-batches", "2",
                 "--task", "sst2", "--train-file", str(shared_data / "glue/SST-2/dev.tsv"), "--max-train-rows", "64",
                 "--max-length", "32", "--out", str(tmp_path / "s")]) == 0  # fmt: skip
    elm = SearchSpace.load(tmp_path / "s" / "search_space.json").metadata["elm"]
    assert elm["bounds"] == {"heads": "importance-threshold", "ffn": "pca-threshold"}
    assert elm["head_order"] == "cka" and elm["calibration_batches"] == 2 and len(elm["pca_components"]) == 3
    reordered = ImportanceScores.load(tmp_path / "s" / "importance.safetensors")
    reordered.check_model(load_model(str(tmp_path / "s" / "model")))
    assert reordered.is_sorted()
