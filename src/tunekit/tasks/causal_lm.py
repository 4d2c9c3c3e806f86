"""Causal language modelling: plain text, instruction -> response, and chat, on decoder-only models.

data.style picks what a row is: `text` (columns.text; loss on every token), `instruction`
(columns.prompt -> columns.response; loss on the response) or `chat` (columns.messages, a list
of {role, content}; loss on the assistant turns). lm_format renders rows to token ids and loss
masks; lm_packing packs the training split (tokenize.packing) and batches rows. Evaluation
reports perplexity over the target tokens of the split and generates from the prompts.

Lengths (tokenize.max_length): a long text is split into max_length chunks; an instruction or
chat example longer than max_length follows tokenize.truncation: `error` stops with the row,
`drop` drops it (counted), `truncate` cuts its end, and drops it (counted) if no trained token
is left. Only the training split is packed; validation and test keep one example per row, so
evaluation sees each example (and its prompt) whole.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from tunekit.errors import DataError, ModelError

if TYPE_CHECKING:
    import pandas as pd

TRAINER = "Trainer"
PEFT_TASK_TYPE = "CAUSAL_LM"
COLUMNS = ("text", "prompt", "response", "messages")  # every role a style may read; `columns` picks
STYLE_COLUMNS = {"text": ("text",), "instruction": ("prompt", "response"), "chat": ("messages",)}
GENERATION_METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf")
EVAL_BATCH = 8


def columns(data) -> tuple[str, ...]:
    """The data.columns roles this recipe's style reads (prepare selects only these)."""
    return STYLE_COLUMNS[data.style]


# ---- prepare ---------------------------------------------------------------------------------

def meta(train: "pd.DataFrame", data) -> dict:
    return {"style": data.style}


def meta_from_report(report: dict) -> dict:
    return {"style": report["style"]}


def clean(table: "pd.DataFrame", data, meta: dict, where: str, drop: bool = True):
    """Rows -> the style's columns as clean strings (or message lists), counting what is dropped.

    Empty or missing texts are dropped and counted when clean.drop_empty is on (the default), an
    error naming the row otherwise, in every split (nothing to score). Malformed chats are always
    errors: they mean a wrong column. `drop=False` (a split kept whole): duplicates stay, counted
    under `would_drop`."""
    import pandas as pd

    from tunekit.pipeline.prepare import clean_text

    rules = data.clean
    style = data.style
    roles = STYLE_COLUMNS[style]
    counts = {"rows_in": len(table)}
    rows = []
    for i, values in enumerate(table[list(roles)].itertuples(index=False)):
        if style == "chat":
            messages = _messages(values[0], rules.normalize_whitespace, f"{where}, row {i}")
            empty = [m for m in messages if not m["content"]]
            if empty and not _drop_empty(rules, counts, "empty_message", where, i, "a message"):
                continue
            rows.append((messages,))
            continue
        texts = [clean_text(v, rules.normalize_whitespace) for v in values]
        missing = [role for role, t in zip(roles, texts) if not t]
        if missing and not _drop_empty(rules, counts, f"empty_{missing[-1]}", where, i, f"the {missing[-1]}"):
            continue
        rows.append(tuple(texts))
    frame = pd.DataFrame(rows, columns=list(roles))
    would: dict[str, int] = {}
    if rules.drop_duplicates and not frame.empty:
        repeated = leakage_key(frame).duplicated()
        if drop:
            counts["duplicates"] = int(repeated.sum())
            frame = frame[~repeated].reset_index(drop=True)
        else:
            would["duplicates"] = int(repeated.sum())
    counts["rows_out"] = len(frame)
    if not drop:
        counts["would_drop"] = would
    return frame, counts


def _drop_empty(rules, counts: dict, rule: str, where: str, i: int, what: str) -> bool:
    """Count a row with an empty text as dropped (False), or raise when drop_empty is off."""
    if not rules.drop_empty:
        raise DataError(f"{where}, row {i}: {what} is empty", "fill it in, or set data.clean.drop_empty: true "
                        "to drop such rows")
    counts[rule] = counts.get(rule, 0) + 1
    return False


def _messages(value, normalize: bool, where: str) -> list[dict]:
    """A chat cell as [{role, content}, ...] with at least one assistant turn; else a DataError."""
    hint = "give data.columns.messages a column of [{role: ..., content: ...}, ...] lists (JSON lines keep them)"
    if isinstance(value, str):
        try:
            value = json.loads(value)  # a chat stored as JSON text (CSV)
        except ValueError:
            raise DataError(f"{where}: the messages cell is text, not a list of messages", hint) from None
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # arrow/parquet arrays
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: the messages cell is {type(value).__name__}, not a list of "
                        "{role, content} messages", hint)
    messages = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: a message is {str(m)[:60]!r}, not {{role: str, content: str}}", hint)
        content = " ".join(m["content"].split()) if normalize else m["content"].strip()
        messages.append({"role": m["role"].strip().lower(), "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: the chat has no assistant turn, so there is nothing to learn",
                        "give every chat at least one {role: assistant} message, or remove the row")
    return messages


def split_units(frame: "pd.DataFrame", stratify: bool) -> list[list[list[int]]]:
    return [[[i] for i in frame.index]]  # no labels to stratify by: one row per unit


def leakage_key(frame: "pd.DataFrame"):
    if "messages" in frame.columns:
        return frame["messages"].map(lambda m: json.dumps(m, sort_keys=True))
    if "prompt" in frame.columns:
        return frame["prompt"] + "\n" + frame["response"]
    return frame["text"]


def describe(frames: dict, meta: dict) -> dict:
    return {"style": meta["style"], "distribution": {s: {} for s in frames}, "warnings": []}


def to_dataset(frame: "pd.DataFrame", meta: dict):
    import datasets

    if meta["style"] == "chat":
        message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
        return datasets.Dataset.from_dict({"messages": frame["messages"].tolist()},
                                          features=datasets.Features({"messages": [message]}))
    roles = STYLE_COLUMNS[meta["style"]]
    return datasets.Dataset.from_dict({c: frame[c].tolist() for c in roles},
                                      features=datasets.Features({c: datasets.Value("string") for c in roles}))


# ---- tokenize --------------------------------------------------------------------------------

def style_of(ds) -> str:
    return "chat" if "messages" in ds.column_names else "instruction" if "prompt" in ds.column_names else "text"


def examples(ds, tokenizer, cfg, split: str):
    """The split's rows as lm_format Examples, after the length policy; and the counts."""
    from tunekit.tasks.lm_format import (Example, chat_pieces, chunk_text, encode_pieces, instruction_pieces,
                                         text_pieces, text_prompt_length, uses_template)

    style = style_of(ds)
    template = style != "text" and uses_template(tokenizer, cfg.chat_template)
    if style == "text":
        pieces = [text_pieces(t) for t in ds["text"]]
    elif style == "instruction":
        pieces = [instruction_pieces(p, r, tokenizer, cfg.prefix, template, f"{split} data, row {i}")
                  for i, (p, r) in enumerate(zip(ds["prompt"], ds["response"]))]
    else:
        pieces = [chat_pieces(m, tokenizer, template, f"{split} data, row {i}") for i, m in enumerate(ds["messages"])]
    counts = {"truncated": 0, "dropped": 0, "chunked": 0}
    out: list[Example] = []
    lengths = []
    for row, (ids, labels, prompt_length) in enumerate(encode_pieces(pieces, tokenizer, template)):
        lengths.append(len(ids))
        if style == "text":
            chunks = chunk_text(ids, labels, cfg.max_length)
            counts["chunked"] += len(chunks) > 1
            out += [Example(c, lab, text_prompt_length(len(c)) if k == 0 else 0, row)
                    for k, (c, lab) in enumerate(chunks)]
            continue
        if len(ids) > cfg.max_length:
            if cfg.truncation == "error":
                raise DataError(f"{split} data, row {row}: prompt and response take {len(ids)} tokens, more than "
                                f"tokenize.max_length={cfg.max_length}",
                                "raise tokenize.max_length, or set tokenize.truncation to truncate or drop")
            if cfg.truncation == "drop" or all(x < 0 for x in labels[:cfg.max_length]):
                counts["dropped"] += 1  # drop, or truncation would leave no trained token
                continue
            counts["truncated"] += 1
            ids, labels = ids[:cfg.max_length], labels[:cfg.max_length]
        out.append(Example(ids, labels, prompt_length, row))
    if not out:
        raise DataError(f"no {split} examples are left at tokenize.max_length={cfg.max_length} "
                        f"({counts['dropped']} dropped)", "raise tokenize.max_length, or set tokenize.truncation: truncate")
    return out, lengths, counts


def encode(ds, tokenizer, cfg, split: str):
    """Rows -> examples (input_ids, labels, prompt_length, row); the training split packed."""
    import datasets
    import numpy as np

    from tunekit.pipeline.length_report import length_fields
    from tunekit.tasks.lm_packing import packed_columns

    found, lengths, counts = examples(ds, tokenizer, cfg, split)
    ids = [e.input_ids for e in found]
    labels = [e.labels for e in found]
    if split == "train" and cfg.packing:
        columns_ = packed_columns(ids, labels, cfg.max_length)
    else:
        columns_ = {"input_ids": ids, "labels": labels, "prompt_length": [e.prompt_length for e in found],
                    "row": [e.row for e in found]}
    mapped = datasets.Dataset.from_dict(columns_)
    tokens = sum(len(x) for x in ids)
    row_lengths = [len(x) for x in columns_["input_ids"]]
    # `rows` and the token percentiles describe the rows the model sees (packed rows for a packed
    # split), which set the step count and padding the planner estimates; the rest, the examples.
    stats = {"rows": len(mapped), "source_rows": len(ds), "examples": len(found), **counts,
             "packed": split == "train" and cfg.packing, "tokens": tokens,
             "trained_tokens": sum(sum(1 for x in lab[1:] if x >= 0) for lab in labels),
             "fill": round(tokens / (len(mapped) * cfg.max_length), 4) if len(mapped) else 0.0,
             "example_tokens_max": max(lengths, default=0),  # before chunking or truncation
             "tokens_p50": float(np.percentile(row_lengths, 50)),
             "tokens_p95": float(np.percentile(row_lengths, 95)),
             "tokens_max": max(row_lengths),
             **length_fields(lengths, cfg.max_length)}  # each prepared row's example, before packing
    return mapped, stats


# ---- train -----------------------------------------------------------------------------------

def build_model(model_path: str, meta: dict, recipe=None, tokenizer=None, **load_kwargs):
    import torch
    from transformers import AutoModelForCausalLM

    from tunekit.tasks.lm_packing import packing_problem
    from tunekit.tasks.model_init import build

    model = build(AutoModelForCausalLM, model_path, recipe, tokenizer, dtype=torch.float32, **load_kwargs)
    if recipe is not None and recipe.tokenize.packing:
        problem = packing_problem(model, recipe.train.peft.method if recipe.train.peft else None)
        if problem:
            raise ModelError(f"tokenize.packing cannot be used here: {problem}",
                             "set tokenize.packing: false (one example per row, padded)")
        # Packed-sequence masking is skipped when the forward pass builds a cache; the Trainer
        # turns the cache off (args.use_cache), and so does this, for any other caller.
        model.config.use_cache = False
    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ModelError(f"the tokenizer has {len(tokenizer)} tokens but the model embeds only "
                         f"{model.get_input_embeddings().num_embeddings}", "use the model's own tokenizer")
    # The loss is summed over target tokens and divided by the count the Trainer passes in
    # (num_items_in_batch), so it stays token-weighted across gradient accumulation:
    # accepts_loss_kwargs keeps its default (True) here, unlike the classification heads.
    return model


def load_trained(model_path: str):
    from transformers import AutoModelForCausalLM

    from tunekit.pipeline.adapters import load_model

    return load_model(model_path, AutoModelForCausalLM)


def collator(tokenizer):
    from tunekit.tasks.lm_packing import CausalLMCollator

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ModelError("the tokenizer has neither a pad nor an end-of-text token to pad batches with",
                         "use a tokenizer with an eos_token or pad_token")
    return CausalLMCollator(pad)


def trainer_metrics(meta: dict):
    """None: validation reports the loss (checkpoints go by it); perplexity and generation run in eval."""
    return None


# ---- eval ------------------------------------------------------------------------------------

def target_nll(model, input_ids, labels, pad_id: int, batch_size: int = EVAL_BATCH):
    """Summed next-token loss and trained-token count, per row and in all (length-sorted batches)."""
    import torch

    from tunekit.tasks.lm_packing import CausalLMCollator

    collate = CausalLMCollator(pad_id)
    device = next(model.parameters()).device
    sums = [0.0] * len(input_ids)
    counts = [0] * len(input_ids)
    order = sorted(range(len(input_ids)), key=lambda i: len(input_ids[i]))
    for first in range(0, len(order), batch_size):
        idx = order[first:first + batch_size]
        batch = collate([{"input_ids": input_ids[i], "labels": labels[i]} for i in idx])
        target = batch.pop("labels").to(device)
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in batch.items()}, use_cache=False).logits.float()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), target[:, 1:],
                                                ignore_index=-100, reduction="none")
        for j, i in enumerate(idx):
            sums[i] = float(nll[j].sum())
            counts[i] = int((target[j, 1:] >= 0).sum())
    return sums, counts


def perplexity(sums, counts) -> tuple[float, float, int]:
    """exp of the mean loss per trained token over the whole split (token-weighted, not a mean of
    batch or row means): (perplexity, loss, tokens)."""
    tokens = sum(counts)
    loss = sum(sums) / tokens if tokens else float("nan")
    return math.exp(loss), loss, tokens


def per_example_loss(sums, counts):
    """Bootstrap statistics for perplexity and loss: each example's summed loss and token count."""
    from tunekit.pipeline.intervals import PerExample

    def aggregate(s) -> dict:
        loss = float(s["nll"] / s["tokens"]) if s["tokens"] else float("nan")
        return {"perplexity": math.exp(loss), "loss": loss}

    return PerExample({"nll": list(sums), "tokens": [float(c) for c in counts]}, aggregate)


def evaluate(model_path: str, data, prepared, cfg) -> tuple[dict, list[dict], list]:
    """Perplexity over the split's target tokens; generations from its prompts (the first
    eval.samples, or all when eval.metrics names ROUGE/BLEU/chrF, which are then scored)."""
    import torch

    from tunekit.pipeline.generation import generate
    from tunekit.pipeline.tokenization import load_tokenizer
    from tunekit.tasks.text_metrics import generation_scores_with_stats

    if "prompt_length" not in data.column_names:
        raise DataError("this split is packed (several examples per row), so its examples cannot be scored "
                        "one by one", "evaluate the validation or test split (--split)")
    tokenizer = load_tokenizer(model_path)
    model = load_trained(model_path)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    ids, labels, prompt_lengths, rows_of = data["input_ids"], data["labels"], data["prompt_length"], data["row"]
    pad = collator(tokenizer).pad_token_id
    sums, counts = target_nll(model, ids, labels, pad)
    ppl, loss, tokens = perplexity(sums, counts)
    scored = [m for m in (cfg.metrics or ()) if m in GENERATION_METRICS]
    candidates = [i for i in range(len(ids)) if prompt_lengths[i] > 0]
    chosen = candidates if scored else candidates[:cfg.samples]
    metrics = {"perplexity": round(ppl, 4), "loss": round(loss, 6), "tokens": tokens, "n": len(ids)}
    groups = [per_example_loss(sums, counts)]
    rows: list[dict] = []
    if chosen:
        out = generate(model, tokenizer, [ids[i][:prompt_lengths[i]] for i in chosen], cfg.generation)
        references = [_reference(prepared, rows_of[i], tokenizer, ids[i][prompt_lengths[i]:]) for i in chosen]
        metrics.update(generated=len(chosen), capped=sum(out.capped),
                       gen_len_mean=round(sum(out.lengths) / len(chosen), 2))
        if scored:
            scores, stats = generation_scores_with_stats(scored, out.texts, references)
            metrics.update(scores)
            groups += [stats] if stats else []
        for k, i in enumerate(chosen):
            rows.append({"row": rows_of[i], "prompt": _prompt(prepared, rows_of[i], tokenizer, ids[i][:prompt_lengths[i]]),
                         "generation": out.texts[k], "reference": references[k], "capped": out.capped[k],
                         "loss": round(sums[i] / counts[i], 6) if counts[i] else None})
    return metrics, rows, groups


def _prompt(prepared, row: int, tokenizer, prompt_ids) -> str:
    if "prompt" in prepared.column_names:
        return prepared[row]["prompt"]
    if "messages" in prepared.column_names:
        messages = prepared[row]["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        asked = [m["content"] for m in messages[:last] if m["role"] != "assistant"]
        return asked[-1] if asked else ""
    return tokenizer.decode(prompt_ids, skip_special_tokens=True)


def _reference(prepared, row: int, tokenizer, target_ids) -> str:
    if "response" in prepared.column_names:
        return prepared[row]["response"]
    if "messages" in prepared.column_names:
        return [m["content"] for m in prepared[row]["messages"] if m["role"] == "assistant"][-1]
    return tokenizer.decode(target_ids, skip_special_tokens=True).strip()
