"""ELECTRA parity: random ELECTRA models of every head (a factorised embedding, 16 wide under 32-wide layers, and an
unfactorised one), converted with the users' converter, compute the same function; exports refuse what ELECTRA and
the other encoders cannot hold."""

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
    BertForMaskedLM,
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForMultipleChoice,
    ElectraForPreTraining,
    ElectraForQuestionAnswering,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
    ElectraModel,
)

from modeling_mini import MiniEncoderConfig, MiniEncoderForMaskedLM, MiniEncoderModel
from modeling_mini.convert import from_hf, to_hf

HEADS = [ElectraModel, ElectraForMaskedLM, ElectraForSequenceClassification, ElectraForTokenClassification,
         ElectraForQuestionAnswering, ElectraForMultipleChoice]
EMBEDDINGS = {"factorised": 16, "unfactorised": 32}


def hf_config(**kw):
    kw = {"num_labels": 3, "embedding_size": 16, **kw}
    return ElectraConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=37, max_position_embeddings=64, type_vocab_size=3, pad_token_id=0, **kw)


def build(cls, **kw):
    hf = cls(hf_config(**({"num_labels": 2} if cls is ElectraForQuestionAnswering else {}), **kw)).eval()
    return perturb_norms_and_biases(hf)


def inputs(cls):
    ids, mask = padded_batch(left=False)
    token_types = torch.randint(0, 3, ids.shape, generator=torch.Generator().manual_seed(1))
    if cls is ElectraForMultipleChoice:
        ids, mask, token_types = (x.view(1, 3, -1).expand(2, 3, -1).contiguous() for x in (ids, mask, token_types))
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=token_types)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("embedding", EMBEDDINGS)
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_a_padded_batch_with_token_types(cls, embedding, impl):
    hf = build(cls, embedding_size=EMBEDDINGS[embedding])
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    assert mini.config.embedding_size == (16 if embedding == "factorised" else None)
    batch = inputs(cls)
    with torch.no_grad():
        ref, ours = hf(**batch), mini(**batch)
    keys = [k for k in ref.keys() if k != "loss"]
    assert keys
    for key in keys:
        torch.testing.assert_close(ours[key], ref[key], atol=1e-5, rtol=0, msg=key)


@pytest.mark.parametrize("embedding", EMBEDDINGS)
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_round_trip_is_exact(cls, embedding):
    hf = build(cls, embedding_size=EMBEDDINGS[embedding])
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_a_factorised_embedding_stores_fewer_numbers():
    """V x E + E x D (+ the projection's bias) instead of V x D: the tables are E wide, one linear map lifts their
    sum to the layers' width, and the masked-LM head comes back down to E for its tied output layer."""
    config = MiniEncoderConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                               intermediate_size=128, embedding_size=16, type_vocab_size=0,
                               position_embedding_type="rotary")
    model = MiniEncoderForMaskedLM(config)
    embeddings = model.model.embeddings
    assert embeddings.embed_tokens.weight.shape == (1000, 16) and embeddings.project.weight.shape == (64, 16)
    assert sum(p.numel() for p in embeddings.parameters()) == 1000 * 16 + 2 * 16 + 16 * 64 + 64  # tables, norm, map
    assert model.transform.dense.weight.shape == (16, 64) and model.lm_head.weight is embeddings.embed_tokens.weight
    ids = torch.randint(0, 1000, (2, 7))
    assert model(ids).logits.shape == (2, 7, 1000)
    assert MiniEncoderModel(config)(ids).last_hidden_state.shape == (2, 7, 64)


@pytest.mark.parametrize("cls", [ElectraForMaskedLM, ElectraForSequenceClassification], ids=lambda c: c.__name__)
def test_a_training_step_changes_the_same_weights_by_the_same_amount(cls):
    hf = build(cls, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    batch = inputs(cls)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    batch["labels"] = torch.where(mask.bool(), ids, -100) if cls is ElectraForMaskedLM else torch.tensor([0, 2, 1])
    assert_one_training_step_matches(hf, from_hf(hf), batch)


@pytest.mark.parametrize("cls", [ElectraModel, ElectraForSequenceClassification, ElectraForTokenClassification,
                                 ElectraForQuestionAnswering, ElectraForMultipleChoice], ids=lambda c: c.__name__)
def test_another_feed_forward_activation_converts_for_the_heads_without_electra_s_gelu(cls):
    """`hidden_act` is the layers' feed-forward function, ours too. The generator's masked-LM head applies GELU
    whatever it says; the sentence-level heads' GELU is our pooler's `pooler_activation`: every head but the masked-LM
    one converts with any activation we have ('swish': transformers' name for silu), and exports back."""
    hf = build(cls, hidden_act="swish")
    mini = from_hf(hf)
    assert mini.config.hidden_act == "silu"
    batch = inputs(cls)
    with torch.no_grad():
        ref, ours = hf(**batch), mini(**batch)
    for key in [k for k in ref.keys() if k != "loss"]:
        torch.testing.assert_close(ours[key], ref[key], atol=1e-5, rtol=0, msg=key)
    back = to_hf(mini)
    assert type(back) is cls and back.config.hidden_act == "silu"
    assert_same_tensors(hf, back)


def test_a_relative_position_type_converts_as_absolute_as_transformers_computes():
    """Transformers 5's ELECTRA never reads `position_embedding_type`: it adds its absolute position table whatever it
    says. The converter does the same, and the exported config computes the same."""
    hf = build(ElectraForMaskedLM, position_embedding_type="relative_key")
    mini = from_hf(hf)
    assert_absolute_positions_both_ways(hf, mini, to_hf(mini), inputs(ElectraForMaskedLM))


def test_what_does_not_convert_raises():
    with pytest.raises(ValueError, match="ElectraForMaskedLM's head applies GELU.*hidden_act='gelu'.*'relu'"):
        from_hf(ElectraForMaskedLM(hf_config(hidden_act="relu")))
    relu_mlm = MiniEncoderForMaskedLM(from_hf(build(ElectraModel, hidden_act="relu")).config)
    with pytest.raises(ValueError, match="masked-LM head applies GELU.*`hidden_act` must be 'gelu'; got 'relu'"):
        to_hf(relu_mlm)
    with pytest.raises(ValueError, match="ELECTRA `hidden_act='quick_gelu'` has no mini equivalent"):
        from_hf(ElectraModel(hf_config(hidden_act="quick_gelu")))
    with pytest.raises(ValueError, match="summary_type='first'"):
        from_hf(ElectraForMultipleChoice(hf_config(summary_type="mean")))
    with pytest.raises(ValueError, match="Cannot convert ElectraForPreTraining"):
        from_hf(ElectraForPreTraining(hf_config()))  # the discriminator head: convert its ElectraModel instead
    mlm = from_hf(build(ElectraForMaskedLM))
    backbone = MiniEncoderModel(mlm.config, add_pooling_layer=True)
    with pytest.raises(ValueError, match="ElectraModel has no pooler"):
        to_hf(backbone)
    # BERT's layout with a factorised embedding is ELECTRA's; the other encoders refuse one
    bert_like = MiniEncoderConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                  intermediate_size=37, position_embedding_type="learned", embedding_size=16)
    assert type(to_hf(MiniEncoderForMaskedLM(bert_like))).__name__ == "ElectraForMaskedLM"
    from modeling_mini.convert_bert import bert_config_from_mini
    from modeling_mini.convert_distilbert import distilbert_config_from_mini

    with pytest.raises(ValueError, match="BERT cannot express `embedding_size=16`"):
        bert_config_from_mini(bert_like)
    with pytest.raises(ValueError, match="DistilBERT cannot express `embedding_size=16`"):
        distilbert_config_from_mini(MiniEncoderConfig(**{**bert_like.to_dict(), "type_vocab_size": 0}))
    plain = MiniEncoderConfig(**{**bert_like.to_dict(), "embedding_size": None})
    assert isinstance(to_hf(MiniEncoderForMaskedLM(plain)), BertForMaskedLM)
    with pytest.raises(ValueError, match="`embedding_size` must be an integer >= 1"):
        MiniEncoderConfig(embedding_size=0)
