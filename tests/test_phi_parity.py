"""Phi (Phi-1, Phi-1.5, Phi-2) parity: a random Phi (parallel blocks reading one norm, partial rotary positions,
LayerNorm, an output layer with a bias, optional query-key LayerNorms) converted with the users' converter computes
the same function."""

import pytest
import torch
from conftest import assert_one_training_step_matches, assert_same_tensors, padded_batch, perturb_norms_and_biases
from test_llama_parity import assert_generates_and_trains_the_same, assert_same_outputs
from transformers import (
    AutoModelForCausalLM,
    PhiConfig,
    PhiForCausalLM,
    PhiForSequenceClassification,
    PhiForTokenClassification,
    PhiModel,
)

from modeling_mini import MiniGPTConfig, MiniGPTForCausalLM, MiniGPTForQuestionAnswering
from modeling_mini.convert import from_hf, to_hf

HEADS = [PhiModel, PhiForCausalLM, PhiForSequenceClassification, PhiForTokenClassification]


def build(cls, **kw):
    """A random Phi (Phi-2's layout, smaller: 40% of each head rotates, 2 key/value heads) with its norms and biases
    perturbed, so the map is really tested."""
    config = PhiConfig(**{"vocab_size": 99, "hidden_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4,
                          "num_key_value_heads": 2, "intermediate_size": 48, "max_position_embeddings": 64,
                          "partial_rotary_factor": 0.4, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
                          "num_labels": 3, **kw})
    return perturb_norms_and_biases(cls(config).eval())


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("qk_layernorm", [False, True], ids=["phi-2", "qk-layernorm"])
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_a_left_padded_batch(cls, qk_layernorm, impl):
    hf = build(cls, qk_layernorm=qk_layernorm)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    config = mini.config
    assert config.parallel_residual and config.parallel_shared_norm and config.lm_head_bias
    assert (config.qk_norm, config.partial_rotary_factor, config._attn_implementation) == (qk_layernorm, 0.4, impl)
    ids, mask = padded_batch()
    assert_same_outputs(hf, mini, ids, mask)


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("options", [{}, {"tie_word_embeddings": True, "qk_layernorm": True,
                                          "partial_rotary_factor": 1.0}], ids=["phi-2", "tied-qk-layernorm-full"])
def test_round_trip_is_exact(cls, options):
    hf = build(cls, **options)
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_the_blocks_read_one_norm():
    """Phi's feed-forward reads the attention's norm: a mini block has no norm of its own before the feed-forward,
    and giving it GPT-NeoX's second norm (freshly initialised) changes nothing until that norm trains, while the
    sequential block computes another function."""
    hf = build(PhiForCausalLM)
    mini = from_hf(hf)
    assert mini.model.layers[0].mlp_norm is None
    sequential = MiniGPTForCausalLM(MiniGPTConfig(**{**mini.config.to_dict(), "parallel_residual": False,
                                                     "parallel_shared_norm": False}))
    missing, _ = sequential.load_state_dict(mini.state_dict(), strict=False)
    assert all("mlp_norm" in key for key in missing)
    ids, mask = padded_batch()
    with torch.no_grad():
        assert not torch.allclose(sequential.eval()(ids, attention_mask=mask).logits,
                                  hf(ids, attention_mask=mask).logits, atol=1e-3)


def test_embedding_dropout_travels_apart_from_the_residual_dropout():
    """Phi-2 drops out 10% of its sub-layers' outputs and none of its embeddings."""
    hf = build(PhiForCausalLM, resid_pdrop=0.1, embd_pdrop=0.0)
    mini = from_hf(hf)
    assert (mini.config.hidden_dropout, mini.config.embedding_dropout) == (0.1, 0.0)
    assert mini.model.embeddings.dropout.p == 0.0 and mini.model.layers[0].dropout.p == 0.1
    back = to_hf(mini)
    assert (back.config.resid_pdrop, back.config.embd_pdrop) == (0.1, 0.0)


def test_generation_and_a_training_step_match():
    assert_generates_and_trains_the_same(build(PhiForCausalLM, qk_layernorm=True))


def test_a_sequence_classifier_trains_the_same():
    hf = build(PhiForSequenceClassification)
    ids, mask = padded_batch()
    assert_one_training_step_matches(hf, from_hf(hf), dict(input_ids=ids, attention_mask=mask,
                                                           labels=torch.tensor([0, 2, 1])))


def test_converted_model_saves_reloads_and_compiles(tmp_path):
    hf = build(PhiForCausalLM)
    from_hf(hf).save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.lm_head.bias is not None
    ids, mask = padded_batch()
    assert_same_outputs(hf, reloaded, ids, mask)
    compiled = torch.compile(reloaded, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, attention_mask=mask).logits,
                                   reloaded(ids, attention_mask=mask).logits)


def test_a_causal_lm_without_an_output_bias_exports_with_a_zero_one():
    mini = from_hf(build(PhiForCausalLM))
    config = MiniGPTConfig(**{**mini.config.to_dict(), "lm_head_bias": False})
    unbiased = MiniGPTForCausalLM(config).eval()
    exported = to_hf(unbiased)
    assert isinstance(exported, PhiForCausalLM) and not exported.lm_head.bias.any()
    ids, mask = padded_batch()
    assert_same_outputs(exported, unbiased, ids, mask)


def test_a_head_phi_lacks_raises_naming_the_ones_it_has():
    mini = from_hf(build(PhiForCausalLM))
    with pytest.raises(ValueError, match="Phi has no model for MiniGPTForQuestionAnswering in transformers; the "
                                         "classes that export as Phi: MiniGPTModel, MiniGPTForCausalLM"):
        to_hf(MiniGPTForQuestionAnswering(mini.config))


def test_bad_options_raise():
    with pytest.raises(ValueError, match="parallel_shared_norm=True.*parallel_residual=True"):
        MiniGPTConfig(parallel_shared_norm=True)
    with pytest.raises(ValueError, match="`embedding_dropout` must be a float in"):
        MiniGPTConfig(embedding_dropout=1.5)
    with pytest.raises(ValueError, match="`lm_head_bias` must be True or False"):
        MiniGPTConfig(lm_head_bias="no")
    mini = from_hf(build(PhiForCausalLM))
    for field, value, message in [("norm_type", "rmsnorm", "Phi needs `norm_type='layernorm'`"),
                                  ("mlp_bias", False, "Phi needs `mlp_bias=True`"),
                                  # without attention biases the layout is GPT-J's, whose output projection has none
                                  ("attention_bias", False, "GPT-J needs `attention_output_bias=False`"),
                                  ("head_dim", 20, "head_dim = hidden_size / num_attention_heads")]:
        with pytest.raises(ValueError, match=message):
            to_hf(MiniGPTForCausalLM(MiniGPTConfig(**{**mini.config.to_dict(), field: value})))
    # the options only Phi (and GPT-2, GPT-NeoX) can hold are refused by the other exports
    gpt2_like = dict(position_embedding_type="learned", vocab_size=99, hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=4)
    with pytest.raises(ValueError, match="GPT-2 cannot express `lm_head_bias=True`"):
        to_hf(MiniGPTForCausalLM(MiniGPTConfig(**gpt2_like, lm_head_bias=True)))
    neox_like = dict(gpt2_like, position_embedding_type="rotary", parallel_residual=True)
    with pytest.raises(ValueError, match="GPT-NeoX cannot express `embedding_dropout=0.0`"):
        to_hf(MiniGPTForCausalLM(MiniGPTConfig(**neox_like, embedding_dropout=0.0)))
    from test_modernbert_parity import build as build_modernbert

    from modeling_mini import MiniEncoderConfig, MiniEncoderForMaskedLM, MiniEncoderModel

    bert_like = dict(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
                     position_embedding_type="learned", hidden_dropout=0.1)
    with pytest.raises(ValueError, match=r"BERT cannot express `embedding_dropout=0.0` \(its embeddings drop out"):
        to_hf(MiniEncoderModel(MiniEncoderConfig(**bert_like, embedding_dropout=0.0)))
    modernbert = from_hf(build_modernbert()).config.to_dict()
    with pytest.raises(ValueError, match="ModernBERT cannot express `parallel_residual=True`"):
        to_hf(MiniEncoderForMaskedLM(MiniEncoderConfig(**{**modernbert, "parallel_residual": True})))
