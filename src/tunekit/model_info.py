"""What a trained model needs at inference time, found from a run directory or a model folder.

`finetune` writes <run>/model/tunekit.json: the task and the settings that turn raw input into
model input (tokenize, data.columns and data.style, the eval section with its generation
settings). A model folder therefore carries everything predict, serve, export, push and
`eval --model` need; runs trained before the file existed fall back to the run's resolved recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunekit.errors import RunDirError
from tunekit.recipe.schema import Columns, EvalConfig, TokenizeConfig
from tunekit.runs import RunDir, read_json, write_json

INFO_FILE = "tunekit.json"


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


def info_payload(recipe, version_2: bool = False) -> dict:
    """The part of a recipe that inference needs (written as <model>/tunekit.json)."""
    from tunekit.pipeline.tokenization import encode_options

    return {
        "task": recipe.task,
        "recipe": recipe.name,
        # a model built from a config (model.init: config) has no base: its weights start random
        "base_model": recipe.model.name if recipe.model.init == "weights" else None,
        "tokenize": recipe.tokenize.model_dump(mode="json"),
        "data": {"columns": recipe.data.columns.model_dump(mode="json"), "style": recipe.data.style,
                 "normalize_whitespace": recipe.data.clean.normalize_whitespace},
        "eval": recipe.eval.model_dump(mode="json"),
        "encode_options": encode_options(recipe),
        "version_2": version_2,
    }


def payload_of(info: ModelInfo) -> dict:
    """A ModelInfo back as tunekit.json content (for folders made from a run: exports, merges)."""
    return {"task": info.task, "recipe": info.recipe_name, "base_model": info.base_model,
            "tokenize": info.tokenize.model_dump(mode="json"),
            "data": {"columns": info.columns.model_dump(mode="json"), "style": info.style,
                     "normalize_whitespace": info.normalize_whitespace},
            "eval": info.eval.model_dump(mode="json"), "encode_options": info.encode_options,
            "version_2": info.version_2}


def write_model_info(model_dir: Path, recipe, run: RunDir) -> None:
    write_json(model_dir / INFO_FILE, info_payload(recipe, _version_2(run)))


def _version_2(run: RunDir) -> bool:
    """qa: whether the prepared data had unanswerable questions (prepare's report says)."""
    report = run.root / "data" / "prepare_report.json"
    return bool(read_json(report).get("version_2", False)) if report.is_file() else False


def _from_payload(payload: dict, model_dir: Path, run: Optional[RunDir], task: Optional[str]) -> ModelInfo:
    data = payload.get("data") or {}
    return ModelInfo(
        task=task or payload.get("task") or "classification",
        model_dir=model_dir,
        run=run,
        tokenize=TokenizeConfig(**(payload.get("tokenize") or {})),
        columns=Columns(**(data.get("columns") or {})),
        style=data.get("style") or "instruction",
        eval=EvalConfig(**(payload.get("eval") or {})),
        base_model=_recipe_base(payload["model"]) if "model" in payload else payload.get("base_model"),
        recipe_name=payload.get("recipe") or payload.get("name"),
        encode_options=payload.get("encode_options") or {},
        normalize_whitespace=bool(data.get("normalize_whitespace", (data.get("clean") or {}).get("normalize_whitespace", True))),
        version_2=bool(payload.get("version_2", False)),
    )


def find_model(ref: str | Path, task: Optional[str] = None) -> ModelInfo:
    """A run directory (uses <run>/model) or a saved model folder -> its ModelInfo.

    `task` overrides what the folder says (needed only for folders tunekit did not write)."""
    import yaml

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
    if (model_dir / INFO_FILE).is_file():
        return _from_payload(read_json(model_dir / INFO_FILE), model_dir, run, task)
    if run is not None and run.resolved_recipe.is_file():  # runs trained before tunekit.json existed
        resolved = yaml.safe_load(run.resolved_recipe.read_text()) or {}
        return _from_payload({**resolved, "encode_options": _encode_options(resolved), "version_2": _version_2(run)},
                             model_dir, run, task)
    return _from_payload({}, model_dir, run, task)


def _encode_options(resolved: dict) -> dict:
    from pydantic import ValidationError

    from tunekit.pipeline.tokenization import encode_options
    from tunekit.recipe.schema import Recipe

    try:
        return encode_options(Recipe(**resolved))
    except (ValidationError, TypeError):
        return {}


def _recipe_base(model: dict) -> Optional[str]:
    """The base model a resolved recipe's model section names (none for model.init: config)."""
    return model.get("name") if model.get("init", "weights") == "weights" else None
