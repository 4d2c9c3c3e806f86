"""tokenize: prepared splits -> token ids with a truncation policy and length statistics.

Output: <run>/data/tokenized and <run>/data/tokenize_report.json, cached by a fingerprint of
the prepared data, the tokenize section and the tokenizer's files.
"""

from __future__ import annotations

import time
from pathlib import Path

from tunekit.errors import DataError, ModelError, RunDirError
from tunekit.pipeline.prepare import StepResult, prepare_fingerprint, run_prepare
from tunekit.pipeline.prepare import report_path as prepare_report_path
from tunekit.recipe.schema import Recipe, TokenizeConfig
from tunekit.runs import RunDir, atomic_dir, cached_fingerprint, fingerprint, read_json, sha256_file, write_json
from tunekit.sources import resolve_model
from tunekit.tasks import get_task

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt", "merges.txt", "vocab.json", "spiece.model", "tokenizer.model")
MAP_BATCH = 1000


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


def tokenizer_fingerprint(path: str) -> dict:
    folder = Path(path)
    return {name: sha256_file(folder / name) for name in TOKENIZER_FILES if (folder / name).is_file()}


def encode_options(recipe: Recipe) -> dict:
    """What a task's encode needs beyond the tokenize section (a generative task: the model kind
    and eval.generation.max_new_tokens); empty for tasks without `encode_options`."""
    task = get_task(recipe.task)
    return task.encode_options(recipe) if hasattr(task, "encode_options") else {}


def tokenize_fingerprint(recipe: Recipe, prepared_fp: str, tok_path: str) -> str:
    options = encode_options(recipe)
    return fingerprint("tokenize", recipe.task, prepared_fp, recipe.tokenize.model_dump(mode="json"),
                       tokenizer_fingerprint(tok_path), *([options] if options else []))


def refuse_data_change(recipe: Recipe, run: RunDir,
                       hint: str = "write to another run directory (--set output_dir=...), "
                                   "or retrain there with finetune --overwrite") -> None:
    """A trained run's data must not change under it: the model, its manifest and later
    evaluations would then describe different data. Raises when prepare or tokenize is stale."""
    if not run.has_training_outputs():
        return
    prepared_fp, _ = prepare_fingerprint(recipe)
    stale = cached_fingerprint(prepare_report_path(run)) != prepared_fp
    tok_path = resolve_model(recipe.model.tokenizer or recipe.model.name)
    stale = stale or cached_fingerprint(report_path(run)) != tokenize_fingerprint(recipe, prepared_fp, tok_path)
    if stale:
        raise RunDirError(f"{run.root} holds a training run, and this recipe's data, tokenize section or "
                          "tokenizer differ from the ones it was trained on", hint)


def run_tokenize(recipe: Recipe, run: RunDir, force: bool = False) -> tuple[StepResult, StepResult]:
    """Run prepare if stale, then tokenize if stale. Returns both steps' results."""
    prepared = run_prepare(recipe, run, force=force)
    start = time.perf_counter()
    tok_path = resolve_model(recipe.model.tokenizer or recipe.model.name)
    fp = tokenize_fingerprint(recipe, prepared.fingerprint, tok_path)
    if not force and run.tokenized.exists() and cached_fingerprint(report_path(run)) == fp:
        return prepared, StepResult(fp, read_json(report_path(run)), True, time.perf_counter() - start)

    import datasets

    tokenizer = load_tokenizer(tok_path)
    task = get_task(recipe.task)
    source = datasets.load_from_disk(str(run.prepared))
    out = {}
    splits = {}
    options = encode_options(recipe)
    for split, ds in source.items():
        out[split], splits[split] = task.encode(ds, tokenizer, recipe.tokenize, split, **options)
    report = {"fingerprint": fp, "tokenizer": recipe.model.tokenizer or recipe.model.name,
              "max_length": recipe.tokenize.max_length, "truncation": recipe.tokenize.truncation,
              "splits": splits}
    with atomic_dir(run.tokenized) as tmp:
        datasets.DatasetDict(out).save_to_disk(str(tmp))
    write_json(report_path(run), report)
    return prepared, StepResult(fp, report, False, time.perf_counter() - start)


def tokenize_split(ds, preprocess, tokenizer, cfg: TokenizeConfig, split: str):
    """Encode one prepared split in batches, one feature per row (adds `row` and the untruncated
    `n_tokens`); `preprocess(batch, tokenizer, max_length)` is the task's encoder."""
    return ds.map(_encoder(preprocess, tokenizer, cfg), batched=True, batch_size=MAP_BATCH, with_indices=True,
                  remove_columns=ds.column_names, desc=f"tokenize {split}",
                  load_from_cache_file=False, keep_in_memory=True)


def _encoder(preprocess, tokenizer, cfg: TokenizeConfig):
    """Encode without truncation to measure true lengths; re-encode only the long rows."""
    def encode(batch: dict, rows: list[int]) -> dict:
        full = preprocess(batch, tokenizer, None)
        full["row"] = rows  # the row in the prepared split, so predictions can show the text
        lengths = [len(ids) for ids in full["input_ids"]]
        long_rows = [i for i, n in enumerate(lengths) if n > cfg.max_length]
        if long_rows and cfg.truncation == "truncate":
            subset = {key: [values[i] for i in long_rows] for key, values in batch.items()}
            cut = preprocess(subset, tokenizer, cfg.max_length)
            for j, i in enumerate(long_rows):
                for key in cut:
                    full[key][i] = cut[key][j]
        full["n_tokens"] = lengths
        return full
    return encode


def apply_policy(ds, cfg: TokenizeConfig, split: str):
    import numpy as np

    lengths = np.asarray(ds["n_tokens"])
    over = int((lengths > cfg.max_length).sum())
    if over and cfg.truncation == "error":
        first = int(np.argmax(lengths > cfg.max_length))
        raise DataError(f"{over} {split} rows are longer than tokenize.max_length={cfg.max_length} "
                        f"(first: row {first}, {int(lengths[first])} tokens)",
                        "raise tokenize.max_length, or set tokenize.truncation to truncate or drop")
    dropped = 0
    if over and cfg.truncation == "drop":
        ds = ds.filter(lambda n: n <= cfg.max_length, input_columns="n_tokens", keep_in_memory=True)
        dropped = over
        if len(ds) == 0:
            raise DataError(f"every {split} row is longer than tokenize.max_length={cfg.max_length}",
                            "raise tokenize.max_length, or set tokenize.truncation: truncate")
    stats = {
        "rows": len(ds),
        "truncated": over if cfg.truncation == "truncate" else 0,
        "dropped": dropped,
        "tokens_p50": float(np.percentile(lengths, 50)) if len(lengths) else 0.0,
        "tokens_p95": float(np.percentile(lengths, 95)) if len(lengths) else 0.0,
        "tokens_max": int(lengths.max()) if len(lengths) else 0,
    }
    return ds, stats
