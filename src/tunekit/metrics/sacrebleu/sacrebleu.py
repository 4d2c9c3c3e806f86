"""Corpus BLEU and chrF (0-100, sacrebleu's defaults) as an `evaluate` module, loadable offline.

    evaluate.load(tunekit.pipeline.metric_modules.builtin_path("sacrebleu"))

A wrapper over tunekit.tasks.text_metrics.bleu_chrf, so it gives exactly the numbers
`tunekit eval` reports. One reference per prediction. Imports stay absolute, one per line
(evaluate checks them when it copies this file into its cache).
"""

import datasets
import evaluate

from tunekit.tasks.text_metrics import bleu_chrf

_DESCRIPTION = "Corpus BLEU (13a tokenisation) and chrF with sacrebleu's default settings, one reference each."
_KWARGS_DESCRIPTION = """\
Args:
    predictions: list of generated texts.
    references: list of reference texts (one per prediction).
Returns:
    bleu, chrf on a 0-100 scale.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Sacrebleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, A Call for Clarity in Reporting BLEU Scores, 2018.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        return bleu_chrf(list(predictions), list(references))
