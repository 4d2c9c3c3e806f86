"""Property tests of the recipe loader (issue 13): whatever YAML document and whatever `--set`
overrides it is given, load_recipe either returns a Recipe or raises RecipeError, within a
second, and a loaded recipe dumps and loads again. Through `tunekit validate`: exit 0 or 2, never 1."""

from __future__ import annotations

import json
import tempfile
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tunekit.errors import RecipeError
from tunekit.recipe import Recipe, dump_recipe, load_recipe

VALID = {"name": "tiny", "output_dir": "runs/tiny", "model": {"name": "./models/tiny"},
         "data": {"train": "data/train.csv"}}


def alternatives(annotation) -> list:
    if typing.get_origin(annotation) in (typing.Union, typing.Annotated):
        return [alt for arg in typing.get_args(annotation) for alt in alternatives(arg)]
    return [annotation]


def schema_paths(model=Recipe, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of the schema (so generated documents reach nested sections and validators)."""
    paths = []
    for name, field in model.model_fields.items():
        paths.append(prefix + (name,))
        for alt in alternatives(field.annotation):
            if isinstance(alt, type) and hasattr(alt, "model_fields"):
                paths += schema_paths(alt, prefix + (name,))
    return paths


PATHS = schema_paths()
KEYS = sorted({p[-1] for p in PATHS}) + ["extends", "<<"]
WORDS = ["off", "on", "yes", "no", "Off", "NO", "true", "~", "null", ".nan", "-.inf", ".Inf", "nan", "-inf",
         "Infinity", "1e999", "", " ", "0", "-1", "3e-5", "epoch", "lora", "cosine", "[]", "{}", "*a", "&a x",
         "\t", "a: b", "- x", "'", '"', "!!str x", "!!binary aGk=", "2024-01-01", "0x1F", "0o17", "1_000",
         "full_shard", "truncate", "drop", "warn", "pkg://x/y", "data/*.csv", "\x00", "\x85", "\ufeff",
         "!!binary gA==", "!!set {a}", "!!omap [a: 1]", "12:30:00", "2001-12-14t21:59:43.10-05:00"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(WORDS))
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(-3, 3), st.booleans())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


def nested(path: tuple[str, ...], value) -> dict:
    for key in reversed(path):
        value = {key: value}
    return value


def merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# A document: the valid recipe with values put at schema paths (and anywhere), as YAML text with
# some of its scalars swapped for raw YAML words (unquoted yes/off, .nan, aliases...).
placed = st.lists(st.tuples(st.sampled_from(PATHS), values), max_size=5).map(
    lambda items: [nested(p, v) for p, v in items])
documents = st.builds(lambda extra, top: merge(merge(VALID, top), {k: v for d in extra for k, v in d.items()}),
                      placed, st.dictionaries(keys, values, max_size=3))
raw_yaml = st.text(alphabet=st.sampled_from(list("ab:-[]{},&*!|>'\"#\n\t .?%@`\\0x\x01\x85\u2028é")), max_size=120)
dotted = st.one_of(st.sampled_from([".".join(p) for p in PATHS]), st.text(max_size=15))
overrides = st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", dotted, st.one_of(st.sampled_from(WORDS),
                                                                                  st.text(max_size=20))),
                               st.text(max_size=20)), max_size=4)

LIMITS = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def load_or_recipe_error(path: Path, items: typing.Sequence[str] = ()) -> None:
    """The property: a RecipeError with a message and a one-line hint, or a Recipe without NaN or
    infinity that dumps and loads again to the same recipe."""
    try:
        recipe = load_recipe(path, list(items))
    except RecipeError as exc:
        assert exc.message and exc.hint and "\n" not in exc.hint
        return
    json.dumps(recipe.model_dump(mode="json"), allow_nan=False)  # no NaN or infinity anywhere
    again = path.with_name("again.yaml")
    again.write_text(dump_recipe(recipe), encoding="utf-8")
    assert load_recipe(again) == recipe


def dump_with_words(doc: dict, words: list[str]) -> str:
    """YAML of `doc`, then each generated word written unquoted in place of one quoted scalar."""
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    for word in words:
        text = text.replace("'tiny'", word, 1) if "'tiny'" in text else text.replace("tiny", word, 1)
    return text


@LIMITS
@given(doc=documents, words=st.lists(st.sampled_from(WORDS), max_size=2))
def test_any_document_loads_or_is_a_recipe_error(folder, doc, words):
    path = folder / "recipe.yaml"
    path.write_text(dump_with_words(doc, words), encoding="utf-8")
    load_or_recipe_error(path)


@LIMITS
@given(text=raw_yaml)
def test_any_text_loads_or_is_a_recipe_error(folder, text):
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(VALID) + text, encoding="utf-8")
    load_or_recipe_error(path)


@LIMITS
@given(data=st.binary(max_size=200))
def test_any_bytes_load_or_are_a_recipe_error(folder, data):
    path = folder / "recipe.yaml"
    path.write_bytes(data)
    load_or_recipe_error(path)


@LIMITS
@given(items=overrides)
def test_any_overrides_load_or_are_a_recipe_error(folder, items):
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(VALID), encoding="utf-8")
    load_or_recipe_error(path, items)


@settings(max_examples=15, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents, words=st.lists(st.sampled_from(WORDS), max_size=2), items=overrides)
def test_validate_exits_0_or_2_never_1(folder, doc, words, items):
    from tunekit.cli.app import app

    path = folder / "cli.yaml"
    path.write_text(dump_with_words(doc, words), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path), *[a for item in items for a in ("--set", item)]])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and "unexpected error" not in result.output
