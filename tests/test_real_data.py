"""Real-data tier on ../shared/data (skipped when it is absent): SMS spam with a tiny encoder reaches spam F1 >= 0.90.

The texts are deduplicated *before* the split (the collection has ~400 exact duplicates, which would otherwise leak
test messages into training); the WordPiece tokenizer is trained on the training split only.
"""

import hashlib
import json
import math
import sys
from pathlib import Path

import evaluate
import numpy as np
import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast, Trainer, TrainingArguments

import modeling_mini

METRICS = Path(__file__).resolve().parents[1] / "train" / "metrics"


def dedup_then_split(rows: list[dict], test_percent: int = 20) -> tuple[list[dict], list[dict]]:
    """One row per distinct text (texts seen with both labels are dropped); the split is a hash of the text."""
    labels: dict[str, set[str]] = {}
    for row in rows:
        labels.setdefault(row["text"], set()).add(row["label"])
    train, test = [], []
    for text, found in labels.items():
        if len(found) != 1:
            continue
        bucket = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 100
        (test if bucket < test_percent else train).append({"text": text, "label": float(found.pop() == "spam")})
    return train, test


def wordpiece_tokenizer(texts: list[str], vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    special_ids = [(name, tok.token_to_id(name)) for name in ("[CLS]", "[SEP]")]
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=special_ids)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def test_dedup_happens_before_the_split():
    rows = [{"text": "win a prize", "label": "spam"}] * 5 + [{"text": f"hi {i}", "label": "ham"} for i in range(50)]
    rows.append({"text": "ambiguous", "label": "ham"})
    rows.append({"text": "ambiguous", "label": "spam"})
    train, test = dedup_then_split(rows)
    texts = [row["text"] for row in train + test]
    assert len(texts) == len(set(texts)) == 51 and "ambiguous" not in texts


@pytest.mark.slow
def test_tiny_encoder_reaches_spam_f1_090_on_sms_spam(shared_data, tmp_path):
    lines = (shared_data / "cls_sms_spam" / "sms_spam.jsonl").read_text(encoding="utf-8").splitlines()
    train_rows, test_rows = dedup_then_split([json.loads(line) for line in lines])
    assert not {r["text"] for r in train_rows} & {r["text"] for r in test_rows}
    assert 3800 < len(train_rows) and 800 < len(test_rows) and sum(r["label"] for r in test_rows) > 80

    tokenizer = wordpiece_tokenizer([row["text"] for row in train_rows])

    def encode(rows):
        data = Dataset.from_list(rows)
        return data.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=64), batched=True,
                        remove_columns=["text"]).rename_column("label", "labels")

    torch.manual_seed(0)
    config = modeling_mini.MiniEncoderConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=128, type_vocab_size=0, hidden_dropout=0.1, attention_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id, num_labels=1, problem_type="multi_label_classification",
    )
    model = modeling_mini.MiniEncoderForSequenceClassification(config)
    # 6 epochs: with 4, spam F1 ranged 0.899-0.928 across seeds and thread counts (once below the bar in CI);
    # with 6 it measured 0.928-0.948 (seeds 0-2, 1 and 2 threads), about 30 s of training.
    args = TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=6, per_device_train_batch_size=32, per_device_eval_batch_size=128,
        learning_rate=2e-3, warmup_steps=20, weight_decay=0.01, lr_scheduler_type="linear", save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=50, seed=0, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=encode(train_rows),
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
    trainer.train()
    logits = trainer.predict(encode(test_rows)).predictions  # (N, 1): the spam logit
    predictions = (np.asarray(logits).reshape(-1) > 0).astype(int)
    references = [int(row["label"]) for row in test_rows]
    scores = evaluate.load(str(METRICS / "classification")).compute(
        predictions=predictions.tolist(), references=references, average="binary", pos_label=1
    )
    print(f"SMS spam held-out ({len(test_rows)} unique texts): {scores}")
    assert scores["f1"] >= 0.90, scores


# ------------------------------------------------------------- smoke runs of train/ on the other real data sets

QUICK = ["--max_steps", "3", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
         "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--use_cpu", "true",
         "--logging_steps", "1", "--max_length", "32", "--max_train_samples", "200", "--max_eval_samples", "16",
         "--tokenizer_vocab_size", "400", "--model_config", "tiny"]
FINETUNE_QUICK = QUICK[:-4]  # the model and its tokenizer come from the checkpoint


def train_scripts():
    """train/pretrain.py and train/finetune.py as modules: their ``main(argv)`` runs in-process."""
    train = Path(__file__).resolve().parents[1] / "train"
    if str(train) not in sys.path:
        sys.path.insert(0, str(train))
    import finetune
    import pretrain

    return pretrain, finetune


_PRETRAINED: dict[str, tuple[Path, dict]] = {}


@pytest.fixture
def shakespeare_gpt(shared_data, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny GPT pretrained for a few steps on Tiny Shakespeare (a local .txt file) by train/pretrain.py.

    Built once per session (function scope only because ``shared_data`` is, so that it skips cleanly)."""
    if "gpt" not in _PRETRAINED:
        pretrain, _ = train_scripts()
        out = tmp_path_factory.mktemp("shakespeare-gpt")
        corpus = str(shared_data / "text_tinyshakespeare" / "input.txt")
        _PRETRAINED["gpt"] = out, pretrain.main(["--family", "gpt", "--train_files", corpus, "--output_dir", str(out),
                                                 "--text_sample_by", "paragraph", *QUICK])
    return _PRETRAINED["gpt"]


@pytest.mark.slow
def test_pretrain_gpt_on_tiny_shakespeare(shakespeare_gpt):
    out, metrics = shakespeare_gpt
    assert math.isfinite(metrics["eval_loss"])
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_conll_files_load_as_tokens_and_tags(tmp_path):
    import common

    path = tmp_path / "x.conll"
    path.write_text("-DOCSTART- O\n\n@paul\tO\nin\tO\nLisbon\tB-location\n\n\nhi NN B-NP O\n", encoding="utf-8")
    assert list(common.conll_rows([str(path)])) == [
        {"tokens": ["@paul", "in", "Lisbon"], "ner_tags": ["O", "O", "B-location"]},
        {"tokens": ["hi"], "ner_tags": ["O"]}]
    path.write_text("lonely\n", encoding="utf-8")
    with pytest.raises(ValueError, match="x.conll:1: a CoNLL line needs a token and a tag"):
        list(common.conll_rows([str(path)]))


@pytest.mark.slow
def test_token_classification_on_wnut17(shared_data, shakespeare_gpt, tmp_path):
    """The CoNLL files go in as they are (``--train_files x.conll``); the label set comes from all of them."""
    import common

    _, finetune = train_scripts()
    folder = shared_data / "ner_wnut17"
    train, dev = str(folder / "wnut17train.conll"), str(folder / "emerging.dev.conll")
    raw = common.load_text_splits(train_files=[train], validation_files=[dev], text_column="tokens")
    assert (len(raw["train"]), len(raw["validation"])) == (3394, 1009)  # the counts in shared/data/README.md
    metrics = finetune.main(["--task", "token_classification", "--model_name_or_path", str(shakespeare_gpt[0]),
                             "--train_files", train, "--validation_files", dev, "--max_train_samples", "150",
                             "--max_eval_samples", "16", "--output_dir", str(tmp_path / "out"), *FINETUNE_QUICK])
    assert {"eval_overall_f1", "eval_loss"} <= set(metrics), sorted(metrics)
    labels = json.loads((tmp_path / "out" / "config.json").read_text())["id2label"].values()
    kinds = ("corporation", "creative-work", "group", "location", "person", "product")
    assert set(labels) == {"O"} | {f"{p}-{kind}" for p in "BI" for kind in kinds}


@pytest.mark.slow
def test_translation_on_portuguese_english(shared_data, tmp_path):
    pretrain, finetune = train_scripts()
    pairs = str(shared_data / "mt_por_eng_tatoeba" / "tatoeba_eng_por.jsonl")
    pretrain.main(["--family", "seq2seq", "--train_files", pairs, "--text_column", "en",
                   "--output_dir", str(tmp_path / "pre"), *QUICK])
    metrics = finetune.main(["--task", "translation", "--model_name_or_path", str(tmp_path / "pre"),
                             "--train_files", pairs, "--text_column", "en", "--label_column", "pt",
                             "--predict_with_generate", "true", "--generation_max_length", "8",
                             "--output_dir", str(tmp_path / "out"),
                             *FINETUNE_QUICK])
    assert {"eval_bleu", "eval_chrf"} <= set(metrics), sorted(metrics)
