"""`finetune --dry-run`: a plan of the run, read-only towards training outputs."""

import json

from typer.testing import CliRunner

from tunekit.cli.app import app

runner = CliRunner()
TRAINING_OUTPUTS = ("checkpoints", "model", "manifest.json", "recipe.resolved.yaml", "eval", "logs")


def _plan(*args: str):
    result = runner.invoke(app, ["finetune", *args])
    assert result.exit_code == 0, result.output
    return result


def test_dry_run_prints_the_plan_and_trains_nothing(write_recipe, tmp_path):
    result = _plan(str(write_recipe()), "--dry-run")
    text = " ".join(result.stderr.split())
    for part in ("resolved recipe", "name: tiny", "steps per epoch", "trainable parameters",
                 "estimated peak", "activations", "padded length", "no budget given"):
        assert part in text, part
    run = tmp_path / "run"
    assert not any((run / name).exists() for name in TRAINING_OUTPUTS)
    # the data cache is what finetune would write anyway, and the plan says so
    assert (run / "data" / "tokenize_report.json").is_file()
    assert "finetune would too" in text


def test_dry_run_json_numbers(write_recipe):
    plan = json.loads(_plan(str(write_recipe()), "--dry-run", "--json").stdout)
    # 240 rows, 10% validation and 20% test split off: 168 train rows; batch 16, 5 epochs
    assert plan["splits"]["train"]["rows"] == 168
    assert plan["steps"] == {"steps_per_epoch": 11, "total_steps": 55, "epochs": 5.0, "global_batch": 16}
    assert plan["parameters"]["trainable"] == plan["parameters"]["total"] > 0
    memory = plan["memory"]
    parts = ("weights", "gradients", "optimizer", "activations", "overhead")
    assert memory["total"] == sum(memory[k] for k in parts)
    assert memory["gradients"] == 4 * plan["parameters"]["trainable"]
    assert memory["limit"] is None and memory["fits"] is None
    assert plan["settings"]["seq_len"] <= 32  # the longest training row, capped by tokenize.max_length
    assert plan["recipe"]["name"] == "tiny" and plan["recipe"]["train"]["batch_size"] == 16


def test_max_steps_and_processes_change_the_steps(write_recipe):
    plan = json.loads(_plan(str(write_recipe()), "--dry-run", "--json", "--nproc", "2",
                            "--set", "train.max_steps=7", "--set", "train.grad_accum=2").stdout)
    assert plan["steps"]["global_batch"] == 64 and plan["steps"]["steps_per_epoch"] == 3
    assert plan["steps"]["total_steps"] == 7
    # each DDP process holds its gradients twice (the reducer's flat buckets)
    assert plan["settings"]["ddp"] and plan["memory"]["gradients"] == 8 * plan["parameters"]["trainable"]


def test_gpu_memory_fit_and_no_fit(write_recipe):
    path = str(write_recipe())
    fits = json.loads(_plan(path, "--dry-run", "--json", "--gpu-memory", "80GB").stdout)
    assert fits["memory"]["fits"] is True and fits["advice"] == []
    assert fits["settings"]["device"] == "cuda"  # a budget means planning for a GPU
    assert fits["memory"]["tight"] is False
    close = f"{fits['memory']['total'] / 0.95 / 2**20:.0f}MiB"  # fits, but above 90% of the budget
    tight = _plan(path, "--dry-run", "--gpu-memory", close)
    assert "fits:" in tight.stderr and "tight:" in tight.stderr

    # below the CUDA context alone: will not fit, still exit 0, with advice
    result = _plan(path, "--dry-run", "--gpu-memory", "100MiB", "--set", "train.precision=fp32")
    text = " ".join(result.stderr.split())
    assert "will not fit" in text and "what to change" in text
    plan = json.loads(_plan(path, "--dry-run", "--json", "--gpu-memory", "100MiB").stdout)
    assert plan["memory"]["fits"] is False
    saves = [a["saves"] for a in plan["advice"]]
    assert saves and saves == sorted(saves, reverse=True)


def test_bad_gpu_memory_is_bad_input(write_recipe):
    result = runner.invoke(app, ["finetune", str(write_recipe()), "--dry-run", "--gpu-memory", "lots"])
    assert result.exit_code == 2
    assert "not a memory size" in result.stderr
    result = runner.invoke(app, ["finetune", str(write_recipe()), "--gpu-memory", "24GiB"])
    assert result.exit_code == 2
    assert "add --dry-run" in result.stderr


def _fake_trained_run(run):
    """What finetune leaves behind, as far as the run-directory guard is concerned."""
    (run / "model").mkdir()
    (run / "model" / "model.safetensors").write_bytes(b"weights")
    (run / "checkpoints").mkdir()
    (run / "manifest.json").write_text('{"status": "complete"}')


def test_dry_run_on_a_trained_run_touches_nothing(write_recipe, tmp_path):
    path = str(write_recipe())
    assert runner.invoke(app, ["tokenize", path]).exit_code == 0
    run = tmp_path / "run"
    _fake_trained_run(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    result = _plan(path, "--dry-run")
    text = " ".join(result.stderr.split())
    assert "already holds a training run" in text and "reused the cached" in text

    # changed data: planned in a temporary folder, the trained run's cache left as it was
    plan = json.loads(_plan(path, "--dry-run", "--json", "--set", "data.max_train_rows=50").stdout)
    assert plan["splits"]["train"]["rows"] == 50
    assert "temporary folder" in plan["data"]
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before
    assert not (run / "recipe.resolved.yaml").exists()
