"""tokenize.train_tokenizer: each algorithm's special tokens and templates, QA offsets, size and
special-token errors, caching; model.init: config building a model around the trained tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

try:  # tests/ is not a package: pytest puts it on sys.path for its conftest
    from conftest import make_rows, write_rows_csv
except ImportError:  # pragma: no cover
    from tests.conftest import make_rows, write_rows_csv
from tunekit.errors import ModelError, RecipeError
from tunekit.pipeline.tokenizer_training import check_special_tokens, train_tokenizer
from tunekit.recipe import load_recipe
from tunekit.recipe.schema import TokenizerTrainingConfig

ALGORITHMS = ("bpe", "byte-bpe", "wordpiece", "unigram")
TEXTS = ["the movie was great and the plot was fun", "a terrible boring film with weak actors",
         "what was great? the story was great", "Kate Smith went to Paris in 1999.", "the story\nwas fun"] * 30


def trained(tmp_path: Path, algorithm: str, kind: str, vocab_size: int = 0, texts=TEXTS):
    """Train, save and load back through AutoTokenizer, as the pipeline does."""
    from transformers import AutoTokenizer

    vocab_size = vocab_size or (300 if algorithm == "byte-bpe" else 120)  # byte-bpe starts from 256 bytes
    cfg = TokenizerTrainingConfig(algorithm=algorithm, vocab_size=vocab_size, min_frequency=2)
    fast, _ = train_tokenizer(iter([texts[:50], texts[50:]]), cfg, kind)
    folder = tmp_path / f"{algorithm}-{kind}"
    fast.save_pretrained(str(folder))
    return AutoTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_encoder_tokenizer_wraps_texts_and_pairs_like_bert(tmp_path, algorithm):
    tok = trained(tmp_path, algorithm, "encoder")
    assert tok.is_fast
    assert (tok.pad_token, tok.cls_token, tok.sep_token, tok.mask_token) == ("[PAD]", "[CLS]", "[SEP]", "[MASK]")
    assert tok.unk_token == (None if algorithm == "byte-bpe" else "[UNK]")
    assert tok.pad_token_id == 0  # first in the vocabulary, as BERT's padding embedding expects
    single = tok("the movie was great")["input_ids"]
    assert single[0] == tok.cls_token_id and single[-1] == tok.sep_token_id
    assert tok.sep_token_id not in single[1:-1]
    pair = tok("what was great?", "the story was great", return_token_type_ids=True)
    ids, types = pair["input_ids"], pair["token_type_ids"]
    first_sep = ids.index(tok.sep_token_id)
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert set(types[:first_sep + 1]) == {0} and set(types[first_sep + 1:]) == {1}
    assert tok.num_special_tokens_to_add(pair=True) == 3


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_decoder_tokenizer_has_one_end_token_and_adds_nothing(tmp_path, algorithm):
    tok = trained(tmp_path, algorithm, "decoder")
    assert tok.eos_token == tok.bos_token == "<|endoftext|>"
    assert tok.pad_token == "<|pad|>" and tok.pad_token_id != tok.eos_token_id
    assert tok.unk_token == (None if algorithm == "byte-bpe" else "<|unk|>")
    text = "the movie was great and the plot was fun"
    assert tok(text)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    if algorithm != "wordpiece":  # wordpiece, like BERT, does not keep the spacing of punctuation
        for sample in (text, "the story\nwas fun", "Kate Smith went to Paris."):
            assert tok.decode(tok(sample)["input_ids"]) == sample


def test_encoder_decoder_tokenizer_ends_every_text_with_the_end_token(tmp_path):
    tok = trained(tmp_path, "byte-bpe", "encoder-decoder")
    ids = tok("the movie was fun")["input_ids"]
    assert ids[-1] == tok.eos_token_id and tok.eos_token_id not in ids[:-1]
    assert tok(text_target="the story")["input_ids"][-1] == tok.eos_token_id


def test_unknown_characters_map_to_the_unknown_token_except_in_byte_bpe(tmp_path):
    for algorithm in ALGORITHMS:
        tok = trained(tmp_path, algorithm, "encoder")
        ids = tok("the € movie", add_special_tokens=False)["input_ids"]
        assert (tok.unk_token_id in ids) == (algorithm != "byte-bpe"), algorithm


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_qa_windows_map_answers_back_to_the_right_characters(tmp_path, algorithm):
    from tunekit.tasks.qa_features import prepare_eval_features, prepare_train_features

    tok = trained(tmp_path, algorithm, "encoder")
    context = ("the movie was great and the plot was fun . Kate Smith went to Paris in 1999 . "
               "a terrible boring film with weak actors . the story was great and the movie was fun . "
               "the plot was boring and the actors were weak")
    rows = [("who went to Paris?", "Kate Smith"), ("where did Kate go?", "Paris"), ("when?", "1999"),
            ("what was boring?", "film")]
    questions = [q for q, _ in rows]
    answers = [{"text": [a], "answer_start": [context.index(a)]} for _, a in rows]
    # windows of 48 tokens: each context is cut, so answers land in later windows too
    train = prepare_train_features(questions, [context] * len(rows), answers, tok, 48, 8)
    extra = prepare_eval_features([str(i) for i in range(len(rows))], questions, [context] * len(rows), tok, 48, 8)
    assert len(train["input_ids"]) > len(rows)
    found = set()
    for start, end, offsets, example in zip(train["start_positions"], train["end_positions"],
                                            extra["offset_mapping"], extra["example_id"]):
        if offsets[start] is None:  # the CLS index: the answer is not (wholly) in this window
            continue
        assert context[offsets[start][0]:offsets[end][1]] == rows[int(example)][1]
        found.add(int(example))
    assert found == set(range(len(rows)))


def test_vocab_below_the_alphabet_is_an_error_naming_its_size(tmp_path):
    texts = ["abc abd", "bcd xyz"] * 10
    characters = len(set("".join(texts)) - {" "})  # a b c d x y z
    for algorithm in ("bpe", "wordpiece", "unigram"):
        with pytest.raises(RecipeError) as err:
            trained(tmp_path, algorithm, "encoder", vocab_size=5, texts=texts)
        assert f"vocab_size 5 is below the {characters} distinct characters (+5 special tokens)" in err.value.message
        assert "byte-bpe" in err.value.hint
    with pytest.raises(RecipeError, match="below the 256 byte symbols"):
        trained(tmp_path, "byte-bpe", "decoder", vocab_size=200, texts=texts)


def test_asked_size_is_an_upper_bound(tmp_path):
    tok = trained(tmp_path, "bpe", "encoder", vocab_size=60)
    assert len(tok) == 60  # plenty of pairs to merge: exactly the size asked


def test_no_text_is_an_error():
    from tunekit.errors import DataError

    with pytest.raises(DataError, match="no text"):
        train_tokenizer(iter([]), TokenizerTrainingConfig(algorithm="bpe", vocab_size=50), "encoder")


def _wordlevel(**specials):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={"<unk>": 0, "a": 1, "b": 2}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", **specials)


def test_missing_special_tokens_are_named():
    with pytest.raises(ModelError) as err:
        check_special_tokens(_wordlevel(eos_token="</s>"), "classification")
    assert "pad_token" in err.value.message and "classification" in err.value.message
    assert "train_tokenizer" in err.value.hint
    with pytest.raises(ModelError, match="eos_token"):
        check_special_tokens(_wordlevel(pad_token="<pad>"), "causal_lm")
    with pytest.raises(ModelError, match="eos_token or sep_token"):
        check_special_tokens(_wordlevel(pad_token="<pad>"), "summarization")
    check_special_tokens(_wordlevel(pad_token="<pad>"), "qa")
    check_special_tokens(_wordlevel(eos_token="</s>"), "causal_lm")
    check_special_tokens(_wordlevel(sep_token="[SEP]"), "translation")  # BERT2BERT ends targets with [SEP]


def test_tokenize_refuses_a_tokenizer_without_the_task_s_tokens(tmp_path, write_recipe):
    from tunekit.pipeline.tokenization import run_tokenize
    from tunekit.runs import RunDir

    folder = tmp_path / "nopad"
    _wordlevel(eos_token="</s>").save_pretrained(str(folder))
    recipe = load_recipe(write_recipe(model={"name": str(folder)}))
    with pytest.raises(ModelError, match="pad_token"):
        run_tokenize(recipe, RunDir(Path(recipe.output_dir)))
    assert not (Path(recipe.output_dir) / "data" / "tokenized").exists()


# ---- the pipeline step: caching ----------------------------------------------------------------

def _recipe(tmp_path, tiny_model_dir, **train_tokenizer):
    csv = tmp_path / "reviews.csv"
    if not csv.exists():
        write_rows_csv(csv, make_rows(120))
    doc = {"name": "tok", "output_dir": str(tmp_path / "run"), "model": {"name": str(tiny_model_dir)},
           "data": {"train": str(csv), "split": {"validation": 0.2, "test": 0.2, "seed": 4}},
           "tokenize": {"max_length": 32, "train_tokenizer": {"algorithm": "wordpiece", "vocab_size": 150,
                                                                **train_tokenizer}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_recipe(path)


def test_trained_tokenizer_is_cached_and_retrained_when_its_section_changes(tmp_path, tiny_model_dir):
    from tunekit.pipeline.tokenization import run_tokenize
    from tunekit.pipeline.tokenizer_training import report_path
    from tunekit.runs import RunDir, read_json

    recipe = _recipe(tmp_path, tiny_model_dir)
    run = RunDir(Path(recipe.output_dir))
    _, first = run_tokenize(recipe, run)
    saved = run.root / "tokenizer" / "tokenizer.json"
    report = read_json(report_path(run))
    assert report["algorithm"] == "wordpiece" and report["vocab_size"] == 150
    assert report["actual_vocab_size"] <= 150 and report["texts"] == 72  # 60% of 120 rows, one text each
    stamp = saved.stat().st_mtime_ns

    _, again = run_tokenize(recipe, run)
    assert again.reused and saved.stat().st_mtime_ns == stamp  # unchanged inputs: not retrained
    assert read_json(report_path(run)) == report

    changed = _recipe(tmp_path, tiny_model_dir, vocab_size=100)
    _, third = run_tokenize(changed, run)
    new_report = read_json(report_path(run))
    assert new_report["fingerprint"] != report["fingerprint"] and new_report["actual_vocab_size"] <= 100
    assert not third.reused and third.fingerprint != first.fingerprint  # re-tokenized with the new one
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(str(saved.parent))) == new_report["actual_vocab_size"]


# ---- model.init: config ------------------------------------------------------------------------------

def test_config_init_sizes_a_new_model_to_the_tokenizer(tmp_path, write_recipe):
    import torch
    from transformers import AutoModelForSequenceClassification

    from tunekit.tasks.model_init import build, model_source

    tok = trained(tmp_path, "wordpiece", "encoder", vocab_size=90)
    recipe = load_recipe(write_recipe(model={"name": "bert", "init": "config", "config": {
        "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 64}}))
    assert model_source(recipe) == "bert"  # an architecture name, not looked up on the Hub
    torch.manual_seed(0)
    model = build(AutoModelForSequenceClassification, "bert", recipe, tok,
                  config_values={"num_labels": 3, "id2label": {0: "a", 1: "b", 2: "c"},
                                 "label2id": {"a": 0, "b": 1, "c": 2}}, dtype=torch.float32)
    assert model.get_input_embeddings().num_embeddings == len(tok) == 90
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.config.hidden_size == 16 and model.config.num_labels == 3
    assert model.config.id2label[2] == "c"


def test_config_init_reads_a_folder_s_config_and_refuses_unknown_keys(tmp_path, tiny_model_dir, write_recipe):
    from tunekit.tasks.model_init import base_config

    config = base_config(str(tiny_model_dir), {"num_hidden_layers": 3})
    assert config.model_type == "bert" and config.num_hidden_layers == 3 and config.hidden_size == 16
    with pytest.raises(RecipeError) as err:
        base_config("llama", {"hiden_size": 8})
    assert "hiden_size" in err.value.message and "hidden_size" in err.value.message
    assert "num_hidden_layers" in err.value.hint


def test_a_trained_tokenizer_with_pretrained_weights_is_refused(tmp_path, tiny_model_dir, write_recipe):
    from transformers import AutoModelForSequenceClassification

    from tunekit.tasks.model_init import build

    recipe = load_recipe(write_recipe(tokenize={"train_tokenizer": {"algorithm": "bpe", "vocab_size": 100}}))
    with pytest.raises(RecipeError) as err:
        build(AutoModelForSequenceClassification, str(tiny_model_dir), recipe, None)
    assert "pretrained weights" in err.value.message and "model.init: config" in err.value.hint


def test_position_table_must_hold_the_rows(tmp_path, write_recipe):
    from transformers import AutoModelForCausalLM

    from tunekit.tasks.model_init import build

    tok = trained(tmp_path, "byte-bpe", "decoder", vocab_size=300)
    recipe = load_recipe(write_recipe(model={"name": "llama", "init": "config", "config": {
        "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 16}}))  # tokenize.max_length is 32
    with pytest.raises(RecipeError, match="16 positions"):
        build(AutoModelForCausalLM, "llama", recipe, tok)
