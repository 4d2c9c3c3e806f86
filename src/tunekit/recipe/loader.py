"""Read a recipe: YAML (safe) with line numbers, `extends:` inheritance, `--set` overrides,
and every validation problem reported at once with its file, line and key path.

Input is bounded before anything is built from it (yaml_text: size, aliases, depth, duplicate
keys). An unquoted yes/no/on/off (a YAML 1.1 boolean) is read as written where the schema wants text
(`near_duplicates.within: off`) and as a boolean elsewhere. NaN and infinity are refused anywhere.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tunekit.errors import RecipeError
from tunekit.recipe.schema import Recipe, metric_problems
from tunekit.recipe.yaml_text import YamlWord, parse_yaml, read_text

# key path -> "file:line" where the value was written (or "--set" for overrides)
Origins = dict[tuple[str, ...], str]
Problems = list[tuple[tuple[str, ...], str]]

# Keys whose values name files, folders or models: an empty string there would mean "."
PATH_KEYS = (("data", "train"), ("data", "validation"), ("data", "test"),
             ("model", "name"), ("model", "tokenizer"), ("model", "decoder"))


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load, merge, override and validate a recipe; raise RecipeError listing all problems."""
    data, origins = _load_with_extends(Path(path), chain=())
    for item in overrides:
        _apply_override(data, origins, item)
    found: Problems = []
    data = _normalise(data, Recipe, (), found)
    found += _empty_paths(data) + metric_problems(data)
    problems = [f"{_where(loc, origins, str(path))}: {'.'.join(loc) or '(recipe)'}: {msg}" for loc, msg in found]
    recipe = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:  # a key already reported above (a NaN, a boolean) is not repeated
        seen = {loc for loc, _ in found}
        problems = [_describe(err, origins, str(path)) for err in exc.errors()
                    if tuple(str(p) for p in err["loc"]) not in seen] + problems
    if recipe is not None and not problems:  # numbers pydantic made from text ("-inf" in a float field)
        problems = [f"{_where(loc, origins, str(path))}: {'.'.join(loc)}: {msg}" for loc, msg in _non_finite(recipe)]
    if problems:
        raise RecipeError(
            f"recipe {path} has {len(problems)} problem{'s' if len(problems) > 1 else ''}:\n"
            + "\n".join(f"  {p}" for p in problems),
            "fix the keys listed above, then check again with `tunekit validate RECIPE`",
        )
    return recipe


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML (what `validate --print` shows and runs save)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# ---- reading YAML, bounded -------------------------------------------------------------------

def _load_with_extends(path: Path, chain: tuple[Path, ...]) -> tuple[dict, Origins]:
    data, origins = _read_yaml(path)
    bases = data.pop("extends", None)
    origins.pop(("extends",), None)
    if bases is None:
        return data, origins
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b.strip() and "\0" not in b for b in bases):
        raise RecipeError(f"{path}: extends must be a file name or a list of file names",
                          "write `extends: base.yaml` (relative to this recipe)")
    merged: dict = {}
    merged_origins: Origins = {}
    for base in bases:
        base_path = (path.parent / base).resolve()
        if base_path in chain or base_path == path.resolve():
            raise RecipeError(f"{path}: extends {base} makes a cycle",
                              "remove the circular `extends:` entry")
        base_data, base_origins = _load_with_extends(base_path, chain + (path.resolve(),))
        merged = _deep_merge(merged, base_data)
        merged_origins.update(base_origins)
    merged_origins.update(origins)
    return _deep_merge(merged, data), merged_origins


def _read_yaml(path: Path) -> tuple[dict, Origins]:
    data, node = parse_yaml(read_text(path), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys to values",
                          "start from a shipped recipe such as recipes/sentiment.yaml")
    origins: Origins = {}
    _collect_lines(node, (), str(path), origins)
    return data, origins


def _collect_lines(node: Any, prefix: tuple[str, ...], file: str, out: Origins) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = prefix + (str(key_node.value),)
            out[key] = f"{file}:{key_node.start_mark.line + 1}"
            _collect_lines(value_node, key, file, out)


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(data: dict, origins: Origins, item: str) -> None:
    key, sep, raw = item.partition("=")
    parts = tuple(p for p in key.strip().split("."))
    if not sep or not all(parts):
        raise RecipeError(f"--set {item!r} is not KEY=VALUE",
                          "write e.g. --set train.lr=3e-5 (dotted key path, then =, then a value)")
    try:
        value = parse_yaml(raw, f"--set {key}")[0] if raw.strip() else ""
    except RecipeError as exc:
        if "not valid YAML" not in exc.message and "not a text/YAML" not in exc.message:
            raise  # an alias bomb, a recursive alias
        value = raw  # not YAML: the text as given
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"--set {key}: {'.'.join(parts[:i + 1])} is a value, not a section",
                              "set the whole value instead, e.g. --set " + ".".join(parts[:i + 1]) + "=...")
        node = child
    node[parts[-1]] = value
    origins[parts] = "--set"


# ---- values against the schema ---------------------------------------------------------------

def _alternatives(annotation: Any) -> list:
    """A type's alternatives: Optional/Union members, Annotated unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [alt for arg in typing.get_args(annotation) for alt in _alternatives(arg)]
    return [annotation]


def _normalise(value: Any, annotation: Any, loc: tuple[str, ...], problems: Problems) -> Any:
    """A copy of a raw value with YAML words resolved against the schema type, recording
    non-finite numbers and booleans given for numbers. Keys of schema sections become text."""
    alts = _alternatives(annotation)
    wants_bool = bool in alts or Any in alts
    literals = [a for a in alts if typing.get_origin(a) is typing.Literal]
    wants_text = str in alts or any(isinstance(v, str) for lit in literals for v in typing.get_args(lit))
    wants_number = int in alts or float in alts
    if isinstance(value, YamlWord):
        if wants_bool or not (wants_text or wants_number):
            return value.value
        return value.text  # e.g. `within: off`, or a clear error for `epochs: yes`
    if isinstance(value, bool):
        if wants_number and not (wants_bool or wants_text):
            problems.append((loc, f"{str(value).lower()} is a boolean, not a number"))
        return value
    if isinstance(value, float) or (isinstance(value, str) and float in alts and not wants_text):
        try:
            number = float(value)
        except ValueError:
            return value
        if not math.isfinite(number):
            problems.append((loc, f"{value} is not a finite number (NaN and infinity are refused)"))
        return value
    if isinstance(value, dict):
        model = next((a for a in alts if _is_model(a)), None)
        if model is not None:
            return {str(k): _normalise(v, model.model_fields[k].annotation if k in model.model_fields else Any,
                                       loc + (str(k),), problems) for k, v in value.items()}
        mapping = next((a for a in alts if typing.get_origin(a) is dict), None)
        inner = typing.get_args(mapping)[1] if mapping is not None else Any
        return {k: _normalise(v, inner, loc + (str(k),), problems) for k, v in value.items()}
    if isinstance(value, list):
        seq = next((a for a in alts if typing.get_origin(a) in (list, tuple)), None)
        args = typing.get_args(seq) if seq is not None else ()
        if typing.get_origin(seq) is tuple and args and args[-1] is not Ellipsis:
            items = [args[i] if i < len(args) else Any for i in range(len(value))]
        else:
            items = [args[0] if args else Any] * len(value)
        return [_normalise(v, t, loc + (str(i),), problems) for i, (v, t) in enumerate(zip(value, items))]
    return value


def _non_finite(recipe: Recipe) -> Problems:
    def walk(value: Any, loc: tuple[str, ...]):
        if isinstance(value, float) and not math.isfinite(value):
            yield loc, f"{value} is not a finite number (NaN and infinity are refused)"
        items = (value.items() if isinstance(value, dict)
                 else enumerate(value) if isinstance(value, (list, tuple)) else ())
        for key, item in items:
            yield from walk(item, loc + (str(key),))
    return list(walk(recipe.model_dump(), ()))


def _empty_paths(data: dict) -> Problems:
    """Empty file, folder and model names ("" would silently mean the working directory)."""
    problems: Problems = []
    for loc in PATH_KEYS:
        section = data.get(loc[0])
        value = section.get(loc[1]) if isinstance(section, dict) else None
        entries = value if isinstance(value, list) else [value]
        for i, entry in enumerate(entries):
            ref = entry.get("path") if isinstance(entry, dict) else entry
            if isinstance(ref, str) and not ref.strip():
                at = loc + (str(i),) if isinstance(value, list) else loc
                at += ("path",) if isinstance(entry, dict) else ()
                problems.append((at, "an empty path: name a file, a glob, a folder"
                                 + (" or a model" if loc[0] == "model" else "")
                                 + (", or remove the key" if loc[1] not in ("train", "name") else "")))
    return problems


# ---- messages --------------------------------------------------------------------------------

def _describe(err: dict, origins: Origins, file: str) -> str:
    loc = tuple(str(p) for p in err["loc"])
    keypath = ".".join(loc) or "(recipe)"
    where = _where(loc, origins, file)
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
        close = difflib.get_close_matches(loc[-1], _fields_at(loc[:-1]), n=1, cutoff=0.5)
        if close:
            msg += f" (did you mean {'.'.join(loc[:-1] + (close[0],))!r}?)"
        else:
            msg += f" (valid keys here: {', '.join(_fields_at(loc[:-1])) or 'none'})"
    elif err["type"] == "missing":
        msg = "required key is missing"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] not in ("value_error", "assertion_error") and "input" in err:
            shown = repr(err["input"])
            msg += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
    return f"{where}: {keypath}: {msg}"


def _where(loc: tuple[str, ...], origins: Origins, file: str) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            return origins[loc[:n]]
    return file


def _fields_at(loc: tuple[str, ...]) -> list[str]:
    """Field names of the schema section at `loc` (for "did you mean" suggestions)."""
    model: Any = Recipe
    for part in loc:
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return []
        model = next((alt for alt in _alternatives(field.annotation) if _is_model(alt)), None)
    names = list(model.model_fields) if _is_model(model) else []
    return names + (["extends"] if model is Recipe else [])


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)
