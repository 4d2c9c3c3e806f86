"""`tunekit --help` must stay fast: the CLI may not import the heavy libraries."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "datasets", "peft", "accelerate", "evaluate", "huggingface_hub", "onnx",
         "onnxruntime", "fastapi", "uvicorn")


def _loaded_after(code: str) -> list[str]:
    probe = code + "\nimport sys\nprint('HEAVY=' + ','.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    line = next(line for line in out.stdout.splitlines() if line.startswith("HEAVY="))
    return [m for m in line[len("HEAVY="):].split(",") if m]


def test_help_leaves_heavy_libraries_unloaded():
    code = ("import sys\nfrom tunekit.cli.app import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass")
    assert _loaded_after(code) == []


def test_every_command_help_leaves_heavy_libraries_unloaded():
    for command in ("validate", "prepare", "tokenize", "finetune", "eval", "merge", "predict", "export", "push",
                    "serve"):
        code = ("from tunekit.cli.app import app\n"
                f"try:\n    app(['{command}', '--help'])\nexcept SystemExit:\n    pass")
        assert _loaded_after(code) == [], command


def test_probe_detects_heavy_imports():
    # the check above can fail: importing torch shows up
    assert _loaded_after("import torch") == ["torch"]
