"""Packing causal-LM examples into max_length rows, and the collator that batches them.

How packed examples stay apart (transformers 5.x, checked in masking_utils.py): when a batch
has `position_ids` and no `attention_mask` (and no cache: use_cache off, as the Trainer sets it),
`create_causal_mask` reads every place where the position does not follow on by one as the
start of a new sequence (`find_packed_sequence_indices`) and masks attention between
sequences; flash attention reads
the same boundaries from position_ids. So a packed row carries position ids restarting at 0
for each example, and the collator sends no attention mask for it. Each example's first label
is masked (lm_format), so no token is trained to predict the next example's start. Together,
the loss of a packed row equals the token-weighted mean of its examples' losses computed
alone (tests/unit/test_causal_lm_task.py proves it on a tiny Llama).

Models that build their mask another way would silently attend across examples:
`packing_problem` refuses them (and prompt/prefix adapters, whose cache disables detection)
before training, with a hint to set tokenize.packing: false.

Packing is deterministic: examples are placed in their order in the (fingerprinted) split,
each into the fullest row it still fits (best fit; ties go to the earliest row), and rows keep
the order in which they were opened. It runs in the tokenize step, so the packed split is
cached with the rest of the tokenized data.
"""

from __future__ import annotations

import bisect
from typing import Optional, Sequence

from tunekit.pipeline.generation import IGNORE_INDEX


def pack(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Example indices per row: each row's lengths sum to at most max_length."""
    rows: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (space left, row index), sorted
    for i, n in enumerate(lengths):
        at = bisect.bisect_left(room, (n, -1))  # the row with the least room that still fits n
        if at < len(room):
            space, r = room.pop(at)
        else:
            space, r = max_length, len(rows)
            rows.append([])
        rows[r].append(i)
        if space - n > 0:
            bisect.insort(room, (space - n, r))
    return rows


def packed_columns(input_ids: Sequence[list[int]], labels: Sequence[list[int]], max_length: int) -> dict:
    """Columns of the packed split: input_ids, labels, position_ids (restarting per example)."""
    out: dict[str, list] = {"input_ids": [], "labels": [], "position_ids": []}
    for members in pack([len(ids) for ids in input_ids], max_length):
        ids, labs, pos = [], [], []
        for i in members:
            ids += input_ids[i]
            labs += labels[i]
            pos += range(len(input_ids[i]))
        out["input_ids"].append(ids)
        out["labels"].append(labs)
        out["position_ids"].append(pos)
    return out


class CausalLMCollator:
    """Pads a batch on the right: input_ids with the pad token, labels with IGNORE_INDEX.

    Packed rows (they carry position_ids) get position ids padded as one more sequence of their
    own and no attention mask (see the module docstring); plain rows get an attention mask."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        packed = "position_ids" in features[0]
        batch = {"input_ids": [], "labels": [], ("position_ids" if packed else "attention_mask"): []}
        for f in features:
            n = len(f["input_ids"])
            pad = width - n
            batch["input_ids"].append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            batch["labels"].append(list(f["labels"]) + [IGNORE_INDEX] * pad)
            if packed:
                batch["position_ids"].append(list(f["position_ids"]) + list(range(pad)))
            else:
                batch["attention_mask"].append([1] * n + [0] * pad)
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}


def packing_problem(model, peft_method: Optional[str] = None) -> Optional[str]:
    """Why packed rows would leak attention between examples in this model; None if they don't."""
    import inspect
    import sys

    if peft_method in ("prefix", "prompt"):
        return f"train.peft.method {peft_method} adds virtual tokens (a cache), which turns off packed-sequence masking"
    if "position_ids" not in inspect.signature(model.forward).parameters:
        return f"{type(model).__name__} takes no position_ids, which mark where packed examples start"
    try:
        source = inspect.getsource(sys.modules[type(model).__module__])
    except (OSError, TypeError, KeyError):
        source = ""
    if "create_causal_mask" not in source:
        return (f"{type(model).__name__} builds its attention mask without transformers' packed-sequence "
                "detection, so packed examples would attend to each other")
    return None
