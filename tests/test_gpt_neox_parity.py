"""GPT-NeoX (Pythia) parity: a random GPT-NeoX (parallel residual blocks, rotary positions on part of each head,
LayerNorm, biases, Q, K and V fused per head) converted with the users' converter computes the same function."""

import pytest
import torch
from conftest import assert_one_training_step_matches, assert_same_tensors, padded_batch, perturb_norms_and_biases
from test_llama_parity import assert_generates_and_trains_the_same, assert_same_outputs
from transformers import (
    AutoModelForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    GPTNeoXForSequenceClassification,
    GPTNeoXForTokenClassification,
    GPTNeoXModel,
)

from modeling_mini import MiniGPTConfig, MiniGPTForCausalLM
from modeling_mini.convert import from_hf, to_hf

HEADS = [GPTNeoXModel, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification, GPTNeoXForTokenClassification]
RESIDUALS = {"parallel": True, "sequential": False}


def build(cls, **kw):
    """A random GPT-NeoX (Pythia's layout: a quarter of each head rotates) with its norms and biases perturbed."""
    config = GPTNeoXConfig(**{"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                              "intermediate_size": 48, "max_position_embeddings": 64, "rotary_pct": 0.5,
                              "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "num_labels": 3, **kw})
    return perturb_norms_and_biases(cls(config).eval())


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("residual", RESIDUALS)
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_a_left_padded_batch(cls, residual, impl):
    hf = build(cls, use_parallel_residual=RESIDUALS[residual])
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    config = mini.config
    assert (config.parallel_residual, config.partial_rotary_factor) == (RESIDUALS[residual], 0.5)
    assert config._attn_implementation == impl
    ids, mask = padded_batch()
    assert_same_outputs(hf, mini, ids, mask)
    with torch.no_grad():  # not only close: the same operations in the same order
        key = "last_hidden_state" if cls is GPTNeoXModel else "logits"
        real = mask.bool() if cls is not GPTNeoXForSequenceClassification else slice(None)
        assert torch.equal(mini(ids, attention_mask=mask)[key][real], hf(ids, attention_mask=mask)[key][real])


@pytest.mark.parametrize("residual", RESIDUALS)
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("options", [{}, {"tie_word_embeddings": True, "attention_bias": False, "rotary_pct": 1.0}],
                         ids=["pythia", "tied-no-attention-bias-full-rotary"])
def test_round_trip_is_exact(cls, residual, options):
    hf = build(cls, use_parallel_residual=RESIDUALS[residual], **options)
    back = to_hf(from_hf(hf))
    assert type(back) is cls and back.config.use_parallel_residual == RESIDUALS[residual]
    assert_same_tensors(hf, back)


def test_query_key_value_rows_are_regrouped_per_head():
    """GPT-NeoX orders its fused rows per head (q, k, v of head 0, then of head 1, ...), ours all queries, then all
    keys, then all values: head 1's query rows land in our query block, right after head 0's."""
    hf = build(GPTNeoXModel)
    mini = from_hf(hf)
    head_dim, width = 8, 32
    theirs = hf.layers[0].attention.query_key_value.weight  # (H * 3 * Dh, D)
    ours = mini.layers[0].self_attn.qkv_proj.weight  # (3 * H * Dh, D)
    assert torch.equal(ours[head_dim:2 * head_dim], theirs[3 * head_dim:4 * head_dim])  # head 1's queries
    assert torch.equal(ours[width:width + head_dim], theirs[head_dim:2 * head_dim])  # head 0's keys


def test_parallel_blocks_are_needed():
    """The same weights in sequential blocks compute another function: the parallel block is really used."""
    hf = build(GPTNeoXForCausalLM)
    mini = from_hf(hf)
    sequential = MiniGPTForCausalLM(MiniGPTConfig(**{**mini.config.to_dict(), "parallel_residual": False})).eval()
    sequential.load_state_dict(mini.state_dict())
    ids, mask = padded_batch()
    with torch.no_grad():
        assert not torch.allclose(sequential(ids, attention_mask=mask).logits, hf(ids, attention_mask=mask).logits,
                                  atol=1e-3)


@pytest.mark.parametrize("residual", RESIDUALS)
def test_generation_and_a_training_step_match(residual):
    hf = build(GPTNeoXForCausalLM, use_parallel_residual=RESIDUALS[residual])
    assert_generates_and_trains_the_same(hf)


def test_a_sequence_classifier_trains_the_same():
    hf = build(GPTNeoXForSequenceClassification)
    ids, mask = padded_batch()
    batch = dict(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 2, 1]))
    assert_one_training_step_matches(hf, from_hf(hf), batch)


def test_cached_decoding_equals_the_full_forward_and_compiles():
    """The parallel block under a cache, and compiled without graph breaks."""
    mini = from_hf(build(GPTNeoXForCausalLM))
    ids, mask = padded_batch(batch=1)  # left-padded by 3
    ids, mask = torch.cat([ids, ids.roll(1, dims=1)]), torch.cat([mask, torch.ones_like(mask)])
    out = mini.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, return_dict_in_generate=True,
                        output_scores=True)
    full_mask = torch.cat([mask, torch.ones(2, 6, dtype=mask.dtype)], dim=1)
    positions = (full_mask.cumsum(-1) - 1).clamp(min=0)  # as generate numbers a left-padded row
    with torch.no_grad():
        full = mini(out.sequences, attention_mask=full_mask, position_ids=positions).logits
        for step, scores in enumerate(out.scores):
            torch.testing.assert_close(scores, full[:, ids.shape[1] - 1 + step], atol=1e-5, rtol=0)
        compiled = torch.compile(mini, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(ids, attention_mask=mask).logits, mini(ids, attention_mask=mask).logits)


def test_converted_model_saves_and_reloads_through_auto(tmp_path):
    hf = build(GPTNeoXForCausalLM)
    from_hf(hf).save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.parallel_residual
    ids, mask = padded_batch()
    assert_same_outputs(hf, reloaded, ids, mask)


def test_an_activation_without_a_mini_equivalent_names_gpt_neox_s_field_and_the_choices():
    with pytest.raises(ValueError, match=r"GPT-NeoX `hidden_act='quick_gelu'` has no mini equivalent; `hidden_act` "
                                         r"must be one of 'relu', 'gelu', 'gelu_new', 'silu', 'swish'"):
        from_hf(build(GPTNeoXForCausalLM, hidden_act="quick_gelu"))


def test_bad_options_raise():
    with pytest.raises(ValueError, match="parallel_residual.*norm_position='pre'"):
        MiniGPTConfig(parallel_residual=True, norm_position="post")
    with pytest.raises(ValueError, match="parallel_residual.*add_cross_attention=False"):
        MiniGPTConfig(parallel_residual=True, add_cross_attention=True)
    from modeling_mini import MiniSeq2SeqConfig

    with pytest.raises(ValueError, match="parallel_residual=False"):
        MiniSeq2SeqConfig(parallel_residual=True, norm_position="pre")
    with pytest.raises(ValueError, match="`parallel_residual` must be"):
        MiniGPTConfig(parallel_residual="yes")
    mini = from_hf(build(GPTNeoXForCausalLM))
    for field, value, message in [("norm_type", "rmsnorm", "GPT-NeoX needs `norm_type='layernorm'`"),
                                  ("num_key_value_heads", 2, "GPT-NeoX"),
                                  ("attention_output_bias", False, "attention_output_bias=True")]:
        config = MiniGPTConfig(**{**mini.config.to_dict(), field: value})
        with pytest.raises(ValueError, match=message):
            to_hf(MiniGPTForCausalLM(config))
    # partial_rotary_factor back to 1.0: the config itself refuses a factor without rotary positions
    config = MiniGPTConfig(**{**mini.config.to_dict(), "position_embedding_type": "learned",
                              "partial_rotary_factor": 1.0})
    with pytest.raises(ValueError, match="position_embedding_type='rotary'"):
        to_hf(MiniGPTForCausalLM(config))
