"""DistilBERT parity: random DistilBERT models of every head, converted with the users' converter, compute the same
function; a converted sentiment classifier (the `text-classification` pipeline's default model is a DistilBERT) gives
the same scores through the pipeline; exports refuse what DistilBERT cannot hold."""

import pytest
import torch
from conftest import assert_one_training_step_matches, assert_same_tensors, padded_batch, perturb_norms_and_biases
from transformers import (
    AutoModelForSequenceClassification,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForMultipleChoice,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertModel,
    pipeline,
)

from modeling_mini import MiniEncoderConfig, MiniEncoderForSequenceClassification, MiniEncoderModel
from modeling_mini.convert import from_hf, to_hf

HEADS = [DistilBertModel, DistilBertForMaskedLM, DistilBertForSequenceClassification,
         DistilBertForTokenClassification, DistilBertForQuestionAnswering, DistilBertForMultipleChoice]


def hf_config(**kw):
    kw = {"num_labels": 3, "vocab_size": 99, **kw}
    return DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64, pad_token_id=0,
                            **kw)


def build(cls, **kw):
    """A random HF model of ``cls`` with its norms and biases perturbed, so the map is really tested."""
    hf = cls(hf_config(**({"num_labels": 2} if cls is DistilBertForQuestionAnswering else {}), **kw)).eval()
    return perturb_norms_and_biases(hf)


def inputs(cls):
    """A padded batch (right padding, as BERT-style tokenizers pad)."""
    ids, mask = padded_batch(left=False)
    if cls is DistilBertForMultipleChoice:  # (B, C, T): two choices per example
        ids, mask = (x.view(1, 3, -1).expand(2, 3, -1).contiguous() for x in (ids, mask))
    return dict(input_ids=ids, attention_mask=mask)


def assert_outputs_match(hf, mini, batch):
    with torch.no_grad():
        ref, ours = hf(**batch), mini(**batch)
    keys = [k for k in ref.keys() if k != "loss"]
    assert keys
    for key in keys:
        assert ours[key].shape == ref[key].shape, key
        torch.testing.assert_close(ours[key], ref[key], atol=1e-5, rtol=0, msg=key)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_a_padded_batch(cls, impl):
    hf = build(cls)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    assert mini.config._attn_implementation == impl
    assert mini.config.type_vocab_size == 0 and mini.config.pooler_activation == "relu"
    assert_outputs_match(hf, mini, inputs(cls))


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_round_trip_is_exact(cls):
    hf = build(cls)
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_the_classifier_pools_through_a_relu():
    """DistilBERT's `pre_classifier` + ReLU is our pooler with `pooler_activation="relu"`: with BERT's tanh instead,
    the same weights give other logits."""
    hf = build(DistilBertForSequenceClassification)
    mini = from_hf(hf)
    assert mini.model.pooler is not None and mini.config.classifier_dropout == hf.config.seq_classif_dropout
    tanh_config = MiniEncoderConfig(**{**mini.config.to_dict(), "pooler_activation": "tanh"})
    tanh = MiniEncoderForSequenceClassification(tanh_config).eval()
    tanh.load_state_dict(mini.state_dict())
    batch = inputs(DistilBertForSequenceClassification)
    with torch.no_grad():
        assert not torch.allclose(tanh(**batch).logits, hf(**batch).logits, atol=1e-3)


def test_sinusoidal_position_tables_convert_as_learned_positions():
    """`sinusoidal_pos_embds=True` fills the position table with fixed sinusoids; the table travels as it is."""
    hf = build(DistilBertForMaskedLM, sinusoidal_pos_embds=True)
    mini = from_hf(hf)
    assert mini.config.position_embedding_type == "learned"
    assert_outputs_match(hf, mini, inputs(DistilBertForMaskedLM))


@pytest.mark.parametrize(
    ("cls", "labels"),
    [
        (DistilBertForMaskedLM, lambda b: {"labels": torch.where(b["attention_mask"].bool(), b["input_ids"], -100)}),
        (DistilBertForSequenceClassification, lambda b: {"labels": torch.tensor([0, 2, 1])}),
        (DistilBertForTokenClassification,
         lambda b: {"labels": torch.where(b["attention_mask"].bool(), b["input_ids"] % 3, -100)}),
        (DistilBertForQuestionAnswering,
         lambda b: {"start_positions": torch.tensor([1, 2, 50]), "end_positions": torch.tensor([3, 4, 5])}),
        (DistilBertForMultipleChoice, lambda b: {"labels": torch.tensor([2, 0])}),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_losses_match(cls, labels):
    hf = build(cls)
    mini = from_hf(hf)
    batch = inputs(cls)
    batch.update(labels(batch))
    with torch.no_grad():
        torch.testing.assert_close(mini(**batch).loss, hf(**batch).loss, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cls", [DistilBertForMaskedLM, DistilBertForSequenceClassification],
                         ids=lambda c: c.__name__)
def test_a_training_step_changes_the_same_weights_by_the_same_amount(cls):
    """Fine-tuning a converted DistilBERT is fine-tuning DistilBERT (the tied vocabulary projection included)."""
    hf = build(cls, dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    batch = inputs(cls)
    if cls is DistilBertForMaskedLM:
        batch["labels"] = torch.where(batch["attention_mask"].bool(), batch["input_ids"], -100)
    else:
        batch["labels"] = torch.tensor([0, 2, 1])
    assert_one_training_step_matches(hf, from_hf(hf), batch)


def test_exports_refuse_what_distilbert_cannot_hold():
    backbone = from_hf(build(DistilBertModel))
    assert backbone.pooler is None
    with_pooler = MiniEncoderModel(backbone.config, add_pooling_layer=True)
    with pytest.raises(ValueError, match="add_pooling_layer"):
        to_hf(with_pooler)
    classifier = from_hf(build(DistilBertForSequenceClassification))
    classifier.config.pooler_activation = "tanh"
    with pytest.raises(ValueError, match="pooler_activation='relu'"):
        to_hf(classifier)
    classifier.config.pooler_activation = "relu"
    classifier.config.layer_norm_eps = 1e-5
    with pytest.raises(ValueError, match="layer_norm_eps"):
        to_hf(classifier)
    # with segments, the same layout is BERT's, whose pooler applies tanh
    classifier.config.layer_norm_eps = 1e-12
    classifier.config.type_vocab_size = 2
    with pytest.raises(ValueError, match="BERT needs `pooler_activation='tanh'`"):
        to_hf(classifier)
    classifier.config.pooler_activation = "tanh"
    bert = MiniEncoderForSequenceClassification(classifier.config)
    assert isinstance(to_hf(bert), BertForSequenceClassification)


def test_a_converted_sentiment_classifier_scores_the_same_through_the_pipeline(tmp_path, wordpiece_tokenizer):
    """The user flow for `distilbert-base-uncased-finetuned-sst-2-english`: convert, save with the tokenizer, and the
    `text-classification` pipeline gives DistilBERT's labels and probabilities (the tokenizer's all-zero
    `token_type_ids` are accepted: one segment)."""
    labels = {0: "NEGATIVE", 1: "POSITIVE"}
    config = hf_config(vocab_size=len(wordpiece_tokenizer), num_labels=2, id2label=labels,
                       label2id={v: k for k, v in labels.items()})
    hf = perturb_norms_and_biases(DistilBertForSequenceClassification(config))
    from_hf(hf).save_pretrained(tmp_path)
    wordpiece_tokenizer.save_pretrained(tmp_path)
    texts = ["the cat sat on the mat", "a dog ran"]
    ours = pipeline("text-classification", model=str(tmp_path), top_k=None)(texts)
    with torch.no_grad():
        encoded = wordpiece_tokenizer(texts, padding=True, return_tensors="pt")
        probabilities = hf(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits.softmax(-1)
    for row, expected in zip(ours, probabilities, strict=True):
        scores = {item["label"]: item["score"] for item in row}
        assert scores == pytest.approx({labels[i]: p.item() for i, p in enumerate(expected)}, abs=1e-6)


def test_a_text_pair_classifies_as_distilbert_does(tmp_path, wordpiece_tokenizer):
    """transformers 5 reads a DistilBERT tokenizer as BERT's, which gives the second text of a pair segment 1;
    DistilBERT has no segment table and ignores the ids. Before, ours refused them, so text-pair classification and
    `zero-shot-classification` failed on a converted DistilBERT-MNLI."""
    hf = perturb_norms_and_biases(DistilBertForSequenceClassification(hf_config(vocab_size=len(wordpiece_tokenizer))))
    mini = from_hf(hf)
    pair = wordpiece_tokenizer(["the cat sat", "a dog"], ["on the mat", "ran far away"], padding=True,
                               return_tensors="pt")
    assert pair["token_type_ids"].max() == 1
    assert_outputs_match(hf, mini, dict(pair))
    mini.save_pretrained(tmp_path)
    wordpiece_tokenizer.save_pretrained(tmp_path)
    classify = pipeline("text-classification", model=str(tmp_path), top_k=None)
    assert len(classify({"text": "the cat sat", "text_pair": "on the mat"})) == 3


def test_a_converted_masked_lm_fine_tunes_as_distilbert_does(tmp_path):
    """Loaded as a classifier, a converted DistilBERT masked LM gets DistilBERT's new head (a ReLU pooler) on the
    pretrained backbone, and it trains."""
    hf = build(DistilBertForMaskedLM)
    from_hf(hf).save_pretrained(tmp_path)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert isinstance(classifier, MiniEncoderForSequenceClassification)
    assert isinstance(classifier.model.pooler.activation, torch.nn.ReLU)
    torch.testing.assert_close(classifier.model.embeddings.embed_tokens.weight,
                               hf.distilbert.embeddings.word_embeddings.weight)
    batch = {**inputs(DistilBertForSequenceClassification), "labels": torch.tensor([0, 1, 1])}
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = classifier(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
