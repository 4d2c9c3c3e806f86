"""Read a recipe: YAML (safe) with line numbers, `extends:` inheritance, `--set` overrides,
and every validation problem reported at once with its file, line and key path."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tunekit.errors import RecipeError
from tunekit.recipe.schema import Recipe, metric_problems

# key path -> "file:line" where the value was written (or "--set" for overrides)
Origins = dict[tuple[str, ...], str]


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load, merge, override and validate a recipe; raise RecipeError listing all problems."""
    data, origins = _load_with_extends(Path(path), chain=())
    for item in overrides:
        _apply_override(data, origins, item)
    problems = [f"{_where(loc, origins, str(path))}: {'.'.join(loc)}: {msg}" for loc, msg in metric_problems(data)]
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, origins, str(path)) for err in exc.errors()] + problems
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


def _load_with_extends(path: Path, chain: tuple[Path, ...]) -> tuple[dict, Origins]:
    data, origins = _read_yaml(path)
    bases = data.pop("extends", None)
    origins.pop(("extends",), None)
    if bases is None:
        return data, origins
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
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
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}",
                          "check the path; the shipped recipes are in recipes/")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RecipeError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})",
                          "fix the YAML syntax (indentation, colons, quotes)") from None
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
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"--set {key}: {'.'.join(parts[:i + 1])} is a value, not a section",
                              "set the whole value instead, e.g. --set " + ".".join(parts[:i + 1]) + "=...")
        node = child
    node[parts[-1]] = value
    origins[parts] = "--set"


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
            msg += f" (got {err['input']!r})"
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
        model = _unwrap(field.annotation)
    names = list(model.model_fields) if _is_model(model) else []
    return names + (["extends"] if model is Recipe else [])


def _unwrap(annotation: Any) -> Any:
    for arg in typing.get_args(annotation) or ():
        if _is_model(arg):
            return arg
    return annotation


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)
