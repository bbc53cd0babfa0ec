"""BERT parity: random BERT models of every head, converted with the users' converter, compute the same function."""

import pytest
import torch
from conftest import (
    assert_absolute_positions_both_ways,
    assert_one_training_step_matches,
    assert_same_tensors,
    padded_batch,
    perturb_norms_and_biases,
)
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

from modeling_mini.convert import from_hf, to_hf

HEADS = [BertModel, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification,
         BertForQuestionAnswering, BertForMultipleChoice]


def hf_config(**kw):
    kw = {"num_labels": 3, **kw}
    return BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                      max_position_embeddings=64, type_vocab_size=3, pad_token_id=0, **kw)


def build(cls, **kw):
    """A random HF model of ``cls`` with its (non-zero) biases and norms perturbed, so the map is really tested."""
    hf = cls(hf_config(**({"num_labels": 2} if cls is BertForQuestionAnswering else {}), **kw)).eval()
    return perturb_norms_and_biases(hf)


def inputs(cls):
    """A padded batch with three segment types (right padding, as BERT tokenizers pad)."""
    ids, mask = padded_batch(left=False)
    token_types = torch.randint(0, 3, ids.shape, generator=torch.Generator().manual_seed(1))
    if cls is BertForMultipleChoice:  # (B, C, T): two choices per example
        ids, mask, token_types = (x.view(1, 3, -1).expand(2, 3, -1).contiguous() for x in (ids, mask, token_types))
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=token_types)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_padded_batch_with_token_types(cls, impl):
    hf = build(cls)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    assert mini.config._attn_implementation == impl
    batch = inputs(cls)
    with torch.no_grad():
        ref, ours = hf(**batch), mini(**batch)
    keys = [k for k in ref.keys() if k != "loss"]
    assert keys
    for key in keys:
        assert ours[key].shape == ref[key].shape, key
        torch.testing.assert_close(ours[key], ref[key], atol=1e-5, rtol=0, msg=key)


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_round_trip_is_exact(cls):
    hf = build(cls)
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_bert_model_without_pooler_round_trips():
    hf = BertModel(hf_config(), add_pooling_layer=False).eval()
    mini = from_hf(hf)
    assert mini.pooler is None
    assert to_hf(mini).pooler is None


@pytest.mark.parametrize(
    ("cls", "labels"),
    [
        (BertForMaskedLM, lambda b: {"labels": torch.where(b["attention_mask"].bool(), b["input_ids"], -100)}),
        (BertForSequenceClassification, lambda b: {"labels": torch.tensor([0, 2, 1])}),
        (BertForTokenClassification,
         lambda b: {"labels": torch.where(b["attention_mask"].bool(), b["input_ids"] % 3, -100)}),
        (BertForQuestionAnswering,
         lambda b: {"start_positions": torch.tensor([1, 2, 50]), "end_positions": torch.tensor([3, 4, 5])}),
        (BertForMultipleChoice, lambda b: {"labels": torch.tensor([2, 0])}),
        (BertForMultipleChoice, lambda b: {"labels": torch.tensor([-100, 1])}),  # an unscored question is not counted
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_losses_match(cls, labels):
    """Same losses as BERT, including QA's clamping of out-of-range positions (50 > T is ignored)."""
    hf = build(cls)
    mini = from_hf(hf)
    batch = inputs(cls)
    batch.update(labels(batch))
    with torch.no_grad():
        torch.testing.assert_close(mini(**batch).loss, hf(**batch).loss, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cls", [BertForMaskedLM, BertForSequenceClassification], ids=lambda c: c.__name__)
def test_a_training_step_changes_the_same_weights_by_the_same_amount(cls):
    """Fine-tuning a converted BERT is fine-tuning BERT (the tied MLM decoder and word embeddings included)."""
    hf = build(cls, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    batch = inputs(cls)
    if cls is BertForMaskedLM:
        batch["labels"] = torch.where(batch["attention_mask"].bool(), batch["input_ids"], -100)
    else:
        batch["labels"] = torch.tensor([0, 2, 1])
    assert_one_training_step_matches(hf, from_hf(hf), batch)


@pytest.mark.parametrize("position_type", ["relative_key", "relative_key_query"])
def test_a_relative_position_type_converts_as_absolute_as_transformers_computes(position_type):
    """Transformers 5's BERT never reads `position_embedding_type` (older configs carry it): it adds its absolute
    position table whatever it says. The converter does the same, and the exported config computes the same."""
    config = hf_config()
    config.position_embedding_type = position_type
    hf = perturb_norms_and_biases(BertForMaskedLM(config).eval())
    mini = from_hf(hf)
    assert_absolute_positions_both_ways(hf, mini, to_hf(mini), inputs(BertForMaskedLM))


def test_an_activation_without_a_mini_equivalent_names_the_field_and_the_choices():
    with pytest.raises(ValueError, match=r"BERT `hidden_act='quick_gelu'` has no mini equivalent.*'relu'.*'swish'"):
        from_hf(BertModel(hf_config(hidden_act="quick_gelu")))


def test_unsupported_options_raise():
    with pytest.raises(ValueError, match="is_decoder"):
        from_hf(BertModel(hf_config(is_decoder=True)))
    with pytest.raises(ValueError, match="num_labels=2"):
        from_hf(BertForQuestionAnswering(hf_config(num_labels=3)))
    mini = from_hf(BertForMaskedLM(hf_config()))
    mini.config.norm_position = "pre"
    with pytest.raises(ValueError, match="norm_position"):
        to_hf(mini)
    mini.config.norm_position = "post"
    mini.config.position_embedding_type = "sinusoidal"
    with pytest.raises(ValueError, match="position_embedding_type"):
        to_hf(mini)
    mini.config.position_embedding_type = "learned"
    mini.config.attention_softcap = 30.0  # BERT's scores are never capped: the export would compute another function
    with pytest.raises(ValueError, match="BERT cannot express `attention_softcap=30.0`"):
        to_hf(mini)


def test_converted_checkpoint_saves_and_reloads_through_auto(tmp_path):
    """The user flow: BERT -> from_hf -> save_pretrained -> AutoModelForMaskedLM, still equal to BERT."""
    from transformers import AutoModelForMaskedLM

    hf = build(BertForMaskedLM)
    from_hf(hf).save_pretrained(tmp_path)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    batch = inputs(BertForMaskedLM)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, hf(**batch).logits, atol=1e-5, rtol=0)
