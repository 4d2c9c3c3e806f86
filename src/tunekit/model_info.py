"""What a trained model needs at inference time, found from a run directory or a model folder.

`finetune` writes <run>/model/tunekit.json: the task and the settings that turn raw input into
model input (tokenize, data.columns and data.style, the eval section with its generation
settings). A model folder therefore carries everything predict, serve, export, push and
`eval --model` need; runs trained before the file existed fall back to the run's resolved recipe.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Optional, get_args

from tunekit.errors import ModelError, RunDirError
from tunekit.recipe.schema import Columns, EvalConfig, TaskName, TokenizeConfig
from tunekit.runs import RunDir, read_json, write_json
from tunekit.sources import PKG_SCHEME

INFO_FILE = "tunekit.json"
TASKS = get_args(TaskName)


@dataclass(frozen=True)
class ModelInfo:
    task: str
    model_dir: Path                 # the folder from_pretrained (or the task's load_trained) reads
    run: Optional[RunDir]           # the run it came from, when given a run directory
    tokenize: TokenizeConfig
    columns: Columns
    style: str                      # causal_lm data style (text | instruction | chat)
    eval: EvalConfig                # incl. eval.generation (max_new_tokens, beams, batch size)
    base_model: Optional[str]       # the recipe's model.name
    recipe_name: Optional[str]
    encode_options: dict            # the task's extra encode arguments (model kind, generation length)
    normalize_whitespace: bool = True   # data.clean.normalize_whitespace: raw inputs are cleaned alike
    version_2: bool = False             # qa: trained with unanswerable questions ("no answer" allowed)

    @property
    def is_adapter(self) -> bool:
        return (self.model_dir / "adapter_config.json").is_file()

    @property
    def label_names(self) -> list[str]:
        """Class names in id order (classification), from the saved config.json."""
        config = self.model_dir / "config.json"
        id2label = (read_json(config).get("id2label") or {}) if config.is_file() else {}
        return [id2label[k] for k in sorted(id2label, key=int)]


def info_payload(recipe, version_2: bool = False, folder: Optional[Path] = None) -> dict:
    """The part of a recipe that inference needs (written as <model>/tunekit.json, `folder`)."""
    from tunekit.pipeline.tokenization import encode_options

    return {
        "task": recipe.task,
        "recipe": recipe.name,
        # a model built from a config (model.init: config) has no base: its weights start random;
        # a local base is written relative to the folder, never as an absolute path (DESIGN 5b)
        "base_model": portable_ref(recipe.model.name, folder) if recipe.model.init == "weights" else None,
        "tokenize": recipe.tokenize.model_dump(mode="json"),
        "data": {"columns": recipe.data.columns.model_dump(mode="json"), "style": recipe.data.style,
                 "normalize_whitespace": recipe.data.clean.normalize_whitespace},
        # metric modules by name only: a model folder never names a path, and eval never runs them
        "eval": {**recipe.eval.model_dump(mode="json"),
                 "metric_modules": [Path(m).name for m in recipe.eval.metric_modules]},
        "encode_options": encode_options(recipe),
        "version_2": version_2,
    }


def payload_of(info: ModelInfo, folder: Optional[Path] = None) -> dict:
    """A ModelInfo back as tunekit.json content for a folder made from it (an export in `folder`;
    an upload without one): a local base model is pointed at from there, never by absolute path."""
    base = info.base_model
    where = local_path(base, info.model_dir)
    if where is not None:
        base = portable_ref(str(where), folder)
    return {"task": info.task, "recipe": info.recipe_name, "base_model": base,
            "tokenize": info.tokenize.model_dump(mode="json"),
            "data": {"columns": info.columns.model_dump(mode="json"), "style": info.style,
                     "normalize_whitespace": info.normalize_whitespace},
            "eval": info.eval.model_dump(mode="json"), "encode_options": info.encode_options,
            "version_2": info.version_2}


def write_model_info(model_dir: Path, recipe, run: RunDir) -> None:
    write_json(model_dir / INFO_FILE, info_payload(recipe, _version_2(run), model_dir))


def portable_ref(ref: Optional[str], folder: Optional[Path]) -> Optional[str]:
    """A model reference as tunekit writes it into a model folder (or a shipped copy of one, DESIGN 5b):
    pkg:// and Hub ids as they are; a local folder as its path relative to `folder` (e.g.
    `../../models/bert`, what the adapter loader resolves it against), or `~/...` when that path
    would name the user or the home folder, else `./NAME`, its name alone; without a `folder` (an
    upload) always `./NAME`. Never an absolute path, the home folder or the user name."""
    if not ref or ref.startswith(PKG_SCHEME):
        return ref
    path = Path(ref).expanduser()
    if not (ref.startswith((".", "/", "~")) or path.is_absolute() or path.exists()):
        return ref  # a Hub id
    path = path.resolve()
    candidates = []
    if folder is not None:
        candidates.append(Path(os.path.relpath(path, Path(folder).resolve())).as_posix())
        home = home_folder()
        if home is not None and path.is_relative_to(home) and path != home:
            candidates.append("~/" + path.relative_to(home).as_posix())
    for candidate in candidates:
        if not _names_the_user(candidate):
            return candidate if candidate.startswith((".", "~")) else "./" + candidate
    return "./" + (path.name or "model")


def local_path(ref: Optional[str], folder: Path) -> Optional[Path]:
    """Where a model reference written by portable_ref (or an older absolute one) points on this
    machine, relative ones read against `folder`; None for pkg:// and Hub ids."""
    if not ref or ref.startswith(PKG_SCHEME):
        return None
    if ref.startswith(("./", "../")) or ref in (".", ".."):
        return (Path(folder) / ref).resolve()
    if ref.startswith("~") or os.path.isabs(ref):
        return Path(ref).expanduser().resolve()
    return None


def home_folder() -> Optional[Path]:
    try:
        home = Path.home().resolve()
    except (RuntimeError, OSError, KeyError):
        return None
    return home if len(home.parts) > 1 else None  # a home of "/" names nothing


def user_name() -> Optional[str]:
    try:
        return getpass.getuser() or None
    except (OSError, KeyError, ImportError):
        return None


def _names_the_user(relative: str) -> bool:
    """Whether a relative path shows the user name or passes through the home folder by name."""
    home = home_folder()
    home_parts = set(home.parts[1:]) if home is not None else set()
    user = (user_name() or "").lower()
    for part in PurePosixPath(relative).parts:
        if part in ("..", ".", "~"):
            continue
        if part in home_parts or (len(user) >= 3 and user in part.lower()) or part.lower() == user:
            return True
    return False


def _version_2(run: RunDir) -> bool:
    """qa: whether the prepared data had unanswerable questions (prepare's report says)."""
    report = run.root / "data" / "prepare_report.json"
    return bool(read_json(report).get("version_2", False)) if report.is_file() else False


def _hint(source: Path) -> str:
    if source.name == INFO_FILE:
        return ("fix or delete that file (tunekit finetune writes it; without it a run directory falls back to "
                "its recipe.resolved.yaml), or copy the model folder again from its run")
    return "restore the run's recipe.resolved.yaml (tunekit finetune writes it), or train the run again"


def _section(payload: dict, key: str, source: Path) -> dict:
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelError(f"{source}: {key!r} must be a mapping, not {_kind(value)}", _hint(source))
    return value


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _typed(payload: dict, key: str, types: tuple, source: Path, default: Any = None) -> Any:
    value = payload.get(key, default)
    if value is not None and not isinstance(value, types):
        raise ModelError(f"{source}: {key!r} must be {_kind(types[0]())}, not {_kind(value)} ({value!r:.40})",
                         _hint(source))
    return value


def _settings(cls, values: dict, where: str, source: Path):
    from pydantic import ValidationError

    try:
        return cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in (where, *first["loc"]))
        raise ModelError(f"{source}: {loc}: {first['msg']}", _hint(source)) from None


def _from_payload(payload: Any, model_dir: Path, run: Optional[RunDir], task: Optional[str],
                  source: Path) -> ModelInfo:
    """Check what a tunekit.json (or a run's resolved recipe) says, then build the ModelInfo. A file
    edited by hand or cut short is a ModelError naming it (exit 2), not a crash."""
    if not isinstance(payload, dict):
        raise ModelError(f"{source} must hold a JSON object of model settings, not {_kind(payload)}", _hint(source))
    data = _section(payload, "data", source)
    chosen = task or _typed(payload, "task", (str,), source) or "classification"
    if chosen not in TASKS:
        raise ModelError(f"{source if not task else '--task'}: unknown task {chosen!r}",
                         f"tunekit's tasks are {', '.join(TASKS)}" + ("" if task else f"; {_hint(source)}"))
    if "model" in payload:  # a resolved recipe
        model = _section(payload, "model", source)
        base = _typed(model, "name", (str,), source) if model.get("init", "weights") == "weights" else None
    else:
        base = _typed(payload, "base_model", (str,), source)
    clean = _section(data, "clean", source)
    return ModelInfo(
        task=chosen,
        model_dir=model_dir,
        run=run,
        tokenize=_settings(TokenizeConfig, _section(payload, "tokenize", source), "tokenize", source),
        columns=_settings(Columns, _section(data, "columns", source), "data.columns", source),
        style=_typed(data, "style", (str,), source) or "instruction",
        eval=_settings(EvalConfig, _section(payload, "eval", source), "eval", source),
        base_model=base,
        recipe_name=_typed(payload, "recipe", (str,), source) or _typed(payload, "name", (str,), source),
        encode_options=_section(payload, "encode_options", source),
        normalize_whitespace=_typed(data, "normalize_whitespace", (bool,), source,
                                    _typed(clean, "normalize_whitespace", (bool,), source, True)),
        version_2=_typed(payload, "version_2", (bool,), source, False),
    )


def _read_info(path: Path) -> Any:
    import json

    try:
        return read_json(path)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})", _hint(path)) from None
    except UnicodeDecodeError:
        raise ModelError(f"{path} is not UTF-8 text", _hint(path)) from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}", "check the file's permissions") from None


def _read_recipe(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not a readable recipe ({type(exc).__name__})", _hint(path)) from None


def find_model(ref: str | Path, task: Optional[str] = None) -> ModelInfo:
    """A run directory (uses <run>/model) or a saved model folder -> its ModelInfo.

    `task` overrides what the folder says (needed only for folders tunekit did not write)."""
    root = Path(ref)
    if (root / "model").is_dir():
        run, model_dir = RunDir(root), root / "model"
    elif (root / "config.json").is_file() or (root / "adapter_config.json").is_file():
        run, model_dir = None, root
    elif root.is_dir():
        raise RunDirError(f"{root} has no trained model (no model/ folder, no config.json)",
                          "train it first: tunekit finetune RECIPE, or point at a saved model folder")
    else:
        raise RunDirError(f"run directory or model folder not found: {ref}",
                          "give a run directory written by tunekit finetune, or a model folder")
    info_file = model_dir / INFO_FILE
    if info_file.is_file():
        return _from_payload(_read_info(info_file), model_dir, run, task, info_file)
    if run is not None and run.resolved_recipe.is_file():  # runs trained before tunekit.json existed
        resolved = _read_recipe(run.resolved_recipe)
        if not isinstance(resolved, dict):
            return _from_payload(resolved, model_dir, run, task, run.resolved_recipe)
        return _from_payload({**resolved, "encode_options": _encode_options(resolved), "version_2": _version_2(run)},
                             model_dir, run, task, run.resolved_recipe)
    return _from_payload({}, model_dir, run, task, info_file)


def _encode_options(resolved: dict) -> dict:
    from pydantic import ValidationError

    from tunekit.pipeline.tokenization import encode_options
    from tunekit.recipe.schema import Recipe

    try:
        return encode_options(Recipe(**resolved))
    except (ValidationError, TypeError):
        return {}
