"""SQuAD v1.1 exact match and F1 as a local `evaluate` metric (the official evaluation script's rules, no Hub access).

Load it from its folder: ``evaluate.load("train/metrics/squad")``.
"""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = """Exact match and token F1 of predicted answer texts against the gold answers of each question, as the
official SQuAD v1.1 script computes them: both texts are normalised (lower case, punctuation removed, the articles
a / an / the removed, runs of white space made one space), and each question scores the best of its gold answers.
An answer that normalises to nothing (an
unanswerable question's empty answer) matches only an empty prediction, as the SQuAD v2 script scores it. Scores are
percentages (0-100), as transformers' `squad` metric reports them."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of dict): {"id": str, "prediction_text": str}, one per question.
    references (list of dict): {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}; every
        prediction's id must have a reference.
Returns:
    dict with "exact_match" and "f1" (floats, 0-100).
Example:
    >>> metric = evaluate.load("train/metrics/squad")
    >>> metric.compute(predictions=[{"id": "1", "prediction_text": "the Eiffel Tower"}],
    ...                references=[{"id": "1", "answers": {"text": ["Eiffel Tower"], "answer_start": [0]}}])
    {'exact_match': 100.0, 'f1': 100.0}
"""

_CITATION = "Rajpurkar et al., SQuAD: 100,000+ Questions for Machine Comprehension of Text, EMNLP 2016."


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces: the form SQuAD compares answers in, so
    "The Eiffel Tower." and "eiffel tower" are the same answer."""
    text = "".join(char for char in text.lower() if char not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    """F1 of the normalised texts' words, counted as a bag (a repeated word counts as often as it is shared)."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not predicted or not gold:  # an empty answer (unanswerable, as SQuAD v2 scores it): right only when both are
        return float(predicted == gold)
    common = collections.Counter(predicted) & collections.Counter(gold)
    shared = sum(common.values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(gold)
    return 2 * precision * recall / (precision + recall)


class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                "references": {"id": datasets.Value("string"),
                               "answers": datasets.Sequence({"text": datasets.Value("string"),
                                                             "answer_start": datasets.Value("int32")})},
            }),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references):
        if not predictions:
            raise ValueError("no predictions to score.")
        gold = {ref["id"]: ref["answers"]["text"] for ref in references}
        predicted = {p["id"]: p["prediction_text"] for p in predictions}
        missing = [i for i in predicted if i not in gold]
        if missing:
            raise ValueError(f"predictions with no reference: ids {missing[:5]}.")
        exact = f1 = 0.0
        for question, truths in gold.items():
            text = predicted.get(question)
            if text is None:
                continue
            truths = truths or [""]  # an unanswerable question: only the empty answer is right
            exact += max(exact_match(text, t) for t in truths)
            f1 += max(token_f1(text, t) for t in truths)
        return {"exact_match": 100.0 * exact / len(gold), "f1": 100.0 * f1 / len(gold)}
