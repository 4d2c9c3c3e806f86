"""A `.gguf` model reference -> a trainable Hugging Face folder, dequantized once and cached.

GGUF files hold quantized weights (e.g. Q4_1) that transformers can read but neither train nor
save. tunekit dequantizes a file once into fp32 safetensors plus its tokenizer (and chat
template), in a cache keyed by the file's sha256 and the transformers version that read it,
so later runs start at once and a changed file is never silently reused.

Cache: $TUNEKIT_CACHE/gguf/<key>/ (default ~/.cache/tunekit, or $XDG_CACHE_HOME/tunekit).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from tunekit.errors import ModelError

COMPLETE = "tunekit_gguf.json"  # written last: a folder without it is an interrupted import


def cache_root() -> Path:
    if os.environ.get("TUNEKIT_CACHE"):
        return Path(os.environ["TUNEKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tunekit"


def import_gguf(path: Path) -> Path:
    """The cached HF folder for a .gguf file, dequantizing it first when needed."""
    import transformers

    from tunekit.console import console
    from tunekit.runs import atomic_dir, read_json, sha256_path, write_json

    if not path.is_file():
        raise ModelError(f"GGUF file not found: {path}", "check model.name")
    digest = sha256_path(path)
    # not tunekit's version: a new tunekit release should not cost another dequantization
    key = hashlib.sha256(f"{digest} transformers {transformers.__version__}".encode()).hexdigest()[:16]
    target = cache_root() / "gguf" / key
    if (target / COMPLETE).is_file() and read_json(target / COMPLETE).get("sha256") == digest:
        return target

    import importlib.util

    if importlib.util.find_spec("gguf") is None:  # transformers reads the file through it
        raise ModelError(f"{path.name} is a GGUF file, and reading GGUF needs the gguf package",
                         "pip install gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    console.print(f"dequantizing {path.name} once into {target} (cached for later runs)")
    start = time.perf_counter()
    folder, name = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        # dequantize=True unpacks every block into dense fp32 weights: trainable and saveable
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                     quantization_config=GgufConfig(dequantize=True))
    except Exception as exc:  # the GGUF reader fails in many ways (struct, value, key errors) on a bad file
        raise ModelError(f"cannot read {path} as a GGUF model: {str(exc).splitlines()[0]}",
                         "use a GGUF file of a causal LM architecture transformers supports (e.g. Llama)") from None
    with atomic_dir(target) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(tmp / COMPLETE, {"source": str(path), "sha256": digest,
                                    "transformers": transformers.__version__,
                                    "seconds": round(time.perf_counter() - start, 1)})
    console.print(f"dequantized {path.name} in {time.perf_counter() - start:.0f} s")
    return target
