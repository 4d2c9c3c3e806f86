"""Logs people look at: every Trainer log as a line of <run>/metrics.jsonl, the same scalars as
TensorBoard events under <run>/logs, and a loss/metric curve in <run>/curves.png at the end.
Only the main process writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import TrainerCallback

from tunekit.console import console
from tunekit.runs import RunDir, write_text


class RunLogger(TrainerCallback):
    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.writer = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # a lean install (e.g. --no-deps on a GPU image): the JSON log still works
                console.print("[yellow]warning:[/] tensorboard is not installed: no event files in "
                              f"{self.run.logs} (pip install tensorboard); metrics.jsonl is written")
                return
            self.writer = SummaryWriter(log_dir=str(self.run.logs))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, **logs}
        append_line(self.run.metrics_log, json.dumps(record, default=str))
        if self.writer is not None:
            for key, value in logs.items():
                if isinstance(value, (int, float)):
                    tag = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
                    self.writer.add_scalar(tag, value, state.global_step)
            self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        self.close()  # the curves are drawn by finetune once the model is saved (draw_curves)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def append_line(path: Path, line: str) -> None:
    """One whole line per write: O_APPEND with a single write() never interleaves or tears a
    line short of a crash in the middle of that call."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def read_records(metrics_log: Path, say=console.print) -> list[dict]:
    """The log's records; a torn or foreign line (a crash mid-write, a hand edit) is skipped and said."""
    records, bad = [], []
    for number, line in enumerate(metrics_log.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        else:
            bad.append(number)
    if bad:
        lines = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        say(f"[yellow]warning:[/] {metrics_log}: skipped {len(bad)} unreadable line(s) ({lines})")
    return records


def trim_metrics_log(metrics_log: Path, step: int) -> None:
    """Drop records past `step` (a run resumed from that checkpoint will log those steps again),
    and torn or foreign lines."""
    if not metrics_log.is_file():
        return
    kept = [r for r in read_records(metrics_log) if r["step"] <= step]
    write_text(metrics_log, "".join(json.dumps(r, default=str) + "\n" for r in kept))


def draw_curves(run: RunDir) -> None:
    """curves.png after training; a failure to draw costs a warning, never the run."""
    try:
        plot_curves(run.metrics_log, run.root / "curves.png")
    except Exception as exc:  # noqa: BLE001 - a plot must never cost a trained model
        console.print(f"[yellow]warning:[/] no {run.root / 'curves.png'}: {type(exc).__name__}: {exc}")


def plot_curves(metrics_log: Path, out: Path) -> None:
    """Training loss, and each validation metric, against the step."""
    if not metrics_log.is_file():
        return
    try:
        import matplotlib
    except ImportError:
        console.print(f"[yellow]warning:[/] matplotlib is not installed: no {out.name} (pip install matplotlib)")
        return
    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    records = read_records(metrics_log)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [r for r in records if "eval_loss" in r]
    metric_keys = sorted({k for r in evals for k in r if k.startswith("eval_") and k != "eval_loss"
                          and not k.endswith(("runtime", "per_second"))})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if train:
        left.plot(*zip(*train), label="train loss")
    if evals:
        left.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="validation loss")
    left.set_xlabel("step")
    left.set_title("loss")
    if train or evals:
        left.legend()
    for key in metric_keys:
        right.plot([r["step"] for r in evals if key in r], [r[key] for r in evals if key in r], "o-", label=key[5:])
    right.set_xlabel("step")
    right.set_title("validation metrics")
    if metric_keys:
        right.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
