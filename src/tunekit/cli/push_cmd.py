from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tunekit.cli.common import JsonOption, print_json, quiet_libraries, report_errors
from tunekit.console import console


@report_errors
def push(
    run: str = typer.Argument(..., metavar="RUN",
                              help="Run directory written by `tunekit finetune` (or a model folder)."),
    repo: Optional[str] = typer.Option(None, "--repo", metavar="OWNER/NAME",
                                       help="Hub model repo to upload to (created if missing)."),
    to: Optional[Path] = typer.Option(None, "--to", metavar="DIR", help="Write the folder here instead of uploading."),
    private: bool = typer.Option(False, "--private",
                                 help="Create the repo private (an existing repo keeps its visibility)."),
    revision: Optional[str] = typer.Option(None, "--revision", metavar="BRANCH",
                                           help="Branch to commit to (created if missing; default main)."),
    message: Optional[str] = typer.Option(None, "--message", "-m",
                                          help="Commit message (default: names the run and its headline metric)."),
    merge: bool = typer.Option(False, "--merge",
                               help="Merge a PEFT adapter into its base first and ship full weights."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Ship pickle-format weights (*.bin, *.pt, ...) "
                                      "too; by default only safetensors ship."),
    base_model: Optional[str] = typer.Option(None, "--base-model", metavar="OWNER/NAME",
                                             help="Hub id of the base model for the card's metadata "
                                             "(default: the recipe's model.name when it is a Hub id)."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="List the files that would ship (with sizes) and those skipped; upload or "
                                 "write nothing (no token needed)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --to DIR."),
    json_: bool = JsonOption,
) -> None:
    """Ship a trained model: its files, a model card and its metrics, to a Hub repo (--repo) or a folder (--to).

    Only an allowlist ships: safetensors weights, config.json, generation_config.json,
    adapter_config.json, the tokenizer's files, tunekit.json and tunekit_adapter.json, plus the
    card (README.md) and eval/metrics.json; anything else in the model folder is listed as
    skipped. A file holding a secret (a Hub, AWS, GitHub or OpenAI key, a private key, your token)
    or a local path refuses the push. An upload is one commit after which the revision holds
    exactly the shipped folder (files an earlier push left there are removed). The token comes
    from HF_TOKEN or the stored login (`hf auth login`); HF_ENDPOINT picks another Hub."""
    from tunekit.shipping.push import PushOptions, ship

    opts = PushOptions(run=run, repo_id=repo, to=to, private=private, revision=revision, message=message,
                       merge=merge, allow_pickle=allow_pickle, dry_run=dry_run, overwrite=overwrite,
                       base_model=base_model)
    if merge:
        quiet_libraries()  # merging loads the base model with transformers
    if json_:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    result = ship(opts, say=lambda text: console.print(text))
    if json_:
        print_json(result)
        return
    _show(result)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _show(result: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("file")
    table.add_column("size", justify="right")
    for f in result["files"]:
        table.add_row(escape(f["path"]), _size(f["size"]))
    console.print(table)
    skipped = result.get("skipped") or []
    if skipped:  # what the allowlist left out of the model folder: nothing goes missing unseen
        console.print(f"skipped, not shipped ({len(skipped)}):")
        left = Table(box=None, show_header=False, pad_edge=False)
        left.add_column("file")
        left.add_column("why")
        for item in skipped:
            left.add_row(escape(item["path"]), f"[dim]{escape(item['reason'])}[/]")
        console.print(left)
    what = f"{len(result['files'])} files, {_size(result['total_size'])}"
    if result["dry_run"]:
        where = f"to {result['repo']} (revision {result['revision']})" if result.get("repo") else f"to {result['to']}"
        console.print(f"[yellow]dry run:[/] {what} would be shipped {escape(where)}; nothing was written or uploaded")
    elif result.get("to"):
        console.print(f"[green]wrote:[/] {what} to {escape(result['to'])}")
    else:
        console.print(f"[green]pushed:[/] {what} to {escape(result['repo'])} (revision {escape(result['revision'])})")
        console.print(f"commit: {escape(result['commit_url'])}", soft_wrap=True)  # a URL must stay whole
