"""Regression scores (MSE, MAE, Pearson and Spearman correlation) as a local `evaluate` metric, computed by
scikit-learn and SciPy (a scikit-learn dependency).

Load it from its folder, with no Hub access: ``evaluate.load("train/metrics/regression")``.
"""

import math

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import mean_absolute_error, mean_squared_error

_DESCRIPTION = """Mean squared error, mean absolute error, and the Pearson and Spearman correlations of predicted and
true values (the scores GLUE's STS-B regression task reports), as scikit-learn and SciPy compute them."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): predicted values.
    references (list of float): true values.
Returns:
    dict with "mse", "mae", "pearson", "spearman" (floats). A correlation is NaN when either side is constant
    (it is undefined there), as SciPy gives it, and when there are fewer than 2 examples.
Example:
    >>> metric = evaluate.load("train/metrics/regression")
    >>> metric.compute(predictions=[1.0, 2.0, 4.0], references=[1.0, 3.0, 3.0])
    {'mse': 0.666..., 'mae': 0.666..., 'pearson': 0.755..., 'spearman': 0.866...}
"""


def correlation(function, predictions, references) -> float:
    """``function``'s coefficient, NaN where it is undefined (fewer than 2 values, or a constant side) instead of
    SciPy's warning: a barely trained model can predict one value for every example."""
    if len(predictions) < 2 or np.ptp(predictions) == 0 or np.ptp(references) == 0:
        return math.nan
    return float(function(predictions, references)[0])


class Regression(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Pedregosa et al., Scikit-learn: Machine Learning in Python, JMLR 12, 2011; "
                     "Virtanen et al., SciPy 1.0, Nature Methods 17, 2020.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html#regression-metrics"],
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions, dtype=float), np.asarray(references, dtype=float)
        return {"mse": float(mean_squared_error(references, predictions)),
                "mae": float(mean_absolute_error(references, predictions)),
                "pearson": correlation(pearsonr, predictions, references),
                "spearman": correlation(spearmanr, predictions, references)}
