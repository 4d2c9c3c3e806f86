"""Logs people look at: every Trainer log as a line of <run>/metrics.jsonl, the same scalars as
TensorBoard events under <run>/logs, and a loss/metric curve in <run>/curves.png at the end.
Only the main process writes."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from tunekit.console import console
from tunekit.runs import RunDir


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
        with open(self.run.metrics_log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        if self.writer is not None:
            for key, value in logs.items():
                if isinstance(value, (int, float)):
                    tag = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
                    self.writer.add_scalar(tag, value, state.global_step)
            self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        self.close()
        if state.is_world_process_zero:
            plot_curves(self.run.metrics_log, self.run.root / "curves.png")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def trim_metrics_log(metrics_log: Path, step: int) -> None:
    """Drop records past `step`: a run resumed from that checkpoint will log those steps again."""
    if not metrics_log.is_file():
        return
    lines = metrics_log.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        metrics_log.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


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

    records = [json.loads(line) for line in metrics_log.read_text(encoding="utf-8").splitlines() if line]
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
