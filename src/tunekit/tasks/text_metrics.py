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


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean F-measure of ROUGE-1, -2, -L and -Lsum over the pairs, times 100."""
    from rouge_score import rouge_scorer

    _check_pairs(predictions, references)
    keys = ("rouge1", "rouge2", "rougeL", "rougeLsum")
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for prediction, reference in zip(predictions, references):
        # rougeLsum reads newlines as sentence boundaries; the other keys ignore them
        scores = scorer.score("\n".join(split_sentences(reference)), "\n".join(split_sentences(prediction)))
        for key in keys:
            totals[key] += scores[key].fmeasure
    n = max(len(predictions), 1)
    return {key: round(100 * total / n, 4) for key, total in totals.items()}


def bleu_chrf(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (13a tokenisation) and chrF with sacrebleu's defaults, one reference each."""
    import sacrebleu

    _check_pairs(predictions, references)
    bleu = sacrebleu.corpus_bleu(predictions, [references])
    chrf = sacrebleu.corpus_chrf(predictions, [references])
    return {"bleu": round(bleu.score, 4), "chrf": round(chrf.score, 4)}


def generation_scores(names, predictions: list[str], references: list[str]) -> dict[str, float]:
    """The scores among `names` that these functions produce (others are left to the caller)."""
    wanted = set(names)
    scores: dict[str, float] = {}
    if wanted & {"rouge1", "rouge2", "rougeL", "rougeLsum"}:
        scores.update(rouge_scores(predictions, references))
    if wanted & {"bleu", "chrf"}:
        scores.update(bleu_chrf(predictions, references))
    return scores


def _check_pairs(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
