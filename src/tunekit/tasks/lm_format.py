"""Causal-LM examples: each data style rendered to token ids with a loss mask.

Every example is built from pieces of text, each trainable or not; pieces are tokenized
separately (in one batched call) and joined, so a label boundary always falls between two
tokens, and the generation prompt of an example is exactly its untrained prefix.

* text: special prefix (BOS where the tokenizer adds one) + text + end token, all trained.
  A text longer than max_length becomes several max_length chunks rather than being cut.
* instruction: with a chat template (and tokenize.chat_template), a user turn (prefix + prompt)
  and an assistant turn; else `prefix + prompt + "\\n\\n"`, then response + end token.
  Only the response (and what closes it) is trained.
* chat: the messages rendered with the chat template (or plain "Role: content" turns); only
  the assistant turns are trained. Assistant spans come from rendering growing prefixes of the
  conversation (messages[:i] with the generation prompt, then messages[:i+1]) and taking the
  text each step adds; this works for any template that never rewrites earlier turns, whether
  or not it marks assistant text with `{% generation %}` (SmolLM2's does not). A template that
  rewrites earlier turns is a DataError naming the row.

The first label of every example is IGNORE_INDEX: nothing inside the example predicts its
first token, and in a packed row the token before it belongs to another example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from tunekit.errors import DataError, ModelError
from tunekit.pipeline.generation import IGNORE_INDEX, join_prompt_target

# (text, trained) pieces of one example; `None` text stands for the end token.
Piece = tuple[Optional[str], bool]
TEXT_PROMPT_MAX = 32  # text style: a generation sample continues the first half of a chunk, at most this many tokens


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    prompt_length: int  # tokens of the generation prompt; 0 = not a generation prompt (a later text chunk)
    row: int            # the row in the prepared split


def uses_template(tokenizer, want: bool) -> bool:
    return bool(want and getattr(tokenizer, "chat_template", None))


def text_pieces(text: str) -> list[Piece]:
    return [(text, True), (None, True)]


def instruction_pieces(prompt: str, response: str, tokenizer, prefix: str, template: bool,
                       where: str = "") -> list[Piece]:
    if template:
        return chat_pieces([{"role": "user", "content": prefix + prompt},
                            {"role": "assistant", "content": response}], tokenizer, template=True, where=where)
    return [(prefix + prompt + "\n\n", False), (response, True), (None, True)]


def chat_pieces(messages: Sequence[dict], tokenizer, template: bool, where: str = "") -> list[Piece]:
    """The conversation up to its last assistant turn (later turns teach nothing)."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    messages = list(messages[:last + 1])
    if not template:
        pieces: list[Piece] = []
        for m in messages:
            if m["role"] == "assistant":
                pieces += [("Assistant: ", False), (m["content"], True), (None, True), ("\n\n", False)]
            else:
                pieces.append((f"{m['role'].capitalize()}: {m['content']}\n\n", False))
        return pieces[:-1]  # nothing after the last reply's end token
    pieces = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True)
        after = _render(tokenizer, messages[:i + 1], generation_prompt=False)
        if not before.startswith(done) or not after.startswith(before):
            raise DataError(f"{where}: the chat template renders earlier turns differently once later ones are "
                            "added, so the assistant turns cannot be located",
                            "set tokenize.chat_template: false to use tunekit's plain 'Role: content' format")
        pieces += [(before[len(done):], False), (after[len(before):], True)]
        done = after
    return pieces


def _render(tokenizer, messages: list, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def encode_pieces(examples: list[list[Piece]], tokenizer, template: bool) -> list[tuple[list[int], list[int], int]]:
    """Pieces -> (input_ids, labels, prompt_length) per example. With a template the special
    tokens are in the rendered text; without one, the tokenizer's own start tokens go first."""
    eos = tokenizer.eos_token_id
    if eos is None and any(text is None for pieces in examples for text, _ in pieces):
        raise ModelError("the tokenizer has no end-of-text token, which causal_lm appends to each target",
                         "use a tokenizer with an eos_token (or set one in its tokenizer_config.json)")
    texts = [text for pieces in examples for text, _ in pieces if text is not None]
    ids = iter(tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else iter(())
    start = [] if template else special_prefix(tokenizer)
    out = []
    for pieces in examples:
        prompt, target = list(start), []
        input_ids: list[int] = []
        labels: list[int] = []
        for text, trained in pieces:
            piece = [eos] if text is None else next(ids)
            if trained:
                target += piece
            else:
                if target:  # an untrained piece after a trained one: flush the turn so far
                    a, b = join_prompt_target(prompt, target)
                    input_ids, labels = input_ids + a, labels + b
                    prompt, target = [], []
                prompt += piece
        a, b = join_prompt_target(prompt, target)
        input_ids, labels = input_ids + a, labels + b
        if labels:
            labels[0] = IGNORE_INDEX
        # the generation prompt: everything before the last trained span
        out.append((input_ids, labels, len(input_ids) - len(target)))
    return out


def special_prefix(tokenizer) -> list[int]:
    """Tokens the tokenizer puts before a text on its own (BOS for Llama-like, none for GPT-2)."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x", add_special_tokens=True)["input_ids"]
    for at in range(len(full) - len(plain) + 1):
        if full[at:at + len(plain)] == plain:
            return list(full[:at])
    return []


def chunk_text(ids: list[int], labels: list[int], max_length: int) -> list[tuple[list[int], list[int]]]:
    """A long text as consecutive max_length chunks; each chunk's first label is masked (as for
    any example start), and a last chunk of one token (nothing to predict) is left out."""
    chunks = []
    for at in range(0, len(ids), max_length):
        piece_ids, piece_labels = ids[at:at + max_length], list(labels[at:at + max_length])
        if len(piece_ids) < 2:
            continue
        piece_labels[0] = IGNORE_INDEX
        chunks.append((piece_ids, piece_labels))
    return chunks


def text_prompt_length(n_tokens: int) -> int:
    return min(n_tokens // 2, TEXT_PROMPT_MAX)
