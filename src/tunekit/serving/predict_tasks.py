"""Per-task inference on raw inputs, built from the task modules' own pieces.

Each function takes the loaded model and tokenizer and a list of already-cleaned inputs, and
returns one prediction dict per input, in input order. Inputs are encoded exactly as the
tokenize step encodes training rows (the same task functions are called), so what the model
sees at inference is what it saw in training and in `eval`:

* classification: classification.preprocess (truncated at tokenize.max_length), length-sorted
  batches through the task's collator and predict_batch.
* qa: qa_features.prepare_eval_features (stride windows, question never cut), start/end logits
  per window, qa_decode.decode_predictions (n-best spans, no-answer for v2.0 models).
* summarization / translation: seq2seq_features' encoder-decoder or decoder-only layout (prefix,
  source, prompt separator), then pipeline.generation.generate.
* causal_lm: lm_format pieces rendered as the task renders them (chat template or plain),
  keeping the generation prompt only; then generate.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from tunekit.errors import DataError


# ---- classification ------------------------------------------------------------------------------

def classify(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int) -> list[dict]:
    from tunekit.tasks.classification import collator, predict_encoded, preprocess

    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    # the task's own encoder; the labels it copies are placeholders, dropped before the model
    encoded = preprocess({"text": list(texts), "label": [0] * len(texts)}, tokenizer, max_length)
    encoded.pop("labels")
    return [{"label": names[label], "scores": dict(zip(names, probs))}
            for label, probs in predict_encoded(model, collator(tokenizer), encoded, batch_size)]


# ---- extractive QA -----------------------------------------------------------------------------

def answer(model, tokenizer, questions: Sequence[str], contexts: Sequence[str], tokenize_cfg, eval_cfg,
           version_2: bool, batch_size: int) -> list[dict]:
    from tunekit.tasks.qa import collator, window_logits
    from tunekit.tasks.qa_decode import decode_predictions
    from tunekit.tasks.qa_features import prepare_eval_features

    ids = [str(i) for i in range(len(questions))]
    features = prepare_eval_features(ids, questions, contexts, tokenizer, tokenize_cfg.max_length,
                                     tokenize_cfg.stride, where="input")
    inputs = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in features]
    starts, ends = window_logits(model, collator(tokenizer), {c: features[c] for c in inputs}, batch_size)
    predictions, nbest = decode_predictions({"id": ids, "context": list(contexts)},
                                            {"example_id": features["example_id"],
                                             "offset_mapping": features["offset_mapping"]},
                                            starts, ends, n_best=eval_cfg.n_best,
                                            max_answer_length=eval_cfg.max_answer_length, version_2=version_2,
                                            null_threshold=eval_cfg.null_threshold)
    return [_chosen(predictions[i], nbest.get(i, [])) for i in ids]


def _chosen(text: str, candidates: list[dict]) -> dict:
    """The n-best entry behind decode_predictions' answer. "" is no answer (v2.0): the null entry
    (its score is the no-answer score; it has no span). Otherwise the best real span, which
    need not be first: the null entry is listed by score even when the threshold rejects it."""
    if not text:
        null = next((c for c in candidates if not c["text"]), None)
        return {"answer": "", "score": float(null["score"]) if null else None, "start": None, "end": None}
    best = next(c for c in candidates if c["text"])
    return {"answer": best["text"], "score": float(best["score"]), "start": int(best["start"]), "end": int(best["end"])}


# ---- generation (summarization, translation, causal_lm) -----------------------------------------

def generate_all(model, tokenizer, prompts: Sequence[Sequence[int]], gen_cfg, max_new_tokens: Sequence[int],
                 batch_size: int) -> list[tuple[str, bool]]:
    """(text, capped) per prompt; inputs asking for different max_new_tokens generate apart."""
    from tunekit.pipeline.generation import generate

    groups: dict[int, list[int]] = defaultdict(list)
    for i, cap in enumerate(max_new_tokens):
        groups[cap].append(i)
    out: list[Any] = [None] * len(prompts)
    for cap, idx in groups.items():
        cfg = gen_cfg.model_copy(update={"max_new_tokens": cap, "batch_size": batch_size})
        result = generate(model, tokenizer, [prompts[i] for i in idx], cfg)
        for k, i in enumerate(idx):
            out[i] = (result.texts[k], result.capped[k])
    return out


def seq2seq_inputs(model, tokenizer, sources: Sequence[str], tokenize_cfg) -> list[list[int]]:
    """Token ids to generate from: the encoder input, or a decoder-only model's prompt (the
    training layout without its target), both truncated as the tokenize step truncates."""
    from tunekit.pipeline.generation import is_encoder_decoder
    from tunekit.tasks.seq2seq_features import decoder_only_features, encoder_decoder_features

    texts = [tokenize_cfg.prefix + s for s in sources]
    blank = [""] * len(texts)  # no target at inference; the layouts need one to build a row
    rows = list(range(len(texts)))
    if is_encoder_decoder(model):
        _, _, make = encoder_decoder_features(tokenizer, texts, blank, tokenize_cfg, strip_start=False)
        return make(rows)["input_ids"]
    _, _, make = decoder_only_features(tokenizer, texts, blank, tokenize_cfg)
    cols = make(rows)
    return [ids[:n] for ids, n in zip(cols["input_ids"], cols["prompt_length"])]


def lm_prompts(tokenizer, inputs: Sequence[dict], style: str, tokenize_cfg) -> list[list[int]]:
    """causal_lm generation prompts, rendered as the task renders training examples:

    * text style: the text itself (after the tokenizer's start tokens), to be continued;
    * instruction: the user turn (tokenize.prefix + prompt) with the chat template's assistant
      header, or the plain `prefix + prompt + "\\n\\n"`;
    * chat: the messages (or the prompt as one user turn), then the assistant header.
    A trailing assistant message is dropped: its reply is what gets generated (as eval does)."""
    from tunekit.tasks.lm_format import chat_pieces, encode_pieces, instruction_pieces, uses_template

    template = style != "text" and uses_template(tokenizer, tokenize_cfg.chat_template)
    pieces = []
    for item in inputs:
        if style == "text":
            pieces.append([(item["prompt"], False)])
            continue
        if "messages" in item:
            messages = list(item["messages"])
            while messages and messages[-1]["role"] == "assistant":
                messages.pop()
            if not messages:
                raise DataError("messages holds assistant turns only: nothing to reply to",
                                "give at least one user message")
            pieces.append(chat_pieces(messages + [{"role": "assistant", "content": ""}], tokenizer, template))
        elif style == "instruction":
            pieces.append(instruction_pieces(item["prompt"], "", tokenizer, tokenize_cfg.prefix, template))
        else:
            pieces.append(chat_pieces([{"role": "user", "content": item["prompt"]},
                                       {"role": "assistant", "content": ""}], tokenizer, template))
    return [ids[:n] for ids, _, n in encode_pieces(pieces, tokenizer, template)]
