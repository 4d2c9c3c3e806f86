"""What the training benchmarks share on top of bench/core.py (its CountingCollator and step
timer): counting the tokens of a real `tunekit finetune` run, probing its losses, and ending the
run when the timed window is over. Used by train_overhead.py, lm_packing.py and gpu_mfu.py.

A benchmark of tunekit's training must time tunekit's own loop — `run_finetune`, with its
Trainer subclass, seeded sampler and callbacks (progress, loss guard, run logs, signal handling)
— not a plain Trainer given tunekit's arguments (that is what core.py's throughput bench times,
which is right for a padding-policy comparison but would hide any overhead of tunekit's loop).
"""

from __future__ import annotations

import contextlib
import statistics


class WindowEnd(Exception):
    """Raised at the end of training by `make_probe(end_run=True)`: the run's final save and
    evaluation come after the timed window and are no part of what is measured."""


@contextlib.contextmanager
def counting_task_collator(task_module):
    """While active, `task_module.collator(tokenizer)` (which run_finetune calls) returns the
    task's own collator wrapped in core.CountingCollator; yields the list of counters made."""
    from core import CountingCollator

    original = task_module.collator
    made: list = []

    def counted(tokenizer):
        counter = CountingCollator(original(tokenizer))
        made.append(counter)
        return counter

    task_module.collator = counted
    try:
        yield made
    finally:
        task_module.collator = original


def make_probe(max_losses: int | None = None, end_run: bool = False):
    """A TrainerCallback that records the loss of the first `max_losses` training forward passes
    (all when None; each record reads a scalar back, a device sync on a GPU, so keep it small
    there) and, with `end_run`, turns off saving and evaluation once the last step is timed and
    raises WindowEnd when training ends."""
    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        def __init__(self):
            self.losses: list[float] = []
            self.handle = None

        def _record(self, module, args, output):
            if module.training and getattr(output, "loss", None) is not None:
                self.losses.append(float(output.loss.detach()))
                if max_losses is not None and len(self.losses) >= max_losses:
                    self.handle.remove()
                    self.handle = None

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.losses = []
            if model is not None and max_losses != 0:
                self.handle = model.register_forward_hook(self._record)

        def _no_outputs(self, control):
            if end_run:  # this callback runs after transformers' DefaultFlowCallback set them
                control.should_save = False
                control.should_evaluate = False

        def on_step_end(self, args, state, control, **kwargs):
            self._no_outputs(control)

        def on_epoch_end(self, args, state, control, **kwargs):
            self._no_outputs(control)

        def on_train_end(self, args, state, control, **kwargs):
            if self.handle is not None:
                self.handle.remove()
                self.handle = None
            if end_run:
                raise WindowEnd()

    return Probe()


def window(counter, timer, steps: int, ga: int = 1, warmup: int = 1) -> dict:
    """Real and padded tokens and seconds of steps warmup+1..steps (core.py's convention: the
    dataloader may collate one batch ahead, so batches are sliced by position)."""
    real = sum(counter.real[warmup * ga:steps * ga])
    padded = sum(counter.padded[warmup * ga:steps * ga])
    seconds = timer.marks[steps] - timer.marks[warmup]
    return {"steps": steps, "timed_steps": steps - warmup, "timed_s": seconds, "real_tokens": real,
            "padded_tokens": padded, "pad_share": 1 - real / padded if padded else 0.0,
            "tokens_per_s": real / seconds}


def quiet_warnings() -> None:
    """The plain Trainer's default pin_memory=True warns on a CPU-only machine; it changes nothing."""
    import warnings

    warnings.filterwarnings("ignore", message=".*pin_memory.*no accelerator is found.*")


def median(values):
    return statistics.median(values) if values else float("nan")
