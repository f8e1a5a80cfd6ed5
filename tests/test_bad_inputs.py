"""An audit of bad input across the CLI: each case exits 2 with one line naming the field, and writes nothing.

Everything runs in-process on tiny models (no training). The cases cover issue #13's list: LUTs for another
target, resumed searches with other settings, sub-networks outside the trained space, negative sizes,
partial configs, cross-field constraints, task/head mismatches, paths leading out of a bundle, unreadable
files (missing, empty, header-only, binary, truncated), foreign `auto_map` code, and a second writer.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from eftnas_deploy import SearchSpace, SubnetConfig, SuperNetwork
from eftnas_deploy.app.cli import main
from eftnas_deploy.core.io import LOCK_FILE, write_json
from eftnas_deploy.data import get_task, held_out_split, load_split
from eftnas_deploy.data.synthetic import make_dataset, train_tokenizer
from eftnas_deploy.supernet.slicing import save_sliced, slice_subnet
from latency_lut.table import LatencyTable
from tests.conftest import tiny_model


def fake_lut(geometry, runtime="onnxruntime", threads=1, seq_len=32, precision=None) -> LatencyTable:
    """A LUT with made-up block latencies for `geometry` (what `lut measure` would write, without measuring)."""
    heads = {h: {"median_us": 10.0 * h, "spread_us": 0.1} for h in range(1, geometry.num_heads + 1)}
    ffn = {w: {"median_us": 0.2 * w, "spread_us": 0.1} for w in (32, 64, 96, 128)}
    return LatencyTable(
        geometry=geometry, runtime=runtime, runtime_version="test", threads=threads,
        precision=precision or ("fp32" if runtime == "onnxruntime" else "f32"), seq_len=seq_len, batch=1,
        fixed_us=50.0, entries={"attention": heads, "ffn": ffn},
    )  # fmt: skip


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    """Every input the cases refer to, built once: a tiny super-network run dir and many broken files."""
    root = tmp_path_factory.mktemp("bad")
    p: dict[str, Path] = {"root": root}
    rows = make_dataset(120, seed=0)
    p["train"] = root / "train.tsv"
    p["train"].write_text("sentence\tlabel\n" + "".join(f"{e.text}\t{e.label}\n" for e in rows))
    tokenizer = train_tokenizer([e.text for e in rows], vocab_size=120)
    p["tokenizer"] = root / "tokenizer"
    tokenizer.save_pretrained(p["tokenizer"])

    sn = p["supernet"] = root / "supernet"
    supernet = SuperNetwork(tiny_model(vocab_size=len(tokenizer)))
    supernet.save_pretrained(sn)
    tokenizer.save_pretrained(sn)
    SearchSpace(heads=[[4, 2, 1]] * 3, ffn=[[128, 64, 0]] * 3).save(sn / "search_space.json")
    write_json(sn / "train_config.json", {"task": "sst2", "train_file": str(p["train"]), "seed": 0, "max_length": 32})
    held_out_split(load_split(get_task("sst2"), p["train"]), sn, 0.2, 0)
    p["geometry"] = supernet.geometry

    qa = p["qa_model"] = root / "qa_model"
    tiny_model(task="question-answering", vocab_size=len(tokenizer)).save_pretrained(qa)
    tokenizer.save_pretrained(qa)
    long_question = " ".join(["the movie"] * 30)
    squad = [{"id": "q1", "context": "the cast was great " * 5, "question": long_question,
              "answers": {"text": ["great"], "answer_start": [14]}}]  # fmt: skip
    p["squad"] = root / "squad.json"
    p["squad"].write_text(json.dumps(squad))

    for name, mutate in (("truncated", lambda b: b[: len(b) // 2]), ("garbage", lambda b: b"not safetensors" * 4)):
        shutil.copytree(sn, root / name)
        weights = root / name / "model.safetensors"
        weights.write_bytes(mutate(weights.read_bytes()))
        p[name] = root / name

    subnets = {
        "full": {"heads": [4, 4, 4], "ffn": [128, 128, 128]},
        "outside": {"heads": [4, 3, 4], "ffn": [128, 128, 100]},
        "dropped": {"heads": [0, 0, 0], "ffn": [0, 0, 0]},
        "two_layers": {"heads": [4, 4], "ffn": [128, 128]},
        "too_wide": {"heads": [9, 4, 4], "ffn": [128, 128, 128]},
    }
    for name, subnet in subnets.items():
        p[f"subnet_{name}"] = root / f"subnet_{name}.json"
        p[f"subnet_{name}"].write_text(json.dumps(subnet))
    p["truncated_json"] = root / "truncated.json"
    p["truncated_json"].write_text(json.dumps([subnets["full"]] * 3)[:40])
    p["pickle"] = root / "lut.pkl.json"
    p["pickle"].write_bytes(pickle.dumps({"not": "json"}))
    p["space_strings"] = root / "space_strings.json"
    p["space_strings"].write_text(json.dumps({"heads": [["four", 2]] * 3, "ffn": [[128, 64]] * 3}))
    p["space_big"] = root / "space_big.json"
    SearchSpace(heads=[[8, 4]] * 3, ffn=[[128, 64]] * 3).save(p["space_big"])
    p["pareto"] = root / "pareto.json"
    p["pareto"].write_text(json.dumps({"points": [{"subnet": subnets["full"]}]}))

    p["lut_other"] = root / "lut_other.json"  # OpenVINO, 2 threads, seq 48: not what the cases ask for
    fake_lut(supernet.geometry, "openvino", threads=2, seq_len=48).save(p["lut_other"])
    p["lut_ok"] = root / "lut_ok.json"
    fake_lut(supernet.geometry).save(p["lut_ok"])
    p["lut_truncated"] = root / "lut_truncated.json"
    p["lut_truncated"].write_text(p["lut_ok"].read_text()[:300])

    p["sliced_foreign"] = root / "sliced_foreign"
    save_sliced(slice_subnet(supernet, SubnetConfig.from_dict(subnets["full"])), p["sliced_foreign"])
    config = json.loads((p["sliced_foreign"] / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil_model.EvilModel"}
    (p["sliced_foreign"] / "config.json").write_text(json.dumps(config))
    (p["sliced_foreign"] / "evil_model.py").write_text(f"open({str(root / 'pwned')!r}, 'w').write('x')\n")

    geometry = supernet.geometry.to_dict()
    for name, directory in (("bundle_escape", "../supernet"), ("bundle_absolute", str(sn)), ("bundle_ok", "onnx")):
        p[name] = root / name
        p[name].mkdir()
        write_json(p[name] / "bundle.json", {"formats": {"onnx": {"dir": directory, "file": "model.onnx"}},
                                              "parent_geometry": geometry, "subnet": subnets["full"]})  # fmt: skip
    p["bundle_pickle"] = root / "bundle_pickle"
    p["bundle_pickle"].mkdir()
    (p["bundle_pickle"] / "bundle.json").write_bytes(pickle.dumps([1, 2]))

    p["empty_tsv"] = root / "empty.tsv"
    p["empty_tsv"].write_text("")
    p["header_tsv"] = root / "header.tsv"
    p["header_tsv"].write_text("sentence\tlabel\n")
    p["binary_tsv"] = root / "binary.tsv"
    p["binary_tsv"].write_bytes(b"\xff\xfe\x00\x81" * 64)

    # A finished search (MAC budget 8) to resume with other settings.
    p["search"] = root / "search"
    assert main(["search", "--supernet", str(sn), "--objective", "macs", "--max-macs", "8", "--evals", "3",
                 "--remeasure-top", "0", "--out", str(p["search"])]) == 0  # fmt: skip

    run_config = {
        "data": {"task": "sst2", "train_file": str(p["train"]), "max_length": 32},
        "model": {"tokenizer": str(p["tokenizer"]), "from_config": {"hidden_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": 64}},
        "space": {"seq_len": 32},
        "lut": {"seq_len": 32, "threads": 1},
        "export": {"formats": ["pytorch", "onnx"]},
    }  # fmt: skip
    p["run_yaml"] = root / "pipeline.yaml"
    p["run_yaml"].write_text(yaml.safe_dump(run_config, sort_keys=False))
    p["cut_yaml"] = root / "cut.yaml"  # cut at the section boundary after `data`
    p["cut_yaml"].write_text(yaml.safe_dump({"data": run_config["data"]}, sort_keys=False))
    p["empty_section_yaml"] = root / "empty_section.yaml"
    p["empty_section_yaml"].write_text(yaml.safe_dump({"data": run_config["data"]}) + "model:\n")
    p["run_lut"] = root / "run_lut.json"  # geometry of the run's model, but OpenVINO / 2 threads / seq 48
    run_geometry = SuperNetwork(tiny_model(**run_config["model"]["from_config"], vocab_size=120)).geometry
    fake_lut(run_geometry, "openvino", threads=2, seq_len=48).save(p["run_lut"])
    p["run_lut_ok"] = root / "run_lut_ok.json"
    fake_lut(run_geometry).save(p["run_lut_ok"])
    p["file"] = root / "a_file"
    p["file"].write_text("x")
    p["foreign"] = root / "foreign"
    p["foreign"].mkdir()
    (p["foreign"] / "notes.txt").write_text("mine")
    return p


def _run(w, out, *extra):
    return ["run", "--config", str(w["run_yaml"]), "--out", str(out), *extra]


def _slice(w, out, subnet="full", supernet="supernet", *extra):
    return ["slice", "--supernet", str(w[supernet]), "--subnet", str(w[f"subnet_{subnet}"]), "--out", str(out), *extra]


def _export(w, out, subnet="full", *extra):
    return ["export", "--supernet", str(w["supernet"]), "--subnet", str(w[f"subnet_{subnet}"]), "--formats", "onnx",
            "--out", str(out), *extra]  # fmt: skip


def _search(w, out, *extra):
    return ["search", "--supernet", str(w["supernet"]), "--evals", "3", "--out", str(out), *extra]


def _bench(w, name, *extra):
    return ["benchmark", str(w[name]), *extra]


def _teacher(w, out, *extra):
    return ["train-teacher", "--task", "sst2", "--train-file", str(w["train"]), "--model", str(w["supernet"]),
            "--out", str(out), *extra]  # fmt: skip


def _supernet(w, out, train="train", *extra):
    return ["train-supernet", "--task", "sst2", "--train-file", str(w[train]), "--model", str(w["supernet"]),
            "--out", str(out), *extra]  # fmt: skip


# (case id, argv(w, out), substrings the one-line error must contain)
CASES = [
    # cost
    ("cost-negative-seq-len", lambda w, o: ["cost", "--model", str(w["supernet"]), "--seq-len", "-1"], ["seq-len:"]),
    ("cost-zero-batch", lambda w, o: ["cost", "--model", str(w["supernet"]), "--batch", "0"], ["batch:", "≥ 1"]),
    ("cost-seq-len-beyond-positions", lambda w, o: ["cost", "--model", str(w["supernet"]), "--seq-len", "999"],
     ["seq-len: 999", "max_position_embeddings 64"]),
    ("cost-missing-model", lambda w, o: ["cost", "--model", str(w["root"] / "nope")], ["model:", "does not exist"]),
    ("cost-truncated-subnet", lambda w, o: ["cost", "--model", str(w["supernet"]), "--subnet",
                                            str(w["truncated_json"])], ["subnet:", "not valid JSON"]),
    ("cost-subnet-wrong-layers", lambda w, o: ["cost", "--model", str(w["supernet"]), "--subnet",
                                               str(w["subnet_two_layers"])], ["heads: 2 layers given"]),
    ("cost-task-vs-head", lambda w, o: ["cost", "--model", str(w["supernet"]), "--task", "question-answering"],
     ["task:", "text-classification model"]),
    # slice
    ("slice-qa-on-classification", lambda w, o: _slice(w, o, "full", "supernet", "--task", "question-answering"),
     ["task:", "not question-answering"]),
    ("slice-outside-space", lambda w, o: _slice(w, o, "outside"), ["subnet: layer 1:", "--allow-untrained-subnet"]),
    ("slice-every-block-dropped", lambda w, o: _slice(w, o, "dropped"), ["subnet: every block is dropped"]),
    ("slice-truncated-safetensors", lambda w, o: _slice(w, o, "full", "truncated"),
     ["supernet:", "model.safetensors", "truncated"]),
    ("slice-garbage-safetensors", lambda w, o: _slice(w, o, "full", "garbage"), ["supernet:", "model.safetensors"]),
    ("slice-missing-supernet", lambda w, o: ["slice", "--supernet", str(w["root"] / "gone"), "--subnet",
                                             str(w["subnet_full"]), "--out", str(o)], ["supernet:", "does not exist"]),
    ("slice-pickle-subnet", lambda w, o: ["slice", "--supernet", str(w["supernet"]), "--subnet", str(w["pickle"]),
                                          "--out", str(o)], ["subnet:", "not a JSON file"]),
    ("slice-missing-subnet", lambda w, o: ["slice", "--supernet", str(w["supernet"]), "--subnet",
                                           str(w["root"] / "none.json"), "--out", str(o)],
     ["subnet:", "does not exist"]),
    # export
    ("export-outside-space", lambda w, o: _export(w, o, "outside"), ["subnet: layer 1: 3 heads"]),
    ("export-every-block-dropped", lambda w, o: _export(w, o, "dropped"), ["subnet: every block is dropped"]),
    ("export-foreign-auto-map", lambda w, o: ["export", "--sliced", str(w["sliced_foreign"]), "--formats", "onnx",
                                              "--out", str(o)], ["auto_map:", "evil_model.EvilModel"]),
    ("export-unknown-format", lambda w, o: ["export", "--supernet", str(w["supernet"]), "--subnet",
                                            str(w["subnet_full"]), "--formats", "onnx,tflite", "--out", str(o)],
     ["formats:", "tflite"]),
    ("export-pareto-index", lambda w, o: ["export", "--supernet", str(w["supernet"]), "--pareto", str(w["pareto"]),
                                          "--index", "5", "--out", str(o)], ["index: 5 is out of range"]),
    ("export-int8-without-data", lambda w, o: _export(w, o, "full", "--formats", "int8"), ["calibration-file:"]),
    ("export-zero-calibration", lambda w, o: _export(w, o, "full", "--calibration-size", "0"),
     ["calibration-size:"]),
    # benchmark
    ("benchmark-dotdot-dir", lambda w, o: _bench(w, "bundle_escape"), ["formats.onnx.dir:", "inside the bundle"]),
    ("benchmark-absolute-dir", lambda w, o: _bench(w, "bundle_absolute"), ["formats.onnx.dir:"]),
    ("benchmark-seq-len-beyond-model", lambda w, o: _bench(w, "bundle_ok", "--seq-len", "500"),
     ["seq-len: 500", "64 position embeddings"]),
    ("benchmark-zero-threads", lambda w, o: _bench(w, "bundle_ok", "--threads", "0"), ["threads:"]),
    ("benchmark-no-manifest", lambda w, o: ["benchmark", str(w["root"])], ["bundle:", "does not exist"]),
    ("benchmark-pickle-manifest", lambda w, o: _bench(w, "bundle_pickle"), ["bundle:", "not a JSON file"]),
    # search
    ("search-pickle-lut", lambda w, o: _search(w, o, "--lut", str(w["pickle"])), ["lut:", "not a JSON file"]),
    ("search-truncated-lut", lambda w, o: _search(w, o, "--lut", str(w["lut_truncated"])), ["lut:", "truncated"]),
    ("search-lut-other-seq-len", lambda w, o: _search(w, o, "--lut", str(w["lut_other"]), "--seq-len", "32"),
     ["lut:", "seq_len: LUT has 48, asked for 32", "--allow-approximate-lut"]),
    ("search-lut-other-runtime-threads",
     lambda w, o: _search(w, o, "--lut", str(w["lut_other"]), "--runtime", "onnxruntime", "--threads", "1"),
     ["runtime: LUT has 'openvino', asked for 'onnxruntime'", "threads: LUT has 2"]),
    ("search-resume-other-budget", lambda w, o: ["search", "--supernet", str(w["supernet"]), "--objective", "macs",
                                                 "--max-macs", "6", "--evals", "4", "--out", str(w["search"]),
                                                 "--resume"], ["storage:", "identity.budget.macs: 8.0 -> 6.0"]),
    ("search-zero-evals", lambda w, o: _search(w, o, "--evals", "0"), ["evals:"]),
    ("search-missing-supernet", lambda w, o: ["search", "--supernet", str(w["root"] / "gone"), "--out", str(o)],
     ["supernet:"]),
    ("search-budget-below-space", lambda w, o: _search(w, o, "--objective", "macs", "--max-macs", "0.01"),
     ["max_macs: budget 0.01 is below"]),
    ("search-second-writer", lambda w, o: _search(w, o, "--objective", "macs"), ["out:", "in use by another"]),
    # lut
    ("lut-validate-truncated-subnets", lambda w, o: ["lut", "validate", "--lut", str(w["lut_ok"]), "--subnets",
                                                     str(w["truncated_json"])], ["subnets:", "not valid JSON"]),
    ("lut-validate-pickle", lambda w, o: ["lut", "validate", "--lut", str(w["pickle"])], ["lut:", "not a JSON file"]),
    ("lut-measure-zero-threads", lambda w, o: ["lut", "measure", "--model", str(w["supernet"]), "--threads", "0",
                                               "--out", str(o / "lut.json")], ["threads:"]),
    ("lut-measure-threads-beyond-cores", lambda w, o: ["lut", "measure", "--model", str(w["supernet"]),
                                                       "--threads", "4096", "--out", str(o / "lut.json")],
     ["threads: 4096 threads asked"]),
    ("lut-measure-seq-len-beyond", lambda w, o: ["lut", "measure", "--model", str(w["supernet"]), "--seq-len", "128",
                                                 "--out", str(o / "lut.json")], ["seq_len: 128"]),
    ("lut-measure-existing-out", lambda w, o: ["lut", "measure", "--model", str(w["supernet"]),
                                               "--out", str(w["lut_ok"])], ["out:", "exists"]),
    # training commands (refused before any training)
    ("teacher-zero-max-train-rows", lambda w, o: _teacher(w, o, "--max-train-rows", "0"), ["max-train-rows:"]),
    ("importance-zero-max-train-rows", lambda w, o: ["importance", "--model", str(w["supernet"]), "--train-file",
                                                     str(w["train"]), "--max-train-rows", "0", "--out", str(o)],
     ["max-train-rows:"]),
    ("supernet-empty-train-file", lambda w, o: _supernet(w, o, "empty_tsv"), ["data file:", "is empty"]),
    ("supernet-header-only-train-file", lambda w, o: _supernet(w, o, "header_tsv"), ["data file:", "no data rows"]),
    ("supernet-binary-train-file", lambda w, o: _supernet(w, o, "binary_tsv"), ["data file:", "not UTF-8"]),
    ("supernet-held-out-fraction", lambda w, o: _supernet(w, o, "train", "--held-out-fraction", "1.5"),
     ["held-out-fraction:"]),
    ("teacher-missing-tokenizer", lambda w, o: _teacher(w, o, "--tokenizer", str(w["root"] / "no_tok")),
     ["tokenizer:", "does not exist"]),
    ("importance-question-too-long", lambda w, o: ["importance", "--model", str(w["qa_model"]), "--task", "squad",
                                                   "--train-file", str(w["squad"]), "--max-length", "32",
                                                   "--steps", "1", "--out", str(o)], ["question:", "'q1'"]),
    # run (every check before stage 1)
    ("run-config-cut-before-model", lambda w, o: ["run", "--config", str(w["cut_yaml"]), "--out", str(o)],
     ["config:", "no 'model' section"]),
    ("run-config-empty-section", lambda w, o: ["run", "--config", str(w["empty_section_yaml"]), "--out", str(o)],
     ["model:", "empty"]),
    ("run-config-binary", lambda w, o: ["run", "--config", str(w["pickle"]), "--out", str(o)], ["config:"]),
    ("run-lut-seq-len-beyond-positions", lambda w, o: _run(w, o, "--set", "lut.seq_len=128"),
     ["lut.seq_len: 128 is beyond the 64 position embeddings"]),
    ("run-max-length-beyond-positions", lambda w, o: _run(w, o, "--set", "data.max_length=100"),
     ["data.max_length: 100"]),
    ("run-threads-beyond-cores", lambda w, o: _run(w, o, "--set", "lut.threads=4096"), ["lut.threads: 4096"]),
    ("run-benchmark-threads-beyond-cores", lambda w, o: _run(w, o, "--set", "export.benchmark_threads=4096"),
     ["export.benchmark_threads: 4096"]),
    ("run-lut-for-another-target", lambda w, o: _run(w, o, "--lut-file", str(w["run_lut"])),
     ["lut.file:", "runtime: LUT has 'openvino'", "threads: LUT has 2", "seq_len: LUT has 48"]),
    ("run-budget-below-lut-floor", lambda w, o: _run(w, o, "--lut-file", str(w["run_lut_ok"]),
                                                     "--max-latency-ms", "0.001"), ["search.max_latency_ms: 0.001"]),
    ("run-zero-max-train-rows", lambda w, o: _run(w, o, "--set", "data.max_train_rows=0"),
     ["data.max_train_rows: must be > 0"]),
    ("run-header-only-train-file", lambda w, o: _run(w, o, "--train-file", str(w["header_tsv"])),
     ["data.train_file:", "no data rows"]),
    ("run-missing-model-dir", lambda w, o: _run(w, o, "--set", "model.from_config=null", "--model",
                                                str(w["root"] / "no_model")), ["model.name:", "does not exist"]),
    ("run-fine-tuned-qa-model-for-sst2", lambda w, o: _run(w, o, "--set", "model.from_config=null", "--model",
                                                           str(w["qa_model"]), "--set", "model.fine_tuned=true"),
     ["data.task:", "question-answering"]),
    ("run-vocab-smaller-than-tokenizer", lambda w, o: _run(w, o, "--set", "model.from_config.vocab_size=50"),
     ["model.tokenizer:", "vocab_size (50)"]),
    ("run-second-writer", lambda w, o: _run(w, o), ["out:", "in use by another"]),
    # more of each command
    ("run-set-without-equals", lambda w, o: _run(w, o, "--set", "search.evals"), ["set:", "section.key=value"]),
    ("run-set-unknown-key", lambda w, o: _run(w, o, "--set", "search.evalz=3"), ["search.evalz: unknown key"]),
    ("run-set-wrong-type", lambda w, o: _run(w, o, "--set", "teacher.epochs=three"), ["teacher.epochs: expected"]),
    ("run-missing-config", lambda w, o: ["run", "--config", str(w["root"] / "no.yaml")], ["config:", "does not exist"]),
    ("run-unknown-task", lambda w, o: _run(w, o, "--task", "sst3"), ["data.task:", "'sst3'"]),
    ("export-sliced-not-sliced", lambda w, o: ["export", "--sliced", str(w["supernet"]), "--formats", "onnx",
                                               "--out", str(o)], ["model:", "not a sliced"]),
    ("export-truncated-pareto", lambda w, o: ["export", "--supernet", str(w["supernet"]), "--pareto",
                                              str(w["truncated_json"]), "--index", "0", "--out", str(o)],
     ["pareto:", "not valid JSON"]),
    ("export-missing-calibration-file", lambda w, o: _export(w, o, "full", "--formats", "int8", "--calibration-file",
                                                             str(w["root"] / "none.tsv")),
     ["calibration-file:", "does not exist"]),
    ("export-calibration-without-label-column", lambda w, o: _export(w, o, "full", "--formats", "int8",
                                                                     "--calibration-file", str(w["train"]),
                                                                     "--label-column", "target"), ["target:"]),
    ("search-truncated-space", lambda w, o: _search(w, o, "--search-space", str(w["truncated_json"])),
     ["search-space:", "not valid JSON"]),
    ("search-space-of-strings", lambda w, o: _search(w, o, "--search-space", str(w["space_strings"])),
     ["layer 0: heads choices must be integers"]),
    ("search-population-one", lambda w, o: _search(w, o, "--population", "1"), ["population:"]),
    ("search-negative-delta", lambda w, o: _search(w, o, "--delta", "-1"), ["delta:"]),
    ("search-nan-budget", lambda w, o: _search(w, o, "--max-macs", "nan"), ["max-macs:", "finite"]),
    ("space-reversed-range", lambda w, o: ["space", "--model", str(w["supernet"]), "--importance",
                                           str(w["pickle"]), "--fraction-range", "0.9", "0.1", "--out", str(o)],
     ["fraction-range:"]),
    ("space-importance-not-safetensors", lambda w, o: ["space", "--model", str(w["supernet"]), "--importance",
                                                       str(w["pickle"]), "--fraction-range", "0.3", "0.9",
                                                       "--out", str(o)], ["importance:", "not a safetensors"]),
    ("teacher-unknown-task", lambda w, o: ["train-teacher", "--task", "sst3", "--train-file", str(w["train"]),
                                           "--model", str(w["supernet"]), "--out", str(o)], ["task:", "'sst3'"]),
    ("teacher-bad-columns", lambda w, o: _teacher(w, o, "--columns", "sentence"), ["columns:"]),
    ("teacher-missing-column", lambda w, o: _teacher(w, o, "--columns", "sentence=text"), ["columns:", "text"]),
    ("teacher-unsupported-extension", lambda w, o: ["train-teacher", "--task", "sst2", "--train-file",
                                                    str(w["file"]), "--model", str(w["supernet"]), "--out", str(o)],
     ["data file:", "extension"]),
    ("supernet-space-other-model", lambda w, o: _supernet(w, o, "train", "--search-space", str(w["space_big"])),
     ["layer 0:", "model has 4"]),
    ("lut-measure-space-other-model", lambda w, o: ["lut", "measure", "--model", str(w["supernet"]), "--seq-len",
                                                    "32", "--search-space", str(w["space_big"]), "--out",
                                                    str(o / "lut.json")], ["layer 0:", "model has 4"]),
    ("lut-measure-bad-precision", lambda w, o: ["lut", "measure", "--model", str(w["supernet"]), "--seq-len", "32",
                                                "--precision", "int4", "--out", str(o / "lut.json")], ["precision:"]),
    ("benchmark-format-not-exported", lambda w, o: _bench(w, "bundle_ok", "--format", "int8", "--runtime",
                                                          "openvino"), ["format:", "no int8 export"]),
    ("benchmark-artifact-missing", lambda w, o: _bench(w, "bundle_ok"), ["format:", "is missing"]),
    ("cost-subnet-too-wide", lambda w, o: ["cost", "--model", str(w["supernet"]), "--subnet",
                                           str(w["subnet_too_wide"])], ["layer 0: 9 heads requested"]),
    # demo
    ("demo-out-is-a-file", lambda w, o: ["demo", "--out", str(w["file"])], ["out:", "not a directory"]),
    ("demo-foreign-dir", lambda w, o: ["demo", "--out", str(w["foreign"])], ["out:", "not empty"]),
]  # fmt: skip


def _snapshot(*roots: Path) -> set[str]:
    return {str(p) for root in roots if root.exists() for p in root.rglob("*")}


@pytest.mark.parametrize(("case", "argv", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_writes_nothing(w, tmp_path, capsys, case, argv, expected):
    out = tmp_path / "out"
    lock = None
    if case.endswith("second-writer"):  # another process holds the directory
        out.mkdir()
        lock = FileLock(str(out / LOCK_FILE), is_singleton=False)
        lock.acquire()
    before = _snapshot(w["root"], tmp_path)
    capsys.readouterr()
    try:
        code = main(argv(w, out))
    finally:
        if lock is not None:
            lock.release()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and err.strip().endswith(lines[0]) and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert _snapshot(w["root"], tmp_path) == before
    assert not (w["root"] / "pwned").exists()  # no code named by a user's directory ran


def test_the_audit_has_at_least_40_cases():
    assert len(CASES) >= 40
