"""The embedded default data (train/embedded_data.py): offline, deterministic, leak-free, real labels, fast."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

TRAIN = Path(__file__).resolve().parents[1] / "train"
sys.path.insert(0, str(TRAIN))

import embedded_data  # noqa: E402


@pytest.fixture(scope="module")
def task():
    return embedded_data.load_default_task()


@pytest.fixture(scope="module")
def corpus():
    return embedded_data.load_default_corpus()


def test_builds_from_scratch_in_under_5_seconds():
    """A fresh interpreter (nothing cached) builds both in < 5 s, and two builds give identical data."""
    code = (
        "import sys, time, hashlib; sys.path.insert(0, sys.argv[1])\n"
        "import embedded_data as e\n"  # imports `datasets` (about a second): not part of the build
        "start = time.perf_counter()\n"
        "task, corpus = e.load_default_task(), e.load_default_corpus()\n"
        "print(time.perf_counter() - start)\n"
        "print(hashlib.sha256(repr([task[s].to_dict() for s in task] + [corpus[s]['text'] for s in corpus])"
        ".encode()).hexdigest())\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code, str(TRAIN)], capture_output=True, text=True, timeout=120,
                           check=True).stdout.split() for _ in range(2)]
    assert min(float(seconds) for seconds, _ in runs) < 5.0
    assert runs[0][1] == runs[1][1], "two builds gave different datasets"


def test_task_shape_and_labels(task):
    assert set(task) == {"train", "test"}
    names = task["train"].features["label"].names
    assert names == ["text", "numbers", "files", "internet", "concurrency"]
    assert task["test"].features == task["train"].features
    assert 800 <= len(task["train"]) <= 2000 and 150 <= len(task["test"]) <= 600
    for split in task.values():
        counts = Counter(split["label"])
        assert set(counts) == set(range(len(names))), "every class appears in every split"
        assert min(counts.values()) >= 0.08 * len(split), f"a class is too rare: {counts}"
        assert max(counts.values()) <= 0.40 * len(split), f"a class dominates: {counts}"
        assert all(len(text) >= embedded_data.MIN_TASK_CHARS for text in split["text"])


def test_task_labels_come_from_the_source_module(task):
    """Labels are real: spot-check that words typical of an area mostly carry that area's label."""
    names = task["train"].features["label"].names
    cues = {"socket": "internet", "thread": "concurrency", "directory": "files", "fraction": "numbers"}
    for word, area in cues.items():
        labels = [names[label] for text, label in zip(task["train"]["text"], task["train"]["label"], strict=True)
                  if word in text.lower()]
        assert len(labels) >= 5 and Counter(labels).most_common(1)[0][0] == area, (word, Counter(labels))


def test_no_text_in_two_splits_and_no_duplicates(task, corpus):
    train, test = list(task["train"]["text"]), list(task["test"]["text"])
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert not set(train) & set(test)
    # Near-duplicates too: no first paragraph (a docstring's summary) is in both splits.
    assert not {text.split("\n")[0] for text in train} & {text.split("\n")[0] for text in test}
    corpus_train, corpus_val = list(corpus["train"]["text"]), list(corpus["validation"]["text"])
    assert not set(corpus_train) & set(corpus_val)
    assert len(set(corpus_train)) == len(corpus_train)
    summary = embedded_data._summary  # and no validation document shares its first paragraph with a training one
    assert not {summary(text) for text in corpus_train} & {summary(text) for text in corpus_val}


def test_constants_bring_no_docstring_of_their_type():
    """``math.pi`` has no docstring of its own: ``inspect.getdoc`` gave ``float``'s, a "numbers" example that
    describes a builtin type, not the module."""
    import inspect
    import math

    docs = embedded_data._builtin_docstrings("math")
    assert inspect.getdoc(float) not in docs and inspect.getdoc(math.sqrt) in docs


def test_corpus_leaves_out_held_out_task_inputs(task, corpus):
    """Pretraining never reads a test input of the task, while it does read the training inputs."""
    everything = " ".join(" ".join(text for split in corpus.values() for text in split["text"]).split())

    def found(texts):
        return sum(text.split("\n")[0] in everything for text in texts) / len(texts)

    assert found(task["test"]["text"]) < 0.02  # only texts that also occur inside another, kept docstring
    assert found(task["train"]["text"]) > 0.9


def test_corpus_size_and_content(corpus):
    assert set(corpus) == {"train", "validation"} and corpus["train"].column_names == ["text"]
    chars = sum(map(len, corpus["train"]["text"]))
    assert 1_000_000 <= chars <= 3_000_000
    assert 0.02 <= len(corpus["validation"]) / (len(corpus["train"]) + len(corpus["validation"])) <= 0.10
    text = "\n".join(corpus["train"]["text"][:200])
    assert "statement" in text and "expression" in text  # the reference-manual topics come first


def test_split_of_a_text_does_not_depend_on_order():
    assert embedded_data._bucket("hello") == embedded_data._bucket("hello")
    assert 0 <= embedded_data._bucket("x" * 1000) < 100
    assert len({embedded_data._bucket(str(i)) for i in range(2000)}) == 100
