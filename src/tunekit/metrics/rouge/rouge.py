"""ROUGE-1/2/L/Lsum (0-100) as an `evaluate` module, loadable offline by path.

    evaluate.load(tunekit.pipeline.metric_modules.builtin_path("rouge"))

A wrapper over tunekit.tasks.text_metrics.rouge_scores (rouge-score with the Porter stemmer,
Lsum over rule-split sentences), so it gives exactly the numbers `tunekit eval` reports.
evaluate copies this file into its cache and checks each import line, so imports stay absolute
and one per line.
"""

import datasets
import evaluate

from tunekit.tasks.text_metrics import rouge_scores

_DESCRIPTION = "Mean F-measure of ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum, times 100 (tunekit's settings)."
_KWARGS_DESCRIPTION = """\
Args:
    predictions: list of generated texts.
    references: list of reference texts (one per prediction).
Returns:
    rouge1, rouge2, rougeL, rougeLsum on a 0-100 scale.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, ROUGE: A Package for Automatic Evaluation of Summaries, 2004.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        return rouge_scores(list(predictions), list(references))
