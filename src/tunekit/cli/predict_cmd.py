from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from tunekit.cli.common import JsonOption, print_json, quiet_libraries, report_errors
from tunekit.console import console
from tunekit.errors import DataError, TunekitError


@report_errors
def predict(
    run: str = typer.Argument(..., metavar="RUN",
                              help="Run directory written by `tunekit finetune`, or a model folder."),
    text: Optional[str] = typer.Argument(None, metavar="TEXT",
                                         help="One input: the text (classification, summarization, translation), "
                                         "the prompt (causal_lm), or the context (qa, with --question)."),
    question: Optional[str] = typer.Option(None, "--question", help="qa: the question."),
    context: Optional[str] = typer.Option(None, "--context", help="qa: the passage to find the answer in."),
    file: Optional[Path] = typer.Option(None, "--file", metavar="JSONL",
                                        help="Many inputs: one JSON object per line, with the task's fields "
                                        "(text | question+context | prompt) or the recipe's column names."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="JSONL",
                                       help="With --file: write each input plus its prediction here, in input order."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="Inputs per forward pass (default: the task's eval batch size)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1,
                                                 help="Generative tasks: most tokens to generate "
                                                 "(default: the run's eval.generation.max_new_tokens)."),
    json_: bool = JsonOption,
) -> None:
    """Predict with a trained model on raw inputs: one from the command line, or a JSON-lines file."""
    from tunekit.model_info import find_model
    from tunekit.serving.inputs import GENERATIVE, check_input, read_jsonl

    info = find_model(run)
    task, style = info.task, info.style
    if file is None and out is not None:
        raise TunekitError("--out needs --file", "give the inputs as --file in.jsonl --out out.jsonl")
    if file is not None:
        if text is not None or question is not None or context is not None:
            raise TunekitError("give either --file or one input on the command line, not both",
                               "put every input in the --file, one JSON object per line")
        if out is not None:
            _check_out(out, info, overwrite)
        rows, inputs = read_jsonl(file, task, style, info.columns, max_new_tokens)
    else:
        row = _one_input(task, text, question, context)
        rows, inputs = [row], [check_input(row, task, style, info.columns, "the input", max_new_tokens)]

    unbounded = any("max_new_tokens" not in x for x in inputs)
    if task in GENERATIVE and not info.eval.generation.max_new_tokens and unbounded:
        raise TunekitError("this model's recipe sets no eval.generation.max_new_tokens",
                           "pass --max-new-tokens (the most tokens to generate per input)")
    quiet_libraries()
    from tunekit.serving.predictor import load_predictor

    predictor = load_predictor(info, max_new_tokens=max_new_tokens)
    start = time.perf_counter()
    predictions = predictor.predict(inputs, batch_size)
    seconds = time.perf_counter() - start
    results = [{**row, "prediction": pred} for row, pred in zip(rows, predictions)]

    if out is not None:
        _write_jsonl(out, results)
        summary = {"task": task, "model": str(info.model_dir), "inputs": len(results), "out": str(out),
                   "load_s": round(predictor.load_seconds, 3), "predict_s": round(seconds, 3)}
        if json_:
            print_json(summary)
        else:
            console.print(f"[green]predicted:[/] {len(results)} inputs -> {out} "
                          f"({seconds:.2f} s, model loaded in {predictor.load_seconds:.1f} s)")
        return
    if json_:
        print_json(results[0] if file is None else results)
        return
    _show(inputs, predictions, predictor.input_fields, task)


def _one_input(task: str, text: Optional[str], question: Optional[str], context: Optional[str]) -> dict:
    """The command-line input as the task's fields; qa takes the context from --context or TEXT."""
    if task == "qa":
        if question is None:
            raise DataError("a qa model needs --question (and the passage as --context or TEXT)",
                            'e.g. tunekit predict RUN --question "Who wrote it?" --context "..."')
        if context is not None and text is not None:
            raise DataError("give the passage once: as --context or as TEXT", "drop one of them")
        passage = context if context is not None else text
        if passage is None:
            raise DataError("a qa model needs the passage: --context", 'e.g. --question "Who?" --context "..."')
        return {"question": question, "context": passage}
    if question is not None or context is not None:
        raise DataError(f"--question and --context are for qa models; this is a {task} model",
                        'give the input as TEXT, e.g. tunekit predict RUN "some text"')
    if text is None:
        raise DataError("no input given", 'give it as TEXT (tunekit predict RUN "some text"), or many with --file')
    return {"prompt": text} if task == "causal_lm" else {"text": text}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """All lines at once, atomically: a reader never sees a half-written file."""
    import json

    from tunekit.runs import write_text

    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _show(inputs: list[dict], predictions: list[dict], fields: tuple[str, ...], task: str) -> None:
    """A table of the (checked) inputs and their predictions, on the console (stderr)."""
    from rich.table import Table

    table = Table(title=f"{task} predictions", show_lines=len(inputs) > 1)
    shown = [f for f in fields if any(f in x for x in inputs)]
    keys = list(predictions[0])
    for name in shown + keys:
        table.add_column(name, overflow="fold")
    for x, pred in zip(inputs, predictions):
        table.add_row(*[_cell(x.get(f)) for f in shown], *[_cell(pred.get(k)) for k in keys])
    console.print(table)


def _cell(value) -> str:
    import json

    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):  # class scores
        return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _check_out(out: Path, info, overwrite: bool) -> None:
    """--out is a file of its own: not a folder (`.`, the run, the model folder), not inside the
    model folder, and replaced only with --overwrite."""
    if out.is_dir():
        raise TunekitError(f"--out {out} is a folder", "give --out a file name, e.g. predictions.jsonl")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise TunekitError(f"--out {out}: {parent} is a file, not a folder", "give a path whose folders are folders")
    if info.model_dir.resolve() in out.resolve().parents:
        raise TunekitError(f"--out {out} lies inside the model folder {info.model_dir}",
                           "write predictions outside it, e.g. predictions.jsonl")
    if out.exists() and not overwrite:
        raise TunekitError(f"{out} already exists", "pass --overwrite to replace it, or choose another --out")
