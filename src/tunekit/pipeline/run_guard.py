"""Open a recipe's run folder for writing: where it may be, that it is tunekit's, one writer.

Every step that writes a run (prepare, tokenize, finetune) enters `writing(run)`: the folder is
made (or checked to be) a tunekit run, then locked for this process. The location rules need the
recipe and run once per command, in `check_location`.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from tunekit.console import console
from tunekit.ownership import claim, expand, refuse_holding, refuse_reserved
from tunekit.pipeline.distributed import is_main, launched
from tunekit.recipe import Recipe
from tunekit.run_lock import run_lock
from tunekit.runs import RunDir


def run_of(recipe: Recipe) -> RunDir:
    """The recipe's run folder (its `~` was expanded when the recipe was read)."""
    return RunDir(Path(recipe.output_dir))


def local_inputs(recipe: Recipe) -> list[Path]:
    """The recipe's data files and model/tokenizer folders that lie on this disk."""
    refs: list[str] = [recipe.model.name, recipe.model.tokenizer or ""]
    for split in (recipe.data.train, recipe.data.validation, recipe.data.test):
        for entry in split if isinstance(split, list) else [split]:
            refs.append(getattr(entry, "path", entry) or "")
    return [Path(ref) for ref in refs if ref and "://" not in ref and "*" not in ref and expand(ref).exists()]


def check_location(recipe: Recipe, recipe_path: Optional[str] = None) -> None:
    """output_dir is not the root, home or working folder, and holds neither recipe nor data."""
    run = run_of(recipe)
    refuse_reserved(run.root, "output_dir")
    inputs = local_inputs(recipe) + ([Path(recipe_path)] if recipe_path else [])
    refuse_holding(run.root, inputs, "output_dir")


@contextmanager
def writing(run: RunDir) -> Iterator[RunDir]:
    """Claim the run folder and hold its lock while the block writes it. Only the main process
    of a multi-process run writes; the processes `--nproc` starts run under their parent's lock."""
    if not is_main() or launched():
        yield run
        return
    created = not run.root.exists()
    claim(run.root, "run")
    try:
        with run_lock(run.root, say=console.print):
            yield run
    except BaseException:
        if created and not _holds_work(run.root):  # a command that failed at once leaves no folder
            import shutil

            shutil.rmtree(run.root, ignore_errors=True)
        raise


def _holds_work(folder: Path) -> bool:
    from tunekit.ownership import LOCK_FILE, MARKER

    return any(p.is_file() and p.name not in (MARKER, LOCK_FILE) for p in folder.rglob("*"))


# What --overwrite replaces. Everything else in the run (the data cache, a trained tokenizer,
# exports) is carried into the new run by hard links.
TRAINING_OUTPUTS = ("model", "checkpoints", "eval", "logs", "metrics.jsonl", "curves.png",
                    "manifest.json", "recipe.resolved.yaml")


def staging_of(target: RunDir) -> RunDir:
    """Where an --overwrite trains: a hidden sibling, swapped in only once the new run is saved."""
    return RunDir(target.root.parent / f".{target.root.name}.overwrite")


def open_staging(target: RunDir, fresh: bool) -> RunDir:
    """Rank 0: a new staging run beside `target` holding its data cache (a leftover staging run of
    an earlier, killed overwrite is ours: it is replaced), or the existing one to resume in."""
    import shutil

    from tunekit.ownership import LOCK_FILE, MARKER, is_owned, write_marker
    from tunekit.runs import link_tree

    staging = staging_of(target)
    if staging.root.exists() and not is_owned(staging.root):
        from tunekit.errors import RunDirError

        raise RunDirError(f"{staging.root} is in the way of --overwrite and is not a tunekit folder",
                          "move it away, then rerun")
    if fresh:
        shutil.rmtree(staging.root, ignore_errors=True)
        staging.root.mkdir()
        write_marker(staging.root, "run")
        link_tree(target.root, staging.root, skip=(*TRAINING_OUTPUTS, MARKER, LOCK_FILE))
    return staging
