"""tokenize.train_tokenizer: a new tokenizer trained on the prepared training split.

Output: <run>/tokenizer (a fast tokenizer folder AutoTokenizer loads) and
<run>/data/tokenizer_training.json, cached by a fingerprint of the prepared data, the
train_tokenizer section, the task and the model layout the tokenizer serves.

The special tokens follow what the task's model and code need (see check_special_tokens):

* encoder tasks (classification, qa): BERT's [PAD] [UNK] [CLS] [SEP] [MASK], and a template
  that wraps a text as [CLS] A [SEP] and a pair as [CLS] A [SEP] B [SEP] (token types 0, then 1),
  which QA's question/context windows rely on.
* decoder-only (causal_lm; summarization/translation on a decoder-only model): one end token
  <|endoftext|> that is eos and bos (GPT-2 style: nothing is added around a text; the tasks
  append the end token themselves), and <|pad|>.
* encoder-decoder (summarization/translation with model.init: config and e.g. t5 or bart): the
  same tokens, and the end token appended to every text, so targets end with it (T5 style).

An unknown token (<|unk|>, [UNK]) exists where the algorithm can meet characters it has not
seen: bpe, wordpiece and unigram. byte-bpe covers every byte and has none.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Optional

from tunekit.errors import DataError, ModelError, RecipeError
from tunekit.recipe.schema import Recipe, TokenizerTrainingConfig
from tunekit.runs import RunDir, atomic_dir, cached_fingerprint, fingerprint, read_json, write_json

# Prepared columns that hold text, in every task's to_dataset (others: ids, labels, answers).
TEXT_COLUMNS = ("text", "question", "context", "source", "target", "prompt", "response", "messages")
BATCH = 1000
END = "<|endoftext|>"
ENCODER_SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                    "mask_token": "[MASK]"}
DECODER_SPECIALS = {"eos_token": END, "bos_token": END, "pad_token": "<|pad|>", "unk_token": "<|unk|>"}
BYTE_ALPHABET = 256

# What each task's code needs from a tokenizer: each entry is a list of alternatives (any one
# will do), with why. Where pad is missing the generative collators pad with the end token.
NEEDED: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "classification": [(("pad_token",), "to pad batches")],
    "qa": [(("pad_token",), "to pad batches")],
    "causal_lm": [(("eos_token",), "to end each example, so generation knows where to stop")],
    "summarization": [(("eos_token", "sep_token"), "to end each target, so generation knows where to stop")],
    "translation": [(("eos_token", "sep_token"), "to end each target, so generation knows where to stop")],
}


def report_path(run: RunDir) -> Path:
    return run.root / "data" / "tokenizer_training.json"


def tokenizer_dir(run: RunDir) -> Path:
    return run.root / "tokenizer"


def layout(recipe: Recipe) -> str:
    """encoder, decoder or encoder-decoder: which special tokens (and template) the model needs."""
    if recipe.task in ("classification", "qa") or recipe.model.decoder:  # a warm start uses BERT's tokens
        return "encoder"
    if recipe.task == "causal_lm":
        return "decoder"
    from tunekit.tasks.seq2seq import model_kind  # summarization, translation

    return "encoder-decoder" if model_kind(recipe) == "encoder-decoder" else "decoder"


def text_columns(ds) -> list[str]:
    return [c for c in TEXT_COLUMNS if c in ds.column_names]


def iter_texts(ds, batch_size: int = BATCH) -> Iterator[list[str]]:
    """The split's texts in batches (never the whole split as one list): every text column,
    and the content of each chat message. Empty texts are skipped."""
    columns = text_columns(ds)
    for batch in ds.select_columns(columns).iter(batch_size=batch_size):
        texts: list[str] = []
        for column in columns:
            for cell in batch[column]:
                if column == "messages":
                    texts += [m.get("content") or "" for m in cell or []]
                else:
                    texts.append(cell or "")
        texts = [t for t in texts if t.strip()]
        if texts:
            yield texts


def training_fingerprint(recipe: Recipe, prepared_fp: str) -> str:
    return fingerprint("train_tokenizer", prepared_fp, recipe.tokenize.train_tokenizer.model_dump(mode="json"),
                       recipe.task, layout(recipe))


def train_tokenizer_step(recipe: Recipe, run: RunDir, prepared, force: bool = False) -> dict:
    """Train (or reuse) the run's tokenizer; returns the tokenizer_training.json report."""
    cfg = recipe.tokenize.train_tokenizer
    fp = training_fingerprint(recipe, prepared.fingerprint)
    out = tokenizer_dir(run)
    if not force and (out / "tokenizer.json").is_file() and cached_fingerprint(report_path(run)) == fp:
        return read_json(report_path(run))
    import datasets

    start = time.perf_counter()
    train = datasets.load_from_disk(str(run.prepared))["train"]
    kind = layout(recipe)
    fast, stats = train_tokenizer(iter_texts(train), cfg, kind)
    with atomic_dir(out) as tmp:
        fast.save_pretrained(str(tmp))
    report = {"fingerprint": fp, "algorithm": cfg.algorithm, "layout": kind, "vocab_size": cfg.vocab_size,
              "actual_vocab_size": len(fast), "min_frequency": cfg.min_frequency, "lowercase": cfg.lowercase,
              "texts": stats["texts"], "characters": stats["characters"],
              "special_tokens": [str(t) for t in fast.all_special_tokens],
              "seconds": round(time.perf_counter() - start, 3)}
    write_json(report_path(run), report)
    return report


def train_tokenizer(batches, cfg: TokenizerTrainingConfig, kind: str):
    """Train on an iterator of text batches -> (PreTrainedTokenizerFast, {texts, characters})."""
    from transformers import PreTrainedTokenizerFast

    specials = special_tokens(cfg.algorithm, kind)
    names = list(dict.fromkeys(specials.values()))  # ids 0.. in this order ([PAD] or <|endoftext|> first)
    tok, trainer = _model_and_trainer(cfg, names, specials.get("unk_token"), kind)
    seen: dict[str, int] = {"texts": 0}
    alphabet: set[str] = set()

    def counted():
        for texts in batches:
            seen["texts"] += len(texts)
            for text in texts:
                alphabet.update(text.lower() if cfg.lowercase else text)
            yield texts

    try:
        tok.train_from_iterator(counted(), trainer=trainer)
    except Exception as exc:  # the unigram trainer refuses a vocabulary below its alphabet
        if "not large enough" not in str(exc):
            raise
        characters = len({c for c in alphabet if not c.isspace()})
        _check_size(cfg, characters + len(names) + 1, characters, len(names), exact=False)
        raise
    if seen["texts"] == 0:
        raise DataError("the training split has no text to train a tokenizer on",
                        "check data.columns: the text columns of the training data are empty")
    characters = len({c for c in alphabet if not c.isspace()})
    _check_size(cfg, tok.get_vocab_size(with_added_tokens=True), characters, len(names))
    tok.post_processor = _post_processor(tok, cfg.algorithm, kind)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **specials)
    return fast, {"texts": seen["texts"], "characters": characters}


def special_tokens(algorithm: str, kind: str) -> dict[str, str]:
    specials = dict(ENCODER_SPECIALS if kind == "encoder" else DECODER_SPECIALS)
    if algorithm == "byte-bpe":
        specials.pop("unk_token")  # every byte has a token: nothing is ever unknown
    return specials


def _model_and_trainer(cfg: TokenizerTrainingConfig, specials: list[str], unk: Optional[str], kind: str):
    """The untrained tokenizer (model, normalizer, pre-tokenizer, decoder) and its trainer.

    bpe and unigram mark word starts with "▁" (SentencePiece's Metaspace). For generative
    models the spaces themselves become "▁", so a decoded text keeps its spaces and newlines;
    for encoders words are split on whitespace first, so a token's character offsets never
    include the space before it (QA maps answer spans back to text with them). wordpiece
    splits words and punctuation as BERT does."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    metaspace = pre_tokenizers.Metaspace()
    if kind == "encoder":
        metaspace = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), metaspace])

    common = {"vocab_size": cfg.vocab_size, "special_tokens": specials, "show_progress": False}
    if cfg.algorithm == "byte-bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(min_frequency=cfg.min_frequency,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **common)
    elif cfg.algorithm == "bpe":
        tok = Tokenizer(models.BPE(unk_token=unk))
        tok.pre_tokenizer = metaspace
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(min_frequency=cfg.min_frequency, **common)
    elif cfg.algorithm == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(min_frequency=cfg.min_frequency, **common)
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = metaspace
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(unk_token=unk, **common)
    steps = [normalizers.NFC()] + ([normalizers.Lowercase()] if cfg.lowercase else [])
    tok.normalizer = normalizers.Sequence(steps)
    return tok, trainer


def _check_size(cfg: TokenizerTrainingConfig, actual: int, characters: int, n_special: int,
                exact: bool = True) -> None:
    """The trainers never drop a base symbol: asked for fewer, they silently return more (bpe,
    wordpiece: `actual` is then the smallest vocabulary possible) or fail (unigram: `actual` is
    a lower bound, its characters, special tokens and word-start mark, so exact=False)."""
    if actual <= cfg.vocab_size:
        return
    if cfg.algorithm == "byte-bpe":
        what = f"the {BYTE_ALPHABET} byte symbols (+{n_special} special tokens) byte-bpe starts from"
    elif cfg.vocab_size < characters + n_special:
        what = f"the {characters} distinct characters (+{n_special} special tokens) of the training texts"
    else:  # wordpiece also keeps a ##-continuation form of characters inside words
        what = (f"the {actual - n_special} base symbols (+{n_special} special tokens) {cfg.algorithm} needs for "
                f"the {characters} distinct characters of the training texts")
    other = "" if cfg.algorithm == "byte-bpe" else ", or use byte-bpe (256 byte symbols cover any text)"
    raise RecipeError(f"tokenize.train_tokenizer.vocab_size {cfg.vocab_size} is below {what}",
                      f"raise tokenize.train_tokenizer.vocab_size to {'at least' if exact else 'more than'} "
                      f"{actual if exact else actual - 1}{other}")


def _post_processor(tok, algorithm: str, kind: str):
    """What the tokenizer adds around a text (see the module docstring); for byte-bpe also
    ByteLevel's offset trimming, so a token's character span leaves out the space before it."""
    from tokenizers import processors

    template = None
    if kind == "encoder":
        cls, sep = ENCODER_SPECIALS["cls_token"], ENCODER_SPECIALS["sep_token"]
        template = processors.TemplateProcessing(
            single=f"{cls} $A:0 {sep}:0", pair=f"{cls} $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    elif kind == "encoder-decoder":
        template = processors.TemplateProcessing(single=f"$A {END}", pair=f"$A {END} $B:1 {END}:1",
                                                 special_tokens=[(END, tok.token_to_id(END))])
    steps = [processors.ByteLevel(trim_offsets=True)] if algorithm == "byte-bpe" else []
    steps += [template] if template is not None else []
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else processors.Sequence(steps)


def check_special_tokens(tokenizer, task_name: str) -> None:
    """The special tokens the task needs must be set and in the vocabulary (a tokenizer_config
    naming a token its vocabulary lacks would otherwise fail deep inside training)."""
    vocab = tokenizer.get_vocab()
    missing = []
    for alternatives, why in NEEDED.get(task_name, []):
        if not any(_present(tokenizer, vocab, role) for role in alternatives):
            missing.append((alternatives, why))
    if not missing:
        return
    parts = [" or ".join(alternatives) + f" ({why})" for alternatives, why in missing]
    raise ModelError(f"the tokenizer lacks a special token that {task_name} needs: {'; '.join(parts)}",
                     "use a tokenizer that defines it (in its tokenizer_config.json, in its vocabulary), or "
                     "train one for the task with tokenize.train_tokenizer")


def _present(tokenizer, vocab: dict, role: str) -> bool:
    token = getattr(tokenizer, role, None)
    return token is not None and str(token) in vocab
