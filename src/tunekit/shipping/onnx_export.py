"""Export a trained classification or extractive-QA model to ONNX.

The exported graph takes the tokenizer's tensors (input_ids, attention_mask and, when the
tokenizer makes them, token_type_ids) with dynamic batch and sequence axes, and returns the
task's logits: `logits` (classification) or `start_logits` / `end_logits` (qa). A PEFT
adapter is merged into its base model in memory first, so the graph is one plain model.

Exporter: the torch.export-based ("dynamo") exporter, torch's default since 2.9. Both it and
the legacy TorchScript tracer (dynamo=False) export BERT-like models with matching outputs
(differences ~1e-9 on a tiny BERT), and the tracer is much faster (MiniLM: ~3 s against ~20 s
on 2 CPU cores), but the tracer records Python control flow on tensor values as
constants (transformers 5's mask code raises TracerWarnings on exactly that) and only a
parity check would notice a baked-in shape; torch.export keeps batch and sequence symbolic
and fails loudly when the model would specialise them. The tracer is also deprecated.

torch / transformers / onnx are imported inside functions: `tunekit --help` must stay light.
"""

from __future__ import annotations

import inspect
import logging
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from tunekit.errors import ModelError, TunekitError
from tunekit.model_info import INFO_FILE, ModelInfo, payload_of
from tunekit.runs import read_json, write_json

EXPORTABLE_TASKS = ("classification", "qa")
OUTPUTS: dict[str, tuple[str, ...]] = {"classification": ("logits",), "qa": ("start_logits", "end_logits")}
# Opset 18 is the dynamo exporter's native opset (no version conversion) and runs on every
# onnxruntime since 1.14.
OPSET = 18
# One protobuf file holds at most 2 GiB: larger weights go to an external data file beside it.
EXTERNAL_DATA_BYTES = 1 << 30
MODEL_FILE = "model.onnx"
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
# The example the graph is captured with: batch 2 and length 8, neither 0 nor 1, so torch.export
# does not specialise either axis (it treats sizes 0 and 1 as constants).
EXAMPLE_BATCH, EXAMPLE_LENGTH = 2, 8


class UnsupportedTask(TunekitError):
    """The model's task has no ONNX export."""


def check_task(info: ModelInfo) -> None:
    if info.task not in EXPORTABLE_TASKS:
        raise UnsupportedTask(f"ONNX export covers classification and qa; {info.model_dir} is a {info.task} model",
                              "ship it as a transformers folder with `tunekit push`, or export a "
                              "classification or qa run")


def load_for_export(info: ModelInfo):
    """(fp32 model in eval mode, tokenizer): full weights as saved, or an adapter merged into its base."""
    import torch

    from tunekit.pipeline.adapters import PROMPT_LEARNING, load_model
    from tunekit.pipeline.tokenization import load_tokenizer
    from tunekit.tasks import get_task

    tokenizer = load_tokenizer(str(info.model_dir))
    if info.is_adapter:
        peft_type = (read_json(info.model_dir / "adapter_config.json") or {}).get("peft_type")
        if peft_type in PROMPT_LEARNING:
            raise TunekitError(f"a {peft_type.lower().replace('_', ' ')} adapter cannot be exported to ONNX: its "
                               "trained virtual tokens are extra inputs, not a change of weights",
                               "train with train.peft.method lora (or in full) to export the model")
        model = load_model(str(info.model_dir), quantize=False).merge_and_unload()
    else:
        model = get_task(info.task).load_trained(str(info.model_dir))
    return model.to(dtype=torch.float32, device="cpu").eval(), tokenizer


def input_names(model, tokenizer) -> list[str]:
    """The tensors the tokenizer makes that the model's forward takes, in a fixed order."""
    made = set(tokenizer("a"))
    takes = set(inspect.signature(model.forward).parameters)
    names = [n for n in INPUT_ORDER if n in made and n in takes]
    if names[:1] != ["input_ids"]:
        raise ModelError(f"{type(model).__name__} does not take input_ids from its tokenizer",
                         "ONNX export covers text models fed by a tokenizer (BERT-like encoders)")
    return names


def _wrapper(model, inputs: list[str], outputs: tuple[str, ...]):
    """The model as forward(*tensors) -> tuple of outputs: the graph's inputs and outputs, by position."""
    import torch

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        # Positional slots, named by `inputs` (export passes exactly those, in that order).
        def forward(self, input_ids, second=None, third=None):
            given = dict(zip(inputs, (input_ids, second, third)))
            result = self.model(**given, return_dict=True)
            return tuple(result[name] for name in outputs)

    return Exported().eval()  # a new Module starts in training mode; eval keeps dropout out of the graph


def example_inputs(tokenizer, inputs: list[str]) -> tuple:
    """Token tensors of shape (EXAMPLE_BATCH, EXAMPLE_LENGTH); only their shape and dtype matter."""
    import torch

    low = max(getattr(tokenizer, "all_special_ids", None) or [0]) + 1
    high = max(low + 1, min(len(tokenizer), low + 100))
    tensors = {"input_ids": torch.randint(low, high, (EXAMPLE_BATCH, EXAMPLE_LENGTH)),
               "attention_mask": torch.ones(EXAMPLE_BATCH, EXAMPLE_LENGTH, dtype=torch.long),
               "token_type_ids": torch.zeros(EXAMPLE_BATCH, EXAMPLE_LENGTH, dtype=torch.long)}
    # a padded second row: the capture sees the mask in use (the exporter must not assume all ones)
    tensors["attention_mask"][1, EXAMPLE_LENGTH // 2:] = 0
    return tuple(tensors[name] for name in inputs)


def parameter_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def export_onnx(model, tokenizer, task: str, path: Path) -> dict:
    """Write the ONNX graph of `model` to `path`; return what the report says about it."""
    import torch

    inputs = input_names(model, tokenizer)
    outputs = OUTPUTS[task]
    axes = {0: "batch", 1: "sequence"}
    external = parameter_bytes(model) > EXTERNAL_DATA_BYTES
    with _quiet_exporter():
        program = torch.onnx.export(
            _wrapper(model, inputs, outputs), example_inputs(tokenizer, inputs), None,
            input_names=inputs, output_names=list(outputs),
            dynamic_shapes=tuple(dict(axes) for _ in inputs),
            dynamo=True, opset_version=OPSET, verbose=False,
        )
        program.save(str(path), external_data=external)
    return {"file": path.name, "external_data": sorted(p.name for p in path.parent.iterdir()
                                                       if p.name.startswith(path.name + ".")) if external else [],
            "exporter": "torch.onnx.export(dynamo=True)", "opset": OPSET,
            "inputs": inputs, "outputs": list(outputs), "dynamic_axes": {"0": "batch", "1": "sequence"},
            "architecture": type(model).__name__}


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs its steps and warns about things a user can do nothing about
    (torchvision missing, axis names merged, deprecated pytree calls)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def write_side_files(model, tokenizer, info: ModelInfo, out: Path) -> None:
    """config.json, the tokenizer files and tunekit.json: what inference needs beside the graph."""
    model.config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    source = info.model_dir / INFO_FILE
    if source.is_file():
        shutil.copy2(source, out / INFO_FILE)
    else:  # a run trained before tunekit.json existed: write what find_model read from its recipe
        write_json(out / INFO_FILE, payload_of(info, out))


def default_out(info: ModelInfo, out: Optional[Path]) -> Path:
    """--out, else <run>/onnx for a run, else a sibling <folder>-onnx of a bare model folder."""
    if out is not None:
        return Path(out)
    if info.run is not None:
        return info.run.root / "onnx"
    return info.model_dir.with_name(f"{info.model_dir.name}-onnx")
