"""OPT parity: a random OPT (learned positions from row 2, counted by the attention mask; ReLU; pre-norm, or post-norm
with a narrower token table as OPT-350M) converted with the users' converter computes the same function."""

import pytest
import torch
from conftest import assert_one_training_step_matches, assert_same_tensors, padded_batch, perturb_norms_and_biases
from test_llama_parity import assert_same_generation, assert_same_outputs
from transformers import (
    AutoModelForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    OPTForQuestionAnswering,
    OPTForSequenceClassification,
    OPTModel,
)

from modeling_mini import MiniGPTConfig, MiniGPTForCausalLM, MiniGPTForTokenClassification
from modeling_mini.convert import from_hf, to_hf

HEADS = [OPTModel, OPTForCausalLM, OPTForSequenceClassification, OPTForQuestionAnswering]
#: OPT-350M: post-norm, and a 512-wide token table for 1024-wide layers (here 16 for 32)
OPT_350M = {"do_layer_norm_before": False, "word_embed_proj_dim": 16}
LAYOUTS = {"opt-125m": {}, "opt-350m": OPT_350M, "post-norm": {"do_layer_norm_before": False},
           "narrow-table, pre-norm": {"word_embed_proj_dim": 16},
           "no-biases": {"enable_bias": False}, "no-final-norm": {"_remove_final_layer_norm": True}}


def build(cls, **kw):
    """A random OPT (OPT-125M's layout, smaller) with its norms and biases perturbed, so the map is really tested;
    OPT's pad token is 1. No dropout, so that training steps can be compared."""
    config = OPTConfig(**{"vocab_size": 99, "hidden_size": 32, "word_embed_proj_dim": 32, "num_hidden_layers": 2,
                          "num_attention_heads": 4, "ffn_dim": 48, "max_position_embeddings": 64, "pad_token_id": 1,
                          "bos_token_id": 2, "eos_token_id": 2, "num_labels": 3, "dropout": 0.0, **kw})
    return perturb_norms_and_biases(cls(config).eval())


def opt_batch(**kw):
    """``padded_batch`` with OPT's pad token."""
    return padded_batch(pad=1, **kw)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_a_left_padded_batch(cls, layout, impl):
    """Without position ids, as a user calls the model: both number the tokens the mask keeps from 0."""
    hf = build(cls, **LAYOUTS[layout])
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    config = mini.config
    assert (config.position_offset, config.pad_aware_positions, config.hidden_act) == (2, True, "relu")
    assert config.max_position_embeddings == 66 and config._attn_implementation == impl
    assert_same_outputs(hf, mini, *opt_batch())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_round_trip_is_exact(cls, layout):
    hf = build(cls, **LAYOUTS[layout])
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_opt_350m_narrow_token_table():
    """OPT-350M's token table is narrower than its layers: each lookup is projected up before the positions (which
    are as wide as the layers) are added, and the last hidden states back down, which the tied head and the
    classifiers read. Every hidden state matches, so does the parameter count, and the head stays tied."""
    hf = build(OPTModel, **OPT_350M)
    mini = from_hf(hf)
    config = mini.config
    assert (config.token_embedding_size, config.output_size, config.norm_position, config.final_norm) == \
        (16, 16, "post", False)
    assert mini.embeddings.embed_tokens.weight.shape == (99, 16)
    assert mini.embeddings.embed_positions.weight.shape == (66, 32)
    assert sum(p.numel() for p in mini.parameters()) == sum(p.numel() for p in hf.parameters())
    ids, mask = opt_batch()
    with torch.no_grad():
        theirs = hf(ids, attention_mask=mask, output_hidden_states=True)
        ours = mini(ids, attention_mask=mask, output_hidden_states=True)
    assert ours.last_hidden_state.shape[-1] == 16
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 3
    for mine, their in zip(ours.hidden_states, theirs.hidden_states, strict=True):
        torch.testing.assert_close(mine[mask.bool()], their[mask.bool()], atol=1e-5, rtol=0)
    lm = from_hf(build(OPTForCausalLM, **OPT_350M))
    assert lm.lm_head.weight is lm.model.embeddings.embed_tokens.weight
    lm.resize_token_embeddings(104, mean_resizing=False)
    assert lm.lm_head.weight.shape == (104, 16) and lm.lm_head.weight is lm.model.embeddings.embed_tokens.weight
    with pytest.raises(ValueError, match="`token_embedding_size` must be an integer >= 1"):
        MiniGPTConfig(token_embedding_size=0)
    with pytest.raises(ValueError, match="GPT-2 cannot express `token_embedding_size=16`"):
        to_hf(MiniGPTForCausalLM(MiniGPTConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                                               num_attention_heads=4, position_embedding_type="learned",
                                               token_embedding_size=16)))


def test_positions_count_the_kept_tokens_and_matter():
    """A left-padded prompt gets the positions it has alone (its outputs equal the unpadded row's), so the 2 pad rows
    change nothing; counting every token instead (GPT-2's way) gives other outputs, as does a table read from row 0."""
    hf = build(OPTForCausalLM)
    mini = from_hf(hf)
    ids, mask = opt_batch()
    with torch.no_grad():
        padded = mini(ids, attention_mask=mask).logits[0, 3:]
        alone = mini(ids[:1, 3:]).logits[0]
        torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
        for field, value in [("pad_aware_positions", False), ("position_offset", 0)]:
            options = {**mini.config.to_dict(), field: value, **({"pad_aware_positions": False} if value == 0 else {})}
            other = MiniGPTForCausalLM(MiniGPTConfig(**options)).eval()
            other.load_state_dict(mini.state_dict())
            assert not torch.allclose(other(ids, attention_mask=mask).logits[0, 3:], padded, atol=1e-3), field


def test_given_position_ids_count_from_zero_as_in_opt():
    """``generate``'s position ids (pads at 1) are shifted by the offset, as OPT shifts them."""
    hf = build(OPTForCausalLM)
    mini = from_hf(hf)
    ids, mask = opt_batch()
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    with torch.no_grad():
        theirs = hf(ids, attention_mask=mask, position_ids=positions).logits
        ours = mini(ids, attention_mask=mask, position_ids=positions).logits
    torch.testing.assert_close(ours[mask.bool()], theirs[mask.bool()], atol=1e-5, rtol=0)


def test_cached_decoding_continues_the_positions_of_the_kept_tokens():
    """A hand-written decoding loop (no position ids) numbers the new token after the prompt's kept tokens."""
    mini = from_hf(build(OPTForCausalLM))
    ids, mask = opt_batch()
    nxt = torch.tensor([[5], [6], [7]])
    full_ids, full_mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
    with torch.no_grad():
        past = mini(ids, attention_mask=mask, use_cache=True).cache
        step = mini(nxt, attention_mask=full_mask, cache=past).logits[:, -1]
        full = mini(full_ids, attention_mask=full_mask).logits[:, -1]
    torch.testing.assert_close(step, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", ["opt-125m", "opt-350m"])
def test_generation_and_a_training_step_match(layout):
    hf = build(OPTForCausalLM, **LAYOUTS[layout])
    mini = from_hf(hf)
    ids, mask = opt_batch()
    assert_same_generation(hf, mini, ids, mask)
    labels = ids.masked_fill(mask == 0, -100)
    assert_one_training_step_matches(hf, mini, dict(input_ids=ids, attention_mask=mask, labels=labels))


def test_dropout_sits_where_opt_has_it():
    """OPT drops out its sub-layers' outputs and attention weights, never its embeddings."""
    hf = build(OPTForCausalLM, dropout=0.1, attention_dropout=0.05, activation_dropout=0.3)
    mini = from_hf(hf)
    config = mini.config
    assert (config.hidden_dropout, config.attention_dropout, config.embedding_dropout) == (0.1, 0.05, 0.0)
    assert config.activation_dropout == 0.0  # OPT's own is read by no layer
    assert mini.model.embeddings.dropout.p == 0.0
    back = to_hf(mini)
    assert (back.config.dropout, back.config.attention_dropout) == (0.1, 0.05)


def test_a_sequence_classifier_trains_the_same():
    hf = build(OPTForSequenceClassification)
    ids, mask = opt_batch()
    assert_one_training_step_matches(hf, from_hf(hf), dict(input_ids=ids, attention_mask=mask,
                                                           labels=torch.tensor([0, 2, 1])))


def test_converted_model_saves_reloads_and_compiles(tmp_path):
    hf = build(OPTForCausalLM)
    from_hf(hf).save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.pad_aware_positions
    ids, mask = opt_batch()
    assert_same_outputs(hf, reloaded, ids, mask)
    compiled = torch.compile(reloaded, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, attention_mask=mask).logits,
                                   reloaded(ids, attention_mask=mask).logits)


@pytest.mark.parametrize(("options", "match"), [
    ({"activation_function": "gelu_fast"},
     r"OPT `activation_function='gelu_fast'` has no mini equivalent; `activation_function` must be one of 'relu'"),
    ({"layer_norm_elementwise_affine": False}, "`layer_norm_elementwise_affine=False`"),
    ({"layerdrop": 0.1}, "`layerdrop=0.1`"),
])
def test_opt_options_without_a_mini_equivalent_raise(options, match):
    with pytest.raises(ValueError, match=match):
        from_hf(build(OPTForCausalLM, **options))


def test_bad_options_raise():
    with pytest.raises(ValueError, match="`pad_aware_positions=True`.*`position_offset >= 1`"):
        MiniGPTConfig(position_embedding_type="learned", pad_aware_positions=True)
    with pytest.raises(ValueError, match="`position_offset` and `pad_aware_positions`.*'learned' or 'sinusoidal'"):
        MiniGPTConfig(position_embedding_type="rotary", position_offset=2)
    with pytest.raises(ValueError, match="`position_offset` must be"):
        MiniGPTConfig(position_offset=-1)
    with pytest.raises(ValueError, match="`pad_aware_positions` must be True or False"):
        MiniGPTConfig(pad_aware_positions="yes")
    mini = from_hf(build(OPTForCausalLM))
    options = mini.config.to_dict()
    for changes, message in [({"norm_position": "sandwich"}, "OPT is pre-norm.*'pre' or 'post'"),
                             ({"norm_position": "post"}, "post-norm OPT has no final norm"),
                             ({"mlp_bias": False}, "OPT needs `mlp_bias=True`"),
                             ({"layer_norm_eps": 1e-6}, "OPT needs `layer_norm_eps=1e-05`"),
                             ({"hidden_act": "swiglu"}, "OPT has no gated feed-forward"),
                             ({"pad_aware_positions": False}, "OPT needs `pad_aware_positions=True`"),
                             ({"position_offset": 1}, "OPT needs `position_offset=2`"),
                             ({"hidden_dropout": 0.1, "embedding_dropout": None},
                              "OPT never drops out its embeddings")]:
        with pytest.raises(ValueError, match=message):
            to_hf(MiniGPTForCausalLM(MiniGPTConfig(**{**options, **changes})))
    with pytest.raises(ValueError, match="OPT's position table keeps 2 rows before position 0"):
        to_hf(MiniGPTForCausalLM(MiniGPTConfig(**{**options, "max_position_embeddings": 2})))
    with pytest.raises(ValueError, match="OPT has no model for MiniGPTForTokenClassification"):
        to_hf(MiniGPTForTokenClassification(MiniGPTConfig(**options)))
