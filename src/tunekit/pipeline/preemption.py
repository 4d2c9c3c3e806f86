"""SIGTERM/SIGINT during training: finish the step, save a checkpoint, exit 143/130.

Clusters send SIGTERM before they reclaim a machine and people press Ctrl-C; both should
cost at most one step. The first signal asks the Trainer to save and stop at the next
step boundary; a second one restores the default handler's behaviour (stop now).
"""

from __future__ import annotations

import signal
import threading
from typing import Optional

from transformers import TrainerCallback

from tunekit.errors import EXIT_SIGINT, EXIT_SIGTERM, TunekitError
from tunekit.pipeline.distributed import any_rank

EXIT_CODES = {signal.SIGTERM: EXIT_SIGTERM, signal.SIGINT: EXIT_SIGINT}


class Interrupted(TunekitError):
    """Training stopped on a signal after saving a checkpoint."""

    def __init__(self, signum: int, checkpoint: Optional[str], resume_hint: str):
        name = signal.Signals(signum).name
        where = f"checkpoint {checkpoint} saved" if checkpoint else "no checkpoint could be saved"
        super().__init__(f"training interrupted by {name}; {where}", resume_hint)
        self.exit_code = EXIT_CODES.get(signum, 128 + signum)


class StopOnSignal(TrainerCallback):
    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: dict = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return  # handlers can only be installed from the main thread
        for signum in EXIT_CODES:
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # second signal: give up on the clean stop
            self.restore()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.raise_signal(signum)
            return
        self.signum = signum

    def on_step_end(self, args, state, control, **kwargs):
        # Every process must stop at the same step, whichever of them got the signal.
        if any_rank(self.signum is not None):
            self.signum = self.signum or signal.SIGTERM
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        # Stopping breaks the epoch loop, whose end would evaluate and save again; that second
        # checkpoint would overwrite the first with RNG states the evaluation has moved on.
        if self.signum is not None:
            control.should_evaluate = False
            control.should_save = False
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
