"""Translation scores (corpus BLEU and chrF) as a local `evaluate` metric, computed by sacrebleu.

Load it from its folder, with no Hub access: ``evaluate.load("train/metrics/translation")``.
"""

import datasets
import evaluate
from sacrebleu.metrics import BLEU, CHRF

_DESCRIPTION = """Corpus-level BLEU (13a tokenisation) and chrF of detokenised hypotheses against references, with
sacrebleu's default settings, so the figures compare with published sacreBLEU scores."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): one translation per source sentence.
    references (list of list of str): the reference translation(s) of each sentence (the same count for every one).
    lowercase (bool): BLEU on lowercased text. Default False.
Returns:
    dict with "bleu" and "chrf" (0-100) plus the BLEU details "bleu_precisions", "bleu_brevity_penalty".
Raises:
    ValueError: for no predictions (an empty evaluation split: a corpus score of nothing is undefined), a sentence
    without references, or sentences with different numbers of references.
Example:
    >>> metric = evaluate.load("train/metrics/translation")
    >>> metric.compute(predictions=["the cat sat"], references=[["the cat sat"]])["bleu"]
    100.00000000000004
"""


class Translation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, A Call for Clarity in Reporting BLEU Scores, WMT 2018.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, lowercase=False):
        if not predictions:
            raise ValueError("no predictions to score (an empty evaluation split?): corpus BLEU and chrF of nothing "
                             "are undefined.")
        counts = {len(refs) for refs in references}
        if 0 in counts:
            raise ValueError("every prediction needs at least one reference; got a sentence with none.")
        if len(counts) > 1:
            raise ValueError(f"every prediction needs the same number of references; got counts {sorted(counts)}.")
        # sacrebleu takes one stream per reference position: transpose (sentence, ref) -> (ref, sentence).
        streams = [list(stream) for stream in zip(*references, strict=True)]
        bleu = BLEU(lowercase=lowercase).corpus_score(predictions, streams)
        chrf = CHRF().corpus_score(predictions, streams)
        return {"bleu": bleu.score, "chrf": chrf.score, "bleu_precisions": list(bleu.precisions),
                "bleu_brevity_penalty": bleu.bp}
