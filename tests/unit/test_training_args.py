"""The recipe's train section -> TrainingArguments, without training anything."""

from pathlib import Path

import pytest

from tunekit.pipeline.training import training_arguments
from tunekit.recipe.schema import TrainConfig
from tunekit.runs import RunDir


def args(tmp_path: Path, has_validation: bool = True, **train):
    return training_arguments(TrainConfig(**train), RunDir(tmp_path / "run"), has_validation)


def test_defaults_evaluate_and_save_each_epoch_keeping_the_best(tmp_path):
    a = args(tmp_path)
    assert a.eval_strategy == "epoch" and a.save_strategy == "epoch"
    assert a.load_best_model_at_end and a.metric_for_best_model == "accuracy" and a.greater_is_better
    assert a.label_smoothing_factor == 0.0 and not a.activation_checkpointing
    assert a.train_sampling_strategy == "group_by_length" and a.logging_nan_inf_filter is False


def test_step_intervals_techniques_and_scheduler_options(tmp_path):
    a = args(tmp_path, eval_every=25, label_smoothing=0.1, gradient_checkpointing=True,
             scheduler="cosine_with_restarts", scheduler_options={"num_cycles": 3}, warmup_steps=7,
             best_metric="loss", lr=3e-5, grad_accum=4, max_steps=100, seed=5)
    assert a.eval_strategy == "steps" and a.eval_steps == 25
    assert a.save_strategy == "steps" and a.save_steps == 25
    assert a.label_smoothing_factor == 0.1 and a.activation_checkpointing
    assert a.lr_scheduler_type == "cosine_with_restarts" and a.lr_scheduler_kwargs == {"num_cycles": 3}
    assert a.warmup_steps == 7 and a.learning_rate == 3e-5 and a.gradient_accumulation_steps == 4
    assert a.metric_for_best_model == "eval_loss" and a.greater_is_better is False
    assert a.max_steps == 100 and a.seed == 5


def test_no_validation_means_no_evaluation(tmp_path):
    a = args(tmp_path, has_validation=False)
    assert a.eval_strategy == "no" and not a.load_best_model_at_end


def test_warmup_ratio_is_passed_as_a_fraction(tmp_path):
    assert args(tmp_path, warmup_ratio=0.06).warmup_steps == pytest.approx(0.06)


@pytest.mark.parametrize("train, message", [
    ({"scheduler": "linear", "scheduler_options": {"power": 2}}, "takes no option power"),
    ({"early_stopping": {"patience": 2}, "eval_every": "never"}, "early_stopping needs evaluations"),
    ({"eval_every": 0}, "greater than 0"),
])
def test_inconsistent_settings_rejected(train, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**train)


def test_report_to_passes_through_and_defaults_to_none(tmp_path):
    # tunekit writes TensorBoard events and metrics.jsonl itself; trackers are the user's extra
    assert args(tmp_path).report_to == []
    assert args(tmp_path, report_to=["mlflow", "wandb"]).report_to == ["mlflow", "wandb"]
