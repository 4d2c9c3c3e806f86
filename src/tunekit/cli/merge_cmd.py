from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tunekit.cli.common import JsonOption, print_json, quiet_libraries, report_errors
from tunekit.console import console
from tunekit.errors import RunDirError


@report_errors
def merge(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory trained with train.peft (or its model folder)."),
    out: Optional[Path] = typer.Option(None, help="Folder for the merged model (default: <run>/merged)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    json_: bool = JsonOption,
) -> None:
    """Merge a run's PEFT adapter into its base model: a plain model folder (safetensors + config + tokenizer)."""
    root = Path(run)
    if (root / "model").is_dir():
        model_dir, default_out = root / "model", root / "merged"
    elif (root / "adapter_config.json").is_file():  # an adapter folder itself
        model_dir, default_out = root, root.with_name(root.name + "-merged")
    elif root.is_dir():
        raise RunDirError(f"{root} has no trained model ({root / 'model'} is missing)",
                          "train it first: tunekit finetune RECIPE")
    else:
        raise RunDirError(f"run directory not found: {run}", "train it first: tunekit finetune RECIPE")
    from tunekit.ownership import check_output, require_owned, write_marker
    from tunekit.pipeline.adapters import merge_adapter, require_adapter

    require_adapter(model_dir)  # the first thing to know: is there anything to merge
    if out is None and model_dir != root:  # the default, <run>/merged, is written into the run
        require_owned(root, "merged/")
    protected = {**({"the run": root} if model_dir != root else {}), "the model folder": model_dir}
    target = check_output(out or default_out, overwrite, protected, "--out", run_part="merged")
    quiet_libraries()
    merge_adapter(model_dir, target, overwrite=overwrite)
    write_marker(target, "merge")  # tunekit's folder: a later --overwrite may replace it
    if json_:
        print_json({"adapter": str(model_dir), "model": str(target)})
        return
    console.print(f"[green]merged:[/] {model_dir} -> {target}; it loads like any model, "
                  f"e.g. `tunekit eval --model {target} --data FILE`")
