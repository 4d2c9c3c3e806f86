"""train.distributed validation and pass-through, rank helpers, the launcher's exit code, and
the loss scale under gradient accumulation (one process)."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from tunekit.errors import RecipeError
from tunekit.pipeline import distributed
from tunekit.pipeline.distributed import check_distributed, distributed_arguments
from tunekit.pipeline.training import training_arguments
from tunekit.recipe.schema import DistributedConfig, TrainConfig
from tunekit.runs import RunDir


def test_schema_rejects_unknown_fsdp_keys_and_two_engines():
    with pytest.raises(pydantic.ValidationError, match="unknown fsdp_config key min_params"):
        DistributedConfig(fsdp=["full_shard"], fsdp_config={"min_params": 10})
    with pytest.raises(pydantic.ValidationError, match="FSDP or DeepSpeed"):
        DistributedConfig(fsdp=["full_shard"], deepspeed="ds.json")
    with pytest.raises(pydantic.ValidationError, match="fsdp is empty"):
        DistributedConfig(fsdp_config={"version": 2})
    with pytest.raises(pydantic.ValidationError):
        DistributedConfig(fsdp=["full_shard_everything"])


def test_checks_before_launch(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        check_distributed(DistributedConfig(deepspeed=str(tmp_path / "ds.json")), 2)
    bad = tmp_path / "bad.json"
    bad.write_text("{zero: 3")
    with pytest.raises(RecipeError, match="not valid JSON"):
        check_distributed(DistributedConfig(deepspeed=str(bad)), 2)
    good = tmp_path / "ds.json"
    good.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    with pytest.raises(RecipeError, match="DeepSpeed is not installed|needs CUDA"):
        check_distributed(DistributedConfig(deepspeed=str(good)), 2)
    with pytest.raises(RecipeError, match="has one"):
        check_distributed(DistributedConfig(fsdp=["full_shard", "auto_wrap"]), 1)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match="needs CUDA"):
            check_distributed(DistributedConfig(backend="nccl"), 2)
    check_distributed(DistributedConfig(fsdp=["full_shard"]), 2)  # fine with two processes
    check_distributed(DistributedConfig(), 1)


def test_options_reach_the_training_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = DistributedConfig(fsdp=["full_shard", "auto_wrap"],
                            fsdp_config={"transformer_layer_cls_to_wrap": ["BertLayer"]}, backend="gloo")
    assert distributed_arguments(cfg) == {"fsdp": ["full_shard", "auto_wrap"], "ddp_backend": "gloo",
                                          "fsdp_config": {"transformer_layer_cls_to_wrap": ["BertLayer"]}}
    assert distributed_arguments(DistributedConfig()) == {}
    monkeypatch.delenv("WORLD_SIZE")
    args = training_arguments(TrainConfig(distributed={"backend": "gloo"}), RunDir(tmp_path / "run"), True)
    assert args.ddp_backend is None and not args.use_cpu  # one process: no process group, automatic device


def test_rank_helpers_follow_the_launcher_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.is_main() and distributed.world_size() == 1 and distributed.any_rank(True)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(distributed.EXIT_DIR_ENV, str(tmp_path))
    assert not distributed.is_main()
    distributed.record_exit(2)
    assert (tmp_path / "rank-1").read_text() == "2"


def test_launcher_reports_rank_zero_first(tmp_path):
    (tmp_path / "rank-1").write_text("1")
    assert distributed._recorded_exit(tmp_path) == 1
    (tmp_path / "rank-0").write_text("143")
    assert distributed._recorded_exit(tmp_path) == 143
    (tmp_path / "rank-0").write_text("0")
    (tmp_path / "rank-1").write_text("0")
    assert distributed._recorded_exit(tmp_path) == 0


def test_gradient_accumulation_does_not_inflate_the_loss(write_recipe, tmp_path):
    """The Trainer would skip its division by grad_accum for a model whose forward takes
    **kwargs; the classification head averages per batch, so tunekit says so."""
    from tunekit.pipeline.training import run_finetune
    from tunekit.recipe import load_recipe

    recipe = load_recipe(str(write_recipe(train={"epochs": 1, "batch_size": 4, "grad_accum": 4,
                                                 "logging_steps": 1, "eval_every": "never"})))
    run_finetune(recipe)
    records = [json.loads(line) for line in (Path(recipe.output_dir) / "metrics.jsonl").read_text().splitlines()]
    first = next(r["loss"] for r in records if "loss" in r)
    assert first == pytest.approx(0.693, abs=0.02)  # ~ln 2 for two classes, not 4 x ln 2
