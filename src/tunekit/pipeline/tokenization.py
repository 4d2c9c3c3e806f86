"""tokenize: prepared splits -> token ids with a truncation policy and length statistics.

Output: <run>/data/tokenized and <run>/data/tokenize_report.json, cached by a fingerprint of
the prepared data, the tokenize section and the tokenizer's files, and within that per split:
a split whose prepared rows did not change keeps its encoded output (hard-linked, not re-encoded).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from tunekit.errors import ModelError, RecipeError, RunDirError, TunekitError
from tunekit.pipeline.prepare import StepResult, prepare_fingerprint, run_prepare
from tunekit.pipeline.prepare import report_path as prepare_report_path
from tunekit.recipe.schema import Recipe
from tunekit.runs import RunDir, atomic_dir, cached_fingerprint, fingerprint, read_json, sha256_file, write_json
from tunekit.sources import resolve_model
from tunekit.tasks import get_task

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt", "merges.txt", "vocab.json", "spiece.model", "tokenizer.model")


def report_path(run: RunDir) -> Path:
    return run.root / "data" / "tokenize_report.json"


def load_tokenizer(path: str):
    """A fast tokenizer from a local folder; slow (pure Python) tokenizers are refused."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {path}: {str(exc).splitlines()[0]}",
                         "point model.tokenizer (or model.name) at a folder with tokenizer.json") from None
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"the tokenizer in {path} is not a fast tokenizer",
                         "convert it to a tokenizer.json (tokenizers library) and try again")
    return tok


def tokenizer_path(recipe: Recipe, run: "RunDir | None" = None) -> str:
    """The tokenizer a recipe uses: one trained by tokenize.train_tokenizer lives in the run
    directory's `tokenizer` folder (`run`, default output_dir: a dry run may prepare its data in a
    temporary run); otherwise model.tokenizer, or the model's own."""
    if recipe.tokenize.train_tokenizer is not None:
        return str((run.root if run is not None else Path(recipe.output_dir)) / "tokenizer")
    return resolve_model(recipe.model.tokenizer or recipe.model.name)


def tokenizer_fingerprint(path: str) -> dict:
    folder = Path(path)
    return {name: sha256_file(folder / name) for name in TOKENIZER_FILES if (folder / name).is_file()}


def encode_options(recipe: Recipe) -> dict:
    """What a task's encode needs beyond the tokenize section (a generative task: the model kind
    and eval.generation.max_new_tokens); empty for tasks without `encode_options`."""
    task = get_task(recipe.task)
    return task.encode_options(recipe) if hasattr(task, "encode_options") else {}


def tokenize_fingerprint(recipe: Recipe, prepared_fp: str, tok_path: str) -> str:
    return fingerprint(_encoding_settings(recipe, tok_path), prepared_fp)


def _encoding_settings(recipe: Recipe, tok_path: str) -> str:
    """Everything an encoded split depends on besides its prepared rows."""
    options = encode_options(recipe)
    return fingerprint("tokenize", recipe.task, recipe.tokenize.model_dump(mode="json"),
                       tokenizer_fingerprint(tok_path), *([options] if options else []))


def prepared_split_hash(run: RunDir, split: str) -> str:
    """The content of one prepared split (its Arrow files and features): a split whose rows did not
    change keeps its tokenized output when another split's source changes."""
    folder = run.prepared / split
    info = read_json(folder / "dataset_info.json") if (folder / "dataset_info.json").is_file() else {}
    files = sorted(folder.glob("*.arrow"))
    return fingerprint(info.get("features"), [sha256_file(f) for f in files])


def refuse_data_change(recipe: Recipe, run: RunDir,
                       hint: str = "write to another run directory (--set output_dir=...), "
                                   "or retrain there with finetune --overwrite") -> None:
    """A trained run's data must not change under it: the model, its manifest and later
    evaluations would then describe different data. Raises when prepare or tokenize is stale."""
    if not run.has_training_outputs():
        return
    prepared_fp, _ = prepare_fingerprint(recipe)
    stale = cached_fingerprint(prepare_report_path(run)) != prepared_fp
    tok_path = tokenizer_path(recipe, run)
    stale = stale or cached_fingerprint(report_path(run)) != tokenize_fingerprint(recipe, prepared_fp, tok_path)
    if stale:
        raise RunDirError(f"{run.root} holds a training run, and this recipe's data, tokenize section or "
                          "tokenizer differ from the ones it was trained on", hint)


def check_positions(recipe: Recipe) -> None:
    """Rows of tokenize.max_length tokens must fit the pretrained model's position table
    (max_position_embeddings or n_positions in its config.json). A model built from its config
    (init: config) is checked when built; a Hub id, when it loads; a model without a table (T5's
    relative positions), never."""
    import json

    name = recipe.model.name
    if recipe.model.init != "weights" or not (name.startswith("pkg://") or Path(name).expanduser().exists()):
        return
    try:
        config = json.loads((Path(resolve_model(name)) / "config.json").read_text(encoding="utf-8"))
        limit = config.get("max_position_embeddings") or config.get("n_positions")
    except (OSError, ValueError, AttributeError, TunekitError):
        return  # no readable config: loading the model says what is wrong
    if not isinstance(limit, int) or isinstance(limit, bool):
        return
    if config.get("model_type") in ("roberta", "xlm-roberta", "camembert", "longformer"):
        pad = config.get("pad_token_id")
        limit -= (pad if isinstance(pad, int) else 1) + 1  # positions start after the padding index
    cfg, what = recipe.tokenize, "tokenize.max_length"
    needed = cfg.max_length
    if recipe.task in ("summarization", "translation"):
        if not config.get("is_encoder_decoder"):  # one row holds the source and the target
            needed, what = cfg.max_length + cfg.max_target_length, "tokenize.max_length + max_target_length"
        elif cfg.max_target_length > needed:
            needed, what = cfg.max_target_length, "tokenize.max_target_length"
    if needed > limit:
        raise RecipeError(f"{what} ({needed}) is above the {limit} positions model {name} holds "
                          "(max_position_embeddings in its config.json)",
                          f"lower {what.split(' + ')[0]} so that rows fit in {limit} tokens")


def run_tokenize(recipe: Recipe, run: RunDir, force: bool = False) -> tuple[StepResult, StepResult]:
    """Run prepare if stale, then tokenize if stale. Returns both steps' results."""
    check_positions(recipe)  # before any data is read: the model's limit is in its config.json
    prepared = run_prepare(recipe, run, force=force)
    start = time.perf_counter()
    if recipe.tokenize.train_tokenizer is not None:  # trained on the prepared train split, cached
        from tunekit.pipeline.tokenizer_training import train_tokenizer_step

        train_tokenizer_step(recipe, run, prepared, force=force)
    tok_path = tokenizer_path(recipe, run)
    fp = tokenize_fingerprint(recipe, prepared.fingerprint, tok_path)
    if not force and run.tokenized.exists() and cached_fingerprint(report_path(run)) == fp:
        report = read_json(report_path(run))
        report["splits"] = {split: {**stats, "reused": True} for split, stats in report["splits"].items()}
        return prepared, StepResult(fp, report, True, time.perf_counter() - start)

    import datasets

    tokenizer = load_tokenizer(tok_path)
    from tunekit.pipeline.tokenizer_training import check_special_tokens

    check_special_tokens(tokenizer, recipe.task)  # a missing pad/eos token, named before any encoding
    task = get_task(recipe.task)
    source = datasets.load_from_disk(str(run.prepared))
    previous = read_json(report_path(run)) if not force and run.tokenized.exists() and report_path(run).exists() else {}
    settings = _encoding_settings(recipe, tok_path)
    encoded, splits, kept = {}, {}, []
    options = encode_options(recipe)
    for split, ds in source.items():
        split_fp = fingerprint(settings, split, prepared_split_hash(run, split))
        before = (previous.get("splits") or {}).get(split) or {}
        if before.get("fingerprint") == split_fp and (run.tokenized / split).is_dir():
            kept.append(split)  # same rows, same settings: the encoded split is still valid
            splits[split] = {**before, "reused": True}
            continue
        encoded[split], stats = task.encode(ds, tokenizer, recipe.tokenize, split, **options)
        splits[split] = {**stats, "fingerprint": split_fp, "reused": False}
    report = {"fingerprint": fp, "tokenizer": recipe.model.tokenizer or recipe.model.name,
              "max_length": recipe.tokenize.max_length, "truncation": recipe.tokenize.truncation,
              "splits": splits}
    with atomic_dir(run.tokenized) as tmp:
        for split in source:  # the layout of DatasetDict.save_to_disk, one split folder at a time
            if split in kept:
                shutil.copytree(run.tokenized / split, tmp / split, copy_function=_link_or_copy)
            else:
                encoded[split].save_to_disk(str(tmp / split))
        write_json(tmp / "dataset_dict.json", {"splits": list(source)})
    report["histogram_png"] = _length_plot(run, splits)
    write_json(report_path(run), report)
    return prepared, StepResult(fp, report, False, time.perf_counter() - start)


def _length_plot(run: RunDir, splits: dict) -> "str | None":
    """<run>/data/token_lengths.png from the splits' histograms (tasks that report none: no plot)."""
    from tunekit.pipeline.length_report import write_png

    histograms = {split: stats.get("histogram_fine", stats["histogram"]) for split, stats in splits.items()
                  if "histogram" in stats}
    if not histograms:
        return None
    path = run.root / "data" / "token_lengths.png"
    tmp = path.with_suffix(".tmp.png")
    try:
        write_png(histograms, tmp)
        os.replace(tmp, path)  # a reader never sees half a picture
    except Exception as exc:  # noqa: BLE001 - a picture is never worth the step
        tmp.unlink(missing_ok=True)
        from tunekit.console import console

        console.print(f"[yellow]warning:[/] no {path.name}: {type(exc).__name__}: {exc}")
        return None
    return str(path)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the file system allows one (no bytes copied), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
