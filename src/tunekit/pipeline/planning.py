"""finetune --dry-run: what a run will do (data, steps, parameters) and its peak accelerator memory.

Everything except `plan_run` is a pure function of numbers (model_shape.py reads them from
the built model), so the estimate is testable and re-runs for "what if" changes cheaply.

    peak = weights + gradients + optimizer state + activations + overhead

* weights: the parameters as stored. tunekit loads fp32 master weights and trains bf16/fp16
  with autocast (amp); 4-bit (QLoRA) weights take 0.5 byte plus one fp32 constant per 64.
  Under amp, matmuls run on 16-bit copies of the Linear weights (2 bytes each; cached for
  trainable weights, kept for backward for frozen ones), which live through the step.
* gradients: 4 bytes per trainable parameter; frozen parameters (freeze, PEFT) have none.
  With several processes (DDP), the reducer's buckets hold a second, flat copy. FSDP and
  DeepSpeed shard weights, gradients and optimizer state: not modelled (a plan says so).
* optimizer: AdamW's two fp32 moments, 8 bytes per trainable parameter. The Trainer's default
  (adamw_torch_fused) updates in place, so the step itself needs no extra copies.
* activations: what autograd keeps for backward. Per layer, for t = b*s tokens (batch b,
  padded length s, hidden h, intermediate i, heads a), in bytes:

      t*(h*(2n + 3e) + m*d + e*x + e*i*(1, or 3 for a gated MLP)) + attention

  e: bytes of the compute dtype (4 in fp32, 2 under amp). n: a norm's saved input, 4 bytes
  (the residual stream and norms stay fp32 under amp), 8 for norms written in Python (Llama's
  RMSNorm, T5's) that also keep their normalised output. 3e: Q, K and V, which attention
  keeps. d: the features dropout masks cover (2h: after attention and after the MLP, plus
  each LoRA branch's dropout), m bytes each: 1 on CUDA (bool), e on CPU (a float mask).
  x: the input features of the layer's trainable Linear layers, since a Linear keeps its input
  only to compute its weight's gradient (frozen base layers under PEFT keep none). In fp32
  layers fed the same tensor share it (3h + i in all for a BERT block: Q/K/V's input, the
  output projection's, the MLP's two); under amp autocast makes a 16-bit copy for each Linear
  (5h + i for BERT). x and d are counted by tracing which Linear and Dropout modules of the
  last layer run on one short input (without a trace: every Linear trains).
  The MLP's activation keeps its input (gated: gate, up and act(gate)).
  attention = a*s*s*b*(4 + m + e) when the scores are materialised (eager attention, or SDPA's
  math fallback, which PyTorch takes on CPU whenever attention dropout > 0): the fp32 softmax
  output, its dropout mask and the probabilities the value matmul keeps. Fused SDPA kernels
  (CUDA always, CPU without dropout) keep no s*s tensor.
  This is Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
  Models", eq. 1, generalised: with e = n = 2, m = 1, d = 2h, x = 3h + i (i = 4h) and a
  16-bit softmax it is their s*b*h*(34 + 5*a*s/h).
  Outside the layers: the embeddings' norm and dropout mask when the embeddings train, a final
  norm, the head's input (e*t*h) and, for a causal LM, the loss over the vocabulary V: 12*t*V
  at the start of backward (fp32 log-softmax kept for backward, its gradient, the logits'
  gradient).
  Layers whose input and parameters need no gradient keep nothing (freeze.embeddings plus
  freeze.layers: N frozen leading layers). Gradient checkpointing keeps each layer's input
  (4*t*h; transformers makes the embeddings' output require grad, so all layers) and
  recomputes one layer at a time in backward (+ one layer's activations).
* overhead: the CUDA context, 0.75 GiB on a GPU (measured on an H200); none on CPU. Not
  counted: the caching allocator's reserve beyond live tensors (8-16% of them on the H200
  bench, which put the device's used memory 5-7% above the estimate), so an estimate above
  90% of the budget is reported as tight.

Gradients and activations are added although with grad_accum 1 backward frees activations
while it creates gradients: with grad_accum > 1 (and for a tied LM head, whose gradient appears
first) they do coexist, and a budget check should err high. bench/memory_estimate.py measures
the error against real peaks.

The padded length is the longest training row after truncation, min(tokens_max, max_length),
not p95: dynamic padding pads a batch to its longest row, and the length-grouped sampler serves
the batch with the longest row first (random batches meet it within an epoch), so that batch
is the peak; planning for p95 would plan for a typical batch and fail on the long one.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

from tunekit.errors import TunekitError
from tunekit.pipeline.model_shape import ModelShape, ParamCounts, read_params, read_shape

GiB = 1024 ** 3
# The CUDA context, module images and library handles: 751-767 MiB measured on an H200
# (CUDA 13, torch 2.11) as device memory in use minus the caching allocator's reserve.
CUDA_OVERHEAD = 3 * GiB // 4
TIGHT = 0.9  # above this share of the budget the allocator's reserve may tip it over
LORA_RANK = 8  # train.peft lora's default rank, for the "use LoRA" what-if
_UNITS = {"k": 1024, "m": 1024 ** 2, "g": GiB, "t": 1024 ** 4}


# ---- inputs and results -----------------------------------------------------------------------

@dataclass(frozen=True)
class Knobs:
    """The recipe settings the estimate depends on, resolved for the target device."""
    batch_size: int
    seq_len: int
    precision: str  # fp32 | bf16 | fp16 (resolved, never auto)
    gradient_checkpointing: bool = False
    device: str = "cuda"  # cuda | cpu
    ddp: bool = False  # several processes, unsharded: DDP's buckets copy the gradients


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    gradients: int
    optimizer: int
    activations: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead


@dataclass(frozen=True)
class StepPlan:
    steps_per_epoch: int
    total_steps: int
    epochs: float  # passes over the data that total_steps makes
    global_batch: int


@dataclass(frozen=True)
class Advice:
    change: str  # recipe settings, e.g. "train.gradient_checkpointing: true"
    total: int  # the estimate with that change
    saves: int
    fits: bool


@dataclass
class Plan:
    recipe: dict  # the resolved recipe
    recipe_yaml: str
    run_dir: str
    data_note: str
    splits: dict
    steps: StepPlan
    parameters: dict
    knobs: Knobs
    memory: MemoryEstimate
    length_note: str
    limit: Optional[int] = None
    advice: list[Advice] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> Optional[bool]:
        return None if self.limit is None else self.memory.total <= self.limit

    @property
    def tight(self) -> bool:
        """Fits, but within the allocator's fragmentation (~10%) of the budget."""
        return bool(self.fits) and self.memory.total > TIGHT * self.limit

    def to_json(self) -> dict:
        memory = {**asdict(self.memory), "total": self.memory.total, "limit": self.limit,
                  "fits": self.fits, "tight": self.tight}
        return {"recipe": self.recipe, "run": self.run_dir, "data": self.data_note, "splits": self.splits,
                "steps": asdict(self.steps), "parameters": self.parameters, "settings": asdict(self.knobs),
                "padded_length": self.length_note, "memory": memory,
                "advice": [asdict(a) for a in self.advice], "notes": self.notes}


# ---- arithmetic ----------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    """'24GiB', '24GB', '80G', '16000MiB', '1.5T' -> bytes. Units are binary (JEDEC memory
    convention): GB = GiB = 2**30, the way GPU makers quote their cards (a "24 GB" card has 24 GiB)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt])(?:i?b)?\s*", text.lower())
    if not found or float(found.group(1)) <= 0:
        raise TunekitError(f"--gpu-memory {text!r} is not a memory size",
                           "write a number and a unit, e.g. 24GiB, 80GB, 80G or 16000MiB")
    unit = _UNITS[found.group(2)]
    return int(float(found.group(1)) * unit)


def format_size(nbytes: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if abs(nbytes) >= size:
            return f"{nbytes / size:.2f} {unit}"
    return f"{nbytes} B"


def plan_steps(rows: int, batch_size: int, grad_accum: int, epochs: float,
               max_steps: Optional[int] = None, world_size: int = 1) -> StepPlan:
    """Optimizer steps as the Trainer counts them: a short last batch is still a step."""
    global_batch = batch_size * grad_accum * world_size
    per_epoch = max(math.ceil(rows / global_batch), 1)
    total = max_steps if max_steps else math.ceil(epochs * per_epoch)
    return StepPlan(per_epoch, total, total / per_epoch, global_batch)


def scores_materialised(attention: str, device: str, attention_dropout: bool) -> bool:
    if attention == "sdpa":  # PyTorch picks a fused kernel, except CPU with dropout (math path)
        return device == "cpu" and attention_dropout
    return not attention.startswith(("flash_attention", "flex_attention"))  # eager, unknown: assume so


def layer_activation_bytes(shape: ModelShape, knobs: Knobs) -> int:
    t, s, b, h = knobs.batch_size * knobs.seq_len, knobs.seq_len, knobs.batch_size, shape.hidden
    fp32 = knobs.precision == "fp32"
    e = 4 if fp32 else 2
    n = 8 if shape.python_norm else 4
    mask = 1 if knobs.device == "cuda" else e  # CUDA's fused dropout keeps a bool mask, CPU a float one
    if shape.linear_inputs is not None:
        inputs = shape.linear_inputs[0 if fp32 else 1]
    elif fp32:  # Q/K/V share the norm's output; the MLP's first layers share theirs
        inputs = 3 * h + shape.intermediate
    else:
        inputs = (1 if shape.fused_qkv else 3) * h + h + (2 if shape.gated_mlp else 1) * h + shape.intermediate
    masks = shape.mask_features if shape.mask_features is not None else (2 * h if shape.dropout else 0)
    mlp = shape.intermediate * e * (3 if shape.gated_mlp else 1)
    per_token = h * (2 * n + 3 * e) + mask * masks + e * inputs + mlp
    attention = 0
    if scores_materialised(shape.attention, knobs.device, shape.attention_dropout):
        attention = shape.heads * s * s * b * (4 + (mask if shape.attention_dropout else 0) + e)
    return t * per_token + attention


def activation_bytes(shape: ModelShape, knobs: Knobs, params: ParamCounts) -> int:
    t, h = knobs.batch_size * knobs.seq_len, shape.hidden
    e = 4 if knobs.precision == "fp32" else 2
    n = 8 if shape.python_norm else 4
    layer = layer_activation_bytes(shape, knobs)
    if knobs.gradient_checkpointing:
        layers = shape.layers * 4 * t * h + layer
    else:
        layers = params.grad_layers * layer
    outside = e * t * h + shape.final_norms * n * t * h  # the head's input; a final norm
    if params.embeddings_trained:
        outside += shape.embedding_norms * n * t * h
        if shape.dropout:
            outside += (1 if knobs.device == "cuda" else e) * t * h  # the embeddings' dropout mask
    if shape.causal_lm:
        outside += 12 * t * shape.vocab
    return layers + outside


def estimate_memory(shape: ModelShape, params: ParamCounts, knobs: Knobs) -> MemoryEstimate:
    amp_copies = 2 * params.matmul if knobs.precision in ("bf16", "fp16") else 0
    return MemoryEstimate(
        weights=params.weight_bytes + amp_copies,
        gradients=4 * params.trainable * (2 if knobs.ddp else 1),
        optimizer=8 * params.trainable,
        activations=activation_bytes(shape, knobs, params),
        overhead=CUDA_OVERHEAD if knobs.device == "cuda" else 0,
    )


def with_lora(shape: ModelShape, params: ParamCounts, rank: int = LORA_RANK) -> tuple[ModelShape, ParamCounts]:
    """The same model under tunekit's default LoRA (train.peft: {method: lora}: rank 8, dropout
    0.05, on the attention projections): only the adapter and the task head train, and only the
    adapted layers' LoRA branches keep inputs (each behind its own dropout)."""
    k, h = shape.lora_targets, shape.hidden
    adapter = shape.layers * k * rank * 2 * h
    lora_shape = replace(shape, linear_inputs=(k * (h + rank), k * (h + rank)),
                         mask_features=(2 * h if shape.dropout else 0) + k * h)
    return lora_shape, replace(params, trainable=adapter + params.head, total=params.total + adapter,
                               weight_bytes=params.weight_bytes + 4 * adapter, grad_layers=shape.layers,
                               embeddings_trained=False)


def advise(shape: ModelShape, params: ParamCounts, knobs: Knobs, grad_accum: int, limit: int,
           p95_length: Optional[int] = None, has_peft: bool = False) -> list[Advice]:
    """Changes that lower the estimate, each computed by re-running it, largest saving first."""
    now = estimate_memory(shape, params, knobs).total
    options: list[tuple[str, MemoryEstimate]] = []
    # Smaller batches with more accumulation keep the global batch: try the divisors of
    # batch_size from the largest down and take the first that fits (else the smallest).
    for batch in [d for d in range(knobs.batch_size - 1, 0, -1) if knobs.batch_size % d == 0]:
        smaller = estimate_memory(shape, params, replace(knobs, batch_size=batch))
        if smaller.total <= limit:
            break
    if knobs.batch_size > 1:
        factor = knobs.batch_size // batch
        options.append((f"train.batch_size: {batch}, train.grad_accum: {grad_accum * factor}", smaller))
    if not knobs.gradient_checkpointing:
        options.append(("train.gradient_checkpointing: true",
                        estimate_memory(shape, params, replace(knobs, gradient_checkpointing=True))))
    if knobs.precision == "fp32" and knobs.device == "cuda":
        options.append(("train.precision: bf16", estimate_memory(shape, params, replace(knobs, precision="bf16"))))
    if not has_peft:
        options.append(("train.peft: {method: lora}", estimate_memory(*with_lora(shape, params), knobs)))
    if p95_length and p95_length < knobs.seq_len:
        shorter = max(8, 8 * math.ceil(p95_length / 8))  # tensor cores like multiples of 8
        if shorter < knobs.seq_len:
            options.append((f"tokenize.max_length: {shorter} (truncates at most ~5% of training rows)",
                            estimate_memory(shape, params, replace(knobs, seq_len=shorter))))
    found = [Advice(change, est.total, now - est.total, est.total <= limit) for change, est in options
             if est.total < now]
    return sorted(found, key=lambda a: -a.saves)


# ---- the plan of a recipe ----------------------------------------------------------------------------

def resolve_target(precision: str, gpu_memory: Optional[int]) -> tuple[str, str]:
    """(device, precision) of the run being planned: a GPU when --gpu-memory names one."""
    import torch

    device = "cuda" if gpu_memory is not None or torch.cuda.is_available() else "cpu"
    if precision != "auto":
        return device, precision
    if device == "cuda" and torch.cuda.is_available():
        from tunekit.pipeline.training import resolve_precision

        return device, resolve_precision("auto")
    return device, "bf16" if device == "cuda" else "fp32"  # bf16 and fp16 take the same memory


def plan_run(recipe, gpu_memory: Optional[int] = None, world_size: int = 1) -> Plan:
    """Prepare and tokenize (cached), build the model exactly as finetune would, and plan.

    Never writes training outputs. The data cache is written only where finetune would write
    it; a trained run's cache is never replaced (stale data goes to a temporary folder)."""
    import tempfile
    from contextlib import ExitStack
    from pathlib import Path

    from tunekit.errors import RunDirError
    from tunekit.pipeline.run_guard import writing
    from tunekit.pipeline.model_setup import build_training_model
    from tunekit.tasks import get_task
    from tunekit.pipeline.tokenization import refuse_data_change, run_tokenize
    from tunekit.recipe import dump_recipe
    from tunekit.runs import RunDir

    run = RunDir(Path(recipe.output_dir))
    notes = []
    if run.has_training_outputs():
        notes.append(f"{run.root} already holds a training run: finetune will refuse it without "
                     "--overwrite (replace) or --resume (continue)")
    elsewhere = None  # why the data is prepared in a temporary folder, not in the run
    with tempfile.TemporaryDirectory(prefix="tunekit-plan-") as tmp, ExitStack() as hold:
        try:
            refuse_data_change(recipe, run)
        except RunDirError:  # the trained run's data differs: leave its cache as it is
            elsewhere = "the trained run's data cache differs from this recipe's and was left untouched"
        if elsewhere is None:
            try:
                hold.enter_context(writing(run))  # the run's folder rules and lock, as finetune's
            except RunDirError as exc:
                elsewhere = f"the run folder was not used ({exc.message})"
        data_run = RunDir(Path(tmp)) if elsewhere else run
        prepared, tokenized = run_tokenize(recipe, data_run)
        # inside: a tokenizer trained for this plan lives in the temporary run
        setup = build_training_model(recipe, get_task(recipe.task).meta_from_report(prepared.report), data_run)
    if data_run is not run:
        data_note = f"prepared and tokenized in a temporary folder: {elsewhere}"
    elif prepared.reused and tokenized.reused:
        data_note = f"reused the cached prepared and tokenized data in {run.root / 'data'}"
    else:
        data_note = f"wrote the prepared and tokenized data cache to {run.root / 'data'} (finetune would too)"

    if recipe.model.init == "config":  # built by the same code as finetune's (tasks/model_init.py)
        notes.append(f"model.init: config: a new {setup.model.config.model_type} model with random weights, "
                     f"sized by model.config and its tokenizer ({len(setup.tokenizer)} tokens)")
    shape = read_shape(setup.model)
    params = read_params(setup.model, shape.layers)
    train = tokenized.report["splits"]["train"]
    cap = recipe.tokenize.max_length
    seq_len = max(1, min(train["tokens_max"], cap))
    p95 = min(math.ceil(train["tokens_p95"]), cap)
    device, precision = resolve_target(recipe.train.precision, gpu_memory)
    cfg = recipe.train
    sharded = bool(cfg.distributed.fsdp or cfg.distributed.deepspeed)
    if world_size > 1 and sharded:
        notes.append("FSDP/DeepSpeed shard weights, gradients and optimizer state across processes: "
                     "the memory estimate is for one unsharded replica, an upper bound")
    knobs = Knobs(cfg.batch_size, seq_len, precision, cfg.gradient_checkpointing, device,
                  ddp=world_size > 1 and not sharded)
    memory = estimate_memory(shape, params, knobs)
    has_peft = hasattr(setup.model, "peft_config")
    advice = []
    if gpu_memory is not None and memory.total > gpu_memory:
        advice = advise(shape, params, knobs, cfg.grad_accum, gpu_memory, p95, has_peft)
    splits = {name: {"rows": s["rows"], "tokens_p95": s["tokens_p95"], "tokens_max": s["tokens_max"]}
              for name, s in tokenized.report["splits"].items()}
    length_note = (f"{seq_len} tokens: the longest training row after truncation (p95 is {p95}); "
                   "the batch holding it is padded to it, and that batch sets the peak")
    return Plan(
        recipe=recipe.model_dump(mode="json"), recipe_yaml=dump_recipe(recipe), run_dir=str(run.root),
        data_note=data_note, splits=splits,
        steps=plan_steps(train["rows"], cfg.batch_size, cfg.grad_accum, cfg.epochs, cfg.max_steps, world_size),
        parameters={"trainable": setup.trainable, "total": setup.total},
        knobs=knobs, memory=memory, length_note=length_note, limit=gpu_memory, advice=advice, notes=notes,
    )
