"""Where `tunekit eval` writes metrics.json and predictions.jsonl, without clobbering anyone's folder.

    eval RUN              -> RUN/eval (the run is tunekit's)
    eval ... --out DIR    -> DIR: new, empty, or an earlier tunekit output (replaced); never the
                             run, a parent of it, the model folder, or the working directory
    eval --model M        -> a new folder ./tunekit-eval-YYYYmmdd-HHMMSS, printed
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from tunekit.ownership import check_output, new_folder, protected_paths, require_owned, write_marker


@contextmanager
def eval_output(run: Optional[str], model: Optional[str], out: Optional[Path]) -> Iterator[Optional[Path]]:
    """Yield the folder to write (None: the run's own eval/); a folder made here and left empty by
    a failure is removed, and a written one is marked as tunekit's."""
    from tunekit.model_info import find_model

    if out is None and run is not None:
        require_owned(Path(run), "its eval/ folder")
        yield None
        return
    made = out is None
    if made:
        target = new_folder(Path.cwd(), "tunekit-eval")
    else:
        protected = protected_paths(find_model(run or model))
        target = check_output(out, True, protected, "--out", run_part="eval")  # an earlier eval output is replaced
    try:
        yield target
    except BaseException:
        if made:
            shutil.rmtree(target, ignore_errors=True)
        raise
    write_marker(target, "eval")
