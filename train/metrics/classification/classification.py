"""Classification scores (accuracy, precision, recall, F1) as a local `evaluate` metric, computed by scikit-learn.

Load it from its folder, with no Hub access: ``evaluate.load("train/metrics/classification")``. It takes class ids
(one per example) or, for multi-label classification, 0/1 rows (one column per label), as scikit-learn does.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

_DESCRIPTION = """Accuracy, precision, recall and F1 of integer class predictions, as scikit-learn computes them.
`average` chooses how per-class scores combine ("binary", "micro", "macro", "weighted"); with "binary" the scores are
those of the class `pos_label` (e.g. spam = 1). Multi-label input (a 0/1 row per example, one column per label) is
scored as scikit-learn scores a label-indicator matrix: accuracy is the subset accuracy (the share of examples
whose every label is right), and `average` must then be "micro", "macro" or "weighted"."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int, or list of lists of 0/1): predicted class ids, or multi-hot label rows.
    references (list of int, or list of lists of 0/1): true class ids, or multi-hot label rows.
    average (str): "binary" (default: scores of `pos_label`), "micro", "macro" or "weighted".
    pos_label (int): the positive class when average="binary". Default 1.
    labels (list of int, optional): the classes to score (default: all seen).
    zero_division (float or "warn"): value of a score whose denominator is 0. Default 0.0.
Returns:
    dict with "accuracy", "precision", "recall", "f1" (floats).
Example:
    >>> metric = evaluate.load("train/metrics/classification")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.666..., 'precision': 0.5, 'recall': 1.0, 'f1': 0.666...}
    >>> metric.compute(predictions=[[1, 0], [1, 1]], references=[[1, 0], [0, 1]], average="micro")
    {'accuracy': 0.5, 'precision': 0.666..., 'recall': 1.0, 'f1': 0.8}
"""

AVERAGES = ("binary", "micro", "macro", "weighted")


class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Pedregosa et al., Scikit-learn: Machine Learning in Python, JMLR 12, 2011.",
            inputs_description=_KWARGS_DESCRIPTION,
            # class ids, or multi-hot rows (multi-label): evaluate picks the first that fits the input
            features=[datasets.Features({"predictions": datasets.Value("int64"),
                                         "references": datasets.Value("int64")}),
                      datasets.Features({"predictions": datasets.Sequence(datasets.Value("int64")),
                                         "references": datasets.Sequence(datasets.Value("int64"))})],
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, average="binary", pos_label=1, labels=None, zero_division=0.0):
        if average not in AVERAGES:
            raise ValueError(f"`average` must be one of {', '.join(map(repr, AVERAGES))}; got {average!r}.")
        if average == "binary" and np.ndim(references) == 2:  # scikit-learn's own error does not say what fits
            raise ValueError(f"multi-label input (0/1 rows) needs `average` = one of "
                             f"{', '.join(map(repr, AVERAGES[1:]))}; got 'binary'.")
        precision, recall, f1, _ = precision_recall_fscore_support(
            references, predictions, average=average, pos_label=pos_label, labels=labels, zero_division=zero_division
        )
        return {"accuracy": float(accuracy_score(references, predictions)), "precision": float(precision),
                "recall": float(recall), "f1": float(f1)}
