"""Issue 13: bounded YAML, YAML 1.1 words read per field, non-finite numbers, empty paths, data
paths that are not files, JSON error lines, gates and --junit, max_length against the model's
positions, and the README's YAML examples. The CLI side is tests/cli/test_input_errors.py."""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import time
import tracemalloc
import typing
from pathlib import Path

import pytest
import yaml

from tunekit.errors import DataError, RecipeError, TunekitError
from tunekit.recipe import load_recipe
from tunekit.recipe.yaml_text import MAX_NODES, parse_yaml
from tunekit.recipe.schema import Recipe

REPO = Path(__file__).resolve().parents[2]
BASE = """\
name: tiny
output_dir: runs/tiny
model: {name: ./models/tiny}
data: {train: data/train.csv}
"""


def load(tmp_path: Path, text: str, *overrides: str):
    path = tmp_path / "recipe.yaml"
    # the test's keys over BASE's, through extends: (a key written twice in one file is an error)
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    path.write_text("extends: base.yaml\n" + textwrap.dedent(text), encoding="utf-8")
    return load_recipe(path, overrides)


def problems(tmp_path: Path, text: str, *overrides: str) -> str:
    with pytest.raises(RecipeError) as info:
        load(tmp_path, text, *overrides)
    return info.value.message


# ---- bounded YAML ----------------------------------------------------------------------------

def test_alias_bomb_costs_neither_time_nor_memory(tmp_path):
    text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))
    assert len(text) < 1024
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(RecipeError, match="alias bomb"):
        load(tmp_path, text)
    assert time.perf_counter() - start < 1.0
    assert tracemalloc.get_traced_memory()[1] < 20_000_000
    tracemalloc.stop()


def test_shared_aliases_within_the_budget_load(tmp_path):
    recipe = load(tmp_path, "eval: {metrics: &m [accuracy, f1_macro]}\ntrain: {report_to: []}\n"
                            "tokenize: {max_length: &n 64, max_target_length: *n}\n")
    assert recipe.eval.metrics == ["accuracy", "f1_macro"] and recipe.tokenize.max_target_length == 64


@pytest.mark.parametrize("text, phrase", [
    ("a: &a [*a]", "recursive alias"), ("a: &a {b: *a}", "recursive alias"),
    ("x: " + "[" * 80 + "]" * 80, "levels deep"), ("x: " + "[" * 2000 + "]" * 2000, "deep"),
    ("x: [" + "1, " * (MAX_NODES + 10) + "]", "too large"),
    ("--- {a: 1}\n--- {b: 2}", "not valid YAML"), ("x: !!python/object:os.system {}", "not valid YAML"),
])
def test_yaml_structure_limits(text, phrase):
    with pytest.raises(RecipeError, match=phrase):
        parse_yaml(text, "r.yaml")


def test_large_or_special_recipe_files(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="KiB"):
        load_recipe(big)
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipe(fifo)


# ---- YAML 1.1 words, per field ---------------------------------------------------------------

def test_words_are_read_as_written_where_the_schema_wants_text(tmp_path):
    recipe = load(tmp_path, """\
        data:
          train: data/train.csv
          columns: {label: on}
          labels: {names: [no, yes], from_score: {no: [-2, -1], yes: [1, 2]}}
          quality: {near_duplicates: {within: off, across: off}}
        tokenize: {packing: off, chat_template: yes}
        model: {name: ./m, init: config, config: {tie_word_embeddings: no}}
        """)
    assert recipe.data.columns.label == "on"
    assert recipe.data.labels.names == ["no", "yes"] and set(recipe.data.labels.from_score) == {"no", "yes"}
    assert recipe.data.quality.near_duplicates.within == "off"  # an enum that has "off": what was meant
    assert recipe.tokenize.packing is False and recipe.tokenize.chat_template is True  # booleans stay booleans
    assert recipe.model.config == {"tie_word_embeddings": False}  # free-form: YAML 1.1, as transformers expects


def test_a_word_no_enum_value_matches_is_named_not_turned_into_a_number(tmp_path):
    msg = problems(tmp_path, "tokenize: {truncation: off}\ntrain: {eval_every: yes, epochs: on, seed: true}\n")
    assert "tokenize.truncation" in msg and "(got 'off')" in msg and "False" not in msg
    assert "train.eval_every" in msg and "(got 'yes')" in msg  # not every step (yes == 1)
    assert "train.epochs" in msg and "train.seed: true is a boolean, not a number" in msg


def test_words_in_set_overrides(tmp_path):
    recipe = load(tmp_path, "", "data.quality.near_duplicates.across=off", "name=no", "train.keep_best=no")
    assert recipe.data.quality.near_duplicates.across == "off" and recipe.name == "no"
    assert recipe.train.keep_best is False


# ---- non-finite numbers, empty paths ---------------------------------------------------------

@pytest.mark.parametrize("text, key", [
    ("train: {lr: .nan}", "train.lr"), ("train: {max_grad_norm: .inf}", "train.max_grad_norm"),
    ("eval: {null_threshold: '-inf'}", "eval.null_threshold"),
    ("data: {train: x.csv, labels: {from_score: {a: [-.inf, 0], b: [1, 2]}}}", "data.labels.from_score.a.0"),
    ("train: {scheduler: cosine, scheduler_options: {num_cycles: NaN}}", "train.scheduler_options.num_cycles"),
    ("train: {distributed: {fsdp: [full_shard], fsdp_config: {min_num_params: .inf}}}", "fsdp_config.min_num_params"),
])
def test_non_finite_numbers_are_refused(tmp_path, text, key):
    msg = problems(tmp_path, text + "\n")
    assert key in msg and "not a finite number" in msg


def test_non_finite_text_in_a_number_field_via_set(tmp_path):
    msg = problems(tmp_path, "", "data.split.validation=nan", "train.lr=-Infinity")
    assert "data.split.validation: nan is not a finite number" in msg and "train.lr" in msg
    assert "greater than" not in msg  # one message per key, the clear one


@pytest.mark.parametrize("data, key", [
    ({"train": ""}, "data.train"), ({"train": "x.csv", "validation": [" "]}, "data.validation.0"),
    ({"train": [{"path": "", "weight": 1}]}, "data.train.0.path"),
])
def test_empty_paths_are_refused(tmp_path, data, key):
    msg = problems(tmp_path, yaml.safe_dump({"data": data}))
    assert f"{key}: an empty path" in msg


def test_empty_model_name_is_refused(tmp_path):
    assert "model.name: an empty path" in problems(tmp_path, "", "model.name=")


# ---- data sources ----------------------------------------------------------------------------

def test_special_files_are_refused(tmp_path):
    """Devices and pipes are refused by path (reading /dev/zero would never end, a pipe would wait
    forever). /dev/null stands in for the readers: on a regression it reads as empty, not forever."""
    from tunekit.pipeline.stream_readers import read_file
    from tunekit.sources import check_data_file, load_table, resolve_data_path

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    for call in (lambda: resolve_data_path("/dev/zero"), lambda: check_data_file(fifo, "pipe.jsonl"),
                 lambda: load_table("/dev/null", "text"),
                 lambda: read_file(Path("/dev/null"), "/dev/null", "jsonl", ["text"])):
        with pytest.raises(DataError, match="a device|a named pipe"):
            call()
    with pytest.raises(DataError, match="empty"):
        resolve_data_path("")


def test_jsonl_error_names_the_line(tmp_path):
    from tunekit.sources import json_lines_error

    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n[1, 2]\n{"a": \n', encoding="utf-8")
    assert "line 4 is a JSON list, not an object" in json_lines_error(path, "x.jsonl", "jsonl").message
    path.write_text('{"a": 1}\n{"a": }\n', encoding="utf-8")
    assert "x.jsonl as jsonl: line 2 is not valid JSON" in json_lines_error(path, "x.jsonl", "jsonl").message


# ---- gates -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [(["accuracy=nan"], [], []), ([], ["loss=inf"], []), ([], [], ["accuracy=NaN"]),
                                  (["accuracy=1e999"], [], [])])
def test_non_finite_gates_are_refused(args):
    from tunekit.pipeline.gates import parse_gates

    with pytest.raises(TunekitError, match="not a finite number"):
        parse_gates(*args)


def test_junit_path_rules(tmp_path):
    from tunekit.pipeline.gates import Gate, GateResult, write_junit

    results = [GateResult(Gate("accuracy", "min", 0.5), 0.9, None, True)]
    with pytest.raises(TunekitError, match="is a folder"):
        write_junit(tmp_path, results, "s")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(TunekitError, match="is a file, not a folder"):
        write_junit(tmp_path / "file" / "sub" / "g.xml", results, "s")
    write_junit(tmp_path / "new" / "deeper" / "g.xml", results, "s")  # missing parents are made
    assert "<testcase" in (tmp_path / "new" / "deeper" / "g.xml").read_text(encoding="utf-8")


def test_baseline_that_is_a_pipe_is_not_read(tmp_path):
    from tunekit.pipeline.gates import read_baseline

    def hung(*_):
        raise RuntimeError("read_baseline waited on the pipe")

    os.mkfifo(tmp_path / "metrics.json")
    previous = signal.signal(signal.SIGALRM, hung)  # a regression fails in 10 s instead of hanging
    signal.alarm(10)
    try:
        with pytest.raises(TunekitError, match="not a regular file"):
            read_baseline(tmp_path / "metrics.json", "classification")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---- max_length against the model's positions -----------------------------------------------

def model_folder(tmp_path: Path, **config) -> str:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return str(folder)


@pytest.mark.parametrize("config, task, lengths, limit", [
    ({"model_type": "bert", "max_position_embeddings": 64}, "classification", (65, 8), "64 positions"),
    ({"model_type": "gpt2", "n_positions": 128}, "summarization", (100, 40), "max_length + max_target_length (140)"),
    ({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}, "qa", (513, 8), "512 positions"),
    ({"model_type": "bart", "max_position_embeddings": 64, "is_encoder_decoder": True}, "translation", (32, 80),
     "max_target_length (80)"),
])
def test_max_length_above_positions(tmp_path, config, task, lengths, limit):
    from tunekit.pipeline.tokenization import check_positions

    extra = "eval: {generation: {max_new_tokens: 8}}\n" if task in ("summarization", "translation") else ""
    text = f"task: {task}\ntokenize: {{max_length: {lengths[0]}, max_target_length: {lengths[1]}}}\n{extra}"
    with pytest.raises(RecipeError, match=re.escape(limit)):
        check_positions(load(tmp_path, text, f"model.name={model_folder(tmp_path, **config)}"))
    fits = load(tmp_path, text.replace(str(lengths[0]), "16").replace(str(lengths[1]), "16"),
                f"model.name={model_folder(tmp_path, **config)}")
    check_positions(fits)  # within the limit: no error
    check_positions(load(tmp_path, text, "model.name=some-org/hub-model"))  # a Hub id: checked when it loads


# ---- the README's YAML -----------------------------------------------------------------------

def readme_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


def enum_booleans(value, annotation, loc=()) -> list[str]:
    """Key paths where plain YAML 1.1 (yaml.safe_load) gives a boolean to a field that wants text."""
    from tunekit.recipe.loader import _alternatives

    alts = _alternatives(annotation)
    model = next((a for a in alts if isinstance(a, type) and hasattr(a, "model_fields")), None)
    if isinstance(value, dict) and model is not None:
        return [p for k, v in value.items() if k in model.model_fields
                for p in enum_booleans(v, model.model_fields[k].annotation, loc + (k,))]
    if isinstance(value, list):
        seq = next((a for a in alts if typing.get_origin(a) in (list, tuple)), None)
        inner = typing.get_args(seq)[0] if seq is not None and typing.get_args(seq) else typing.Any
        return [p for i, v in enumerate(value) for p in enum_booleans(v, inner, loc + (str(i),))]
    wants_text = str in alts or any(typing.get_origin(a) is typing.Literal for a in alts)
    return [".".join(loc)] if isinstance(value, bool) and wants_text and bool not in alts else []


def test_readme_yaml_blocks_parse_and_validate(tmp_path):
    blocks = readme_blocks()
    assert len(blocks) >= 5
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    for i, block in enumerate(blocks):
        data = yaml.safe_load(block)
        assert isinstance(data, dict) and set(data) <= set(Recipe.model_fields), block
        assert enum_booleans(data, Recipe) == [], block  # reads the same in every YAML 1.1 tool
        path = tmp_path / f"block{i}.yaml"
        path.write_text("extends: base.yaml\n" + block, encoding="utf-8")
        load_recipe(path)  # every key and value as the README shows it is valid
