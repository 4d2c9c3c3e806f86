"""Check an exported ONNX graph against the PyTorch model it came from.

Both run on the same padded batches: the run's tokenized eval split (the rows `eval` scores,
batched with the task's collator), or, when the run has none (a bare model folder), a few
built-in sentences. The figures: rows compared, the largest absolute difference of any
output value, and how many rows get the same prediction (classification: the argmax class;
qa: the argmax start and end token among the row's real tokens).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional

from tunekit.errors import DataError, TunekitError
from tunekit.model_info import ModelInfo

BATCH = 32

SENTENCES = [
    "A wonderful film.",
    "The plot was dull and the actors looked bored from the first scene to the last.",
    "I did not expect to like it, but by the end I wanted to see it again with friends.",
    "Terrible.",
    "The story is slow, yet the music and the photography make up for most of it.",
    "Great fun for the whole family, and the jokes still work on a second viewing.",
    "Nothing in this movie makes sense",
    "An honest, quiet and moving portrait of a small town over one long, hot summer in the south.",
]
CONTEXT = ("The museum opened in 1897 in a former railway station. Its collection of 4,000 clocks was "
           "given by the engineer Marta Lind, who repaired watches in the town for forty years. The "
           "building was restored in 1985 after a fire destroyed the east wing.")
QUESTIONS = ["When did the museum open?", "Who gave the collection?", "How many clocks are there?",
             "What destroyed the east wing?", "What was the building before?", "When was it restored?"]


class ParityFailed(TunekitError):
    """The ONNX graph's outputs differ from the PyTorch model's by more than the tolerance."""


@dataclass
class Parity:
    data: str                 # where the rows came from, in words
    rows: int                 # rows (qa: windows) compared
    max_abs_diff: float       # over every output value of every row
    predictions_agree: int    # rows whose prediction is the same from both
    seconds: float            # both models on all rows
    atol: Optional[float] = None
    passed: Optional[bool] = None

    def as_dict(self) -> dict:
        return asdict(self)


def parity_rows(info: ModelInfo, tokenizer, inputs: list[str], limit: Optional[int]) -> tuple[str, list[dict]]:
    """(description, rows of token id lists): the run's tokenized eval split, else built-in text."""
    split = info.eval.split
    folder = info.run.tokenized if info.run is not None else None
    if folder is not None and (folder / "dataset_dict.json").is_file():
        import datasets

        dataset = datasets.load_from_disk(str(folder))
        if split in dataset and len(dataset[split]):
            data = dataset[split]
            missing = [c for c in inputs if c not in data.column_names]
            if missing:
                raise DataError(f"the tokenized {split} split in {folder} has no {', '.join(missing)} column",
                                "tokenize the run again: tunekit tokenize RECIPE")
            if limit is not None:
                data = data.select(range(min(limit, len(data))))
            columns = {c: data[c] for c in inputs}
            rows = [{c: columns[c][i] for c in inputs} for i in range(len(data))]
            return f"{split} split of {folder}", rows
    why = "a model folder, not a run" if info.run is None else f"the run has no tokenized {split} split"
    rows = _builtin_rows(info, tokenizer, inputs)[:limit]
    return f"{len(rows)} built-in {'questions' if info.task == 'qa' else 'sentences'} ({why})", rows


def _builtin_rows(info: ModelInfo, tokenizer, inputs: list[str]) -> list[dict]:
    max_length = min(info.tokenize.max_length, getattr(tokenizer, "model_max_length", 512) or 512)
    if info.task == "qa":
        enc = tokenizer(QUESTIONS, [CONTEXT] * len(QUESTIONS), truncation="only_second", max_length=max_length)
    else:
        enc = tokenizer(SENTENCES, truncation=True, max_length=max_length)
    return [{c: enc[c][i] for c in inputs} for i in range(len(enc["input_ids"]))]


def batches(rows: list[dict], tokenizer, task: str) -> Iterator[dict]:
    """Length-sorted batches padded by the task's collator, as int64 numpy arrays."""
    from tunekit.tasks import get_task

    collate = get_task(task).collator(tokenizer)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))  # little padding per batch
    for start in range(0, len(order), BATCH):
        batch = collate([rows[i] for i in order[start:start + BATCH]])
        yield {name: batch[name].numpy().astype("int64") for name in rows[0]}


def open_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ort warns about nodes it leaves on the CPU
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(model, session, rows: list[dict], tokenizer, task: str, outputs: list[str]) -> tuple[int, float, int]:
    """(rows, max abs difference, predictions agreeing) of PyTorch vs onnxruntime on `rows`."""
    import numpy as np
    import torch

    count, worst, agree = 0, 0.0, 0
    for batch in batches(rows, tokenizer, task):
        with torch.no_grad():
            result = model(**{k: torch.from_numpy(v) for k, v in batch.items()}, return_dict=True)
        expected = [result[name].float().numpy() for name in outputs]
        got = session.run(outputs, batch)
        for want, have in zip(expected, got):
            if want.shape != have.shape:
                raise ParityFailed(f"the ONNX output has shape {have.shape}, the PyTorch model {want.shape}",
                                   "the exported graph is wrong: report it (TUNEKIT_DEBUG=1 shows details)")
            worst = max(worst, float(np.abs(want - have).max()) if want.size else 0.0)
        agree += int(_agreeing(expected, got, batch["attention_mask"] if "attention_mask" in batch else None, task))
        count += len(batch["input_ids"])
    return count, worst, agree


def _agreeing(expected: list, got: list, mask, task: str) -> int:
    import numpy as np

    if task != "qa":
        return int((expected[0].argmax(-1) == got[0].argmax(-1)).sum())
    real = mask.astype(bool) if mask is not None else np.ones(expected[0].shape, dtype=bool)
    same = np.ones(len(real), dtype=bool)
    for want, have in zip(expected, got):  # start, then end: padding can never be the answer
        same &= np.where(real, want, -np.inf).argmax(-1) == np.where(real, have, -np.inf).argmax(-1)
    return int(same.sum())


def check_parity(model, onnx_path: Path, info: ModelInfo, tokenizer, inputs: list[str], outputs: list[str],
                 atol: float, limit: Optional[int]) -> Parity:
    """Run both models and compare; raise ParityFailed when any value differs by more than atol."""
    source, rows = parity_rows(info, tokenizer, inputs, limit)
    started = time.perf_counter()
    session = open_session(onnx_path)
    count, worst, agree = compare(model, session, rows, tokenizer, info.task, outputs)
    parity = Parity(data=source, rows=count, max_abs_diff=worst, predictions_agree=agree,
                    seconds=round(time.perf_counter() - started, 3), atol=atol, passed=worst <= atol)
    if not parity.passed:
        raise ParityFailed(f"ONNX parity check failed: max abs difference {worst:.3g} > --atol {atol:g} "
                           f"on {count} rows ({agree} of {count} predictions agree); nothing was written",
                           "a difference of float noise can be allowed with a larger --atol; otherwise the "
                           "exported graph is wrong: report it (--no-check skips the check)")
    return parity
