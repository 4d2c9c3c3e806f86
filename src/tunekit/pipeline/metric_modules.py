"""Metric modules in the `evaluate` library's format, loaded from a local path (offline).

tunekit ships its own under tunekit/metrics/ (squad, rouge, sacrebleu, classification), each a
thin wrapper over the function tunekit itself scores with, so `evaluate.load(<path>)` gives the
same numbers as `tunekit eval`. A user may name more modules (eval.metric_modules in the recipe,
or `tunekit eval --metric-module PATH`): each is run on the evaluation's predictions and its
scalar results are added to metrics.json as <module>_<key>.

A module is code, so it runs only where the user names it: on the command line, or in the recipe
they train with (finetune's own evaluation). A model folder's tunekit.json records the training
recipe's eval section, modules included; `eval --model` and `eval RUN` list those as not run
(`not_run`) and never import them: a downloaded model must not run code on the scorer's machine.

What a module receives, per task (the layout the Hugging Face metrics of that task expect):
    classification           predictions, references: class ids (ints)
    qa                       predictions [{"id", "prediction_text"}],
                             references [{"id", "answers": {"text", "answer_start"}}]
    summarization/translation, causal_lm
                             predictions, references: texts (causal_lm: the generated samples)
"""

from __future__ import annotations

from pathlib import Path

from tunekit.errors import TunekitError

BUILTIN = ("squad", "rouge", "sacrebleu", "classification")


def builtin_path(name: str) -> str:
    """The folder of one of tunekit's own modules: evaluate.load(builtin_path("rouge"))."""
    return str(Path(__file__).resolve().parent.parent / "metrics" / name)


def module_name(ref: str) -> str:
    path = Path(ref)
    return (path.stem if path.suffix == ".py" else path.name).replace("-", "_")


def check_module_refs(refs: tuple[str, ...]) -> None:
    """Fail before any model loads when a module path does not exist."""
    for ref in refs:
        path = Path(ref)
        if not (path.is_file() and path.suffix == ".py") and not (path.is_dir() and (path / f"{path.name}.py").is_file()):
            raise TunekitError(f"metric module not found: {ref}",
                               "give a local evaluate module: a .py file, or a folder NAME holding NAME.py")


def not_run(recorded, chosen: tuple[str, ...]) -> list[str]:
    """Names of the modules a model folder records that the user did not name (by module name;
    names only: a recorded path is a path on the machine that trained the model)."""
    named = {module_name(m) for m in chosen}
    return list(dict.fromkeys(module_name(ref) for ref in recorded or () if module_name(ref) not in named))


def not_run_notice(name: str) -> str:
    return f"not run: {name} (a metric module named in the model's tunekit.json); pass --metric-module PATH to run it"


def inputs_for(task: str, rows: list[dict], metrics: dict) -> tuple[list, list]:
    if task == "classification":
        names = metrics["confusion_matrix"]["labels"]
        return [names.index(r["prediction"]) for r in rows], [names.index(r["label"]) for r in rows]
    if task == "qa":
        return ([{"id": r["id"], "prediction_text": r["prediction"]} for r in rows],
                [{"id": r["id"], "answers": {"text": list(r["answers"]), "answer_start": [0] * len(r["answers"])}}
                 for r in rows])  # answer_start is not in the prediction rows; no SQuAD metric scores it
    key = "generation" if task == "causal_lm" else "prediction"
    return [r[key] for r in rows], [r["reference"] for r in rows]


def run_modules(refs: tuple[str, ...], task: str, rows: list[dict], metrics: dict) -> dict[str, float]:
    if not refs:
        return {}
    import evaluate

    check_module_refs(refs)
    predictions, references = inputs_for(task, rows, metrics)
    out: dict[str, float] = {}
    for ref in refs:
        name = module_name(ref)
        try:
            result = evaluate.load(str(Path(ref).resolve())).compute(predictions=predictions, references=references)
        except Exception as exc:  # a user's module: report its failure as bad input, not a crash
            raise TunekitError(f"metric module {ref} failed: {type(exc).__name__}: {exc}",
                               "check the module's inputs against the layout in `tunekit eval --help`") from None
        for key, value in (result or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{name}_{key}"] = float(value)
    return out
