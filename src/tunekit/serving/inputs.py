"""What each task takes in and gives back at inference time, and the checks on raw inputs.

One table of field names serves both front ends: `tunekit predict` (JSON lines, where the
recipe's own column names are accepted too, so a data file of the training layout works) and
`tunekit serve` (strict pydantic request models: unknown fields are 422 errors there).

Inputs, per task:              outputs:
  classification  text           label, scores {name: probability}
  qa              question,      answer ("" = no answer, v2.0 models), score (start + end logit,
                  context          as in eval's predictions.jsonl), start, end (character offsets
                                   into the context; null for no answer)
  summarization   text           summary, capped (true when max_new_tokens cut it)
  translation     text           translation, capped
  causal_lm       prompt         generated_text, capped
                  (chat style: or messages [{role, content}, ...])
Generative tasks also take an optional per-input max_new_tokens.

Light on purpose (pydantic only): predict checks a whole input file before any model loads.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from tunekit.errors import DataError

TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "classification": ("text",),
    "qa": ("question", "context"),
    "summarization": ("text",),
    "translation": ("text",),
    "causal_lm": ("prompt",),
}
OUTPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "classification": ("label", "scores"),
    "qa": ("answer", "score", "start", "end"),
    "summarization": ("summary", "capped"),
    "translation": ("translation", "capped"),
    "causal_lm": ("generated_text", "capped"),
}
GENERATIVE = ("summarization", "translation", "causal_lm")


def input_fields(task: str, style: str = "instruction") -> tuple[str, ...]:
    """Input field names; a chat-style causal_lm model also takes `messages` (one of the two)."""
    if task == "causal_lm" and style == "chat":
        return ("prompt", "messages")
    return TASK_FIELDS[task]


def column_roles(task: str, style: str) -> dict[str, str]:
    """Input field -> the data.columns role whose recipe column may stand in for it (--file)."""
    if task in ("summarization", "translation"):
        return {"text": "source"}
    if task == "causal_lm":
        roles = {"prompt": "text" if style == "text" else "prompt"}
        if style == "chat":
            roles["messages"] = "messages"
        return roles
    return {field: field for field in TASK_FIELDS[task]}


# ---- pydantic request models -------------------------------------------------------------------

# One character that str.strip() keeps (not blank), spelled out: the JSON schema's `\S` follows
# ECMA-262, which counts U+001C-U+001F and U+0085 as text where Python counts them as space.
NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


@lru_cache(maxsize=32)
def input_model(task: str, style: str = "instruction", max_chars: Optional[int] = None,
                max_new_tokens: Optional[int] = None, strict: bool = True):
    """The pydantic model of one input. strict: unknown fields are errors (serve); otherwise
    they are ignored (predict --file keeps them beside the prediction)."""
    from typing import Annotated

    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

    if task not in TASK_FIELDS:
        raise DataError(f"unknown task {task!r}", f"tasks: {', '.join(TASK_FIELDS)}")
    # the schema says "not blank" too (a pattern), so what it calls valid the server accepts
    text = Annotated[str, StringConstraints(max_length=max_chars), AfterValidator(_not_blank),
                     Field(json_schema_extra={"pattern": NOT_BLANK})]
    config = ConfigDict(extra="forbid" if strict else "ignore", frozen=True)
    fields: dict[str, Any] = {}
    if task == "causal_lm" and style == "chat":
        class Message(BaseModel):
            model_config = ConfigDict(extra="forbid" if strict else "ignore")
            role: Annotated[str, AfterValidator(_not_blank)]
            content: text  # type: ignore[valid-type]

        fields["prompt"] = (Optional[text], None)
        fields["messages"] = (Optional[list[Message]], Field(None, min_length=1))
    else:
        for name in TASK_FIELDS[task]:
            fields[name] = (text, ...)
    if task in GENERATIVE:
        fields["max_new_tokens"] = (Optional[int], Field(None, ge=1, le=max_new_tokens,
                                                          description="Most tokens to generate for this input."))

    validators = {}
    if "messages" in fields:
        @model_validator(mode="after")
        def _one_of(self):
            if (self.prompt is None) == (self.messages is None):
                raise ValueError("give either prompt or messages")
            return self
        validators["_one_of"] = _one_of
    name = "".join(part.title() for part in task.split("_")) + "Input"
    return create_model(name, __config__=config, __validators__=validators, **fields)


@lru_cache(maxsize=32)
def batch_model(task: str, style: str, max_chars: Optional[int], max_new_tokens: Optional[int], max_batch: int):
    """{"inputs": [input, ...]}: at most max_batch inputs."""
    from pydantic import ConfigDict, Field, create_model

    item = input_model(task, style, max_chars, max_new_tokens, True)
    return create_model("BatchInput", __config__=ConfigDict(extra="forbid"),
                        inputs=(list[item], Field(..., min_length=1, max_length=max_batch)))  # type: ignore[valid-type]


def as_plain(obj) -> dict:
    """A validated input model -> the dict the predictor takes (unset optional fields left out)."""
    return obj.model_dump(exclude_none=True)


# ---- predict: command line and JSON lines -----------------------------------------------------

def _lookup(row: dict, column: str):
    """A recipe column in a JSON row; a dotted name reaches into nested objects (as prepare does)."""
    if column in row:
        return row[column]
    value: Any = row
    for key in column.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def with_task_fields(row: dict, task: str, style: str, columns) -> dict:
    """The row with the task's plain field names filled in from the recipe's column names where
    they are absent (a list of strings, e.g. sentences, is joined as prepare joins it)."""
    from tunekit.pipeline.prepare import text_value

    out = dict(row)
    for field, role in column_roles(task, style).items():
        if field in out:
            continue
        value = _lookup(row, getattr(columns, role))
        if value is not None:
            out[field] = value if field == "messages" else (text_value(value) or value)
    return out


def check_input(row: Any, task: str, style: str, columns, where: str, max_new_tokens: Optional[int] = None) -> dict:
    """One raw input (a JSON object) -> the predictor's plain dict, or a DataError naming `where`."""
    from pydantic import ValidationError

    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}",
                        f"write one object per line, e.g. {example(task, style)}")
    model = input_model(task, style, None, None, False)
    try:
        plain = as_plain(model.model_validate(with_task_fields(row, task, style, columns)))
    except ValidationError as exc:
        fields = ", ".join(input_fields(task, style))
        raise DataError(f"{where}: {describe_errors(exc)}",
                        f"give the fields {fields}, e.g. {example(task, style)}") from None
    if max_new_tokens is not None and "max_new_tokens" not in plain and task in GENERATIVE:
        plain["max_new_tokens"] = max_new_tokens
    return plain


def describe_errors(exc) -> str:
    """A pydantic ValidationError in one line: `field: message; ...`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "input"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def example(task: str, style: str = "instruction") -> str:
    samples = {"classification": {"text": "a great film"},
               "qa": {"question": "who?", "context": "..."},
               "causal_lm": {"prompt": "..."}}
    return json.dumps(samples.get(task, {"text": "..."}))


def read_jsonl(path: Path, task: str, style: str, columns, max_new_tokens: Optional[int] = None,
               ) -> tuple[list[dict], list[dict]]:
    """A JSON-lines input file -> (the raw rows, the checked inputs); blank lines are skipped.
    A bad line is a DataError naming its line number (1-based)."""
    if not path.exists():
        raise DataError(f"input file not found: {path}", "give --file a JSON-lines file, one object per line")
    if not path.is_file():  # a folder, a FIFO, a device: never read
        raise DataError(f"--file {path} is not a regular file", "give --file a JSON-lines file, one object per line")
    rows: list[dict] = []
    inputs: list[dict] = []
    with open(path, "rb") as fh:
        for number, line in _lines(fh, path):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{where}: not valid JSON ({exc})",
                                f"write one JSON object per line, e.g. {example(task, style)}") from None
            inputs.append(check_input(row, task, style, columns, where, max_new_tokens))
            rows.append(row)
    if not inputs:
        raise DataError(f"{path} holds no inputs", "write one JSON object per line")
    return rows, inputs


def _lines(fh, path: Path):
    """(number, text) per line of a binary file; bytes that are not UTF-8 are a DataError naming
    the line (decoding line by line: a text-mode read fails a whole chunk ahead)."""
    for number, raw in enumerate(fh, start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} line {number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                            f"{exc.start + 1})",
                            f"convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name}") from None
