"""SQuAD exact match and F1 as an `evaluate` module, loadable offline by path.

    evaluate.load(tunekit.tasks.qa_metrics.squad_metric_path())

evaluate copies this one file into its module cache and imports it there, so it must not use
relative imports; it checks every `import` line for an installed library, so each import
stands on its own line. The scoring lives in tunekit.tasks.qa_metrics (plain python) so
tunekit computes the same numbers with or without evaluate.

Inputs use the HF SQuAD layout: predictions [{"id", "prediction_text"}], references
[{"id", "answers": {"text": [...], "answer_start": [...]}}]; answer_start is not scored.
An empty answers.text list marks an unanswerable question (SQuAD v2.0).
"""

import datasets
import evaluate

from tunekit.tasks.qa_metrics import squad_scores

_CITATION = """\
@inproceedings{Rajpurkar2016SQuAD10,
  title={SQuAD: 100,000+ Questions for Machine Comprehension of Text},
  author={Pranav Rajpurkar and Jian Zhang and Konstantin Lopyrev and Percy Liang},
  booktitle={EMNLP},
  year={2016}
}
@inproceedings{Rajpurkar2018KnowWY,
  title={Know What You Don't Know: Unanswerable Questions for SQuAD},
  author={Pranav Rajpurkar and Robin Jia and Percy Liang},
  booktitle={ACL},
  year={2018}
}
"""

_DESCRIPTION = """\
Exact match and token F1 (0-100) with the answer normalisation of the official SQuAD scripts
(lowercase, no punctuation, no articles a/an/the, single spaces; best score over the reference
answers). With unanswerable questions it follows the official v2.0 script and adds the
HasAns_* and NoAns_* scores.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: list of {"id": str, "prediction_text": str}; "" predicts "no answer".
    references: list of {"id": str, "answers": {"text": list[str], "answer_start": list[int]}}.
    version_2: None (default) uses the v2.0 rules when any reference has no answer, else v1.1;
        True or False forces one.
Returns:
    exact_match, f1; with v2.0 also total and HasAns_exact, HasAns_f1, HasAns_total,
    NoAns_exact, NoAns_f1, NoAns_total (a group with no questions is left out).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                "references": {
                    "id": datasets.Value("string"),
                    "answers": datasets.features.Sequence(
                        {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}),
                },
            }),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references, version_2=None):
        preds = {p["id"]: p["prediction_text"] for p in predictions}
        refs = {r["id"]: list(r["answers"]["text"]) for r in references}
        return squad_scores(preds, refs, version_2=version_2)
