from __future__ import annotations

from typing import List, Optional

import typer

from tunekit.cli.common import JsonOption, SetOption, StrictOption, load, print_json, quiet_libraries, report_errors


@report_errors
def tokenize(
    recipe: str = typer.Argument(..., metavar="RECIPE", help="Recipe YAML file."),
    overrides: Optional[List[str]] = SetOption,
    force: bool = typer.Option(False, "--force", help="Recompute even when the cached output is current."),
    strict: bool = StrictOption,
    train_tokenizer: Optional[str] = typer.Option(
        None, "--train-tokenizer", metavar="ALGORITHM",
        help="Train a tokenizer on the training split: bpe, byte-bpe, wordpiece or unigram "
             "(same as --set tokenize.train_tokenizer.algorithm=...)."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", metavar="N",
                                             help="Size of the trained tokenizer's vocabulary."),
    min_frequency: Optional[int] = typer.Option(None, "--min-frequency", metavar="K",
                                                help="How often a pair must occur to merge (trained tokenizer)."),
    compare: Optional[List[str]] = typer.Option(
        None, "--compare", metavar="TOKENIZER",
        help="Compare the recipe's tokenizer with this one (a folder or pkg://...) on the prepared data "
             "(repeatable)."),
    json_: bool = JsonOption,
) -> None:
    """Tokenize the prepared data (running prepare first when stale); report token lengths."""
    cfg = load(recipe, [*(overrides or []), *_training_overrides(recipe, overrides, strict, train_tokenizer,
                                                                  vocab_size, min_frequency)], strict)
    quiet_libraries()
    from tunekit.cli.reports import show_prepare, show_tokenize
    from tunekit.cli.tokenizer_report import show_comparison, show_training
    from tunekit.pipeline.tokenization import refuse_data_change, run_tokenize
    from tunekit.pipeline.tokenizer_training import report_path as training_report_path
    from tunekit.pipeline.run_guard import run_of, writing
    from tunekit.runs import cached_fingerprint, read_json

    run = run_of(cfg)
    with writing(run):
        refuse_data_change(cfg, run)
        trained_before = cached_fingerprint(training_report_path(run))
        prepared, tokenized = run_tokenize(cfg, run, force=force)
    training = read_json(training_report_path(run)) if cfg.tokenize.train_tokenizer else None
    comparison = None
    if compare:
        from tunekit.pipeline.tokenizer_compare import compare_tokenizers

        comparison = compare_tokenizers(cfg, run, list(compare))
    if json_:
        out = {"prepare": prepared.report, "tokenize": tokenized.report}
        if training is not None:
            out["tokenizer_training"] = training
        if comparison is not None:
            out["comparison"] = comparison
        print_json(out)
        return
    if not prepared.reused:
        show_prepare(prepared.report, False)
    if training is not None:
        show_training(training, reused=not force and trained_before == training["fingerprint"])
    show_tokenize(tokenized.report, tokenized.reused)
    if comparison is not None:
        show_comparison(comparison)


def _training_overrides(recipe: str, overrides, strict: bool, algorithm: Optional[str],
                        vocab_size: Optional[int], min_frequency: Optional[int]) -> list[str]:
    """--train-tokenizer/--vocab-size/--min-frequency as --set overrides of tokenize.train_tokenizer.
    A size without an algorithm needs a recipe that trains a tokenizer already."""
    from tunekit.errors import RecipeError

    size_alone = algorithm is None and (vocab_size is not None or min_frequency is not None)
    algorithm_alone = algorithm is not None and vocab_size is None
    if (size_alone or algorithm_alone) and load(recipe, overrides, strict).tokenize.train_tokenizer is None:
        if size_alone:
            flag = "--vocab-size" if vocab_size is not None else "--min-frequency"
            raise RecipeError(f"{flag} sets the size of a trained tokenizer, but the recipe trains none",
                              "add --train-tokenizer ALGORITHM (bpe, byte-bpe, wordpiece or unigram)")
        raise RecipeError("--train-tokenizer needs a vocabulary size", "add --vocab-size N, e.g. --vocab-size 8000")
    prefix = "tokenize.train_tokenizer."
    return [f"{prefix}{key}={value}" for key, value in
            (("algorithm", algorithm), ("vocab_size", vocab_size), ("min_frequency", min_frequency))
            if value is not None]
