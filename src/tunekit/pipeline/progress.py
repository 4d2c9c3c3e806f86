"""A Trainer callback that shows a Rich progress bar and a compact log instead of log spam."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import TrainerCallback

from tunekit.console import console, get_console


class RichProgress(TrainerCallback):
    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task = None
        self.last_loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=get_console(), transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, loss="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
            if self.progress is not None:
                self.progress.update(self.task, loss=f"loss {self.last_loss:.4f}")
            if not console.is_terminal:  # CI logs get a line per logging interval instead of a bar
                console.print(f"step {state.global_step}/{state.max_steps}  loss {self.last_loss:.4f}  "
                              f"lr {logs.get('learning_rate', 0):.2e}")
        evals = {k[5:]: v for k, v in logs.items() if k.startswith("eval_") and isinstance(v, (int, float))}
        if "loss" in evals:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in evals.items()
                              if not k.endswith(("runtime", "per_second")))
            console.print(f"epoch {state.epoch:.2f}  validation  {shown}")

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """Stop the live bar (also when training ends by an exception)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
