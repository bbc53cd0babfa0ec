"""train/finetune.py's label handling beyond one class per text, and the checks around the task head.

Regression (float labels), multi-label (lists of labels), a checkpoint whose head has another label count
(``--ignore_mismatched_sizes``), a task the model's family has no head for, and the generation lengths a translation
model is saved with. Every run is a tiny model on tiny data built here (a few seconds each).
"""

import json
import math
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import evaluate
import numpy as np
import pytest
from sklearn import metrics as skm
from transformers import AutoConfig, AutoTokenizer, EvalPrediction, GenerationConfig, pipeline

import modeling_mini

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "train"))
import finetune  # noqa: E402

WORDS = "apple pear plum fig lime kiwi oat rye wheat corn bean pea kale leek".split()
QUICK = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
         "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--use_cpu", "true",
         "--logging_steps", "1", "--max_length", "16"]
#: a from-scratch tiny encoder with its own small tokenizer: no pretraining needed to test the heads
SCRATCH_ENCODER = ["--from_scratch", "true", "--family", "encoder", "--model_config", "tiny",
                   "--tokenizer_vocab_size", "120"]
METRICS = ROOT / "train" / "metrics"


def texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(count)]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def finetune_run(output_dir: Path, data: str, *extra: str) -> dict:
    return finetune.main(["--train_files", data, "--output_dir", str(output_dir), *QUICK, *extra])


# ------------------------------------------------------------------------------------------ which kind of labels

def splits(**columns) -> dict:
    return {"train": datasets.Dataset.from_dict(columns)}


def test_the_label_column_type_decides_the_kind_of_head():
    """run_classification.py's rules: float -> regression, lists -> multi-label, anything else -> classes."""
    assert finetune.sequence_label_kind(splits(label=[0.5, 2.0]), "label") == "regression"
    assert finetune.sequence_label_kind(splits(label=[1, 2]), "label") == "single_label"
    assert finetune.sequence_label_kind(splits(label=["a", "b"]), "label") == "single_label"
    assert finetune.sequence_label_kind(splits(label=[["a"], ["a", "b"], []]), "label") == "multi_label"
    tagged = datasets.Dataset.from_dict(
        {"label": [[0, 1], [1]]}, features=datasets.Features({"label": datasets.Sequence(datasets.ClassLabel(
            names=["x", "y"]))}))
    assert finetune.sequence_label_kind({"train": tagged}, "label") == "multi_label"
    classes = datasets.Dataset.from_dict({"label": [0, 1]}, features=datasets.Features(
        {"label": datasets.ClassLabel(names=["x", "y"])}))
    assert finetune.sequence_label_kind({"train": classes}, "label") == "single_label"
    # a float in any split (integers in train, 2.5 in validation) is regression, not a class named "2.5"
    mixed = {"train": datasets.Dataset.from_dict({"label": [1, 2]}),
             "validation": datasets.Dataset.from_dict({"label": [2.5]})}
    assert finetune.sequence_label_kind(mixed, "label") == "regression"


def test_label_rows_become_float_targets_and_multi_hot_rows():
    assert finetune.multi_hot([["b"], [], ["c", "a"]], ["a", "b", "c"]) == [[0, 1, 0], [0, 0, 0], [1, 0, 1]]
    assert finetune.multi_hot([[1], [0, 1]], ["x", "y"], class_ids=True) == [[0, 1], [1, 1]]
    with pytest.raises(ValueError, match="unknown label 'd'"):
        finetune.multi_hot([["d"]], ["a", "b"])
    assert finetune.regression_targets([1, 2.5], "score") == [1.0, 2.5]
    with pytest.raises(ValueError, match="column 'score'.*None"):
        finetune.regression_targets([1.0, None], "score")
    with pytest.raises(ValueError, match="column 'score'.*nan"):
        finetune.regression_targets([float("nan")], "score")


# ------------------------------------------------------------------------------------------------- metrics

def test_multi_label_scores_match_sklearn_on_indicator_rows():
    predicted = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    truth = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1]])
    scorer = evaluate.load(str(METRICS / "classification"))
    micro = scorer.compute(predictions=predicted, references=truth, average="micro")
    assert micro["accuracy"] == pytest.approx(0.5)  # subset accuracy: rows 2 and 4 are wholly right
    assert micro["f1"] == pytest.approx(skm.f1_score(truth, predicted, average="micro"))
    with pytest.raises(ValueError, match="average"):
        scorer.compute(predictions=predicted, references=truth)  # "binary" means nothing for label rows
    # finetune's compute_metrics: a label is predicted where its logit is > 0 (sigmoid > 0.5)
    logits = np.where(predicted == 1, 2.0, -2.0)
    scores = finetune.classification_metrics(False, 3, "multi_label")(EvalPrediction(logits, truth.astype(float)))
    assert scores["accuracy"] == pytest.approx(0.5)
    assert scores["f1_micro"] == pytest.approx(skm.f1_score(truth, predicted, average="micro"))
    assert scores["f1_macro"] == pytest.approx(skm.f1_score(truth, predicted, average="macro"))
    assert scores["precision_micro"] == pytest.approx(skm.precision_score(truth, predicted, average="micro"))
    assert scores["recall_micro"] == pytest.approx(skm.recall_score(truth, predicted, average="micro"))


@pytest.mark.parametrize("classes", [2, 3], ids=["binary", "three-classes"])
def test_single_label_scores_match_sklearn(classes):
    """Binary heads (one logit: positive where > 0) score the positive class; more classes the macro average, so
    that a rare class counts as much as a frequent one (the imbalanced labels here make micro and macro differ)."""
    truth = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2]) % classes
    predicted = np.array([0, 0, 0, 0, 0, 1, 1, 0, 2, 0]) % classes
    if classes == 2:
        logits, average = np.where(predicted == 1, 1.5, -1.5)[:, None], "binary"  # (N, 1)
    else:
        logits, average = np.eye(classes)[predicted] * 2.0 - 1.0, "macro"  # (N, C): the predicted class highest
    scores = finetune.classification_metrics(classes == 2, classes)(EvalPrediction(logits, truth))
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    for name, reference in (("f1", skm.f1_score), ("precision", skm.precision_score), ("recall", skm.recall_score)):
        assert scores[name] == pytest.approx(reference(truth, predicted, average=average)), name
    if classes > 2:
        assert skm.f1_score(truth, predicted, average="micro") != pytest.approx(scores["f1"])  # the case tells


def test_regression_scores_match_sklearn_and_scipy():
    from scipy.stats import pearsonr, spearmanr

    predicted, truth = np.array([[1.0], [2.5], [2.0], [4.0]]), np.array([1.5, 2.0, 3.0, 3.5])
    scores = finetune.classification_metrics(False, 0, "regression")(EvalPrediction(predicted, truth))
    assert scores["mse"] == pytest.approx(skm.mean_squared_error(truth, predicted[:, 0]))
    assert scores["mae"] == pytest.approx(skm.mean_absolute_error(truth, predicted[:, 0]))
    assert scores["pearson"] == pytest.approx(pearsonr(predicted[:, 0], truth)[0])
    assert scores["spearman"] == pytest.approx(spearmanr(predicted[:, 0], truth)[0])
    constant = evaluate.load(str(METRICS / "regression")).compute(predictions=[1.0, 1.0], references=[0.0, 2.0])
    assert constant["mse"] == pytest.approx(1.0) and math.isnan(constant["pearson"])  # undefined, not a warning


# ---------------------------------------------------------------------------------------------- fine-tuning

def test_float_labels_fine_tune_a_regression_head(tmp_path):
    """Before: 40 distinct scores became 40 classes (``id2label`` of values) scored by accuracy."""
    rows = [{"text": t, "label": round(t.count("apple") + 0.1 * i, 2)} for i, t in enumerate(texts(40))]
    metrics = finetune_run(tmp_path, write_jsonl(tmp_path / "scores.jsonl", rows), *SCRATCH_ENCODER)
    config = AutoConfig.from_pretrained(tmp_path)
    assert (config.num_labels, config.problem_type, config.id2label) == (1, "regression", {0: "LABEL_0"})
    assert {"eval_mse", "eval_mae", "eval_pearson", "eval_spearman"} <= set(metrics)
    assert "eval_accuracy" not in metrics
    assert metrics["eval_mse"] == pytest.approx(metrics["eval_loss"], rel=1e-4)  # the loss is the MSE
    assert "eval_mse" in json.loads((tmp_path / "all_results.json").read_text())
    assert "| eval_mse |" in (tmp_path / "README.md").read_text()


def test_list_labels_fine_tune_a_multi_label_head_that_the_pipeline_names(tmp_path):
    """Before: ``TypeError: unhashable type: 'list'``."""
    groups = {"fruit": WORDS[:5], "grain": WORDS[5:9], "veg": WORDS[9:]}
    rows = [{"text": t, "label": [name for name, words in groups.items() if any(w in t.split()[:2] for w in words)]}
            for t in texts(40, seed=1)]
    rows[0]["label"] = []  # a text with none of the labels
    metrics = finetune_run(tmp_path, write_jsonl(tmp_path / "topics.jsonl", rows), *SCRATCH_ENCODER)
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.problem_type == "multi_label_classification"
    assert config.id2label == {0: "fruit", 1: "grain", 2: "veg"} and config.num_labels == 3
    assert {"eval_accuracy", "eval_f1_micro", "eval_f1_macro", "eval_precision_micro", "eval_recall_micro"} <= set(
        metrics)
    scores = pipeline("text-classification", model=str(tmp_path), top_k=None)("apple oat kale")[0]
    assert sorted(s["label"] for s in scores) == ["fruit", "grain", "veg"]
    assert all(0.0 < s["score"] < 1.0 for s in scores)
    assert sum(s["score"] for s in scores) != pytest.approx(1.0)  # a sigmoid per label, not one softmax


@pytest.fixture(scope="module")
def three_class_checkpoint(tmp_path_factory) -> Path:
    """An encoder fine-tuned (briefly) on 3 classes: a checkpoint with a trained 3-way head."""
    folder = tmp_path_factory.mktemp("three-classes")
    rows = [{"text": t, "label": ["fruit", "grain", "veg"][i % 3]} for i, t in enumerate(texts(30, seed=2))]
    finetune_run(folder, write_jsonl(folder / "three.jsonl", rows), *SCRATCH_ENCODER, "--max_steps", "1")
    return folder


def five_class_data(folder: Path) -> str:
    return write_jsonl(folder / "five.jsonl", [{"text": t, "label": f"c{i % 5}"} for i, t in enumerate(texts(30))])


def test_a_head_for_another_label_count_is_replaced_only_when_asked(three_class_checkpoint, tmp_path, capsys):
    """Before: transformers' ``RuntimeError`` with no way to pass ``ignore_mismatched_sizes`` through the script."""
    data = five_class_data(tmp_path)
    start = ["--model_name_or_path", str(three_class_checkpoint)]
    with pytest.raises(ValueError, match="another number of labels.*--ignore_mismatched_sizes true"):
        finetune_run(tmp_path / "refused", data, *start)
    capsys.readouterr()
    finetune_run(tmp_path / "lora", data, *start, "--ignore_mismatched_sizes", "true", "--lora_r", "4")
    # the new 5-way head trains whole (PEFT's modules_to_save), as a head the checkpoint lacked would
    assert "trained whole: classifier" in capsys.readouterr().out
    config = AutoConfig.from_pretrained(tmp_path / "lora")
    assert config.num_labels == 5 and config.id2label[4] == "c4"
    from safetensors.torch import load_file

    adapter = load_file(tmp_path / "lora" / "adapter" / "adapter_model.safetensors")
    assert adapter["base_model.model.classifier.weight"].shape[0] == 5


def test_replaced_head_weights_count_as_new(three_class_checkpoint):
    """The re-initialised head is among ``new_weights`` (the weights that start random): LoRA trains them whole."""
    model_args = SimpleNamespace(model_name_or_path=str(three_class_checkpoint), trust_remote_code=False,
                                 config_overrides=None, from_scratch=False)
    tokenizer = AutoTokenizer.from_pretrained(three_class_checkpoint)
    names = [f"c{i}" for i in range(5)]
    model, new_weights = finetune.build_model(
        model_args, "sequence_classification", tokenizer, "encoder", ignore_mismatched_sizes=True, num_labels=5,
        problem_type="single_label_classification", id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)})
    assert model.classifier.weight.shape[0] == 5
    assert new_weights == ["classifier.bias", "classifier.weight"]  # the pooler and the body load


# ------------------------------------------------------------------------------------------ task and family

def test_each_task_names_the_families_that_have_its_head():
    assert finetune.task_families("token_classification") == ["gpt", "encoder"]
    assert finetune.task_families("translation") == ["seq2seq"]
    assert finetune.task_families("sequence_classification") == ["gpt", "encoder", "seq2seq"]
    assert finetune.task_families("question_answering") == ["gpt", "encoder", "seq2seq"]


def test_token_classification_on_a_seq2seq_checkpoint_fails_before_reading_data(tmp_path):
    """Before: transformers' 'Unrecognized configuration class' (listing ~100 classes) after tokenising."""
    modeling_mini.MiniSeq2SeqConfig().save_pretrained(tmp_path / "seq2seq")
    with pytest.raises(ValueError, match="token_classification' needs the gpt or encoder family.*'seq2seq'"):
        finetune.main(["--task", "token_classification", "--model_name_or_path", str(tmp_path / "seq2seq"),
                       "--train_files", str(tmp_path / "never-read.jsonl"), "--output_dir", str(tmp_path / "out"),
                       *QUICK])


def test_translation_saves_the_generation_lengths_it_evaluates_with(tmp_path):
    """Before: the saved generation config kept max_length 20 whatever length evaluation generated."""
    rows = [{"source": t, "target": t.upper()} for t in texts(24, seed=3)]
    finetune_run(tmp_path, write_jsonl(tmp_path / "pairs.jsonl", rows), "--task", "translation",
                 "--from_scratch", "true", "--family", "seq2seq", "--model_config", "tiny",
                 "--tokenizer_vocab_size", "150", "--max_target_length", "24", "--generation_num_beams", "2",
                 "--max_steps", "1")
    generation = GenerationConfig.from_pretrained(tmp_path)
    assert (generation.max_length, generation.num_beams) == (24, 2)  # --generation_max_length defaults to 24 here


# ------------------------------------------------------------------------------------------ malformed data files

@pytest.mark.parametrize(("name", "content", "message"), [
    ("null-text.jsonl", '{"text": "apple pear", "label": "a"}\n{"text": null, "label": "b"}\n',
     r"column 'text' of the train data has 1 missing value\(s\) .* data row 1"),
    ("null-label.jsonl", '{"text": "apple pear", "label": "a"}\n{"text": "fig", "label": null}\n',
     r"column 'label' of the train data has 1 missing value\(s\) .* data row 1"),
    ("empty-cell.csv", "text,label\napple pear,0\nfig lime,\nkiwi oat,1\n",  # an int column would become floats
     r"column 'label' of the train data has 1 missing value\(s\) .* data row 1"),
    ("mixed.jsonl", '{"text": "apple pear", "label": 1}\n{"text": "fig", "label": "spam"}\n',
     r"column 'label' mixes label types \['int', 'str'\]"),
])
def test_missing_values_and_mixed_label_types_are_named_before_training(tmp_path, name, content, message):
    """A null text or label, an empty CSV cell, or labels that mix integers and strings failed as a raw TypeError
    while tokenising or sorting the label set (an empty cell in a column of class ids even made it regression)."""
    data = tmp_path / name
    data.write_text(content)
    with pytest.raises(ValueError, match=message):
        finetune_run(tmp_path / "out", str(data), "--validation_files", str(data), *SCRATCH_ENCODER)


def test_token_rows_need_one_tag_per_word_and_a_byte_order_mark_is_no_token(tmp_path):
    """Fewer tags than words failed as a bare IndexError while aligning (more were dropped silently); a CoNLL file
    saved with a byte-order mark read its first line as a token '\\ufeff-DOCSTART-'."""
    rows = [{"tokens": ["apple", "pear"], "ner_tags": ["O", "B-FRUIT"]}, {"tokens": ["fig", "lime"], "ner_tags": ["O"]}]
    data = write_jsonl(tmp_path / "ner.jsonl", rows)
    with pytest.raises(ValueError, match=r"row 1 of the train data: token_classification needs 'tokens' as a list "
                                         r"of words .* got list of 2 and list of 1"):
        finetune_run(tmp_path / "out", data, "--validation_files", data, "--task", "token_classification",
                     *SCRATCH_ENCODER)
    sys.path.insert(0, str(ROOT / "train"))
    import common

    conll = tmp_path / "bom.conll"
    conll.write_text("\ufeff-DOCSTART- O\n\napple O\npear B-FRUIT\n", encoding="utf-8")
    assert list(common.conll_rows([str(conll)])) == [{"tokens": ["apple", "pear"], "ner_tags": ["O", "B-FRUIT"]}]


def qa_row(row_id: str, start: int) -> dict:
    context = "apple pear plum fig"
    return {"id": row_id, "question": "which fruit?", "context": context,
            "answers": {"text": ["plum"], "answer_start": [start]}}


@pytest.mark.parametrize(("files", "extra", "message"), [
    ({"train.csv": "text,label\napple,a\npear,b\n", "val.csv": "sentence,label\nfig,a\n"}, (),
     r"the validation data has no column 'text'; its columns are \['label'\]"),
    ({"train.csv": "text,label\napple,a\npear,b\n", "val.csv": "text,label\nfig,a\n",
      "more.csv": "sentence,label\nfig,a\n"}, (),
     r"the data files of a split must have the same columns; .*train\.csv: \['text', 'label'\]; "
     r".*more\.csv: \['sentence', 'label'\]"),
    ({"train.csv": "text,label\n"}, (), r"the train data files \(.*train\.csv\) hold no rows \(a header only\?\)"),
    ({"train.csv": "text,label\napple,a\n"}, (), r"the training data has 1 row\(s\): too few to hold 5.0% of it out"),
    ({"train.csv": "text,label\napple,spam\npear,spam \nfig,ham\n", "val.csv": "text,label\nfig,ham\n"}, (),
     r"column 'label' has labels that differ only by surrounding whitespace, \['spam', 'spam '\]"),
    ({"train.jsonl": '{"text": "apple", "label": "a"}\n{"text": "pear", "label": "b"}\n{"text": 3, "label": "a"}\n',
      "val.jsonl": '{"text": "fig", "label": "a"}\n'}, (),
     r"column 'text' of the train data holds int values, not texts \(the first in data row 2, counting from 0"),
    ({"train.jsonl": json.dumps(qa_row("q0", 11)) + "\n" + json.dumps(qa_row("q1", 12)) + "\n",
      "val.jsonl": json.dumps(qa_row("q2", 11)) + "\n"},
     ("--task", "question_answering", "--max_length", "32"),
     r"row id 'q1' of the train data gives the answer 'plum' at character 12 of its context, which holds 'lum ' "),
])
def test_malformed_data_files_are_named_before_training(tmp_path, files, extra, message):
    """Each failed as a raw error from datasets, scikit-learn or the tokenizer, or trained silently on the wrong thing:
    validation files with other columns (datasets' cast error pointing to Hub configurations), a header-only CSV
    ("Instruction 'train' corresponds to no data"), one row to cut a validation split from (train_test_split),
    labels that differ by a trailing space (two classes), a number in the text column (a TypeError in the tokenizer),
    a SQuAD answer_start that does not point at the answer (another span trained)."""
    paths = {name: tmp_path / name for name in files}
    for name, content in files.items():
        paths[name].write_text(content)
    train, *validation = paths.values()
    with pytest.raises(ValueError, match=message):
        finetune_run(tmp_path / "out", str(train), *(["--validation_files", *map(str, validation)] if validation else
                                                     []), *SCRATCH_ENCODER, *extra)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_validation_files_from_another_corpus_may_carry_more_columns(tmp_path):
    """Another corpus as the held-out set (TICO-19's pairs carry source_id, doc and licence columns beside Tatoeba's)
    failed as datasets' cast error; each split is read on its own and keeps the training files' columns."""
    rows = [{"text": text, "label": "fruit" if "apple" in text else "other"} for text in texts(24)]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    validation = write_jsonl(tmp_path / "validation.jsonl", [{**row, "doc": f"d{i}"} for i, row in enumerate(rows[:8])])
    metrics = finetune_run(tmp_path / "out", train, "--validation_files", validation, *SCRATCH_ENCODER)
    assert "eval_accuracy" in metrics


def test_globs_name_data_files_and_resume_compares_their_matches(tmp_path):
    """A recipe's --train_files glob (no shell expands it) was refused as a file that does not exist; it now reads its
    matches in sorted order, and a resumed run compares those files (a file added to the folder is another data set),
    where a glob string alone would have let changed data through."""
    import common

    for part, words in (("b", "pear fig"), ("a", "apple plum")):
        (tmp_path / f"part-{part}.txt").write_text(words + "\n")
    pattern = str(tmp_path / "part-*.txt")
    assert common.data_files([pattern]) == [str(tmp_path / "part-a.txt"), str(tmp_path / "part-b.txt")]
    splits = common.load_text_splits(train_files=[pattern], evaluation_split=None)
    assert splits["train"]["text"] == ["apple plum", "pear fig"]
    before = common.data_files_identity([pattern])
    assert before == [["part-a.txt", 11], ["part-b.txt", 9]]
    (tmp_path / "part-c.txt").write_text("kiwi\n")
    assert common.data_files_identity([pattern]) != before
    with pytest.raises(ValueError, match=r"data file pattern '.*nothing-\*\.txt' matches no file"):
        common.data_files([str(tmp_path / "nothing-*.txt")])
    with pytest.raises(ValueError, match=r"data file .* is a folder; pass its files, or a glob"):
        common.load_text_splits(train_files=[str(tmp_path)])
    literal = tmp_path / "part[b].txt"  # a file named with glob characters is read as it is named, not as part-b.txt
    literal.write_text("kiwi lime\n")
    assert common.data_files([str(literal)]) == [str(literal)]
    assert common.load_text_splits(train_files=[str(literal)], evaluation_split=None)["train"]["text"] == ["kiwi lime"]


def test_a_tab_separated_conll_token_may_hold_a_space(tmp_path):
    """A line with a tab is split at tabs only: 'New York<TAB>B-LOC' was read as the token 'New' (the tag kept);
    space-separated files (CoNLL-2003) are read as before."""
    import common

    tabs = tmp_path / "tabs.conll"
    tabs.write_text("New York\tB-LOC\nis\tO\n\n")
    spaces = tmp_path / "spaces.conll"
    spaces.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n")
    assert list(common.conll_rows([str(tabs), str(spaces)])) == [
        {"tokens": ["New York", "is"], "ner_tags": ["B-LOC", "O"]},
        {"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}]
