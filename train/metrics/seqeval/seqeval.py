"""Entity-level precision, recall and F1 of BIO tag sequences as a local `evaluate` metric, computed by seqeval.

Load it from its folder, with no Hub access: ``evaluate.load("train/metrics/seqeval")``.
"""

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2

_DESCRIPTION = """Named-entity scores counted per entity (a span of B-/I- tags), not per token, as in CoNLL and
WNUT evaluations: an entity counts only if its type and both boundaries are right. Also the per-type scores and the
token accuracy."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of str): predicted tags per sentence, e.g. [["B-person", "I-person", "O"]].
    references (list of list of str): the true tags, same lengths.
    mode (str or None): None (default, conlleval-compatible) or "strict" (IOB2 scheme enforced).
Returns:
    dict with "overall_precision", "overall_recall", "overall_f1", "overall_accuracy" and, per entity type,
    {"precision", "recall", "f1", "number"}.
Raises:
    ValueError: for a bad `mode`, a sentence whose two tag lists differ in length, or no tokens at all (no sentences,
    or only empty ones): with nothing to score every figure would be 0 / 0, so an empty evaluation split shows up as
    an error rather than as a score.
Example:
    >>> metric = evaluate.load("train/metrics/seqeval")
    >>> metric.compute(predictions=[["B-loc", "O"]], references=[["B-loc", "O"]])["overall_f1"]
    1.0
"""


class Seqeval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Nakayama, seqeval: A Python framework for sequence labeling evaluation, 2018.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=["https://github.com/chakki-works/seqeval"],
        )

    def _compute(self, predictions, references, mode=None):
        if mode not in (None, "strict"):
            raise ValueError(f"`mode` must be None or 'strict'; got {mode!r}.")
        for index, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
            if len(pred) != len(ref):
                raise ValueError(f"sentence {index}: {len(pred)} predicted tags for {len(ref)} reference tags.")
        if not any(references):
            raise ValueError(f"no tokens to score: {len(references)} sentences, none with a tag (an empty evaluation "
                             f"split?); every score would be 0 / 0.")
        strict = {"mode": "strict", "scheme": IOB2} if mode == "strict" else {}
        report = classification_report(references, predictions, output_dict=True, zero_division=0, **strict)
        scores = {name: {"precision": float(values["precision"]), "recall": float(values["recall"]),
                         "f1": float(values["f1-score"]), "number": int(values["support"])}
                  for name, values in report.items() if name not in ("micro avg", "macro avg", "weighted avg")}
        micro = report["micro avg"]
        scores.update(overall_precision=float(micro["precision"]), overall_recall=float(micro["recall"]),
                      overall_f1=float(micro["f1-score"]),
                      overall_accuracy=float(accuracy_score(references, predictions)))
        return scores
