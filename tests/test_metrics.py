"""The local evaluate metrics (train/metrics/) load offline and match direct sklearn / sacrebleu / seqeval calls."""

import os
import subprocess
import sys
from pathlib import Path

import evaluate
import pytest
import sacrebleu
import seqeval.metrics
from sklearn import metrics as skm

METRICS = Path(__file__).resolve().parents[1] / "train" / "metrics"


@pytest.fixture(scope="module")
def classification():
    return evaluate.load(str(METRICS / "classification"))


@pytest.fixture(scope="module")
def translation():
    return evaluate.load(str(METRICS / "translation"))


@pytest.fixture(scope="module")
def ner():
    return evaluate.load(str(METRICS / "seqeval"))


PRED = [0, 1, 2, 2, 1, 0, 1, 2, 0, 0]
REF = [0, 1, 2, 1, 1, 0, 2, 2, 1, 0]


@pytest.mark.parametrize("average", ["micro", "macro", "weighted"])
def test_classification_matches_sklearn(classification, average):
    got = classification.compute(predictions=PRED, references=REF, average=average)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(REF, PRED))
    assert got["precision"] == pytest.approx(skm.precision_score(REF, PRED, average=average))
    assert got["recall"] == pytest.approx(skm.recall_score(REF, PRED, average=average))
    assert got["f1"] == pytest.approx(skm.f1_score(REF, PRED, average=average))


def test_classification_binary_scores_the_positive_label(classification):
    pred, ref = [1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1]
    spam = classification.compute(predictions=pred, references=ref)  # default: binary, pos_label=1
    ham = classification.compute(predictions=pred, references=ref, pos_label=0)
    assert spam["f1"] == pytest.approx(skm.f1_score(ref, pred, pos_label=1)) == pytest.approx(2 / 3)
    assert ham["f1"] == pytest.approx(skm.f1_score(ref, pred, pos_label=0))
    assert spam["precision"] == pytest.approx(2 / 3) and spam["recall"] == pytest.approx(2 / 3)


def test_classification_rejects_unknown_average(classification):
    with pytest.raises(ValueError, match="average"):
        classification.compute(predictions=[0, 1], references=[0, 1], average="samples-ish")


def test_translation_matches_sacrebleu(translation):
    hyps = ["the cat sat on the mat", "a dog barks at night", "o gato subiu no telhado"]
    refs = [["the cat sat on a mat", "there is a cat on the mat"], ["the dog barks at night", "a dog barked tonight"],
            ["o gato subiu ao telhado", "o gato foi ao telhado"]]
    got = translation.compute(predictions=hyps, references=refs)
    streams = [[r[i] for r in refs] for i in range(2)]
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score)
    assert got["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, streams).score)
    assert 0 < got["bleu"] < 100 and 0 < got["chrf"] < 100
    perfect = translation.compute(predictions=["the cat sat on the mat"], references=[["the cat sat on the mat"]])
    assert perfect["bleu"] == pytest.approx(100.0)


def test_translation_rejects_ragged_references(translation):
    with pytest.raises(ValueError, match="same number of references"):
        translation.compute(predictions=["a b", "c d"], references=[["a b"], ["c d", "c e"]])


def test_seqeval_counts_entities_not_tokens(ner):
    ref = [["B-person", "I-person", "O", "B-location"], ["O", "B-group", "I-group", "I-group"]]
    pred = [["B-person", "I-person", "O", "O"], ["O", "B-group", "I-group", "O"]]  # 1 of 3 entities right
    got = ner.compute(predictions=pred, references=ref)
    assert got["overall_precision"] == pytest.approx(seqeval.metrics.precision_score(ref, pred)) == pytest.approx(1 / 2)
    assert got["overall_recall"] == pytest.approx(seqeval.metrics.recall_score(ref, pred)) == pytest.approx(1 / 3)
    assert got["overall_f1"] == pytest.approx(seqeval.metrics.f1_score(ref, pred))
    assert got["overall_accuracy"] == pytest.approx(seqeval.metrics.accuracy_score(ref, pred)) == pytest.approx(6 / 8)
    assert got["person"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "number": 1}


def test_seqeval_rejects_length_mismatch(ner):
    with pytest.raises(ValueError, match="sentence 0"):
        ner.compute(predictions=[["O"]], references=[["O", "B-person"]])


@pytest.mark.slow
def test_metrics_load_with_hub_offline(tmp_path):
    """A fresh process with HF_HUB_OFFLINE=1 and an empty module cache loads and runs all four."""
    code = (
        "import evaluate, sys\n"
        "root = sys.argv[1]\n"
        "print(evaluate.load(root + '/classification').compute(predictions=[1, 0], references=[1, 1])['recall'])\n"
        "s = 'w x y z'\n"
        "print(evaluate.load(root + '/translation').compute(predictions=[s], references=[[s]])['bleu'])\n"
        "print(evaluate.load(root + '/seqeval').compute(predictions=[['B-x']], references=[['B-x']])['overall_f1'])\n"
        "gold = [{'id': '1', 'answers': {'text': ['a cat'], 'answer_start': [0]}}]\n"
        "print(evaluate.load(root + '/squad').compute(predictions=[{'id': '1', 'prediction_text': 'cat'}], "
        "references=gold)['f1'])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_MODULES_CACHE": str(tmp_path / "modules")}
    command = [sys.executable, "-c", code, str(METRICS)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [float(x) for x in out.stdout.split()] == pytest.approx([0.5, 100.0, 1.0, 100.0])


def test_translation_rejects_no_predictions_and_sentences_without_references(translation):
    """An empty split (an IndexError inside before) and a sentence with no reference are errors that say so."""
    with pytest.raises(ValueError, match="no predictions"):
        translation.compute(predictions=[], references=[])
    with pytest.raises(ValueError, match="at least one reference"):
        translation.compute(predictions=["a b"], references=[[]])


def test_seqeval_rejects_no_tokens_to_score(ner):
    """Only empty sentences (a ZeroDivisionError inside before), or none: every score would be 0 / 0."""
    for sentences in ([[], []], []):
        with pytest.raises(ValueError, match="no tokens to score"):
            ner.compute(predictions=sentences, references=sentences)


@pytest.fixture(scope="module")
def squad():
    return evaluate.load(str(METRICS / "squad"))


def squad_scores(metric, pairs):
    """``pairs``: (prediction text, gold texts) per question."""
    predictions = [{"id": str(i), "prediction_text": p} for i, (p, _) in enumerate(pairs)]
    references = [{"id": str(i), "answers": {"text": golds, "answer_start": [0] * len(golds)}}
                  for i, (_, golds) in enumerate(pairs)]
    return metric.compute(predictions=predictions, references=references)


def test_squad_exact_match_and_f1_by_hand(squad):
    # normalised: case, punctuation and articles go; "The Eiffel Tower." == "eiffel tower"
    assert squad_scores(squad, [("The Eiffel  Tower.", ["eiffel tower"])]) == {"exact_match": 100.0, "f1": 100.0}
    # "big red dog" vs "red dog": 2 shared words, precision 2/3, recall 1, F1 0.8
    assert squad_scores(squad, [("big red dog", ["red dog"])])["f1"] == pytest.approx(80.0)
    # the best gold answer counts: "cat" is exact
    assert squad_scores(squad, [("a cat", ["red dog", "the cat"])]) == {"exact_match": 100.0, "f1": 100.0}
    # averaged over questions: (1 + 0) / 2 exact, (1 + 0.8) / 2 F1; no shared word: 0
    both = squad_scores(squad, [("Paris", ["paris"]), ("big red dog", ["red dog"])])
    assert both == {"exact_match": pytest.approx(50.0), "f1": pytest.approx(90.0)}
    assert squad_scores(squad, [("london", ["paris"])]) == {"exact_match": 0.0, "f1": 0.0}
    # a repeated word counts as often as it is shared: "dog dog" vs "dog": precision 1/2, recall 1
    assert squad_scores(squad, [("dog dog", ["dog"])])["f1"] == pytest.approx(100 * 2 / 3)


def test_squad_rejects_predictions_without_references(squad):
    with pytest.raises(ValueError, match="no reference"):
        squad.compute(predictions=[{"id": "x", "prediction_text": "a"}],
                      references=[{"id": "y", "answers": {"text": ["a"], "answer_start": [0]}}])
