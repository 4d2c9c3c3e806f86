"""tokenize --compare: how well tokenizers fit this recipe's data, on the prepared texts.

For the recipe's own tokenizer (a trained one, model.tokenizer, or the model's) and each
--compare TOKENIZER, over the texts of one split (validation, else test, else train) and the
task's text columns (each question and context, source and target, message... counts as one
text):

* vocab_size: tokens in the vocabulary, added tokens included (len(tokenizer)).
* fertility: tokens per whitespace-separated word. Tokens are counted without the special
  tokens the tokenizer adds around a text ([CLS], <s>...). Lower means shorter sequences.
* unk_rate: share of those tokens that are the unknown token (0 when there is none): text the
  model cannot see.
* over_max_length: share of texts longer than tokenize.max_length tokens once the tokenizer's
  special tokens are added (what truncation would cut, or drop).

Encoded in batches with the fast backend (no truncation or padding, whatever tokenizer.json
sets). Saved as <run>/data/tokenizer_comparison.json.
"""

from __future__ import annotations

from pathlib import Path

from tunekit.errors import DataError
from tunekit.recipe.schema import Recipe
from tunekit.runs import RunDir, write_json

SPLIT_ORDER = ("validation", "test", "train")


def report_path(run: RunDir) -> Path:
    return run.root / "data" / "tokenizer_comparison.json"


def pick_split(names) -> str:
    for name in SPLIT_ORDER:
        if name in names:
            return name
    raise DataError("the prepared data has no validation, test or train split to compare tokenizers on",
                    "run tunekit prepare again")


def compare_tokenizers(recipe: Recipe, run: RunDir, refs: list[str]) -> dict:
    """Measure the recipe's tokenizer and each reference (local folder or pkg://) on the
    prepared data; returns (and saves) the comparison."""
    import datasets

    from tunekit.pipeline.tokenization import load_tokenizer, tokenizer_path
    from tunekit.pipeline.tokenizer_training import iter_texts
    from tunekit.sources import resolve_model

    prepared = datasets.load_from_disk(str(run.prepared))
    split = pick_split(list(prepared))
    ds = prepared[split]
    note = f"{split} split" + ("" if split == "validation" else " (the prepared data has no validation split)")
    texts = words = 0
    for batch in iter_texts(ds):  # batches, read again per tokenizer: never the whole split as one list
        texts += len(batch)
        words += sum(len(t.split()) for t in batch)
    if not texts:
        raise DataError(f"the {split} split has no text to compare tokenizers on", "check data.columns")
    own = recipe.tokenize.train_tokenizer
    entries = [(f"trained {own.algorithm}" if own else (recipe.model.tokenizer or recipe.model.name),
                tokenizer_path(recipe, run), "recipe")]
    entries += [(ref, resolve_model(ref), "--compare") for ref in refs]
    rows = []
    for name, path, source in entries:
        stats = measure(load_tokenizer(path), iter_texts(ds), recipe.tokenize.max_length)
        fertility = stats["tokens"] / words if words else None
        rows.append({"name": name, "source": source, "path": str(path), "vocab_size": stats["vocab_size"],
                     "tokens": stats["tokens"], "fertility": fertility,
                     "unk_rate": stats["unk"] / stats["tokens"] if stats["tokens"] else 0.0,
                     "over_max_length": stats["over"] / texts})
    result = {"split": split, "note": note, "texts": texts, "words": words,
              "max_length": recipe.tokenize.max_length, "tokenizers": rows}
    write_json(report_path(run), result)
    return result


def measure(tokenizer, batches, max_length: int) -> dict:
    """Token, unknown-token and over-length counts of the texts (batches of strings)."""
    from tunekit.pipeline.text_encoding import plain_backend

    unk = tokenizer.unk_token_id
    specials = set(tokenizer.all_special_ids) - {unk}  # unknown tokens are text the model cannot see: counted
    added = tokenizer.num_special_tokens_to_add(pair=False)
    tokens = unknown = over = 0
    with plain_backend(tokenizer) as backend:
        for batch in batches:
            for enc in backend.encode_batch(batch, add_special_tokens=False):
                ids = [i for i in enc.ids if i not in specials]
                tokens += len(ids)
                unknown += ids.count(unk) if unk is not None else 0
                over += len(enc.ids) + added > max_length
    return {"vocab_size": len(tokenizer), "tokens": tokens, "unk": unknown, "over": over}
