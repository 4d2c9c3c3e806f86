"""Token ids for text-to-text rows: the two model kinds' layouts and the length policy.

Each `*_features` function tokenizes a split once, untruncated (to measure true lengths), and
returns (source lengths' ids, target ids, make): `make(rows)` builds the model inputs of the
rows kept, truncated to tokenize.max_length (the encoder input, or the whole prompt) and
tokenize.max_target_length (the target with its end token).
"""

from __future__ import annotations

from typing import Sequence

from tunekit.errors import DataError, ModelError
from tunekit.pipeline.generation import join_prompt_target

SEPARATOR = "\n"  # decoder-only: ends the prompt; the target follows on its own line


def decoder_only_features(tokenizer, sources: Sequence[str], targets: Sequence[str], cfg):
    """prompt = [bos] + prefix+source + "\\n"; target = tokens + end token; labels mask the prompt."""
    end = tokenizer.eos_token_id
    if end is None:
        raise ModelError("the tokenizer has no end-of-sequence token, so a generated target could not end",
                         "use a decoder-only model whose tokenizer defines eos_token")
    start = _leading_bos(tokenizer)
    sep = tokenizer(SEPARATOR, add_special_tokens=False)["input_ids"]
    src = [start + ids + sep for ids in tokenizer(list(sources), add_special_tokens=False)["input_ids"]]
    tgt = [ids + [end] for ids in tokenizer(list(targets), add_special_tokens=False)["input_ids"]]
    room = cfg.max_length - len(start) - len(sep)  # source tokens that fit beside bos and separator
    if room < 1:
        raise DataError(f"tokenize.max_length={cfg.max_length} leaves no room for the source",
                        "raise tokenize.max_length")

    def make(rows: list[int]) -> dict:
        cols: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": [], "prompt_length": []}
        for i in rows:
            prompt = src[i] if len(src[i]) <= cfg.max_length else start + src[i][len(start):][:room] + sep
            target = tgt[i] if len(tgt[i]) <= cfg.max_target_length else tgt[i][:cfg.max_target_length - 1] + [end]
            ids, labels = join_prompt_target(prompt, target)
            cols["input_ids"].append(ids)
            cols["attention_mask"].append([1] * len(ids))
            cols["labels"].append(labels)
            cols["prompt_length"].append(len(prompt))
        return cols
    return src, tgt, make


def encoder_decoder_features(tokenizer, sources: Sequence[str], targets: Sequence[str], cfg, strip_start: bool):
    """input_ids = the tokenizer's encoding of prefix+source; labels = its encoding of the target.

    strip_start (a warm-started BERT2BERT): the tokenizer's leading [CLS] is the decoder's start
    token, which the model is given, not asked to predict; labels end with [SEP], its end token."""
    def encode_targets(texts, max_length=None) -> list[list[int]]:
        limit = None if max_length is None else max_length + (1 if strip_start else 0)
        ids = tokenizer(text_target=list(texts), truncation=limit is not None, max_length=limit)["input_ids"]
        if strip_start:
            ids = [row[1:] if row and row[0] == tokenizer.cls_token_id else row for row in ids]
        return ids

    src = tokenizer(list(sources))["input_ids"]
    tgt = encode_targets(targets)

    def make(rows: list[int]) -> dict:
        inputs = {i: src[i] for i in rows}
        labels = {i: tgt[i] for i in rows}
        long_src = [i for i in rows if len(src[i]) > cfg.max_length]
        if long_src:  # re-encode with the tokenizer's own truncation (keeps the closing special token)
            cut = tokenizer([sources[i] for i in long_src], truncation=True, max_length=cfg.max_length)["input_ids"]
            inputs.update(zip(long_src, cut))
        long_tgt = [i for i in rows if len(tgt[i]) > cfg.max_target_length]
        if long_tgt:
            labels.update(zip(long_tgt, encode_targets([targets[i] for i in long_tgt], cfg.max_target_length)))
        return {"input_ids": [inputs[i] for i in rows], "attention_mask": [[1] * len(inputs[i]) for i in rows],
                "labels": [labels[i] for i in rows]}
    return src, tgt, make


def length_policy(source_lengths: Sequence[int], target_lengths: Sequence[int], cfg, split: str):
    """tokenize.truncation for sources over max_length and targets over max_target_length:
    -> (rows kept, the split's tokenize stats)."""
    import numpy as np

    from tunekit.pipeline.length_report import length_fields

    over_src = [i for i, n in enumerate(source_lengths) if n > cfg.max_length]
    over_tgt = [i for i, n in enumerate(target_lengths) if n > cfg.max_target_length]
    if cfg.truncation == "error":
        for over, lengths, key in ((over_src, source_lengths, "max_length"),
                                   (over_tgt, target_lengths, "max_target_length")):
            if over:
                what = "sources" if key == "max_length" else "targets"
                raise DataError(f"{len(over)} {split} {what} are longer than tokenize.{key}="
                                f"{getattr(cfg, key)} tokens (first: row {over[0]}, {lengths[over[0]]} tokens)",
                                f"raise tokenize.{key}, or set tokenize.truncation to truncate or drop")
    rows = list(range(len(source_lengths)))
    dropped = 0
    if cfg.truncation == "drop":
        bad = set(over_src) | set(over_tgt)
        rows = [i for i in rows if i not in bad]
        dropped = len(bad)
        if not rows:
            raise DataError(f"every {split} row is longer than tokenize.max_length={cfg.max_length} "
                            f"(source) or tokenize.max_target_length={cfg.max_target_length} (target)",
                            "raise those limits, or set tokenize.truncation: truncate")
    truncating = cfg.truncation == "truncate"
    lengths = np.asarray(list(source_lengths) or [0])
    stats = {"rows": len(rows), "truncated": len(over_src) if truncating else 0,
             "truncated_targets": len(over_tgt) if truncating else 0, "dropped": dropped,
             "tokens_p50": float(np.percentile(lengths, 50)), "tokens_p95": float(np.percentile(lengths, 95)),
             "tokens_max": int(lengths.max()), **length_fields(source_lengths, cfg.max_length)}
    return rows, stats


def _leading_bos(tokenizer) -> list[int]:
    """[bos] when the tokenizer starts every text with it (Llama), else nothing (SmolLM2, GPT-2)."""
    bos = tokenizer.bos_token_id
    ids = tokenizer("a")["input_ids"]
    return [bos] if bos is not None and ids and ids[0] == bos else []

