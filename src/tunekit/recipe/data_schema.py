"""The recipe's data section: sources (files, globs, mixtures), columns, labels, cleaning,
data-quality rules and the split. Re-exported by recipe.schema."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from tunekit.recipe.base import Strict


class Columns(Strict):
    """Which source column plays each role; a task reads only the roles it needs."""

    text: str = Field("text", description="classification: the input text.")
    label: str = Field("label", description="classification: the label (name, integer or score).")
    context: str = Field("context", description="qa: the passage that holds the answer.")
    question: str = Field("question", description="qa: the question.")
    answers: str = Field("answers", description="qa: {text: [...], answer_start: [...]} (SQuAD layout).")
    id: str = Field("id", description="qa: a question id (made up from the row number when absent).")
    source: str = Field("source", description="summarization/translation: the input text (document, sentence).")
    target: str = Field("target", description="summarization/translation: the reference output (summary, translation).")
    prompt: str = Field("prompt", description="causal_lm (style instruction): the instruction or input.")
    response: str = Field("response", description="causal_lm (style instruction): the answer the model learns to give.")
    messages: str = Field("messages", description="causal_lm (style chat): a list of {role, content} messages.")


class LabelConfig(Strict):
    names: Optional[list[str]] = Field(
        None, description="Class names in id order. Default: the sorted labels found in train."
    )
    from_score: Optional[dict[str, tuple[float, float]]] = Field(
        None,
        description="Map a numeric score column to classes: {name: [low, high]} (inclusive). "
        "Rows in no range (a dead zone) are dropped and counted.",
    )

    @field_validator("from_score")
    @classmethod
    def _ranges_ordered_and_disjoint(cls, ranges):
        if ranges is None:
            return ranges
        if len(ranges) < 2:
            raise ValueError("needs at least two classes")
        spans = sorted((lo, hi, name) for name, (lo, hi) in ranges.items())
        for lo, hi, name in spans:
            if lo > hi:
                raise ValueError(f"range for {name!r} has low {lo} above high {hi}")
        for (_, hi_a, a), (lo_b, _, b) in zip(spans, spans[1:]):
            if lo_b <= hi_a:
                raise ValueError(f"ranges for {a!r} and {b!r} overlap")
        return ranges

    @model_validator(mode="after")
    def _names_match_ranges(self):
        if self.names and self.from_score and set(self.names) != set(self.from_score):
            raise ValueError("names and from_score must list the same classes")
        return self


SplitName = Literal["train", "validation", "test"]


class CleanConfig(Strict):
    normalize_whitespace: bool = Field(True, description="Collapse runs of whitespace; strip ends.")
    drop_empty: bool = Field(True, description="Drop rows whose text or label is empty or missing.")
    drop_duplicates: bool = Field(True, description="Drop exact duplicates (after normalisation).")
    splits: list[SplitName] = Field(
        default_factory=lambda: ["train"],
        description="Splits the drop rules clean: drop_empty and drop_duplicates here, data.quality's row rules "
        "(characters, tokens, unprintable), near_duplicates.within: drop and label_conflicts: drop. Default [train]: "
        "a validation or test split given as its own file (data.validation / data.test) is kept whole, so its "
        "scores compare with other people's; prepare warns what the rules would drop there (an error under "
        "strict). Splits carved out of train (data.split shares) are cleaned with train, before the split. "
        "Rows no model can be scored on (no label, no question or context, an empty source or target) are "
        "dropped and counted in every split; near_duplicates.across applies to validation/test whatever this says.",
    )

    @field_validator("splits")
    @classmethod
    def _train_is_cleaned(cls, splits):
        if "train" not in splits:
            raise ValueError("must list train (training rows are always cleaned); add validation or test "
                             "to clean those files too")
        return list(dict.fromkeys(splits))


class SplitConfig(Strict):
    validation: float = Field(0.1, ge=0.0, lt=1.0, description="Share of rows for validation.")
    test: float = Field(0.1, ge=0.0, lt=1.0, description="Share of rows for test.")
    seed: int = Field(42, description="Seed of the shuffle that splits the rows.")
    stratify: bool = Field(True, description="Keep label proportions equal across splits.")

    @model_validator(mode="after")
    def _leave_training_rows(self):
        if self.validation + self.test >= 1.0:
            raise ValueError("validation + test must leave rows for training (sum < 1)")
        return self


class SourceConfig(Strict):
    """One entry of a split's source list: a file, glob or folder, with an optional mixture weight."""

    path: str = Field(description="A file, a glob (data/*.jsonl), a save_to_disk folder, or pkg://...")
    weight: Optional[float] = Field(
        None, ge=0.0, description="Mixture weight: when any source of a split has one, rows are sampled from "
        "each source in proportion to its weight (seeded by data.split.seed)."
    )
    format: Optional[Literal["csv", "tsv", "json", "jsonl", "parquet", "text", "arrow"]] = Field(
        None, description="This source's format, when it differs from data.format."
    )


def _source_entry(index: int, entry: dict) -> SourceConfig:
    import difflib

    from pydantic import ValidationError

    try:
        return SourceConfig(**entry)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(key, list(SourceConfig.model_fields), n=1, cutoff=0.5)
                msg = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else
                                       f" (valid keys: {', '.join(SourceConfig.model_fields)})")
            elif "input" in err and not isinstance(err["input"], dict):
                msg += f" (got {err['input']!r})"
            problems.append(f"{key}: {msg}")
        raise ValueError(f"entry {index + 1} ({entry.get('path', 'no path')}): " + "; ".join(problems)) from None


# A split's data: one reference, or a list of references and {path, weight, format} entries.
SourceList = Union[str, list[Union[str, SourceConfig]]]


class NearDuplicateConfig(Strict):
    """Exact and near-duplicate examples (MinHash over word shingles of the lowercased words,
    punctuation ignored). An example is what the task calls one: classification text, QA
    context + question, seq2seq source, causal LM text / prompt + response / chat contents."""

    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Estimated Jaccard similarity of word shingles "
                             "(MinHash, 128 hash functions) at or above which two texts count as near-duplicates.")
    shingle: int = Field(5, gt=0, description="Words per shingle (a shorter text is one shingle, so it only "
                         "matches its exact duplicates).")
    within: Literal["off", "warn", "drop"] = Field(
        "warn", description="Duplicates inside one split: reported with their row numbers (warn), dropped but the "
        "first of each group (drop), or not checked (off)."
    )
    across: Literal["off", "warn", "drop", "error"] = Field(
        "warn", description="Duplicates across splits (train/test leakage): reported (warn), removed from the later "
        "split (drop: validation vs train, test vs train and validation), a stop with exit code 2 (error), or "
        "not checked (off)."
    )


class QualityConfig(Strict):
    """Data-quality rules run by prepare; every rule's counts go into prepare_report.json.

    The row rules (characters, tokens, unprintable) read all the text a row carries: every text
    column the task keeps (QA: context and question; seq2seq: source and target)."""

    near_duplicates: NearDuplicateConfig = Field(default_factory=NearDuplicateConfig)
    min_chars: int = Field(0, ge=0, description="Drop rows whose text is shorter (characters).")
    max_chars: Optional[int] = Field(None, gt=0, description="Drop rows whose text is longer (characters).")
    min_tokens: Optional[int] = Field(None, gt=0, description="Drop rows with fewer tokens (the model's tokenizer, "
                                      "no special tokens).")
    max_tokens: Optional[int] = Field(None, gt=0, description="Drop rows with more tokens (the model's tokenizer, "
                                      "no special tokens). Unlike tokenize.max_length, the row is dropped, not cut.")
    max_unprintable: float = Field(
        0.2, ge=0.0, le=1.0, description="Drop rows whose text is more than this share control/format characters "
        "or U+FFFD replacement characters (bytes that were not valid UTF-8); whitespace is fine. 1.0 turns it off."
    )
    label_conflicts: Literal["warn", "drop", "error"] = Field(
        "warn", description="classification: identical texts (ignoring case and punctuation) with different labels, "
        "within train and across splits: reported (warn), every such row dropped (drop), or an error."
    )
    strict: bool = Field(False, description="Turn every data warning into an error (exit code 2); "
                         "also `--strict` on prepare, tokenize and finetune.")

    @model_validator(mode="after")
    def _ranges(self):
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError("max_chars is below min_chars")
        if self.max_tokens is not None and self.min_tokens is not None and self.max_tokens < self.min_tokens:
            raise ValueError("max_tokens is below min_tokens")
        return self


class DataConfig(Strict):
    train: SourceList = Field(description="Training data: a file, a glob, a save_to_disk folder, pkg://..., "
                              "or a list of these (and {path, weight} mixture entries).")
    validation: Optional[SourceList] = Field(None, description="Validation data; split from train if absent.")
    test: Optional[SourceList] = Field(None, description="Test data; split from train if absent.")
    format: Optional[Literal["csv", "tsv", "json", "jsonl", "parquet", "text", "arrow"]] = Field(
        None, description="File format; guessed from the extension when absent."
    )
    columns: Columns = Field(default_factory=Columns)
    style: Literal["text", "instruction", "chat"] = Field(
        "instruction", description="causal_lm: text (plain language modelling on columns.text), instruction "
        "(columns.prompt -> columns.response), or chat (columns.messages)."
    )
    labels: LabelConfig = Field(default_factory=LabelConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    max_train_rows: Optional[int] = Field(
        None, gt=0, description="Keep at most this many training rows (seeded sample)."
    )
    mixture_rows: Optional[int] = Field(
        None, gt=0, description="Rows a weighted mixture yields per split. Default: the most rows possible "
        "without repeating any; more repeats rows of the sources that run short (counted in the report)."
    )
    quality: QualityConfig = Field(default_factory=QualityConfig)

    @field_validator("train", "validation", "test", mode="before")
    @classmethod
    def _entries(cls, value):
        """List entries that are mappings are checked here, one message per entry: left to the
        str-or-list union, a bad weight would also be reported as 'not a valid string' twice."""
        if not isinstance(value, list):
            return value
        return [_source_entry(i, entry) if isinstance(entry, dict) else entry for i, entry in enumerate(value)]

    @field_validator("train", "validation", "test")
    @classmethod
    def _mixture_weights(cls, value):
        if isinstance(value, list):
            if not value:
                raise ValueError("an empty source list: name at least one file")
            weights = [v.weight for v in value if isinstance(v, SourceConfig) and v.weight is not None]
            if weights and len(weights) != len(value):
                raise ValueError("a mixture gives every source a weight ({path: ..., weight: ...})")
            if weights and sum(weights) <= 0:
                raise ValueError("mixture weights sum to zero: give at least one source a positive weight")
        return value
