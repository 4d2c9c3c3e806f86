"""Task registry: a task name -> the module that implements it (imported on first use).

Each task module provides: encode_targets, check_data, preprocess, build_model, collator,
predict_batch and compute_metrics (see tasks/classification.py). Adding a task means one
new module plus one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TASKS: dict[str, str] = {
    "classification": "tunekit.tasks.classification",
}


def get_task(name: str) -> ModuleType:
    return importlib.import_module(TASKS[name])
