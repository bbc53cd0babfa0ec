"""Fine-tune a mini model on a downstream task: sequence classification, token classification, translation or
extractive question answering.

    python train/finetune.py configuration/recipes/finetune-classification.yaml --model_name_or_path outputs/gpt
    python train/finetune.py --task sequence_classification --model_name_or_path user/mini-gpt \\
        --train_files spam.csv --label_column label --output_dir outputs/spam
    python train/finetune.py --task token_classification --model_name_or_path outputs/pretrain-encoder \\
        --train_files ner.jsonl --text_column tokens --label_column ner_tags --output_dir outputs/ner
    python train/finetune.py --task translation --model_name_or_path outputs/pretrain-seq2seq \\
        --train_files pairs.jsonl --text_column pt --label_column en --predict_with_generate true
    python train/finetune.py --task question_answering --model_name_or_path outputs/pretrain-encoder \\
        --train_files squad.jsonl --max_length 384 --doc_stride 128 --output_dir outputs/qa

* sequence_classification (every family; an encoder-decoder reads the text with both stacks, as BART does): one
  label per text. Two classes get ONE sigmoid output (``num_labels=1``,
  ``problem_type="multi_label_classification"``), as spam detection; more classes a softmax. Metrics: accuracy,
  precision, recall, F1 (binary: of the positive class, id 1; multi-class: macro average). As in transformers'
  ``run_classification.py`` (:func:`sequence_label_kind`), a float label column is regression (one output,
  ``problem_type="regression"``, mean squared error; metrics MSE, MAE, Pearson, Spearman), and a column of lists
  (``["sports", "politics"]``) multi-label classification (a sigmoid per label name; metrics exact match, micro
  and macro F1).
* token_classification (gpt, encoder): one BIO tag per word (``tokens`` / ``ner_tags`` columns, tags as strings or a
  ``ClassLabel`` sequence). Only the first sub-word of each word carries the label; the rest are -100.
  Metrics: entity precision / recall / F1 (seqeval).
* translation (seq2seq family): ``Seq2SeqTrainer`` with ``predict_with_generate``; metrics BLEU and chrF. The
  saved generation config generates as evaluation did (``--generation_max_length``, ``--generation_num_beams``).
* question_answering (every family; seq2seq reads the text with both stacks, as BART): extractive, SQuAD-format
  rows (``id``, ``question``, ``context``, ``answers`` = ``{"text": [...], "answer_start": [...]}``; the question
  and answers columns follow --text_column / --label_column), as transformers' ``run_qa.py``. A long context is cut
  into windows of ``--max_length`` tokens overlapping by ``--doc_stride``; a window is trained on the first answer's
  start and end tokens, or on the ``[CLS]`` token (else token 0) when the answer is not inside it. Evaluation picks,
  per question, the best-scoring span over all its windows (:func:`best_answers`). Metrics: SQuAD v1.1 exact match
  and F1 (0-100).

``--from_scratch`` builds the same architecture with random weights (the baseline a pretrained start must beat).
``--lora_r 8`` fine-tunes with LoRA (PEFT) instead of updating every weight; see :func:`add_lora`.
A checkpoint whose task head has another shape (fine-tuned for other labels) is an error unless
``--ignore_mismatched_sizes true`` starts that head anew.
With no data argument, sequence classification uses the embedded downstream task (``embedded_data.py``).
"""

import collections
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    DataCollatorForSeq2Seq,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    Trainer,
    default_data_collator,
    set_seed,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import modeling_mini  # noqa: E402, F401  (registers the Auto classes)

TASKS = ("sequence_classification", "token_classification", "translation", "question_answering")
#: task -> (default input column, default label / target column)
TASK_COLUMNS = {"sequence_classification": ("text", "label"), "token_classification": ("tokens", "ner_tags"),
                "translation": ("source", "target"), "question_answering": ("question", "answers")}
#: question answering: the columns besides the question and the answers (SQuAD's names, fixed)
QA_COLUMNS = ("id", "context")
TASK_AUTO = {"sequence_classification": AutoModelForSequenceClassification,
             "token_classification": AutoModelForTokenClassification, "translation": AutoModelForSeq2SeqLM,
             "question_answering": AutoModelForQuestionAnswering}


@dataclass
class FinetuneArguments:
    """The downstream task."""

    task: str = field(default="sequence_classification", metadata={"help": f"one of {', '.join(TASKS)}"})
    label_column: str | None = field(default=None, metadata={
        "help": "column of the labels: default label (ner_tags for token classification, target for translation)"})
    binary_sigmoid: bool = field(default=True, metadata={
        "help": "two classes: one sigmoid output (spam probability) instead of a 2-way softmax"})
    max_target_length: int = field(default=128, metadata={"help": "translation: tokens per target"})
    doc_stride: int | None = field(default=None, metadata={
        "help": "question answering: tokens shared by consecutive windows of a long context (< max_length; "
                "default max_length // 3, run_qa.py's 128 for 384)"})
    max_answer_length: int = field(default=30, metadata={
        "help": "question answering: the longest answer, in tokens, that evaluation may predict"})
    n_best_size: int = field(default=20, metadata={
        "help": "question answering: start and end candidates per window that evaluation pairs up"})
    ignore_mismatched_sizes: bool = field(default=False, metadata={
        "help": "start anew the checkpoint's weights whose shape differs from the run's model (a task head trained for "
                "another number of labels) instead of stopping with an error, as in transformers' run_glue.py"})
    lora_r: int = field(default=0, metadata={
        "help": "LoRA rank: > 0 freezes the pretrained weights and trains low-rank adapters (PEFT); 0 trains all"})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scale: the update is (lora_alpha / lora_r) B A"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the input of the LoRA update"})
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"], metadata={
        "help": "layers that get adapters: all-linear (every linear layer but the output layer), or names such as "
                "qkv_proj o_proj q_proj kv_proj up_proj gate_proj down_proj"})


#: task -> PEFT task type (it decides how PEFT wraps the model and calls generate)
PEFT_TASK = {"sequence_classification": "SEQ_CLS", "token_classification": "TOKEN_CLS", "translation": "SEQ_2_SEQ_LM",
             "question_answering": "QUESTION_ANS"}


# --------------------------------------------------------------------------------------------------- labels

def text_columns(task: str, text_column: str, label_column: str) -> tuple[str, ...]:
    """The columns of ``task`` that hold one text a row (token classification's words are lists: check_word_rows)."""
    return {"sequence_classification": (text_column,), "token_classification": (),
            "question_answering": (text_column, "context"), "translation": (text_column, label_column)}[task]


def is_class_label(splits, column: str, *, sequence: bool) -> bool:
    """Whether ``column`` is a ``ClassLabel`` feature (a sequence of them for tags): its values are then class ids."""
    first = next(iter(splits.values()))
    feature = first.features[column] if first.features else None
    return hasattr(getattr(feature, "feature", None) if sequence else feature, "names")


def label_names(splits, column: str, *, sequence: bool, tags: bool = False) -> list[str]:
    """Class names from a ``ClassLabel`` feature, else the sorted distinct values (strings or integers) of every
    split: a tag that only the validation split holds (a rare entity type) still gets an id, so it is scored
    as a miss instead of stopping the run. ``sequence``: each row holds a list of labels (a sentence's tags, or a
    multi-label text's labels), and the names are those of the lists' items. ``tags`` (token classification)
    refuses items that are not strings: seqeval reads the entity types from the BIO names. Names that differ only by
    surrounding whitespace (``"spam"`` and ``"spam "`` from a CSV cell) are refused: they would be two classes."""
    if is_class_label(splits, column, sequence=sequence):
        feature = next(iter(splits.values())).features[column]
        return list((feature.feature if sequence else feature).names)
    values = set()
    for split in splits.values():
        values |= {v for row in split[column] for v in row} if sequence else set(split[column])
    if tags and not all(isinstance(v, str) for v in values):
        raise ValueError(f"token_classification needs tags as strings (B-PER, I-PER, O) or a ClassLabel sequence; "
                         f"column {column!r} holds {sorted(values, key=repr)[:5]}.")
    kinds = {type(v).__name__ for v in values}
    if len(kinds) > 1 and not kinds <= {"int", "bool"}:  # sorting would raise a bare TypeError
        raise ValueError(f"column {column!r} mixes label types {sorted(kinds)} (e.g. {sorted(values, key=repr)[:4]}): "
                         "give every label as a string, or every label as an integer class id.")
    stripped = {}
    for value in sorted(v for v in values if isinstance(v, str)):
        stripped.setdefault(value.strip(), []).append(value)
    twins = [names for names in stripped.values() if len(names) > 1]
    if twins:
        raise ValueError(f"column {column!r} has labels that differ only by surrounding whitespace, {twins[0]}: "
                         "each would be a class of its own; strip them in the data files.")
    return [str(v) for v in sorted(values)]


#: how a sequence_classification label column is read (transformers' run_classification.py rules)
LABEL_KINDS = ("single_label", "multi_label", "regression")
FLOAT_DTYPES = ("float16", "float32", "float64")


def sequence_label_kind(splits, column: str) -> str:
    """How :data:`LABEL_KINDS` reads ``column``, as transformers' ``run_glue.py`` / ``run_classification.py`` decide:

    * ``regression``: a float column (feature dtype float16/32/64, as JSON numbers with a fraction, ``2.5``, are
      read) in any split: one output, mean squared error; a class per distinct value would make no sense of it.
    * ``multi_label``: a column of lists (``["sports", "politics"]``, or a ``ClassLabel`` sequence): any number
      of labels per text, one sigmoid per label.
    * ``single_label``: anything else (strings, integers, a ``ClassLabel``): one class per text.

    Integer-valued labels stored as floats (``1.0``, ``2.0``) are regression here too, as in ``run_glue.py``; to
    classify them, write them as integers or strings."""
    features = [split.features[column] for split in splits.values() if split.features]
    if any(getattr(feature, "dtype", None) in FLOAT_DTYPES for feature in features):
        return "regression"
    if any(hasattr(feature, "feature") for feature in features):  # a Sequence / List feature
        return "multi_label"
    return "single_label"


def regression_targets(values, column: str) -> list[float]:
    """Regression labels as floats; ``ValueError`` on a missing (null) or non-finite one, which would make the
    squared error NaN and stop the run later."""
    for value in values:
        if value is None or not np.isfinite(float(value)):
            raise ValueError(f"regression labels must be finite numbers; column {column!r} holds {value!r}.")
    return [float(value) for value in values]


def multi_hot(rows, names: list[str], class_ids: bool = False) -> list[list[float]]:
    """Each row's list of labels as a 0/1 row over ``names`` (floats: the sigmoid heads' binary cross-entropy
    takes them); an empty list is a text with none of the labels."""
    out = []
    for row in rows:
        if row is None:
            raise ValueError(f"a multi-label row must be a list of labels (empty for none), not null; the labels are "
                             f"{names}.")
        vector = [0.0] * len(names)
        for i in label_ids(row, names, class_ids):
            vector[i] = 1.0
        out.append(vector)
    return out


def sequence_classification_head(kind: str, names: list[str], binary: bool) -> dict:
    """The config fields of the head: ``num_labels``, ``problem_type`` and, for classes, ``id2label`` /
    ``label2id`` (the pipeline's label names). Regression gets transformers' default name ``LABEL_0`` for its one
    output, replacing whatever names the checkpoint's head had."""
    if kind == "regression":
        return {"num_labels": 1, "problem_type": "regression", "id2label": {0: "LABEL_0"}, "label2id": {"LABEL_0": 0}}
    if binary:
        return {"num_labels": 1, "problem_type": "multi_label_classification", "id2label": {0: names[1]},
                "label2id": {names[1]: 0}}
    return {"num_labels": len(names),
            "problem_type": "multi_label_classification" if kind == "multi_label" else "single_label_classification",
            "id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def label_ids(values, names: list[str], class_ids: bool = False) -> list[int]:
    """Labels as class ids: values mapped through ``names``; with ``class_ids`` (a ``ClassLabel`` column) the values
    are the ids already and pass through, even where a class's name looks like another id (names "1", "2", "3")."""
    index = {name: i for i, name in enumerate(names)}
    out = []
    for value in values:
        if class_ids and isinstance(value, (int, np.integer)) and 0 <= value < len(names):
            out.append(int(value))
        elif not class_ids and str(value) in index:
            out.append(index[str(value)])
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < len(names):
            out.append(int(value))
        else:
            raise ValueError(f"unknown label {value!r}; the labels are {names}.")
    return out


# ---------------------------------------------------------------------------------------------- preprocessing

def sequence_classification_features(batch, tokenizer, text_column, label_column, names, max_length, binary,
                                     class_ids=False, kind="single_label"):
    """Token ids and labels (class ids; floats for ``binary`` and ``regression``; 0/1 rows for ``multi_label``, see
    :func:`sequence_label_kind`), with the tokenizer's special tokens: GPT classifies from the last token's state,
    and with our tokenizers that is the end token, the same token after every text (GPT-1 adds an extract token
    for the same reason). Measured on the embedded task after the demo's pretraining: a linear probe on the end
    token's state scores 0.62 accuracy, on the last word's 0.47 (random weights: 0.52, 0.37)."""
    encoded = tokenizer(batch[text_column], truncation=True, max_length=max_length)
    values = batch[label_column]
    if kind == "regression":
        encoded["labels"] = regression_targets(values, label_column)
    elif kind == "multi_label":
        encoded["labels"] = multi_hot(values, names, class_ids)
    else:
        ids = label_ids(values, names, class_ids)
        encoded["labels"] = [float(i) for i in ids] if binary else ids
    return encoded


def end_texts_with_eos(tokenizer) -> None:
    """Make ``tokenizer`` end every text with its end token, where it does not already (a GPT's tokenizer leaves a
    prompt open, as GPT-2's). A GPT classifier reads the last token's state, and the end token, the same after every
    text, is the one pretraining taught to sum up a document (:func:`sequence_classification_features`). An
    encoder-decoder needs it on every text, as BART's tokenizer gives it: its classifier pools there, and a
    translation target without it would never teach the model to stop. The template is set on the tokenizer saved
    with the model, so a pipeline's inputs end as the training inputs did. A tokenizer that cannot (no end token, or
    one that is also the pad token and would be pooled over) is left as it is."""
    eos = tokenizer.eos_token_id
    if eos is None or eos == tokenizer.pad_token_id or tokenizer("a")["input_ids"][-1:] == [eos]:
        return
    tokenizer.add_eos_token = True
    if tokenizer("a")["input_ids"][-1:] != [eos]:
        print(f"warning: {type(tokenizer).__name__} does not take add_eos_token; the GPT classifier reads each text's "
              "last token instead of the end token")


def align_word_labels(word_ids: list[int | None], word_labels: list[int]) -> list[int]:
    """Labels per token: the word's label on its first sub-word, -100 on later sub-words and special tokens."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(-100 if word is None or word == previous else word_labels[word])
        previous = word
    return labels


def as_running_text(words: list[str]) -> list[str]:
    """Pre-split words as they stand in running text: every word after the first behind its space. A byte-level BPE
    tokenizer (GPT, seq2seq) marks a word that follows a space (``Ġcat``); given bare words it would learn the tags
    on tokens that running text, what the model reads at inference, never produces. WordPiece drops the space."""
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def check_word_rows(splits, text_column: str, label_column: str) -> None:
    """``ValueError`` naming the split and row where a token-classification row is not a list of words with one tag
    per word: fewer tags failed as a bare ``IndexError`` while aligning, more were dropped silently, and a string of
    words was read letter by letter."""
    for name, split in splits.items():
        for row, (words, tags) in enumerate(zip(split[text_column], split[label_column], strict=True)):
            if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
                raise ValueError(
                    f"row {row} of the {name} data: token_classification needs {text_column!r} as a list of words and "
                    f"{label_column!r} as a list of one tag per word; got {type(words).__name__} of "
                    f"{len(words) if hasattr(words, '__len__') else '?'} and {type(tags).__name__} of "
                    f"{len(tags) if hasattr(tags, '__len__') else '?'}.")


def token_classification_features(batch, tokenizer, text_column, label_column, names, max_length, class_ids=False):
    words = [as_running_text(row) for row in batch[text_column]]
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    encoded["labels"] = [align_word_labels(encoded.word_ids(i), label_ids(tags, names, class_ids))
                         for i, tags in enumerate(batch[label_column])]
    return encoded


def translation_features(batch, tokenizer, source_column, target_column, max_length, max_target_length):
    encoded = tokenizer(batch[source_column], truncation=True, max_length=max_length)
    encoded["labels"] = tokenizer(text_target=batch[target_column], truncation=True,
                                  max_length=max_target_length)["input_ids"]
    return encoded


# -------------------------------------------------------------------------------------- question answering

def check_question_answering(tokenizer, max_length: int, doc_stride: int) -> None:
    """``ValueError`` before any tokenising when windows cannot be built: the offsets that map tokens back to the
    context's characters come only from a fast (Rust) tokenizer, and a stride as long as the window never advances."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"question_answering needs a fast tokenizer (offset mappings); {type(tokenizer).__name__} "
                         "is not one: save it as a PreTrainedTokenizerFast (tokenizer.json).")
    if not 0 <= doc_stride < max_length:
        raise ValueError(f"--doc_stride={doc_stride} must be >= 0 and smaller than --max_length={max_length}: "
                         "consecutive windows share doc_stride tokens (run_qa.py's setting: --max_length 384 "
                         "--doc_stride 128).")


def check_answer_starts(splits, answers_column: str) -> None:
    """``ValueError`` naming the first row (by ``id``) whose answer text is not at its ``answer_start`` in the
    context: the windows are labelled from the start and the text's length, so a shifted start (an offset counted
    in bytes, or after an edit of the context) would silently train another span. SQuAD and XQuAD hold every
    answer where they say; the check reads each answer once."""
    for name, split in splits.items():
        for row in split.select_columns(["id", "context", answers_column]):
            answers = row[answers_column]
            if not isinstance(answers, dict) or not {"text", "answer_start"} <= answers.keys():
                raise ValueError(f"question_answering: column {answers_column!r} must hold SQuAD answers, "
                                 f"{{'text': [...], 'answer_start': [...]}}; row id {row['id']!r} of the {name} data "
                                 f"holds {str(answers)[:80]}.")
            if len(answers["text"]) != len(answers["answer_start"]):
                raise ValueError(f"question_answering: row id {row['id']!r} of the {name} data has "
                                 f"{len(answers['text'])} answer texts but {len(answers['answer_start'])} starts.")
            for text, start in zip(answers["text"], answers["answer_start"], strict=True):
                found = row["context"][start:start + len(text)]
                if found != text:
                    raise ValueError(f"question_answering: row id {row['id']!r} of the {name} data gives the answer "
                                     f"{text!r} at character {start} of its context, which holds {found!r} there: "
                                     "answer_start counts characters of the context, from 0.")


def question_context_windows(batch, tokenizer, question_column: str, max_length: int, doc_stride: int):
    """``[CLS] question [SEP] context [SEP]`` windows (the tokenizer's own pair template), the context cut into
    ``max_length``-token windows that overlap by ``doc_stride`` tokens, each padded to ``max_length`` so that token
    positions do not depend on the batch (nor on the padding side), with each token's character offsets.

    The question comes first: a GPT reads left to right, so every context token has then seen the question."""
    questions = [question.lstrip() for question in batch[question_column]]  # leading spaces only waste tokens
    check_context_room(questions, batch["context"], batch["id"], tokenizer, max_length, doc_stride)
    return tokenizer(questions, batch["context"], truncation="only_second", max_length=max_length, stride=doc_stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")


def check_context_room(questions: list[str], contexts: list[str], ids, tokenizer, max_length: int,
                       doc_stride: int) -> None:
    """``ValueError`` naming the first row whose context must be cut into windows but whose question leaves a window
    no more than ``doc_stride`` tokens of it: the Rust tokenizer would raise a ``PanicException`` (a
    ``BaseException``, past ``except Exception``) there. A row that fits in one window is never cut, so any question
    length is fine for it. Only the contexts of rows whose question leaves too little room are tokenised here (the
    windows tokenise every context anyway)."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    question_lengths = [len(q) for q in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for row, asked in enumerate(question_lengths):
        room = max_length - specials - asked
        if room > doc_stride:
            continue
        given = len(tokenizer(contexts[row], add_special_tokens=False)["input_ids"])
        if asked + given + specials > max_length:
            raise ValueError(f"question_answering: row id {ids[row]!r} has a question of {asked} tokens (+ {specials} "
                             f"special tokens), which leaves {room} tokens of a --max_length={max_length} window for "
                             f"its {given}-token context, not more than --doc_stride={doc_stride}: raise --max_length "
                             "or lower --doc_stride.")


def context_tokens(sequence_ids: list[int | None]) -> tuple[int, int] | None:
    """The first and last token of the context (sequence 1) in a window, or None when the window holds none."""
    inside = [i for i, sequence in enumerate(sequence_ids) if sequence == 1]
    return (inside[0], inside[-1]) if inside else None


def answer_tokens(offsets, sequence_ids, start_char: int, end_char: int) -> tuple[int, int] | None:
    """The window's first and last tokens of the answer at characters ``[start_char, end_char)`` of the context, or
    None when the window's context does not hold all of it (the window is then trained to point at token 0)."""
    span = context_tokens(sequence_ids)
    if span is None:
        return None
    first, last = span
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return None
    start = first
    while start < last and offsets[start + 1][0] <= start_char:
        start += 1
    end = last
    while end > first and offsets[end - 1][1] >= end_char:
        end -= 1
    return start, end


def no_answer_token(input_ids: list[int], tokenizer) -> int:
    """Where a window without the answer points: the ``[CLS]`` token (BERT's convention), else the first token."""
    cls = tokenizer.cls_token_id
    return input_ids.index(cls) if cls is not None and cls in input_ids else 0


def question_answering_features(batch, tokenizer, question_column, answers_column, max_length, doc_stride,
                                for_evaluation=False):
    """Windows of each (question, context) pair with ``start_positions`` / ``end_positions``: the tokens of the first
    gold answer, or both at the ``[CLS]`` token when the window does not contain it (as in ``run_qa.py``).

    ``for_evaluation`` also keeps what turns logits back into text: ``example_id`` (the question each window came
    from) and ``offset_mapping``, None for every token outside the context, so no predicted span can reach into the
    question, the special tokens or the padding."""
    encoded = question_context_windows(batch, tokenizer, question_column, max_length, doc_stride)
    questions = encoded.pop("overflow_to_sample_mapping")
    starts, ends, offsets_kept = [], [], []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        answers, sequence_ids = batch[answers_column][questions[i]], encoded.sequence_ids(i)
        span = None
        if answers["text"]:
            text = answers["text"][0]  # spaces around an answer would put its end on the next word's token
            start_char = answers["answer_start"][0] + len(text) - len(text.lstrip())
            span = answer_tokens(offsets, sequence_ids, start_char, start_char + len(text.strip()))
        if span is None:
            span = (no_answer_token(encoded["input_ids"][i], tokenizer),) * 2
        starts.append(span[0])
        ends.append(span[1])
        offsets_kept.append([offset if sequence == 1 else None for offset, sequence in zip(offsets, sequence_ids,
                                                                                            strict=True)])
    encoded["start_positions"], encoded["end_positions"] = starts, ends
    del encoded["offset_mapping"]
    if for_evaluation:
        encoded["example_id"] = [str(batch["id"][q]) for q in questions]
        encoded["offset_mapping"] = offsets_kept
    return encoded


def candidate_spans(start_logits, end_logits, offsets, n_best_size: int, max_answer_length: int):
    """``(start, end)`` token pairs of one window worth scoring: the ``n_best_size`` highest start and end logits,
    both inside the context (offsets not None), ``end >= start``, at most ``max_answer_length`` tokens long."""
    starts = np.argsort(start_logits)[::-1][:n_best_size]
    ends = np.argsort(end_logits)[::-1][:n_best_size]
    for start in starts:
        for end in ends:
            if start >= len(offsets) or end >= len(offsets) or offsets[start] is None or offsets[end] is None:
                continue
            if end < start or end - start + 1 > max_answer_length:
                continue
            yield int(start), int(end)


def best_answers(examples, features, start_logits, end_logits, n_best_size: int = 20,
                 max_answer_length: int = 30) -> dict[str, str]:
    """Question id -> predicted answer text: the span with the highest ``start + end`` logit over every window of the
    question, cut from its context by the tokens' character offsets ("" when no window has a valid span).

    ``features`` are the evaluation windows (with ``example_id`` and ``offset_mapping``) in the order the logits
    were computed; ``examples`` the questions (``id``, ``context``)."""
    if len(start_logits) != len(features):
        raise ValueError(f"{len(start_logits)} rows of logits for {len(features)} evaluation windows: the logits "
                         "must come from the windows in their order.")
    windows = collections.defaultdict(list)
    for i, example_id in enumerate(features["example_id"]):
        windows[example_id].append(i)
    all_offsets = features["offset_mapping"]
    answers = {}
    for example_id, context in zip(examples["id"], examples["context"], strict=True):
        best, best_score = "", -np.inf
        for i in windows[str(example_id)]:
            for start, end in candidate_spans(start_logits[i], end_logits[i], all_offsets[i], n_best_size,
                                              max_answer_length):
                score = start_logits[i][start] + end_logits[i][end]
                if score > best_score:
                    best_score, best = score, context[all_offsets[i][start][0]:all_offsets[i][end][1]].strip()
        answers[str(example_id)] = best
    return answers


# ------------------------------------------------------------------------------------------------- metrics

def classification_metrics(binary: bool, num_classes: int, kind: str = "single_label"):
    """The ``compute_metrics`` of sequence classification, by :func:`sequence_label_kind`: accuracy, precision,
    recall and F1 of classes (binary: of the positive class; more: macro average); for ``multi_label`` a sigmoid >
    0.5 per label, scored as exact match (``accuracy``: every label of the text right), micro F1 / precision /
    recall and macro F1 (``run_classification.py`` reports micro F1); for ``regression`` MSE, MAE, Pearson and
    Spearman."""
    if kind == "regression":
        return regression_metrics()
    if kind == "multi_label":
        return multi_label_metrics()
    scorer = common.metric("classification")

    def compute(prediction):
        logits, references = head_outputs(prediction)
        if binary:
            predicted = (logits.reshape(-1) > 0).astype(int)
            references = references.reshape(-1).astype(int)
        else:
            predicted = logits.argmax(-1)
        average = "binary" if num_classes == 2 else "macro"
        return scorer.compute(predictions=predicted, references=references, average=average)

    return compute


def head_outputs(prediction):
    """The logits and the labels of an evaluation (a model returning more than its logits gives them first)."""
    logits = prediction.predictions
    return (logits[0] if isinstance(logits, tuple) else logits), prediction.label_ids


def multi_label_metrics():
    """Multi-label scores of 0/1 rows: a label is predicted where its logit is > 0 (sigmoid > 0.5)."""
    scorer = common.metric("classification")

    def compute(prediction):
        logits, references = head_outputs(prediction)
        predicted, references = (logits > 0).astype(int), references.astype(int)
        micro = scorer.compute(predictions=predicted, references=references, average="micro")
        macro = scorer.compute(predictions=predicted, references=references, average="macro")
        return {"accuracy": micro["accuracy"], "f1_micro": micro["f1"], "precision_micro": micro["precision"],
                "recall_micro": micro["recall"], "f1_macro": macro["f1"]}

    return compute


def regression_metrics():
    """MSE, MAE, Pearson and Spearman of the one output against the float labels."""
    scorer = common.metric("regression")

    def compute(prediction):
        predicted, references = head_outputs(prediction)
        return scorer.compute(predictions=predicted.reshape(-1), references=references.reshape(-1))

    return compute


def token_metrics(names: list[str]):
    scorer = common.metric("seqeval")

    def compute(prediction):
        predicted = prediction.predictions.argmax(-1)
        references = prediction.label_ids
        keep = references != -100  # first sub-words only; padding, special tokens and later pieces are -100
        predictions = [[names[p] for p in row[mask]] for row, mask in zip(predicted, keep, strict=True)]
        truths = [[names[t] for t in row[mask]] for row, mask in zip(references, keep, strict=True)]
        scores = scorer.compute(predictions=predictions, references=truths)
        return {k: v for k, v in scores.items() if isinstance(v, (int, float))}

    return compute


def translation_metrics(tokenizer):
    scorer = common.metric("translation")

    def compute(prediction):
        predicted = np.where(prediction.predictions < 0, tokenizer.pad_token_id, prediction.predictions)
        references = np.where(prediction.label_ids < 0, tokenizer.pad_token_id, prediction.label_ids)
        hypotheses = [t.strip() for t in tokenizer.batch_decode(predicted, skip_special_tokens=True)]
        truths = [[t.strip()] for t in tokenizer.batch_decode(references, skip_special_tokens=True)]
        scores = scorer.compute(predictions=hypotheses, references=truths)
        return {"bleu": scores["bleu"], "chrf": scores["chrf"]}

    return compute


def question_answering_metrics(examples, features, answers_column: str, n_best_size: int, max_answer_length: int):
    """SQuAD exact match and F1 of the answers :func:`best_answers` reads from the evaluation windows' logits.

    The Trainer hands over the logits of ``features`` in their order (it concatenates the batches); ``features``
    here still hold the ``example_id`` and ``offset_mapping`` columns the model's forward does not take."""
    scorer = common.metric("squad")

    def compute(prediction):
        start_logits, end_logits = prediction.predictions[:2]
        predicted = best_answers(examples, features, start_logits, end_logits, n_best_size, max_answer_length)
        references = [{"id": str(i), "answers": {"text": a["text"], "answer_start": a["answer_start"]}}
                      for i, a in zip(examples["id"], examples[answers_column], strict=True)]  # other keys dropped
        return scorer.compute(predictions=[{"id": i, "prediction_text": t} for i, t in predicted.items()],
                              references=references)

    return compute


# ------------------------------------------------------------------------------------------------------ model

def build_model(model_args, task: str, tokenizer, family: str, ignore_mismatched_sizes: bool = False,
                **head_options):
    """The task head on the pretrained checkpoint, or the same architecture with random weights.

    Returns ``(model, new_weights)``: the names of the weights that start random: those the checkpoint did not have
    (the new head, and a pooler a language-model checkpoint lacks) and, with ``ignore_mismatched_sizes``, those it
    had in another shape (a fine-tuned head for another number of labels), which are initialised anew.
    """
    auto = TASK_AUTO[task]
    if model_args.model_name_or_path:
        if "id2label" in head_options:  # it sets num_labels; both would warn when the checkpoint had other labels
            head_options = {key: value for key, value in head_options.items() if key != "num_labels"}
        config = AutoConfig.from_pretrained(model_args.model_name_or_path,
                                            trust_remote_code=model_args.trust_remote_code, **head_options)
        if common.family_of(config) != family:
            raise ValueError(f"the checkpoint is a {common.family_of(config)!r} model, not {family!r}.")
        config = common.override_config(config, model_args.config_overrides)
        common.check_vocab_fits(tokenizer, config)
        if model_args.from_scratch:
            model = auto.from_config(config, trust_remote_code=model_args.trust_remote_code)
            return model, [name for name, _ in model.named_parameters()]
        try:
            model, info = auto.from_pretrained(model_args.model_name_or_path, config=config, output_loading_info=True,
                                               trust_remote_code=model_args.trust_remote_code,
                                               ignore_mismatched_sizes=ignore_mismatched_sizes)
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error):
                raise
            raise ValueError(
                f"the checkpoint {model_args.model_name_or_path!r} has weights of another shape than this run's model "
                f"(the report above lists them): usually a task head fine-tuned for another number of labels (this "
                f"run's head has {config.num_labels} outputs). Pass --ignore_mismatched_sizes true to start those "
                "weights anew (they then train, with LoRA too), or fine-tune the checkpoint's base model "
                "instead.") from error
        mismatched = {key for key, *_shapes in info["mismatched_keys"]}
        return model, sorted(set(info["missing_keys"]) | mismatched)
    config = common.build_config(model_args, tokenizer, **head_options)
    model = auto.from_config(config)
    return model, [name for name, _ in model.named_parameters()]


def add_lora(model, task: str, task_args, new_weights: list[str]):
    """LoRA (Hu et al. 2021) through PEFT: the pretrained weights stay frozen and each target linear layer learns a
    low-rank update ``W + (alpha / r) B A`` (``A``: r x in, ``B``: out x r, ``B`` starting at zero, so training starts
    from the pretrained function). The layers the checkpoint did not have (the task head, a new pooler) have nothing
    pretrained to adapt: they train whole, as PEFT's ``modules_to_save``. Returns the ``PeftModel``.
    """
    from peft import LoraConfig, get_peft_model

    new_modules = sorted({name.rsplit(".", 1)[0] for name in new_weights})
    targets = task_args.lora_target_modules
    config = LoraConfig(
        task_type=PEFT_TASK[task], r=task_args.lora_r, lora_alpha=task_args.lora_alpha,
        lora_dropout=task_args.lora_dropout, target_modules="all-linear" if targets == ["all-linear"] else targets,
        modules_to_save=list(new_modules) or None, exclude_modules=list(new_modules) or None)  # PEFT extends them
    peft_model = get_peft_model(model, config)
    trainable, total = peft_model.get_nb_trainable_parameters()
    print(f"LoRA r={task_args.lora_r}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.2f}%); "
          f"trained whole: {', '.join(new_modules) or 'none'}")
    return peft_model


def task_families(task: str) -> list[str]:
    """The families that have ``task``'s head: those whose config class ``modeling_mini`` registered with the task's
    Auto class (token classification: gpt and encoder; translation: seq2seq; the others: every family)."""
    auto = TASK_AUTO[task]  # its config -> model mapping holds the registrations (``modeling_mini._register``)
    return [family for family in common.FAMILIES if common.family_config_class(family) in auto._model_mapping]


def check_task_family(task: str, family: str) -> None:
    """``ValueError`` before any data is read when the model's family has no head for ``task``: transformers' own
    error comes only after tokenising, and lists a hundred other configuration classes."""
    families = task_families(task)
    if family not in families:
        raise ValueError(f"task {task!r} needs the {' or '.join(families)} family; the model is {family!r}.")


class Seq2SeqTrainerScoringEachRowOnce(Seq2SeqTrainer):
    """``Seq2SeqTrainer`` whose evaluation gathers predictions, labels and losses across processes as ``Trainer``'s
    does (``gather_for_metrics``). transformers' sets plain ``accelerator.gather`` in ``evaluate`` and ``predict``,
    which keeps the rows accelerate repeats to even out the last batch over the processes: with 2 processes, 13
    validation rows and batches of 4, the metrics scored 16 rows (chrF 2.51 where one process gives 2.12)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._gather_for_metrics = self.gather_function  # Trainer's: gather_for_metrics, set up for its options

    def evaluation_loop(self, *args, **kwargs):
        self.gather_function = self._gather_for_metrics
        return super().evaluation_loop(*args, **kwargs)


def set_generation_lengths(model, training_args) -> None:
    """Make the saved generation config generate as evaluation did: ``max_length`` = ``--generation_max_length``
    (which defaults to ``--max_target_length``) and ``num_beams`` = ``--generation_num_beams`` when given. Without
    it, ``generate()`` and the pipeline on the saved model would stop at the checkpoint's ``max_length``
    (transformers' default, 20 tokens), shorter than the translations that were scored."""
    config = model.generation_config
    config.max_length = training_args.generation_max_length
    if training_args.generation_num_beams:
        config.num_beams = training_args.generation_num_beams


def resume_settings(task: str, text_column: str, label_column: str, task_args: FinetuneArguments,
                    max_length: int) -> dict:
    """The task's settings a resumed run must keep, beside :func:`common.run_settings`: the task and its columns
    (another task's head may have the same shape, and would resume silently), and what cuts the examples: the target
    length of translation, the window stride of question answering; the two-class head's form (``binary_sigmoid``)
    and LoRA's rank (0 included: a LoRA checkpoint resumed without LoRA failed on a missing weights index), scale and
    target layers (a changed scale trains the saved adapters at another strength, silently).
    Each as the run resolves it, so that a default and the same value given are one setting. LoRA's dropout may
    change, as the model's may."""
    settings = {"task": task, "text_column": text_column, "label_column": label_column, "lora_r": task_args.lora_r}
    if task == "sequence_classification":
        settings["binary_sigmoid"] = task_args.binary_sigmoid
    if task_args.lora_r:
        settings.update(lora_alpha=task_args.lora_alpha, lora_target_modules=sorted(task_args.lora_target_modules))
    if task == "translation":
        settings["max_target_length"] = task_args.max_target_length
    if task == "question_answering":
        settings["doc_stride"] = max_length // 3 if task_args.doc_stride is None else task_args.doc_stride
    return settings


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, task_args, training_args = common.parse_arguments(
        (common.ModelArguments, common.DataArguments, FinetuneArguments, Seq2SeqTrainingArguments), argv)
    task = task_args.task
    common.check_choice("task", task, TASKS)
    common.use_mini_checkpoint(model_args, training_args)  # a transformers checkpoint is converted first
    if model_args.model_name_or_path:
        family = common.family_of(AutoConfig.from_pretrained(model_args.model_name_or_path,
                                                             trust_remote_code=model_args.trust_remote_code))
        model_args.family = family
    else:
        if not model_args.from_scratch:
            raise ValueError("pass --model_name_or_path (a pretrained mini checkpoint: folder or Hub id), or "
                             "--from_scratch with --family and --model_config.")
        family = model_args.family
        common.check_choice("family", family, common.FAMILIES)
    check_task_family(task, family)
    if task_args.lora_r < 0:
        raise ValueError(f"`lora_r` must be an integer >= 0 (0: no LoRA); got {task_args.lora_r}.")
    if task_args.lora_r and model_args.from_scratch:
        raise ValueError("`lora_r` > 0 adapts pretrained weights; with --from_scratch every weight is random: "
                         "drop --lora_r or --from_scratch.")
    if model_args.model_name_or_path and model_args.model_config:
        raise ValueError(f"--model_config={model_args.model_config!r} with --model_name_or_path: the checkpoint fixes "
                         "the architecture (--from_scratch re-initialises the checkpoint's); change options with "
                         "--config_overrides (`--model_config none` clears a recipe's preset), or drop "
                         "--model_name_or_path to build the preset.")
    if data_args.streaming:
        raise ValueError("--streaming is for pretraining: fine-tuning reads its data into memory (the label set is "
                         "taken from every row, and epochs need a length); drop --streaming, or cap the data with "
                         "--max_train_samples.")
    text_column = data_args.text_column or TASK_COLUMNS[task][0]
    label_column = task_args.label_column or TASK_COLUMNS[task][1]
    push = common.take_push_settings(training_args)
    set_seed(training_args.seed)
    resume_from = common.checkpoint_to_resume(training_args)  # a folder or None (``true`` resolved)
    settings = resume_settings(task, text_column, label_column, task_args, data_args.max_length)
    common.check_resume_settings(resume_from, training_args, data_args, **settings)  # before any data is read

    default = None
    if task == "sequence_classification":
        from embedded_data import load_default_task as default
    elif not (data_args.dataset_name or data_args.train_files):
        raise ValueError(f"task {task!r} has no embedded default data: pass --dataset_name or --train_files.")
    raw = common.load_text_splits(
        dataset_name=data_args.dataset_name, dataset_config_name=data_args.dataset_config_name,
        train_files=data_args.train_files, validation_files=data_args.validation_files, text_column=text_column,
        validation_split_percentage=data_args.validation_split_percentage, default=default,
        required_columns=(label_column, *(QA_COLUMNS if task == "question_answering" else ())),
        seed=training_args.seed, text_columns=text_columns(task, text_column, label_column),
        text_sample_by=data_args.text_sample_by)
    full = dict(raw)  # the label set comes from all the data, not from a --max_*_samples slice
    raw["train"] = common.limit(raw["train"], data_args.max_train_samples, training_args.seed)
    raw["validation"] = common.limit(raw["validation"], data_args.max_eval_samples, training_args.seed)

    texts = None
    if not (model_args.tokenizer_name_or_path or model_args.model_name_or_path):
        # translation: the source and the target language (the decoder reads and writes the target)
        columns_read = {"translation": (text_column, label_column),
                        "question_answering": (text_column, "context")}.get(task, (text_column,))
        texts = (" ".join(x) if isinstance(x, list) else x for column in columns_read for x in raw["train"][column])
    tokenizer = common.load_tokenizer(model_args, texts, family=family,
                                      resume_from=resume_from,
                                      training_args=training_args)
    if tokenizer.pad_token is None:
        raise ValueError("the tokenizer has no pad token; fine-tuning pads batches.")
    columns = raw["train"].column_names
    map_options = {"batched": True, "remove_columns": columns, "num_proc": data_args.preprocessing_num_workers}

    if family == "seq2seq" or (family == "gpt" and task == "sequence_classification"):
        end_texts_with_eos(tokenizer)
    if task == "sequence_classification":
        kind = sequence_label_kind(full, label_column)
        names = [] if kind == "regression" else label_names(full, label_column, sequence=kind == "multi_label")
        if kind == "single_label" and len(names) < 2:
            raise ValueError(f"sequence_classification needs at least 2 classes; column {label_column!r} has {names}.")
        if kind == "multi_label" and not names:
            raise ValueError(f"multi-label sequence_classification needs at least 1 label name; every list in "
                             f"column {label_column!r} is empty.")
        binary = kind == "single_label" and len(names) == 2 and task_args.binary_sigmoid
        head = sequence_classification_head(kind, names, binary)
        features = raw.map(sequence_classification_features, fn_kwargs={
            "tokenizer": tokenizer, "text_column": text_column, "label_column": label_column, "names": names,
            "max_length": data_args.max_length, "binary": binary, "kind": kind,
            "class_ids": is_class_label(full, label_column, sequence=kind == "multi_label")},
            desc="tokenising", **map_options)
        collator = DataCollatorWithPadding(tokenizer)
        compute_metrics = classification_metrics(binary, len(names), kind)
        card_task = "sequence-classification"
    elif task == "token_classification":
        check_word_rows(full, text_column, label_column)
        names = label_names(full, label_column, sequence=True, tags=True)
        head = {"num_labels": len(names), "id2label": dict(enumerate(names)),
                "label2id": {n: i for i, n in enumerate(names)}}
        features = raw.map(token_classification_features, fn_kwargs={
            "tokenizer": tokenizer, "text_column": text_column, "label_column": label_column, "names": names,
            "max_length": data_args.max_length, "class_ids": is_class_label(full, label_column, sequence=True)},
            desc="tokenising and aligning labels", **map_options)
        collator = DataCollatorForTokenClassification(tokenizer)
        compute_metrics = token_metrics(names)
        card_task = "token-classification"
    elif task == "question_answering":
        stride = settings["doc_stride"]  # resolved by resume_settings: max_length // 3 unless given
        ids = [str(i) for i in raw["validation"]["id"]]
        if len(set(ids)) != len(ids):  # windows are matched to their question by id
            repeated = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise ValueError(f"question_answering: the validation rows' `id`s must be unique; repeated: {repeated}.")
        check_question_answering(tokenizer, data_args.max_length, stride)
        check_answer_starts(raw, label_column)
        head = {}
        options = {"tokenizer": tokenizer, "question_column": text_column, "answers_column": label_column,
                   "max_length": data_args.max_length, "doc_stride": stride}
        windows = {split: raw[split].map(
            question_answering_features, fn_kwargs={**options, "for_evaluation": split == "validation"},
            desc=f"cutting {split} contexts into windows",
            **{**map_options, "remove_columns": raw[split].column_names}) for split in ("train", "validation")}
        # the model reads the windows without the columns that map its logits back to text; those stay for the metric
        features = {"train": windows["train"],
                    "validation": windows["validation"].remove_columns(["example_id", "offset_mapping"])}
        collator = default_data_collator  # every window is padded to max_length already
        compute_metrics = question_answering_metrics(raw["validation"], windows["validation"], label_column,
                                                     task_args.n_best_size, task_args.max_answer_length)
        card_task = "question-answering"
    else:
        head = {}
        features = raw.map(translation_features, fn_kwargs={
            "tokenizer": tokenizer, "source_column": text_column, "target_column": label_column,
            "max_length": data_args.max_length, "max_target_length": task_args.max_target_length},
            desc="tokenising pairs", **map_options)
        collator = None  # needs the model (decoder_input_ids from labels): built below
        compute_metrics = translation_metrics(tokenizer)
        card_task = "translation"

    model, new_weights = build_model(model_args, task, tokenizer, family,
                                     ignore_mismatched_sizes=task_args.ignore_mismatched_sizes, **head)
    common.check_resume_config(resume_from, model.config)
    common.fit_to_model(tokenizer, model.config, max_length=data_args.max_length,
                        **({"max_target_length": task_args.max_target_length} if task == "translation" else {}))
    if task_args.lora_r:
        model = add_lora(model, task, task_args, new_weights)
    if task == "translation":
        collator = DataCollatorForSeq2Seq(tokenizer, model=model)
        if not training_args.generation_max_length:
            training_args.generation_max_length = task_args.max_target_length
    trainer_class = Seq2SeqTrainerScoringEachRowOnce if task == "translation" else Trainer
    guard = common.NaNGuard()
    use_cache = model.config.use_cache  # the Trainer overwrites it (see common.finish_run)
    use_generate = task == "translation" and training_args.predict_with_generate
    callbacks = [guard, common.RunSettings.of(training_args, data_args, **settings)]
    trainer = trainer_class(model=model, args=training_args, train_dataset=features["train"],
                            eval_dataset=features["validation"], processing_class=tokenizer,
                            data_collator=collator, callbacks=callbacks,
                            compute_metrics=compute_metrics if task != "translation" or use_generate else None)
    result = trainer.train(resume_from_checkpoint=resume_from)
    guard.raise_if_stopped(training_args.output_dir)
    metrics = dict(result.metrics)
    metrics.update(common.final_evaluation(trainer))  # with --bf16_full_eval too, the float32 weights are saved
    if task_args.lora_r:
        # the adapter alone (small; loads onto the pretrained checkpoint with PeftModel.from_pretrained), then the
        # merged model, a plain mini model, as the run's model: it loads, serves and publishes like any other
        if trainer.is_world_process_zero():
            trainer.model.save_pretrained(Path(training_args.output_dir) / "adapter")
        trainer.model = trainer.model.merge_and_unload()
    if task == "translation":
        set_generation_lengths(trainer.model, training_args)
    recipe = common.resolved_recipe(model_args, data_args, task_args, training_args)
    data_name = data_args.dataset_name or (", ".join(data_args.train_files) if data_args.train_files else
                                           "embedded default task (Python standard-library areas)")
    base = None if model_args.from_scratch else getattr(model_args, "converted_from", model_args.model_name_or_path)
    common.finish_run(trainer, tokenizer, recipe=recipe, task=card_task, datasets_used=[data_name],
                      metrics=metrics, base_model=base, push=push, use_cache=use_cache)
    return metrics


if __name__ == "__main__":
    main()
