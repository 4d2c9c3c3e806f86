"""Stop a broken run early: a NaN or infinite loss, or a loss of exactly 0 on real labels,
ends training within one logging interval, before any final model is written."""

from __future__ import annotations

import math

from transformers import TrainerCallback

from tunekit.errors import TunekitError


class TrainingDiverged(TunekitError):
    """The training loss became meaningless; the run stops without a final model."""


class LossGuard(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isnan(loss) or math.isinf(loss):
            raise TrainingDiverged(
                f"training diverged: the loss was {loss} at step {state.global_step}; no model was written",
                "lower train.lr, check the data and labels, or set train.precision: fp32, then rerun with --overwrite")
        if loss == 0.0:
            raise TrainingDiverged(
                f"the training loss was exactly 0 at step {state.global_step}, which real labels never give; "
                "no model was written",
                "check that the label column holds the real labels (a constant or leaked label gives 0 loss)")
