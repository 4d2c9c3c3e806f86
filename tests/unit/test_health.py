"""LossGuard: which logged losses stop a run."""

import math

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from tunekit.pipeline.health import LossGuard, TrainingDiverged


def _log(loss):
    state = TrainerState()
    state.global_step = 7
    LossGuard().on_log(TrainingArguments(output_dir="unused", report_to="none"), state, TrainerControl(),
                       logs={"loss": loss, "learning_rate": 1e-4})


@pytest.mark.parametrize("loss", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_stop(loss):
    with pytest.raises(TrainingDiverged, match="training diverged.*step 7"):
        _log(loss)


def test_exact_zero_stops():
    with pytest.raises(TrainingDiverged, match="exactly 0"):
        _log(0.0)


@pytest.mark.parametrize("loss", [0.6931, 1e-6, 12.5])
def test_ordinary_losses_pass(loss):
    _log(loss)  # no exception


def test_logs_without_loss_pass():
    LossGuard().on_log(None, TrainerState(), TrainerControl(), logs={"eval_loss": math.nan})
