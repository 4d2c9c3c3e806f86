"""Scores of generated text: ROUGE (rouge-score) and BLEU/chrF (sacrebleu), all on a 0-100 scale.

The libraries do the scoring; tunekit only feeds them the way their reference setups do:
ROUGE with the Porter stemmer (as the Hugging Face summarization examples), and ROUGE-Lsum
over sentences split one per line. rouge-score would split with NLTK's punkt model, which is
not installed offline, so `split_sentences` does it with a rule: a sentence ends at . ! or ?
(optionally followed by a closing quote or bracket) before whitespace and a letter, digit or
opening quote, unless the word before the stop is a known abbreviation or an initial. Lower-case
starts count too: models with uncased vocabularies (BERT's) generate lower-case text.
"""

from __future__ import annotations

import re

# Words after which a full stop does not end a sentence (lower-cased, without the stop).
ABBREVIATIONS = frozenset({
    "e.g", "i.e", "etc", "vs", "cf", "al", "fig", "figs", "eq", "eqs", "sec", "no", "dr", "mr", "mrs",
    "ms", "prof", "st", "jr", "sr", "inc", "ltd", "co", "corp", "approx", "resp", "ref", "refs", "vol",
})
_BOUNDARY = re.compile(r"(?<=[.!?])([\"'\u201d\u2019)\]]*)\s+(?=[\"'\u201c\u2018(\[]?[A-Za-z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, in order; no text is lost or changed apart from the spaces between."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start() + len(match.group(1))  # keep closing quotes with their sentence
        candidate = text[start:end]
        last_word = candidate.rstrip("\"'\u201d\u2019)]").rstrip(".!?").split()[-1:] or [""]
        if candidate.rstrip("\"'\u201d\u2019)]").endswith(".") and last_word[0].lower() in ABBREVIATIONS:
            continue
        if len(last_word[0]) == 1 and last_word[0].isalpha() and last_word[0].isupper():
            continue  # an initial, as in "J. Smith"
        sentences.append(candidate.strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
BLEU_KEYS = ("bleu", "chrf")


def rouge_per_example(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    """F-measure of ROUGE-1, -2, -L and -Lsum for each pair, times 100."""
    from rouge_score import rouge_scorer

    _check_pairs(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    out: dict[str, list[float]] = {key: [] for key in ROUGE_KEYS}
    for prediction, reference in zip(predictions, references):
        # rougeLsum reads newlines as sentence boundaries; the other keys ignore them
        scores = scorer.score("\n".join(split_sentences(reference)), "\n".join(split_sentences(prediction)))
        for key in ROUGE_KEYS:
            out[key].append(100 * scores[key].fmeasure)
    return out


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean F-measure of ROUGE-1, -2, -L and -Lsum over the pairs, times 100."""
    per = rouge_per_example(predictions, references)
    n = max(len(predictions), 1)
    return {key: round(sum(values) / n, 4) for key, values in per.items()}


def _sacrebleu_metrics():
    from sacrebleu.metrics import BLEU, CHRF

    return {"bleu": BLEU(), "chrf": CHRF()}  # the defaults corpus_bleu / corpus_chrf use


def bleu_chrf(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (13a tokenisation) and chrF with sacrebleu's defaults, one reference each."""
    _check_pairs(predictions, references)
    return {name: round(metric.corpus_score(predictions, [references]).score, 4)
            for name, metric in _sacrebleu_metrics().items()}


def bleu_chrf_stats(predictions: list[str], references: list[str]) -> dict[str, list]:
    """sacrebleu's sufficient statistics per sentence (n-gram matches and totals, lengths):
    additive, and summing them is how sacrebleu itself computes the corpus score."""
    _check_pairs(predictions, references)
    return {name: metric._extract_corpus_statistics(predictions, [references])
            for name, metric in _sacrebleu_metrics().items()}


def generation_scores(names, predictions: list[str], references: list[str]) -> dict[str, float]:
    """The scores among `names` that these functions produce (others are left to the caller)."""
    scores, _ = generation_scores_with_stats(names, predictions, references)
    return scores


def generation_scores_with_stats(names, predictions: list[str], references: list[str]):
    """(scores, bootstrap statistics) for the ROUGE/BLEU/chrF scores among `names`."""
    from tunekit.pipeline.intervals import PerExample, point_estimates

    wanted = set(names)
    stats: dict = {}
    if wanted & set(ROUGE_KEYS):
        stats.update(rouge_per_example(predictions, references))
    if wanted & set(BLEU_KEYS):
        stats.update(bleu_chrf_stats(predictions, references))
    if not stats:
        return {}, None
    stats["one"] = [1.0] * len(predictions)
    metrics = _sacrebleu_metrics() if wanted & set(BLEU_KEYS) else {}

    def aggregate(s) -> dict:
        out = {key: float(s[key] / s["one"]) for key in ROUGE_KEYS if key in s}
        for name, metric in metrics.items():
            out[name] = float(metric._compute_score_from_stats([float(v) for v in s[name]]).score)
        return out

    group = PerExample(stats, aggregate)
    return {k: round(v, 4) for k, v in point_estimates([group]).items()}, group


def _check_pairs(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
