"""Falcon parity: a random Falcon in each of its block layouts (Falcon-7B's parallel block with one norm and one
key/value head, Falcon-40B's with two norms and grouped heads, Falcon-11B's with one norm and grouped heads, the
sequential block) converted with the users' converter computes the same function, and exports back exactly."""

import pytest
import torch
from conftest import assert_one_training_step_matches, assert_same_tensors, padded_batch, perturb_norms_and_biases
from test_llama_parity import assert_same_generation, assert_same_outputs
from transformers import (
    AutoModelForCausalLM,
    FalconConfig,
    FalconForCausalLM,
    FalconForSequenceClassification,
    FalconForTokenClassification,
    FalconModel,
)

from modeling_mini import MiniGPTConfig, MiniGPTForCausalLM
from modeling_mini.convert import from_hf, to_hf

HEADS = [FalconModel, FalconForCausalLM, FalconForSequenceClassification, FalconForTokenClassification]
#: layout -> (Falcon options, what the mini config gets: key/value heads, parallel, shared norm)
LAYOUTS = {
    "falcon-7b": (dict(multi_query=True), (1, True, True)),
    "falcon-40b": (dict(new_decoder_architecture=True, num_kv_heads=2), (2, True, False)),
    "falcon-11b": (dict(new_decoder_architecture=True, num_kv_heads=2, num_ln_in_parallel_attn=1), (2, True, True)),
    "sequential": (dict(parallel_attn=False, multi_query=False), (4, False, False)),
}


def build(cls, layout="falcon-7b", **kw):
    """A random Falcon (4 heads of 8) with its norms perturbed, so the map is really tested."""
    config = FalconConfig(**{"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                             "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
                             "num_labels": 3, **LAYOUTS[layout][0], **kw})
    torch.manual_seed(0)
    return perturb_norms_and_biases(cls(config).eval())


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_a_left_padded_batch(cls, layout, impl):
    hf = build(cls, layout, attn_implementation=impl)  # Falcon picks its attention class when it is built
    assert hf.config._attn_implementation == impl
    mini = from_hf(hf)
    config = mini.config
    assert (config.num_key_value_heads, config.parallel_residual, config.parallel_shared_norm) == LAYOUTS[layout][1]
    assert not (config.attention_bias or config.mlp_bias) and config._attn_implementation == impl
    assert_same_outputs(hf, mini, *padded_batch())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_round_trip_is_exact(cls, layout):
    hf = build(cls, layout)
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)
    for field in ("new_decoder_architecture", "multi_query", "parallel_attn"):
        assert getattr(back.config, field) == getattr(hf.config, field), field


def test_the_grouped_rows_are_regrouped():
    """Falcon-40B's fused projection keeps each group's queries, key and value together; read as ours (all queries
    first) without the regrouping, the model computes something else."""
    hf = build(FalconForCausalLM, "falcon-40b")
    mini = from_hf(hf)
    raw = MiniGPTForCausalLM(mini.config).eval()
    raw.load_state_dict(mini.state_dict())
    with torch.no_grad():
        for block, theirs in zip(raw.model.layers, hf.transformer.h, strict=True):
            block.self_attn.qkv_proj.weight.copy_(theirs.self_attention.query_key_value.weight)
        ids, mask = padded_batch()
        assert not torch.allclose(raw(ids, attention_mask=mask).logits, hf(ids, attention_mask=mask).logits,
                                  atol=1e-3)


@pytest.mark.parametrize("layout", ["falcon-7b", "falcon-40b"])
def test_generation_and_a_training_step_match(layout):
    hf = build(FalconForCausalLM, layout)
    mini = from_hf(hf)
    ids, mask = padded_batch()
    assert_same_generation(hf, mini, ids, mask)
    labels = ids.masked_fill(mask == 0, -100)
    assert_one_training_step_matches(hf, mini, dict(input_ids=ids, attention_mask=mask, labels=labels))


def test_converted_model_saves_reloads_and_compiles(tmp_path):
    hf = build(FalconForCausalLM, "falcon-40b")
    from_hf(hf).save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids, mask = padded_batch()
    assert_same_outputs(hf, reloaded, ids, mask)
    compiled = torch.compile(reloaded, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, attention_mask=mask).logits,
                                   reloaded(ids, attention_mask=mask).logits)


@pytest.mark.parametrize(("options", "match"), [
    ({"alibi": True}, "`alibi=True`"),
    ({"bias": True}, "`bias=True`"),
    ({"new_decoder_architecture": True, "parallel_attn": False}, "`new_decoder_architecture=True` needs"),
    # transformers' Falcon stores it but rotates whole heads
    ({"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}},
     "`partial_rotary_factor=0.5` is read by none of its layers"),
])
def test_falcon_options_without_a_mini_equivalent_raise(options, match):
    with pytest.raises(ValueError, match=match):
        from_hf(build(FalconModel, **options))


def test_exports_refuse_what_falcon_cannot_express():
    options = from_hf(build(FalconForCausalLM)).config.to_dict()
    for changes, message in [({"parallel_residual": False, "parallel_shared_norm": False, "num_key_value_heads": 2},
                              "A sequential Falcon block has one key/value head or one per head"),
                             ({"partial_rotary_factor": 0.5}, "Falcon needs `partial_rotary_factor=1.0`"),
                             ({"embedding_dropout": 0.1}, "Falcon never drops out its embeddings"),
                             ({"norm_position": "sandwich", "parallel_residual": False, "parallel_shared_norm": False},
                              "Falcon needs `norm_position='pre'`"),
                             ({"freeze_padding_row": True}, "Falcon needs `freeze_padding_row=False`")]:
        with pytest.raises(ValueError, match=message):
            to_hf(MiniGPTForCausalLM(MiniGPTConfig(**{**options, **changes})))


def test_a_norm_per_branch_needs_the_new_architecture():
    """The old layout with `num_ln_in_parallel_attn=2` builds two norms but reads `input_layernorm`: transformers cannot
    run it, and the converter said so with a KeyError naming a weight; now a ValueError naming the option."""
    with pytest.raises(ValueError, match="`num_ln_in_parallel_attn=2`.*`new_decoder_architecture=True`"):
        from_hf(build(FalconForCausalLM, num_ln_in_parallel_attn=2))


def test_an_activation_without_an_equivalent_is_named_by_falcons_field():
    with pytest.raises(ValueError, match="Falcon `activation='quick_gelu'`.*`activation` must be one of"):
        from_hf(build(FalconForCausalLM, activation="quick_gelu"))
