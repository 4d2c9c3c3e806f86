"""Recipe schema and loader: strict keys, line numbers, overrides, inheritance, round trips."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from tunekit.errors import EXIT_BAD_INPUT, RecipeError
from tunekit.recipe import Recipe, dump_recipe, load_recipe

REPO = Path(__file__).resolve().parents[2]

# Line numbers below refer to this text (line 1 is `name: tiny`).
BASE = """\
name: tiny
task: classification
output_dir: runs/tiny
model:
  name: ./models/tiny
data:
  train: data/train.csv
  columns: {text: review, label: stars}
train:
  lr: 5.0e-5
  batch_size: 8
  epochs: 2
"""


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problem_lines(err: RecipeError) -> list[str]:
    """The indented problem lines of a RecipeError message (one per problem)."""
    return [line.strip() for line in str(err).splitlines()[1:] if line.startswith("  ")]


# ---- a valid recipe --------------------------------------------------------------------------

def test_valid_recipe_loads_typed_and_with_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE))
    assert isinstance(recipe, Recipe)
    assert recipe.name == "tiny"
    assert recipe.model.name == "./models/tiny"
    assert recipe.model.tokenizer is None
    assert recipe.data.columns.text == "review" and recipe.data.columns.label == "stars"
    assert recipe.train.lr == pytest.approx(5e-5) and isinstance(recipe.train.lr, float)
    assert recipe.train.batch_size == 8 and recipe.train.epochs == 2.0
    # defaults from the schema
    assert recipe.data.split.validation == 0.1 and recipe.data.split.seed == 42
    assert recipe.tokenize.max_length == 128 and recipe.tokenize.truncation == "truncate"
    assert recipe.train.eval_every == "epoch"
    assert recipe.eval.metrics is None and recipe.train.best_metric is None  # the task's defaults


def test_recipe_is_frozen(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE))
    with pytest.raises(ValidationError):
        recipe.train.lr = 1.0
    with pytest.raises(ValidationError):
        recipe.name = "other"
    assert recipe.train.lr == pytest.approx(5e-5)


def test_recipe_error_is_bad_input():
    assert RecipeError("x").exit_code == EXIT_BAD_INPUT


def test_load_accepts_str_path(tmp_path):
    assert load_recipe(str(write(tmp_path, BASE))).name == "tiny"


# ---- unknown keys ----------------------------------------------------------------------------

def test_unknown_nested_key_names_file_line_path_and_suggestion(tmp_path):
    path = write(tmp_path, BASE.replace("  lr: 5.0e-5", "  lrr: 5.0e-5"))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert "recipe.yaml:10" in msg  # `lrr:` is on line 10
    assert "train.lrr" in msg
    assert "'train.lr'" in msg and "did you mean" in msg
    assert info.value.hint  # a line saying what to do


def test_unknown_top_level_key_suggests_closest(tmp_path):
    path = write(tmp_path, BASE + "tokenise:\n  max_length: 64\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    (line,) = problem_lines(info.value)
    assert line.startswith(f"{path}:13: tokenise: unknown key")
    assert "'tokenize'" in line


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    path = write(tmp_path, BASE + "  zzzzqqq: 1\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert "train.zzzzqqq" in msg and "recipe.yaml:13" in msg
    assert "valid keys here" in msg and "batch_size" in msg and "lr" in msg


def test_all_problems_are_reported_at_once(tmp_path):
    text = BASE.replace("  lr: 5.0e-5", "  lrr: 5.0e-5").replace("batch_size: 8", "batch_size: many")
    text += "tokenize:\n  max_lenght: 64\n  truncation: chop\n"
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    lines = problem_lines(info.value)
    assert len(lines) == 4
    assert "has 4 problems" in str(info.value).splitlines()[0]
    joined = "\n".join(lines)
    assert re.search(r"recipe\.yaml:10: train\.lrr: unknown key", joined)
    assert re.search(r"recipe\.yaml:11: train\.batch_size: .*integer.*'many'", joined)
    assert re.search(r"recipe\.yaml:14: tokenize\.max_lenght: unknown key .*'tokenize\.max_length'", joined)
    assert re.search(r"recipe\.yaml:15: tokenize\.truncation: .*'chop'", joined)


def test_wrong_type_names_key_path_and_line(tmp_path):
    path = write(tmp_path, BASE.replace("batch_size: 8", "batch_size: many"))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    (line,) = problem_lines(info.value)
    assert line.startswith(f"{path}:11: train.batch_size:")
    assert "'many'" in line
    assert "has 1 problem:" in str(info.value)


def test_missing_required_key(tmp_path):
    path = write(tmp_path, BASE.replace("output_dir: runs/tiny\n", ""))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    (line,) = problem_lines(info.value)
    assert "output_dir: required key is missing" in line
    assert str(path) in line


def test_missing_nested_required_key_points_at_its_section(tmp_path):
    path = write(tmp_path, BASE.replace("  train: data/train.csv\n", ""))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    (line,) = problem_lines(info.value)
    assert line == f"{path}:6: data.train: required key is missing"


def test_empty_file_lists_every_required_key(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, ""))
    msg = str(info.value)
    for key in ("name", "output_dir", "model", "data"):
        assert f": {key}: required key is missing" in msg


def test_non_mapping_recipe_is_an_error(tmp_path):
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(write(tmp_path, "- a\n- b\n"))


# ---- --set overrides -------------------------------------------------------------------------

def test_set_overrides_parse_values(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE), ["train.lr=3e-5", "train.max_steps=7",
                                                 "data.split.stratify=false", "model.tokenizer=./tok"])
    assert isinstance(recipe.train.lr, float) and recipe.train.lr == 3e-5
    assert recipe.train.max_steps == 7 and isinstance(recipe.train.max_steps, int)
    assert recipe.data.split.stratify is False
    assert recipe.model.tokenizer == "./tok"
    # untouched siblings keep their values
    assert recipe.train.batch_size == 8 and recipe.data.columns.text == "review"


def test_set_override_beats_the_file_and_later_set_wins(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE), ["train.batch_size=4", "train.batch_size=32"])
    assert recipe.train.batch_size == 32


def test_set_can_create_a_missing_section(tmp_path):
    recipe = load_recipe(write(tmp_path, BASE), ["tokenize.max_length=64", "eval.metrics=[accuracy]"])
    assert recipe.tokenize.max_length == 64
    assert recipe.eval.metrics == ["accuracy"]


def test_set_unknown_nested_key_is_rejected_with_suggestion(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, BASE), ["train.lrr=3e-5"])
    (line,) = problem_lines(info.value)
    assert line.startswith("--set: train.lrr: unknown key")
    assert "'train.lr'" in line


def test_set_bad_value_names_set_as_origin(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, BASE), ["train.batch_size=lots"])
    (line,) = problem_lines(info.value)
    assert line.startswith("--set: train.batch_size:") and "'lots'" in line


@pytest.mark.parametrize("item", ["foo", "train.lr", "=3", "train..lr=1", ".lr=1"])
def test_malformed_set_is_rejected(tmp_path, item):
    with pytest.raises(RecipeError, match="is not KEY=VALUE") as info:
        load_recipe(write(tmp_path, BASE), [item])
    assert "--set" in info.value.hint


def test_set_into_a_scalar_is_rejected(tmp_path):
    with pytest.raises(RecipeError, match="train.lr is a value, not a section"):
        load_recipe(write(tmp_path, BASE), ["train.lr.peak=1"])


# ---- extends ---------------------------------------------------------------------------------

def test_extends_child_overrides_and_nested_dicts_merge(tmp_path):
    write(tmp_path, BASE, "base.yaml")
    child = write(tmp_path, """\
        extends: base.yaml
        name: child
        train:
          lr: 1.0e-3
        data:
          columns: {label: rating}
        """, "child.yaml")
    recipe = load_recipe(child)
    assert recipe.name == "child"
    assert recipe.train.lr == pytest.approx(1e-3)
    assert recipe.train.batch_size == 8 and recipe.train.epochs == 2.0  # from base
    assert recipe.data.columns.label == "rating"
    assert recipe.data.columns.text == "review"  # nested merge keeps the base's sibling
    assert recipe.data.train == "data/train.csv"
    assert recipe.output_dir == "runs/tiny"


def test_extends_resolves_relative_to_the_recipe_not_cwd(tmp_path, monkeypatch):
    write(tmp_path, BASE, "shared/base.yaml")
    child = write(tmp_path, "extends: ../../shared/base.yaml\nname: nested\n", "recipes/sub/child.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(child)
    assert recipe.name == "nested" and recipe.train.batch_size == 8
    # a relative recipe path works too
    monkeypatch.chdir(tmp_path / "recipes")
    assert load_recipe("sub/child.yaml").name == "nested"


def test_extends_a_list_of_bases_later_wins(tmp_path):
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, "train:\n  batch_size: 64\n  seed: 3\n", "b.yaml")
    child = write(tmp_path, "extends: [a.yaml, b.yaml]\ntrain:\n  seed: 9\n", "child.yaml")
    recipe = load_recipe(child)
    assert recipe.train.batch_size == 64  # b over a
    assert recipe.train.seed == 9  # child over b
    assert recipe.train.lr == pytest.approx(5e-5)  # from a


def test_extends_chain_of_three(tmp_path):
    write(tmp_path, BASE, "a.yaml")
    write(tmp_path, "extends: a.yaml\ntrain: {epochs: 5}\n", "b.yaml")
    recipe = load_recipe(write(tmp_path, "extends: b.yaml\nname: c\n", "c.yaml"))
    assert (recipe.name, recipe.train.epochs, recipe.train.batch_size) == ("c", 5.0, 8)


def test_extends_error_in_base_points_at_base_file_line(tmp_path):
    write(tmp_path, BASE.replace("  lr: 5.0e-5", "  lrr: 5.0e-5"), "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nname: child\n", "child.yaml")
    with pytest.raises(RecipeError) as info:
        load_recipe(child)
    (line,) = problem_lines(info.value)
    assert re.match(r".*base\.yaml:10: train\.lrr: unknown key", line)


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path, BASE + "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_extends_self_is_a_cycle(tmp_path):
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(write(tmp_path, BASE + "extends: recipe.yaml\n"))


def test_extends_missing_base_is_an_error(tmp_path):
    with pytest.raises(RecipeError, match="not found") as info:
        load_recipe(write(tmp_path, BASE + "extends: nope.yaml\n"))
    assert "nope.yaml" in str(info.value)


def test_extends_must_be_names(tmp_path):
    with pytest.raises(RecipeError, match="extends must be"):
        load_recipe(write(tmp_path, BASE + "extends: 3\n"))


# ---- files -----------------------------------------------------------------------------------

def test_invalid_yaml_gives_a_line(tmp_path):
    path = write(tmp_path, "name: t\nmodel:\n  name: [unclosed\ndata: x\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert re.match(re.escape(str(path)) + r":\d+: not valid YAML", msg)
    line = int(re.match(re.escape(str(path)) + r":(\d+):", msg).group(1))
    assert 3 <= line <= 4
    assert info.value.hint


def test_invalid_yaml_tab_indentation(tmp_path):
    path = write(tmp_path, "name: t\nmodel:\n\tname: x\n")
    with pytest.raises(RecipeError, match=re.escape(str(path)) + r":\d+: not valid YAML"):
        load_recipe(path)


def test_unsafe_yaml_tags_are_refused(tmp_path):
    path = write(tmp_path, BASE + "extra: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(path)


def test_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found") as info:
        load_recipe(tmp_path / "absent.yaml")
    assert "absent.yaml" in str(info.value)


def test_a_folder_is_not_a_recipe(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path)


# ---- dump ------------------------------------------------------------------------------------

def test_dump_round_trips(tmp_path):
    text = """\
        name: full
        output_dir: runs/full
        model: {name: ./models/tiny, tokenizer: ./models/tok}
        data:
          train: data/train.csv
          validation: data/val.jsonl
          format: csv
          columns: {text: review, label: score}
          labels:
            from_score: {negative: [-4, -0.5], positive: [0.5, 4]}
          clean: {drop_duplicates: false}
          split: {validation: 0.2, test: 0.0, seed: 7, stratify: false}
          max_train_rows: 100
        tokenize: {max_length: 64, truncation: drop}
        train: {lr: 3.0e-4, max_steps: 9, eval_every: never, scheduler: cosine, best_metric: loss}
        eval: {split: validation, metrics: [accuracy, precision_macro]}
        """
    original = load_recipe(write(tmp_path, text))
    dumped = dump_recipe(original)
    assert isinstance(yaml.safe_load(dumped), dict)
    again = load_recipe(write(tmp_path, dumped, "dumped.yaml"))
    assert again == original
    assert again.data.labels.from_score == {"negative": (-4.0, -0.5), "positive": (0.5, 4.0)}
    assert again.train.eval_every == "never"
    # dumping is stable
    assert dump_recipe(again) == dumped


def test_dump_of_a_child_recipe_needs_no_base(tmp_path):
    write(tmp_path, BASE, "base.yaml")
    child = load_recipe(write(tmp_path, "extends: base.yaml\nname: child\n", "child.yaml"))
    dumped = dump_recipe(child)
    assert "extends" not in yaml.safe_load(dumped)
    other = tmp_path / "other"
    assert load_recipe(write(other, dumped, "alone.yaml")) == child


# ---- value rules -----------------------------------------------------------------------------

def _with_data(extra: str) -> str:
    return BASE.replace("  columns: {text: review, label: stars}\n",
                        "  columns: {text: review, label: stars}\n" + textwrap.indent(extra, "  "))


def test_from_score_ranges_accepted(tmp_path):
    recipe = load_recipe(write(tmp_path, _with_data(
        "labels:\n  from_score: {neg: [-4, -0.5], pos: [0.5, 4]}\n")))
    assert recipe.data.labels.from_score["neg"] == (-4.0, -0.5)


@pytest.mark.parametrize("ranges, words", [
    ("{a: [0, 2], b: [1, 3]}", "overlap"),
    ("{a: [0, 1], b: [1, 2]}", "overlap"),  # inclusive ends touch
    ("{a: [0, 10], b: [2, 3], c: [20, 30]}", "overlap"),
    ("{a: [2, 1], b: [3, 4]}", "low 2.0 above high 1.0"),
    ("{a: [0, 1]}", "at least two"),
])
def test_from_score_bad_ranges_rejected(tmp_path, ranges, words):
    path = write(tmp_path, _with_data(f"labels:\n  from_score: {ranges}\n"))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    (line,) = problem_lines(info.value)
    assert line.startswith(f"{path}:10: data.labels.from_score:")
    assert words in line


def test_label_names_must_match_from_score(tmp_path):
    path = write(tmp_path, _with_data(
        "labels:\n  names: [neg, other]\n  from_score: {neg: [-4, -1], pos: [1, 4]}\n"))
    with pytest.raises(RecipeError, match="names and from_score must list the same classes"):
        load_recipe(path)


@pytest.mark.parametrize("split", ["{validation: 0.5, test: 0.5}", "{validation: 0.7, test: 0.4}"])
def test_split_shares_must_leave_training_rows(tmp_path, split):
    path = write(tmp_path, _with_data(f"split: {split}\n"))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    (line,) = problem_lines(info.value)
    assert line.startswith(f"{path}:9: data.split:") and "sum < 1" in line


def test_split_shares_just_under_one_accepted(tmp_path):
    recipe = load_recipe(write(tmp_path, _with_data("split: {validation: 0.5, test: 0.49}\n")))
    assert recipe.data.split.test == 0.49


def test_unknown_metric_rejected(tmp_path):
    path = write(tmp_path, BASE + "eval:\n  metrics: [accuracy, bleu]\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert "unknown metric 'bleu'" in msg and "f1_macro" in msg


def test_unknown_best_metric_rejected_but_loss_allowed(tmp_path):
    with pytest.raises(RecipeError, match="unknown metric 'bleu'"):
        load_recipe(write(tmp_path, BASE), ["train.best_metric=bleu"])
    assert load_recipe(write(tmp_path, BASE), ["train.best_metric=loss"]).train.best_metric == "loss"


def test_unknown_metric_names_key_path_and_line(tmp_path):
    path = write(tmp_path, BASE + "eval:\n  metrics: [accuracy, bleu]\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    (line,) = problem_lines(info.value)
    assert line.startswith(f"{path}:14: eval.metrics:")


def test_unknown_metric_listed_with_other_problems(tmp_path):
    path = write(tmp_path, BASE.replace("batch_size: 8", "batch_size: many")
                 + "eval:\n  metrics: [bleu]\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert len(problem_lines(info.value)) == 2


def test_eval_every_never_accepted_and_bad_value_rejected(tmp_path):
    path = write(tmp_path, BASE + "  eval_every: never\n")
    assert load_recipe(path).train.eval_every == "never"
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["train.eval_every=sometimes"])
    assert "train.eval_every" in str(info.value) and "'sometimes'" in str(info.value)


@pytest.mark.parametrize("override, key", [
    ("train.lr=0", "train.lr"),
    ("train.batch_size=0", "train.batch_size"),
    ("tokenize.max_length=1", "tokenize.max_length"),
    ("data.max_train_rows=0", "data.max_train_rows"),
    ("data.split.validation=-0.1", "data.split.validation"),
    ("task=regression", "task"),
    ("data.format=xlsx", "data.format"),
])
def test_out_of_range_values_rejected(tmp_path, override, key):
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, BASE), [override])
    (line,) = problem_lines(info.value)
    assert line.startswith(f"--set: {key}:")


# ---- shipped recipes, and staying light --------------------------------------------------------

@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    recipe = load_recipe(path)
    assert load_recipe(path, [f"output_dir={recipe.output_dir}"]) == recipe


def test_loading_a_recipe_does_not_import_torch_or_transformers(tmp_path):
    path = write(tmp_path, BASE + "eval:\n  metrics: [accuracy]\n")
    code = ("import sys; from tunekit.recipe import load_recipe; load_recipe(sys.argv[1]); "
            "bad = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
