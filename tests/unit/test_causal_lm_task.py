"""causal_lm on hand-made rows: which positions carry labels for each style, packing (positions,
boundaries, and the packed loss equal to the examples' losses alone), bad input, perplexity."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from causal_lm_tiny import chat_rows, instruction_rows, make_model, make_tokenizer

from tunekit.errors import DataError, ModelError
from tunekit.recipe.schema import DataConfig, TokenizeConfig
from tunekit.tasks import causal_lm
from tunekit.tasks.lm_format import chat_pieces, encode_pieces, instruction_pieces
from tunekit.tasks.lm_packing import CausalLMCollator, pack, packing_problem


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer(chat_template=True)


def trained_tokens(tokenizer, ids, labels) -> list[str]:
    return [t for t, lab in zip(tokenizer.convert_ids_to_tokens(ids), labels) if lab != -100]


def encode_ds(rows, tokenizer, split="test", **tokenize):
    import datasets

    return causal_lm.encode(datasets.Dataset.from_list(rows), tokenizer, TokenizeConfig(**tokenize), split)


# ---- rendering and masks -----------------------------------------------------------------------

def test_text_style_trains_every_token_and_chunks_long_texts(tok):
    mapped, stats = encode_ds([{"text": "a b c d e f g h"}, {"text": "red green"}], tok, max_length=4)
    # row 0: <s> a b c d e f g h </s> = 10 tokens -> chunks of 4, 4, 2; row 1: <s> red green </s>
    assert [len(x) for x in mapped["input_ids"]] == [4, 4, 2, 4]
    assert mapped["row"] == [0, 0, 0, 1]
    for ids, labels in zip(mapped["input_ids"], mapped["labels"]):
        assert labels[0] == -100 and labels[1:] == ids[1:]  # first label masked, every other trained
    assert mapped["prompt_length"] == [2, 0, 0, 2]  # only a text's first chunk is a generation prompt
    assert stats["chunked"] == 1 and stats["truncated"] == 0 and stats["dropped"] == 0


def test_instruction_plain_format_trains_the_response_and_end_token():
    plain = make_tokenizer(chat_template=False)
    pieces = instruction_pieces("say red", "red red", plain, prefix="please ", template=False)
    [(ids, labels, prompt_length)] = encode_pieces([pieces], plain, template=False)
    assert plain.convert_ids_to_tokens(ids) == ["<s>", "please", "say", "red", "red", "red", "</s>"]
    assert trained_tokens(plain, ids, labels) == ["red", "red", "</s>"]
    assert prompt_length == 4


def test_instruction_with_template_is_a_user_and_assistant_turn(tok):
    mapped, _ = encode_ds([{"prompt": "say red", "response": "red"}], tok)
    ids, labels = mapped["input_ids"][0], mapped["labels"][0]
    assert tok.convert_ids_to_tokens(ids) == ["<|im_start|>", "user", "say", "red", "<|im_end|>",
                                              "<|im_start|>", "assistant", "red", "<|im_end|>"]
    assert trained_tokens(tok, ids, labels) == ["red", "<|im_end|>"]
    assert mapped["prompt_length"][0] == 7  # generation starts after "<|im_start|> assistant"


def test_chat_trains_assistant_turns_only(tok):
    mapped, _ = encode_ds(chat_rows(1), tok)
    ids, labels = mapped["input_ids"][0], mapped["labels"][0]
    tokens = tok.convert_ids_to_tokens(ids)
    trained = [i for i, lab in enumerate(labels) if lab != -100]
    first, second = tokens.index("assistant"), len(tokens) - 1 - tokens[::-1].index("assistant")
    assert trained == [first + 1, first + 2, second + 1, second + 2, second + 3]
    assert [tokens[i] for i in trained][-1] == "<|im_end|>"
    assert mapped["prompt_length"][0] == second + 1  # the last reply is the one generated in eval


def test_chat_drops_turns_after_the_last_reply_and_handles_a_system_turn(tok):
    messages = [{"role": "system", "content": "hi"}, {"role": "user", "content": "say red"},
                {"role": "assistant", "content": "red"}, {"role": "user", "content": "hello"}]
    [(ids, labels, _)] = encode_pieces([chat_pieces(messages, tok, template=True)], tok, template=True)
    assert tok.convert_ids_to_tokens(ids)[-1] == "<|im_end|>" and "hello" not in tok.convert_ids_to_tokens(ids)
    assert trained_tokens(tok, ids, labels) == ["red", "<|im_end|>"]


def test_chat_template_that_rewrites_earlier_turns_is_refused():
    rewriting = make_tokenizer()
    rewriting.chat_template = "{{ messages | length }}{% for m in messages %} {{ m['content'] }}{% endfor %}"
    with pytest.raises(DataError, match="renders earlier turns differently"):
        chat_pieces(chat_rows(1)[0]["messages"], rewriting, template=True, where="train data, row 0")


# ---- packing ------------------------------------------------------------------------------------

def test_pack_is_best_fit_in_order_and_deterministic():
    assert pack([5, 3, 4, 2, 6, 1], 8) == [[0, 1], [2, 3, 5], [4]]
    assert pack([8, 8], 8) == [[0], [1]]
    assert pack([5, 3, 4, 2, 6, 1], 8) == pack([5, 3, 4, 2, 6, 1], 8)


def test_packed_rows_restart_positions_and_keep_labels(tok):
    rows = instruction_rows(12)
    mapped, stats = encode_ds(rows, tok, split="train", max_length=40)
    alone, _ = encode_ds(rows, tok, split="test", max_length=40)
    assert stats["packed"] and stats["examples"] == 12 and stats["rows"] == len(mapped) < 12
    assert set(mapped.column_names) == {"input_ids", "labels", "position_ids"}
    assert all(len(ids) <= 40 for ids in mapped["input_ids"])
    # every example appears whole, exactly once, its positions counting from 0
    pieces = []
    for ids, labels, pos in zip(mapped["input_ids"], mapped["labels"], mapped["position_ids"]):
        starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
        for a, b in zip(starts, starts[1:]):
            assert pos[a:b] == list(range(b - a)) and labels[a] == -100
            pieces.append((tuple(ids[a:b]), tuple(labels[a:b])))
    assert sorted(pieces) == sorted(zip(map(tuple, alone["input_ids"]), map(tuple, alone["labels"])))
    off, off_stats = encode_ds(rows, tok, split="train", max_length=40, packing=False)
    assert len(off) == 12 and not off_stats["packed"]


def test_collator_pads_packed_and_plain_rows():
    collate = CausalLMCollator(pad_token_id=0)
    batch = collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "position_ids": [0, 0, 1]},
                     {"input_ids": [5], "labels": [-100], "position_ids": [0]}])
    assert "attention_mask" not in batch
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, -100, -100]]
    assert batch["position_ids"].tolist() == [[0, 0, 1], [0, 0, 1]]  # padding is a sequence of its own
    plain = collate([{"input_ids": [5, 6], "labels": [-100, 6]}, {"input_ids": [5], "labels": [-100]}])
    assert plain["attention_mask"].tolist() == [[1, 1], [1, 0]] and "position_ids" not in plain


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_loss_equals_token_weighted_loss_of_examples_alone(tok, attention):
    import torch

    model = make_model(len(tok))
    model.config._attn_implementation = attention
    model.config.use_cache = False  # as the Trainer (and build_model) set it
    rows = instruction_rows(6) + chat_rows(2)
    mapped, _ = encode_ds(rows[:6], tok, split="train", max_length=120)
    chats, _ = encode_ds(rows[6:], tok, split="train", max_length=120)
    packed_rows = list(mapped) + list(chats)
    assert any(sum(p == 0 for p in r["position_ids"]) >= 3 for r in packed_rows)
    batch = CausalLMCollator(0)(packed_rows)  # several packed rows of different lengths, padded
    with torch.no_grad():
        packed = model(**batch).loss.item()
        total = count = 0.0
        for row in packed_rows:
            pos = row["position_ids"]
            starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
            for a, b in zip(starts, starts[1:]):
                ids, labels = row["input_ids"][a:b], row["labels"][a:b]
                n = sum(lab != -100 for lab in labels[1:])
                out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
                total += out.loss.item() * n
                count += n
    assert abs(packed - total / count) < 1e-5


def test_packing_problem_names_models_without_packed_masks(tok):
    assert packing_problem(make_model(len(tok))) is None
    assert "virtual tokens" in packing_problem(make_model(len(tok)), "prompt")

    class NoPositions:
        def forward(self, input_ids, attention_mask=None):
            return None

    assert "position_ids" in packing_problem(NoPositions())


# ---- bad input ----------------------------------------------------------------------------------

def clean(rows, style, **clean_cfg):
    data = DataConfig(train="x.jsonl", style=style, clean=clean_cfg)
    return causal_lm.clean(pd.DataFrame(rows), data, {"style": style}, "train data (x.jsonl)")


def test_chat_cell_that_is_not_messages_names_the_row():
    rows = chat_rows(3)
    rows[2] = {"messages": "just some text"}
    with pytest.raises(DataError, match=r"row 2: the messages cell is text"):
        clean(rows, "chat")
    rows[2] = {"messages": [{"speaker": "user", "text": "hi"}]}
    with pytest.raises(DataError, match=r"row 2: a message is"):
        clean(rows, "chat")


def test_chat_without_assistant_turn_is_an_error():
    rows = chat_rows(2)
    rows[1] = {"messages": [{"role": "user", "content": "hello"}]}
    with pytest.raises(DataError, match="row 1: the chat has no assistant turn"):
        clean(rows, "chat")


def test_empty_response_is_dropped_and_counted_or_an_error():
    rows = instruction_rows(4) + [{"prompt": "say red", "response": "  "}, {"prompt": "say blue", "response": None}]
    frame, counts = clean(rows, "instruction")
    assert len(frame) == 4 and counts["empty_response"] == 2 and counts["rows_out"] == 4
    with pytest.raises(DataError, match="row 4: the response is empty"):
        clean(rows, "instruction", drop_empty=False)


def test_duplicates_are_counted():
    rows = instruction_rows(3) + instruction_rows(1)
    _, counts = clean(rows, "instruction")
    assert counts["duplicates"] == 1 and counts["rows_out"] == 3


def test_too_long_examples_error_drop_or_truncate(tok):
    rows = [{"prompt": "say red", "response": "red"}, {"prompt": "say the color red", "response": "red " * 20}]
    with pytest.raises(DataError, match=r"test data, row 1: prompt and response take 30 tokens"):
        encode_ds(rows, tok, max_length=16, truncation="error")
    dropped, stats = encode_ds(rows, tok, max_length=16, truncation="drop")
    assert len(dropped) == 1 and stats["dropped"] == 1
    cut, stats = encode_ds(rows, tok, max_length=16, truncation="truncate")
    assert [len(x) for x in cut["input_ids"]] == [9, 16] and stats["truncated"] == 1
    # a prompt that fills max_length leaves nothing to train: dropped even under truncate
    cut, stats = encode_ds(rows, tok, max_length=8, truncation="truncate")
    assert stats["truncated"] == 1 and stats["dropped"] == 1 and cut["row"] == [0]
    with pytest.raises(DataError, match="no test examples are left"):
        encode_ds(rows, tok, max_length=6, truncation="truncate")


def test_unsupported_packing_is_a_model_error(tmp_path, tok, monkeypatch):
    from causal_lm_tiny import save_tiny_lm

    from tunekit.recipe.schema import Recipe

    folder = save_tiny_lm(tmp_path / "lm")
    recipe = Recipe(name="x", task="causal_lm", output_dir=str(tmp_path / "run"), model={"name": str(folder)},
                    data={"train": "x.jsonl"}, eval={"generation": {"max_new_tokens": 4}},
                    train={"peft": {"method": "prompt"}})
    with pytest.raises(ModelError, match="tokenize.packing cannot be used here"):
        causal_lm.build_model(str(folder), {}, recipe=recipe)


# ---- perplexity ---------------------------------------------------------------------------------

def test_perplexity_is_token_weighted_over_the_split(tok):
    import torch

    model = make_model(len(tok))
    model.config.use_cache = False
    mapped, _ = encode_ds(instruction_rows(5), tok)
    ids, labels = mapped["input_ids"], mapped["labels"]
    sums, counts = causal_lm.target_nll(model, ids, labels, pad_id=0, batch_size=2)
    # by hand: each row alone, log-softmax of the next token at every trained position
    hand_sum = hand_count = 0.0
    with torch.no_grad():
        for row_ids, row_labels in zip(ids, labels):
            logp = torch.log_softmax(model(input_ids=torch.tensor([row_ids])).logits[0].double(), -1)
            for t in range(1, len(row_ids)):
                if row_labels[t] != -100:
                    hand_sum -= logp[t - 1, row_labels[t]].item()
                    hand_count += 1
    ppl, loss, tokens = causal_lm.perplexity(sums, counts)
    assert tokens == hand_count and abs(loss - hand_sum / hand_count) < 1e-5
    assert abs(ppl - math.exp(hand_sum / hand_count)) < 1e-4
    # not the mean of row means (rows have different target lengths)
    row_means = sum(s / c for s, c in zip(sums, counts)) / len(sums)
    assert abs(row_means - loss) > 1e-6


def test_seeded_length_grouped_sampler_reads_packed_rows(tok):
    from tunekit.pipeline.sampling import train_sampler

    mapped, _ = encode_ds(instruction_rows(30), tok, split="train", max_length=40)
    sampler = train_sampler(mapped, seed=3, group_by_length=True, batch_size=4)
    order = list(sampler)
    assert sorted(order) == list(range(len(mapped))) and order == list(train_sampler(mapped, 3, True, 4))
    batch = CausalLMCollator(0)([mapped[i] for i in order[:4]])
    assert batch["input_ids"].shape == batch["position_ids"].shape == batch["labels"].shape
