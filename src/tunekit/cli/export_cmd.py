from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from tunekit.cli.common import JsonOption, print_json, quiet_libraries, report_errors
from tunekit.console import console
from tunekit.errors import TunekitError

FORMATS = ("onnx",)
REPORT_FILE = "export_report.json"


@report_errors
def export(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory written by `tunekit finetune` (or a model folder)."),
    format_: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR",
                                       help="Folder for the export (default: <run>/onnx)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    check: bool = typer.Option(True, "--check/--no-check",
                               help="Compare onnxruntime with PyTorch on the run's test split (default on)."),
    atol: float = typer.Option(1e-4, "--atol", help="Largest absolute difference the check allows."),
    limit: Optional[int] = typer.Option(None, "--limit", metavar="N", help="Check only the first N rows."),
    json_: bool = JsonOption,
) -> None:
    """Export a classification or extractive-QA model to ONNX (dynamic batch and sequence axes),
    then check it against the PyTorch model: max abs difference <= --atol, else exit 2 and
    nothing is written. The folder holds model.onnx, config.json, the tokenizer, tunekit.json
    and export_report.json."""
    if format_ not in FORMATS:
        raise TunekitError(f"--format {format_!r} is not an export format", f"use one of: {', '.join(FORMATS)}")
    if limit is not None and limit < 1:
        raise TunekitError(f"--limit {limit} checks nothing", "give --limit a positive number of rows")
    if not atol >= 0:  # also refuses nan
        raise TunekitError(f"--atol {atol} is not a tolerance", "give --atol a number of 0 or more, e.g. 1e-4")
    from tunekit.model_info import find_model
    from tunekit.ownership import check_output, protected_paths, require_owned
    from tunekit.shipping.onnx_export import check_task, default_out

    info = find_model(run)
    check_task(info)
    if out is None and info.run is not None:  # the default, <run>/onnx, is written into the run
        require_owned(info.run.root, "onnx/")
    target = check_output(default_out(info, out), overwrite, protected_paths(info), "--out", run_part="onnx")
    quiet_libraries()
    report = _export(info, target, check, atol, limit)
    if json_:
        print_json(report)
        return
    _show(report, target)


def _export(info, target: Path, check: bool, atol: float, limit: Optional[int]) -> dict:
    """Export into a temporary folder that becomes `target` only when every step (check included) passed."""
    from tunekit import __version__
    from tunekit.ownership import write_marker
    from tunekit.runs import atomic_dir, write_json
    from tunekit.shipping import onnx_export
    from tunekit.shipping.onnx_export import MODEL_FILE, load_for_export, write_side_files
    from tunekit.shipping.onnx_parity import check_parity

    with console.status(f"loading {info.model_dir}"):
        model, tokenizer = load_for_export(info)
    with atomic_dir(target) as tmp:
        started = time.perf_counter()
        with console.status("exporting to ONNX (torch.export)"):
            graph = onnx_export.export_onnx(model, tokenizer, info.task, tmp / MODEL_FILE)
        export_s = time.perf_counter() - started
        write_side_files(model, tokenizer, info, tmp)
        parity = None
        if check:
            with console.status("checking onnxruntime against PyTorch"):
                parity = check_parity(model, tmp / MODEL_FILE, info, tokenizer, graph["inputs"], graph["outputs"],
                                      atol, limit).as_dict()
        report = {"format": "onnx", "task": info.task, "model": str(info.model_dir), "out": str(target),
                  "merged_adapter": info.is_adapter, **graph, "export_seconds": round(export_s, 3),
                  "parity": parity, "versions": _versions(__version__)}
        write_json(tmp / REPORT_FILE, report)
        write_marker(tmp, "export")  # tunekit's folder: a later --overwrite may replace it
    return report


def _versions(tunekit_version: str) -> dict:
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {"tunekit": tunekit_version, "torch": torch.__version__, "transformers": transformers.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _show(report: dict, target: Path) -> None:
    from rich.markup import escape

    merged = " (adapter merged into its base)" if report["merged_adapter"] else ""
    say = lambda text: console.print(text, soft_wrap=True)  # noqa: E731 - paths and figures stay on one line
    say(f"[green]exported:[/] {escape(report['model'])}{merged} -> {escape(str(target / report['file']))}")
    say(f"  graph: {', '.join(report['inputs'])} -> {', '.join(report['outputs'])}; opset {report['opset']}; "
        f"dynamic batch and sequence axes; {report['export_seconds']:.1f} s")
    parity = report["parity"]
    if parity is None:
        say("  [yellow]parity: not checked (--no-check)[/]")
        return
    say(f"  parity on {escape(parity['data'])}: {parity['rows']} rows, max abs diff {parity['max_abs_diff']:.2e} "
        f"(allowed {parity['atol']:g}), predictions agree {parity['predictions_agree']}/{parity['rows']}, "
        f"{parity['seconds']:.1f} s")
