"""The dry-run plan's arithmetic: steps, sizes, the memory estimate and the advice."""

import math
from dataclasses import replace

import pytest

from tunekit.errors import TunekitError
from tunekit.pipeline.model_shape import ModelShape, ParamCounts
from tunekit.pipeline.planning import (GiB, Knobs, activation_bytes, advise, estimate_memory,
                                       layer_activation_bytes, parse_size, plan_steps)

# bert-base-sized numbers: 110M parameters, 12 layers of 768
BERT = ModelShape(hidden=768, layers=12, heads=12, intermediate=3072, vocab=30522)
PARAMS = ParamCounts(total=110_000_000, trainable=110_000_000, weight_bytes=440_000_000,
                     matmul=85_000_000, grad_layers=12, head=1538)
KNOBS = Knobs(batch_size=32, seq_len=128, precision="bf16", device="cuda")


# ---- steps ---------------------------------------------------------------------------------------

def test_steps_per_epoch_and_total():
    plan = plan_steps(rows=100, batch_size=16, grad_accum=1, epochs=3)
    assert (plan.steps_per_epoch, plan.total_steps, plan.global_batch) == (7, 21, 16)
    assert plan_steps(100, 16, 1, epochs=2.5).total_steps == 18  # ceil(2.5 * 7), as the Trainer counts
    assert plan_steps(100, 16, 3, epochs=1).steps_per_epoch == 3  # ceil(100 / 48)
    assert plan_steps(100, 16, 1, epochs=1, world_size=2).steps_per_epoch == 4  # ceil(100 / 32)
    assert plan_steps(10, 16, 1, epochs=1).steps_per_epoch == 1  # one short batch is still a step


def test_max_steps_wins_over_epochs():
    plan = plan_steps(rows=100, batch_size=16, grad_accum=1, epochs=3, max_steps=10)
    assert plan.total_steps == 10
    assert plan.epochs == pytest.approx(10 / 7)


def test_steps_match_the_trainers_nested_rounding():
    # The Trainer: ceil(rows / processes) rows per process, ceil(that / batch) batches,
    # ceil(batches / grad_accum) optimizer steps. One ceil of the product is the same number.
    for rows in (1, 7, 100, 241, 1000):
        for batch in (1, 3, 16):
            for accum in (1, 2, 5):
                for world in (1, 2, 3):
                    batches = math.ceil(math.ceil(rows / world) / batch)
                    expected = math.ceil(batches / accum)
                    assert plan_steps(rows, batch, accum, 1, world_size=world).steps_per_epoch == expected


# ---- sizes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, size", [
    ("24GiB", 24 * GiB), ("24GB", 24 * GiB), ("80G", 80 * GiB), ("16000MiB", 16000 * 2**20),
    ("1.5T", int(1.5 * 2**40)), (" 512 mib ", 512 * 2**20), ("80gb", 80 * GiB), ("64K", 65536),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["24", "GiB", "-1G", "24XB", "0G", "", "24 GiBs", "1e3G"])
def test_parse_size_rejects_bad_values(text):
    with pytest.raises(TunekitError) as err:
        parse_size(text)
    assert err.value.exit_code == 2
    assert "24GiB" in err.value.hint


# ---- the estimate --------------------------------------------------------------------------------

def test_total_is_the_sum_of_its_parts():
    m = estimate_memory(BERT, PARAMS, KNOBS)
    assert m.total == m.weights + m.gradients + m.optimizer + m.activations + m.overhead
    assert m.gradients == 4 * PARAMS.trainable and m.optimizer == 8 * PARAMS.trainable
    assert m.weights == PARAMS.weight_bytes + 2 * PARAMS.matmul  # autocast's 16-bit copies
    assert estimate_memory(BERT, PARAMS, replace(KNOBS, precision="fp32")).weights == PARAMS.weight_bytes
    assert estimate_memory(BERT, PARAMS, replace(KNOBS, device="cpu")).overhead == 0


def test_bigger_batch_or_longer_rows_need_more():
    base = estimate_memory(BERT, PARAMS, KNOBS)
    assert estimate_memory(BERT, PARAMS, replace(KNOBS, batch_size=64)).activations > base.activations
    assert estimate_memory(BERT, PARAMS, replace(KNOBS, seq_len=512)).activations > base.activations
    assert estimate_memory(BERT, PARAMS, replace(KNOBS, batch_size=64)).weights == base.weights


def test_checkpointing_keeps_fewer_activations():
    for knobs in (KNOBS, replace(KNOBS, precision="fp32", device="cpu")):
        full = activation_bytes(BERT, knobs, PARAMS)
        ckpt = activation_bytes(BERT, replace(knobs, gradient_checkpointing=True), PARAMS)
        assert ckpt < full / 3
        assert ckpt > layer_activation_bytes(BERT, knobs)  # one layer is recomputed at a time


def test_frozen_parameters_need_no_gradients_or_optimizer_state():
    lora = replace(PARAMS, trainable=300_000)
    full, adapter = estimate_memory(BERT, PARAMS, KNOBS), estimate_memory(BERT, lora, KNOBS)
    assert adapter.gradients < full.gradients / 100 and adapter.optimizer < full.optimizer / 100
    assert adapter.activations == full.activations  # backward still runs through every layer
    frozen_front = replace(PARAMS, grad_layers=6, embeddings_trained=False)
    assert estimate_memory(BERT, frozen_front, KNOBS).activations < full.activations * 0.6


def test_amp_halves_most_activations():
    fp32 = activation_bytes(BERT, replace(KNOBS, precision="fp32"), PARAMS)
    bf16 = activation_bytes(BERT, KNOBS, PARAMS)
    assert 0.5 * fp32 < bf16 < 0.8 * fp32  # norms and the residual stream stay fp32


def test_materialised_attention_scores_grow_with_the_square_of_the_length():
    eager = replace(BERT, attention="eager")
    fused = replace(BERT, attention="sdpa")
    short, long = replace(KNOBS, seq_len=128), replace(KNOBS, seq_len=1024)
    gap_short = layer_activation_bytes(eager, short) - layer_activation_bytes(fused, short)
    gap_long = layer_activation_bytes(eager, long) - layer_activation_bytes(fused, long)
    assert gap_long == pytest.approx(64 * gap_short)
    # CPU takes SDPA's math path (scores kept) when attention dropout is on
    cpu = replace(KNOBS, device="cpu")
    assert layer_activation_bytes(fused, cpu) > layer_activation_bytes(replace(fused, attention_dropout=False), cpu)


def test_causal_lm_loss_over_the_vocabulary_counts():
    llama = ModelShape(hidden=576, layers=30, heads=9, intermediate=1536, vocab=49152, causal_lm=True,
                       gated_mlp=True, python_norm=True, embedding_norms=0, final_norms=1,
                       dropout=False, attention_dropout=False)
    knobs = replace(KNOBS, batch_size=8, seq_len=512)
    params = replace(PARAMS, grad_layers=30)
    with_loss = activation_bytes(llama, knobs, params)
    without = activation_bytes(replace(llama, causal_lm=False), knobs, params)
    assert with_loss - without == 12 * 8 * 512 * 49152


def test_formula_matches_autograds_saved_tensors_on_a_bert(tmp_path):
    """On CPU in fp32 the activations are exactly the tensors autograd saves for backward."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from tunekit.pipeline.model_shape import read_params, read_shape

    for dropout in (0.1, 0.0):  # math-path attention with its s*s tensors, then the fused kernel
        torch.manual_seed(0)
        # 64 wide: per-token statistics the formula leaves out (norm means, softmax logsumexp,
        # token ids) stay around 1%
        config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=128, hidden_dropout_prob=dropout,
                            attention_probs_dropout_prob=dropout)
        model = BertForSequenceClassification(config).train()
        shape, params = read_shape(model), read_params(model, 2)
        ids = torch.randint(5, 100, (4, 16))
        saved = {}
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                saved[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.zeros(4, dtype=torch.long))
        estimate = activation_bytes(shape, Knobs(4, 16, "fp32", device="cpu"), params)
        assert estimate == pytest.approx(sum(saved.values()), rel=0.03), dropout


def test_read_shape_of_bert_and_llama():
    import torch
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    from tunekit.pipeline.model_shape import read_params, read_shape

    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=64))
    shape = read_shape(bert)
    assert (shape.hidden, shape.layers, shape.heads, shape.intermediate) == (32, 2, 2, 64)
    assert (shape.embedding_norms, shape.final_norms, shape.python_norm, shape.gated_mlp) == (1, 0, False, False)
    # q/k/v share their input in fp32; the output projection, the MLP's two layers each have one
    assert shape.linear_inputs == (3 * 32 + 64, 5 * 32 + 64)
    assert shape.mask_features == 2 * 32

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, intermediate_size=48))
    shape = read_shape(llama)
    assert shape.causal_lm and shape.gated_mlp and shape.python_norm
    assert (shape.embedding_norms, shape.final_norms, shape.mask_features) == (0, 1, 0)
    params = read_params(llama, shape.layers)
    assert params.total == sum(p.numel() for p in llama.parameters())


def test_frozen_leading_layers_keep_no_activations():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from tunekit.pipeline.freezing import apply_freeze
    from tunekit.pipeline.model_shape import read_params
    from tunekit.recipe.schema import FreezeConfig

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3,
                                                     num_attention_heads=2, intermediate_size=64))
    assert read_params(model, 3).grad_layers == 3
    apply_freeze(model, FreezeConfig(embeddings=True, layers=2))
    params = read_params(model, 3)
    assert (params.grad_layers, params.embeddings_trained) == (1, False)
    assert params.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---- advice --------------------------------------------------------------------------------------

def test_advice_is_ranked_recomputed_and_keeps_the_global_batch():
    now = estimate_memory(BERT, PARAMS, KNOBS).total
    limit = now // 2
    advice = advise(BERT, PARAMS, replace(KNOBS, precision="fp32"), grad_accum=2, limit=limit, p95_length=60)
    assert [a.saves for a in advice] == sorted((a.saves for a in advice), reverse=True)
    assert all(a.saves > 0 and a.fits == (a.total <= limit) for a in advice)
    changes = {a.change.split(":")[0]: a for a in advice}
    assert set(changes) == {"train.batch_size", "train.gradient_checkpointing", "train.precision",
                            "train.peft", "tokenize.max_length"}
    batch = changes["train.batch_size"].change  # "train.batch_size: B, train.grad_accum: G"
    b, g = (int(part.split(": ")[1]) for part in batch.split(", "))
    assert b * g == 32 * 2 and b < 32
    assert changes["tokenize.max_length"].change.startswith("tokenize.max_length: 64")


def test_advice_leaves_out_what_is_already_set_or_cannot_help():
    knobs = replace(KNOBS, gradient_checkpointing=True, batch_size=1, seq_len=64)
    advice = advise(BERT, PARAMS, knobs, grad_accum=1, limit=GiB // 8, p95_length=100, has_peft=True)
    names = [a.change.split(":")[0] for a in advice]
    assert "train.gradient_checkpointing" not in names and "train.peft" not in names
    assert "train.batch_size" not in names and "train.precision" not in names  # bf16 already
    assert "tokenize.max_length" not in names  # p95 is not shorter than the padded length


def test_smallest_batch_is_offered_when_none_fits():
    advice = advise(BERT, PARAMS, KNOBS, grad_accum=1, limit=GiB // 8)
    batch = next(a for a in advice if a.change.startswith("train.batch_size"))
    assert batch.change == "train.batch_size: 1, train.grad_accum: 32" and not batch.fits
