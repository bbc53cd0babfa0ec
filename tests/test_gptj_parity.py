"""GPT-J parity: a random GPT-J (parallel blocks reading one norm, no attention biases, rotary positions on the first
``rotary_dim`` features of each head, rotating neighbouring pairs) converted with the users' converter computes the
same function; our rotation pairs the two halves instead, so the converter reorders the query and key rows."""

import pytest
import torch
from conftest import assert_same_tensors, padded_batch, perturb_norms_and_biases
from test_llama_parity import assert_generates_and_trains_the_same, assert_same_outputs
from transformers import GPTJConfig, GPTJForCausalLM, GPTJForSequenceClassification, GPTJModel

from modeling_mini import MiniGPTConfig, MiniGPTForCausalLM, MiniGPTForTokenClassification
from modeling_mini.convert import from_hf, to_hf

HEADS = [GPTJModel, GPTJForCausalLM, GPTJForSequenceClassification]


def build(cls, **kw):
    """A random GPT-J: 4 heads of 8 features, the first ``rotary_dim`` of which rotate (GPT-J-6B: 64 of 256)."""
    config = GPTJConfig(**{"vocab_size": 99, "n_embd": 32, "n_layer": 2, "n_head": 4, "rotary_dim": 4,
                           "n_positions": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
                           "num_labels": 3, **kw})
    return perturb_norms_and_biases(cls(config).eval())


def left_padded():
    ids, mask = padded_batch()
    return ids, mask


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("rotary_dim", [4, 8], ids=["partial", "whole-head"])
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_a_left_padded_batch(cls, rotary_dim, impl):
    hf = build(cls, rotary_dim=rotary_dim)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    assert mini.config.rotary_dim == rotary_dim and mini.config.parallel_shared_norm
    ids, mask = padded_batch(batch=1)  # GPT-J numbers positions from its cache: compare an unpadded row too
    assert_same_outputs(hf, mini, torch.cat([ids[:, 3:], ids[:, 3:]]))


def test_token_type_ids_are_vocabulary_embeddings_as_in_gpt_j():
    hf = build(GPTJForCausalLM)
    mini = from_hf(hf)
    ids = torch.randint(3, 99, (2, 6))
    types = torch.randint(90, 99, ids.shape)
    with torch.no_grad():
        torch.testing.assert_close(mini(ids, token_type_ids=types).logits, hf(ids, token_type_ids=types).logits,
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("options", [{}, {"tie_word_embeddings": True, "rotary_dim": 8}], ids=["gpt-j", "tied-whole"])
def test_round_trip_is_exact(cls, options):
    hf = build(cls, **options)
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_the_query_and_key_rows_are_reordered_and_must_be():
    """Head 1's first query row is GPT-J's; its second is GPT-J's third (feature 2: even features first). Without the
    reordering the same weights compute another function."""
    hf = build(GPTJForCausalLM, initializer_range=0.3)  # attention far from uniform, so positions matter
    mini = from_hf(hf)
    theirs, ours = hf.transformer.h[0].attn.q_proj.weight, mini.model.layers[0].self_attn.qkv_proj.weight
    assert torch.equal(ours[8], theirs[8]) and torch.equal(ours[9], theirs[10]) and torch.equal(ours[10], theirs[9])
    unordered = MiniGPTForCausalLM(mini.config).eval()
    state = mini.state_dict()
    for i, block in enumerate(hf.transformer.h):  # GPT-J's rows as they are
        attn = block.attn
        state[f"model.layers.{i}.self_attn.qkv_proj.weight"] = torch.cat([attn.q_proj.weight, attn.k_proj.weight,
                                                                          attn.v_proj.weight])
    unordered.load_state_dict(state)
    ids = torch.randint(3, 99, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(unordered(ids).logits, hf(ids).logits, atol=1e-3)
        torch.testing.assert_close(mini(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)


def test_generation_and_a_training_step_match():
    assert_generates_and_trains_the_same(build(GPTJForCausalLM))


def test_exports_pick_gptj_or_phi_and_refuse_what_gptj_lacks():
    mini = from_hf(build(GPTJForCausalLM))
    with_biases = MiniGPTConfig(**{**mini.config.to_dict(), "attention_bias": True, "attention_output_bias": True})
    assert type(to_hf(MiniGPTForCausalLM(with_biases))).__name__ == "PhiForCausalLM"
    for field, value, message in [("rope_theta", 500.0, "GPT-J needs `rope_theta=10000.0`"),
                                  ("num_key_value_heads", 2, "GPT-J needs `num_key_value_heads == num_attention_heads"),
                                  ("rotary_scaling", {"rope_type": "linear", "factor": 2.0}, "rotary_scaling=None")]:
        with pytest.raises(ValueError, match=message):
            to_hf(MiniGPTForCausalLM(MiniGPTConfig(**{**mini.config.to_dict(), field: value})))


def test_a_head_gptj_lacks_raises_naming_the_ones_it_has():
    mini = from_hf(build(GPTJForCausalLM))
    with pytest.raises(ValueError, match="GPT-J has no model for MiniGPTForTokenClassification in transformers; the "
                                         "classes that export as GPT-J: MiniGPTModel, MiniGPTForCausalLM"):
        to_hf(MiniGPTForTokenClassification(mini.config))
