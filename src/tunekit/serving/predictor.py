"""A trained model loaded once, predicting on raw inputs: the layer under predict and serve.

`load_predictor(info)` loads the model the way `eval` does (the task's load_trained, which puts
a PEFT adapter on its base; cuda when there is one; eval mode) with its tokenizer.
`Predictor.predict(inputs)` cleans each input as prepare cleans training rows (whitespace
rules of data.clean), then hands the batch to the task's function in predict_tasks.

Predictions are serialised by a lock: a fast tokenizer is not safe to call from two threads
at once (it fails with "Already borrowed"), and on a CPU two forward passes at a time only
share the same cores. The server runs them through a `PredictionQueue` (one worker thread, a
bounded number of jobs), so its event loop keeps answering /health meanwhile.

What a client sees of the model is its name (`model_name`, `public_ref`), never a local path.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from tunekit.errors import ModelError, RecipeError
from tunekit.model_info import ModelInfo
from tunekit.serving.inputs import GENERATIVE, OUTPUT_FIELDS, TASK_FIELDS, input_fields

# Default batch sizes per task (eval's own); generative tasks use eval.generation.batch_size.
BATCH = {"classification": 64, "qa": 32}


@dataclass(frozen=True)
class Limits:
    """What one request to `tunekit serve` may ask for."""

    max_chars: int = 20_000            # characters per text field
    max_batch: int = 64                # inputs per request
    max_body_bytes: int = 1_048_576    # request body (413 above it)
    max_new_tokens: Optional[int] = None  # cap on a request's max_new_tokens (generative tasks)
    timeout: float = 60.0              # seconds a request may wait and predict (504 after)
    max_queue: int = 64                # predictions waiting or running at once (503 beyond)

    def as_dict(self) -> dict:
        return asdict(self)


class Predictor:
    def __init__(self, info: ModelInfo, model, tokenizer, device: str, *, version_2: bool = False,
                 normalize: bool = True, max_new_tokens: Optional[int] = None, load_seconds: float = 0.0):
        self.info = info
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.version_2 = version_2          # qa: the model was trained with unanswerable questions
        self.normalize = normalize          # data.clean.normalize_whitespace of the run
        self.max_new_tokens = max_new_tokens or info.eval.generation.max_new_tokens
        self.load_seconds = load_seconds
        self._lock = threading.Lock()

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def style(self) -> str:
        return self.info.style

    @property
    def input_fields(self) -> tuple[str, ...]:
        return input_fields(self.task, self.style)

    @property
    def labels(self) -> Optional[list[str]]:
        if self.task != "classification":
            return None
        config = self.model.config
        return [config.id2label[i] for i in range(config.num_labels)]

    def default_batch_size(self) -> int:
        return BATCH.get(self.task) or self.info.eval.generation.batch_size

    def predict(self, inputs: Sequence[dict], batch_size: Optional[int] = None) -> list[dict]:
        """One prediction per input, in input order. Inputs are plain dicts of the task's fields
        (serving.inputs checks them); generative inputs may carry their own max_new_tokens."""
        if not inputs:
            return []
        size = batch_size or self.default_batch_size()
        with self._lock:
            return self._predict(list(inputs), size)

    def _predict(self, inputs: list[dict], size: int) -> list[dict]:
        from tunekit.serving import predict_tasks as pt

        tok = self.info.tokenize
        if self.task == "classification":
            texts = [self._clean(x["text"]) for x in inputs]
            return pt.classify(self.model, self.tokenizer, texts, tok.max_length, size)
        if self.task == "qa":
            # as qa.clean: the question stripped, the context byte for byte (offsets point into it)
            return pt.answer(self.model, self.tokenizer, [x["question"].strip() for x in inputs],
                             [x["context"] for x in inputs], tok, self.info.eval, self.version_2, size)
        caps = [self._max_new_tokens(x) for x in inputs]
        if self.task == "causal_lm":
            prompts = pt.lm_prompts(self.tokenizer, [self._clean_lm(x) for x in inputs], self.style, tok)
            key = "generated_text"
        else:
            prompts = pt.seq2seq_inputs(self.model, self.tokenizer, [self._clean(x["text"]) for x in inputs], tok)
            key = OUTPUT_FIELDS[self.task][0]
        out = pt.generate_all(self.model, self.tokenizer, prompts, self.info.eval.generation, caps, size)
        return [{key: text, "capped": capped} for text, capped in out]

    def _clean(self, text: str) -> str:
        return " ".join(text.split()) if self.normalize else text.strip()

    def _clean_lm(self, item: dict) -> dict:
        if "messages" in item:
            return {"messages": [{"role": m["role"].strip().lower(), "content": self._clean(m["content"])}
                                 for m in item["messages"]]}
        return {"prompt": self._clean(item["prompt"])}

    def _max_new_tokens(self, item: dict) -> int:
        value = item.get("max_new_tokens") or self.max_new_tokens
        if value is None:
            raise RecipeError("this model's recipe sets no eval.generation.max_new_tokens",
                              "pass --max-new-tokens (or give max_new_tokens with the input)")
        return int(value)

    def describe(self) -> dict[str, Any]:
        """What /info and `predict --json` say about the model."""
        info = self.info
        out: dict[str, Any] = {
            "task": self.task, "model": model_name(info), "base_model": public_ref(info.base_model),
            "recipe": info.recipe_name, "adapter": info.is_adapter, "device": self.device,
            "input_fields": list(self.input_fields), "output_fields": list(OUTPUT_FIELDS[self.task]),
            "max_length": info.tokenize.max_length,
        }
        if self.task == "classification":
            out["labels"] = self.labels
        if self.task == "qa":
            out.update(version_2=self.version_2, stride=info.tokenize.stride, n_best=info.eval.n_best,
                       max_answer_length=info.eval.max_answer_length)
        if self.task == "causal_lm":
            out["style"] = self.style
        if self.task in GENERATIVE:
            out["generation"] = {**info.eval.generation.model_dump(mode="json"), "max_new_tokens": self.max_new_tokens}
        return out


def model_name(info: ModelInfo) -> str:
    """The name a client is shown: the recipe's name, else the run folder's (or the model
    folder's) basename. Never a path: the server's folders are nobody else's business."""
    folder = info.run.root if info.run is not None else info.model_dir
    return info.recipe_name or Path(folder).resolve().name or "model"


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def public_ref(ref: Optional[str]) -> Optional[str]:
    """A model reference as a client may see it: a Hub id or pkg://<distribution>/<path> as
    written (neither names a folder of this machine), a local path by its basename only."""
    if not ref:
        return ref
    if ref.startswith("pkg://") or (_HUB_ID.fullmatch(ref) and not Path(ref).expanduser().exists()):
        return ref
    return Path(ref.split("://", 1)[-1].replace("\\", "/").rstrip("/")).name or None


class QueueFull(Exception):
    """A PredictionQueue already holds its limit of jobs."""


class PredictionQueue:
    """Jobs run one at a time on a daemon worker thread; at most `size` are waiting or running.

    submit() refuses (QueueFull) beyond that at once. A job's slot is freed when it finishes, or
    when it is cancelled before it starts (Future.cancel: it then never runs). A job whose
    caller gave up (a timeout) keeps its slot until its computation ends, so abandoned work
    is bounded by `size` too."""

    def __init__(self, size: int):
        import queue

        self.size = size
        self._jobs: "queue.SimpleQueue" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._count = 0
        self._thread: Optional[threading.Thread] = None

    @property
    def in_flight(self) -> int:
        return self._count

    def submit(self, fn: Callable, *args) -> Future:
        with self._lock:
            if self._count >= self.size:
                raise QueueFull(self._count)
            self._count += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="tunekit-predict", daemon=True)
                self._thread.start()
        future: Future = Future()
        future.add_done_callback(self._release)
        self._jobs.put((future, fn, args))
        return future

    def close(self) -> None:
        """Let the worker end once the jobs already queued are done (a later submit starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)

    def _release(self, _future: Future) -> None:
        with self._lock:
            self._count -= 1

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if not future.set_running_or_notify_cancel():  # cancelled while waiting
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the waiting request, which answers 500 or 422
                future.set_exception(exc)
            else:
                future.set_result(result)
            del job, future, fn, args


def load_predictor(info: ModelInfo, device: Optional[str] = None, max_new_tokens: Optional[int] = None) -> Predictor:
    """Load the model and tokenizer of `info` once, ready for predict()."""
    import torch

    from tunekit.pipeline.tokenization import load_tokenizer
    from tunekit.tasks import get_task

    if info.task not in TASK_FIELDS:
        raise ModelError(f"{info.model_dir} is a {info.task!r} model, which predict does not know",
                         f"tasks: {', '.join(TASK_FIELDS)}")
    start = time.perf_counter()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(str(info.model_dir))
    model = get_task(info.task).load_trained(str(info.model_dir))
    model.to(device).eval()
    return Predictor(info, model, tokenizer, device, version_2=info.version_2, normalize=info.normalize_whitespace,
                     max_new_tokens=max_new_tokens, load_seconds=time.perf_counter() - start)
