"""BLOOM parity: a random BLOOM (ALiBi, a norm on the embeddings, pre-norm LayerNorm blocks with biases, tanh GELU)
converted with the users' converter computes the same function, and exports back exactly."""

import pytest
import torch
from conftest import assert_one_training_step_matches, assert_same_tensors, padded_batch, perturb_norms_and_biases
from test_llama_parity import assert_same_generation, assert_same_outputs
from transformers import (
    AutoModelForCausalLM,
    BloomConfig,
    BloomForCausalLM,
    BloomForSequenceClassification,
    BloomForTokenClassification,
    BloomModel,
)
from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

from modeling_mini import MiniEncoderConfig, MiniGPTConfig, MiniGPTForCausalLM
from modeling_mini.convert import from_hf, to_hf
from modeling_mini.positional import alibi_slopes

HEADS = [BloomModel, BloomForCausalLM, BloomForSequenceClassification, BloomForTokenClassification]


def build(cls, **kw):
    """A random BLOOM (6 heads: not a power of two, so the interleaved slopes are used) with its norms and biases
    perturbed, so the map is really tested."""
    config = BloomConfig(**{"vocab_size": 99, "hidden_size": 48, "n_layer": 2, "n_head": 6, "pad_token_id": 0,
                            "bos_token_id": 1, "eos_token_id": 2, "num_labels": 3, **kw})
    torch.manual_seed(0)
    return perturb_norms_and_biases(cls(config).eval())


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_a_left_padded_batch(cls, impl):
    """transformers' BLOOM has eager attention only; ours runs the same bias in either."""
    hf = build(cls)
    mini = from_hf(hf)
    assert mini.config.position_embedding_type == "alibi" and mini.config._attn_implementation == "sdpa"
    mini.set_attn_implementation(impl)
    assert_same_outputs(hf, mini, *padded_batch())


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_round_trip_is_exact(cls):
    hf = build(cls)
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_slopes_are_blooms_and_the_penalty_grows_with_distance():
    for heads in (1, 4, 6, 8, 12, 16, 71, 112):
        assert torch.equal(alibi_slopes(heads), _get_alibi_slopes(heads, "cpu")), heads
    mini = from_hf(build(BloomModel))
    bias = mini.relative_bias(torch.arange(5)[None], torch.arange(5)[None])[0]  # (H, T, S)
    assert torch.equal(bias[:, torch.arange(5), torch.arange(5)], torch.zeros(6, 5))  # a token's own key: no penalty
    assert (bias[:, 4, :4].diff(dim=-1) > 0).all()  # nearer keys, smaller penalty, in every head
    with torch.no_grad():  # without the bias the model cannot tell order: a permuted prefix gives the same last state
        ids = torch.randint(3, 99, (1, 8))
        shuffled = torch.cat([ids[:, :7][:, torch.randperm(7)], ids[:, 7:]], dim=1)
        assert not torch.allclose(mini(ids).last_hidden_state[0, -1], mini(shuffled).last_hidden_state[0, -1])


@pytest.mark.parametrize(("impl", "left"), [("eager", True), ("sdpa", False)])
def test_generation_and_a_training_step_match(impl, left):
    """Generation on a left-padded batch (where right-padded rows get padding in their middle: the positions count
    the kept tokens, as BLOOM's), and one training step. In a left-padded training batch the pad positions attend to
    nothing, and the label shift makes the last of them predict the first real token: transformers' eager BLOOM then
    spreads that position's attention evenly, which our eager attention does too but sdpa's kernel does not (its
    row normaliser underflows); a right-padded batch, as training collators make, has no such row."""
    hf = build(BloomForCausalLM)
    mini = from_hf(hf)
    mini.set_attn_implementation(impl)
    ids, mask = padded_batch(left=left)
    assert_same_generation(hf, mini, ids, mask)
    labels = ids.masked_fill(mask == 0, -100)
    assert_one_training_step_matches(hf, mini, dict(input_ids=ids, attention_mask=mask, labels=labels))


def test_cached_and_static_cache_decoding_equal_the_full_forward(tmp_path):
    from conftest import generate_with_compiled_static_cache

    hf = build(BloomForCausalLM)
    from_hf(hf).save_pretrained(tmp_path)
    mini = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids, mask = padded_batch()
    assert_same_outputs(hf, mini, ids, mask)
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False)
    dynamic = mini.generate(ids, **kwargs)
    assert torch.equal(generate_with_compiled_static_cache(mini, ids, **kwargs), dynamic)
    full_mask = torch.cat([mask, torch.ones(3, 5, dtype=mask.dtype)], dim=1)
    with torch.no_grad():
        assert torch.equal(mini(dynamic[:, :-1], attention_mask=full_mask).logits[:, -1].argmax(-1), dynamic[:, -1])


def test_a_static_cache_counts_positions_over_kept_tokens_too():
    """With a static cache ``generate`` builds the 4D masks itself; a right-padded prompt then has padding in the middle
    of its row once tokens are appended, which must move no distance (scores as transformers', not only tokens)."""
    hf = build(BloomForCausalLM, initializer_range=0.5)  # larger weights: a wrong distance shows in the scores
    mini = from_hf(hf)
    ids = torch.tensor([[5, 17, 42, 8, 33, 61] + [0] * 12, [7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35,
                                                          37, 39, 41]])
    kwargs = dict(attention_mask=(ids != 0).long(), max_new_tokens=6, do_sample=False, return_dict_in_generate=True,
                  output_scores=True)
    theirs = hf.generate(ids, **kwargs)
    for cache in ("dynamic", "static"):
        ours = mini.generate(ids, cache_implementation=cache, **kwargs)
        assert torch.equal(ours.sequences, theirs.sequences), cache
        torch.testing.assert_close(torch.stack(ours.scores), torch.stack(theirs.scores), atol=1e-4, rtol=0)
    # sdpa and a prompt without padding: generate skips the mask then (sdpa's causal flag would do), and the ALiBi
    # penalty must still find one to sit in (an AttributeError before)
    mini = from_hf(hf, attn_implementation="sdpa").eval()
    theirs = hf.generate(ids[1:], **{**kwargs, "attention_mask": None})
    for cache in ("dynamic", "static"):
        ours = mini.generate(ids[1:], cache_implementation=cache, **{**kwargs, "attention_mask": None})
        assert torch.equal(ours.sequences, theirs.sequences), cache
        torch.testing.assert_close(torch.stack(ours.scores), torch.stack(theirs.scores), atol=1e-4, rtol=0)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="`position_embedding_type='alibi'`.*MiniGPTConfig option"):
        MiniEncoderConfig(position_embedding_type="alibi")
    with pytest.raises(ValueError, match="`position_embedding_type='alibi'` has no sliding-window layers"):
        MiniGPTConfig(position_embedding_type="alibi", sliding_window=4)
    with pytest.raises(ValueError, match="`apply_residual_connection_post_layernorm=True`"):
        from_hf(build(BloomModel, apply_residual_connection_post_layernorm=True))
    with pytest.raises(ValueError, match="`slow_but_exact=True`"):
        from_hf(build(BloomModel, slow_but_exact=True, pretraining_tp=2))
    options = from_hf(build(BloomForCausalLM)).config.to_dict()
    for changes, message in [({"hidden_act": "gelu"}, "BLOOM needs `hidden_act='gelu_new'`"),
                             ({"intermediate_size": 100}, "BLOOM needs `intermediate_size=192`"),
                             ({"embedding_norm": False}, "BLOOM needs `embedding_norm=True`"),
                             ({"embedding_dropout": 0.1}, "BLOOM never drops out its embeddings")]:
        with pytest.raises(ValueError, match=message):
            to_hf(MiniGPTForCausalLM(MiniGPTConfig(**{**options, **changes})))
    mini = from_hf(build(BloomModel))
    mini.set_attn_implementation("flex_attention")
    with pytest.raises(ValueError, match="`position_embedding_type='alibi'` adds a bias.*'eager' or 'sdpa'"):
        mini(torch.randint(3, 99, (1, 4)))


def test_the_alibi_mask_takes_the_hidden_states_dtype_and_opens_dead_rows_for_sdpa():
    """On an H100, a float32 ALiBi mask beside bfloat16 queries made sdpa return NaN everywhere; and a left pad that
    may attend to nothing gets an open row under sdpa (its NaN would reach real tokens), minima under eager."""
    seen = {}
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, attn_mask=None, **kwargs):
        seen.setdefault("mask", attn_mask)
        return original(*args, attn_mask=attn_mask, **kwargs)

    model = MiniGPTForCausalLM(MiniGPTConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                             position_embedding_type="alibi", attn_implementation="sdpa"))
    model = model.to(torch.bfloat16).eval()
    ids, mask = padded_batch()  # row 0 starts with 3 pads
    torch.nn.functional.scaled_dot_product_attention = spy
    try:
        with torch.no_grad():
            model(ids, attention_mask=mask)
    finally:
        torch.nn.functional.scaled_dot_product_attention = original
    assert seen["mask"].dtype == torch.bfloat16
    assert torch.equal(seen["mask"][0, :, :3], torch.zeros_like(seen["mask"][0, :, :3]))  # the pads' rows: open
    assert (seen["mask"][0, :, 3:] == torch.finfo(torch.bfloat16).min).any()  # real rows keep their mask


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_a_user_additive_4d_mask_keeps_its_soft_values_beside_the_alibi_bias(impl):
    """A user's 4D float mask is added to the scores with the ALiBi bias, as eager attention computed by hand does:
    a soft entry (-2.0) lowers a score without masking it (it was masked outright before) and still counts as a key
    in ALiBi's ranks; the dtype's minimum and -inf mask, and move the ranks of the keys after them."""
    model = MiniGPTForCausalLM(MiniGPTConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                             position_embedding_type="alibi", attn_implementation=impl)).eval()
    ids = torch.randint(3, 99, (2, 5), generator=torch.Generator().manual_seed(0))
    low = torch.finfo(torch.float32).min
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    mask = torch.zeros(2, 1, 5, 5).masked_fill(~causal, low)  # (B, 1, T, S)
    mask[0, 0, 3, 1], mask[1, 0, 4, 0] = -2.0, -0.5  # soft
    mask[0, 0, 4, 2], mask[1, 0, 3, 1] = low, float("-inf")  # masked past keys
    seen = {}
    attention = model.model.layers[0].self_attn
    attention.register_forward_hook(lambda m, args, kwargs, out: seen.update(x=args[0] if args else
                                                                             kwargs["hidden_states"], out=out[0]),
                                    with_kwargs=True)
    with torch.no_grad():
        model(ids, attention_mask=mask)
        allowed = mask > low  # (B, 1, T, S)
        ranks = allowed.cumsum(-1)  # each key's number among the keys its query sees
        distance = ranks - ranks[..., -1:]  # (B, 1, T, S): <= 0
        alibi = alibi_slopes(4)[None, :, None, None] * distance  # (B, H, T, S)
        bias = (alibi + mask).masked_fill(~allowed, low)
        query, key, value = (t.view(2, 5, 4, 8).transpose(1, 2) for t in attention.qkv_proj(seen["x"]).chunk(3, -1))
        weights = torch.softmax(query @ key.transpose(-1, -2) * 8**-0.5 + bias, dim=-1)  # (B, H, T, S)
        expected = attention.o_proj((weights @ value).transpose(1, 2).reshape(2, 5, 32))
    torch.testing.assert_close(seen["out"], expected, atol=1e-5, rtol=1e-5)
