"""Accuracy and macro precision/recall/F1 (0-1) as an `evaluate` module, loadable offline.

    evaluate.load(tunekit.pipeline.metric_modules.builtin_path("classification"))

A wrapper over tunekit.tasks.classification.compute_metrics (macro averages over the classes
present in references or predictions, as scikit-learn infers them), so it gives exactly the
numbers `tunekit eval` reports. Imports stay absolute, one per line.
"""

import datasets
import evaluate

from tunekit.tasks.classification import compute_metrics

_DESCRIPTION = "Accuracy and macro-averaged precision, recall and F1 of class ids."
_KWARGS_DESCRIPTION = """\
Args:
    predictions: list of predicted class ids.
    references: list of true class ids.
Returns:
    accuracy, f1_macro, precision_macro, recall_macro.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        k = max([*predictions, *references], default=0) + 1
        scores = compute_metrics(list(predictions), list(references), [str(i) for i in range(k)])
        return {key: scores[key] for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro")}
