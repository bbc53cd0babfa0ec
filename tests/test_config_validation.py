"""Invalid config values raise a ``ValueError`` naming the field, whichever way they arrive: the constructor, a
``from_pretrained`` override, an attribute set before saving or before building a model."""

import math

import pytest
from transformers import AutoConfig, AutoModelForCausalLM

from modeling_mini import (
    MiniEncoderConfig,
    MiniEncoderModel,
    MiniGPTConfig,
    MiniGPTForCausalLM,
    MiniSeq2SeqConfig,
    MiniSeq2SeqForConditionalGeneration,
)

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
FAMILIES = {"gpt": MiniGPTConfig, "encoder": MiniEncoderConfig, "seq2seq": MiniSeq2SeqConfig}


def tiny(family: str, **options):
    """A tiny config of ``family`` with ``options``."""
    return FAMILIES[family](**{**TINY, **options})


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """A folder holding a saved tiny config of each family, and one holding a tiny GPT model."""
    folders = {}
    for family in FAMILIES:
        folders[family] = tmp_path_factory.mktemp(family)
        tiny(family).save_pretrained(folders[family])
    folders["gpt_model"] = tmp_path_factory.mktemp("gpt_model")
    MiniGPTForCausalLM(tiny("gpt")).save_pretrained(folders["gpt_model"])
    return folders


# 1. overrides given to from_pretrained, attributes set before saving or building

BAD_OVERRIDES = [
    ("position_embedding_type", "rotery"),
    ("norm_position", "middle"),
    ("hidden_act", "foo"),
    ("num_attention_heads", 3),
    # not integers: transformers logs the config before it is validated (a TypeError from to_dict, before)
    ("num_hidden_layers", "2"),
    ("num_hidden_layers", 2.0),
    ("num_hidden_layers", None),
]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name, value", BAD_OVERRIDES)
def test_from_pretrained_overrides_are_validated(saved, family, name, value):
    with pytest.raises(ValueError, match=f"`{name}`"):
        AutoConfig.from_pretrained(saved[family], **{name: value})


@pytest.mark.parametrize("value", [2, -1, 2.0])
@pytest.mark.parametrize("family", ["gpt", "seq2seq"])
def test_a_stray_type_vocab_size_builds_no_segment_table(family, value):
    """Only the encoder has segment embeddings (``type_vocab_size``); on a GPT or seq2seq config the field is no
    option and builds nothing. Before, the embeddings read it anyway: -1 failed deep in torch, 2 added a table (and,
    in seq2seq, a segment vector to every token)."""
    config = tiny(family, type_vocab_size=value, **({"decoder_start_token_id": 1} if family == "seq2seq" else {}))
    model = {"gpt": MiniGPTForCausalLM, "seq2seq": MiniSeq2SeqForConditionalGeneration}[family](config)
    assert not [name for name, _ in model.named_parameters() if "token_type" in name]


@pytest.mark.parametrize("name, value", BAD_OVERRIDES)
def test_model_from_pretrained_overrides_are_validated(saved, name, value):
    with pytest.raises(ValueError, match=f"`{name}`"):
        AutoModelForCausalLM.from_pretrained(saved["gpt_model"], **{name: value})


def test_overrides_rederive_what_the_saved_config_left_derived(saved):
    config, unused = AutoConfig.from_pretrained(saved["gpt"], num_attention_heads=8, foo=1, return_unused_kwargs=True)
    assert (config.head_dim, unused) == (4, {"foo": 1})
    config = AutoConfig.from_pretrained(saved["gpt"], num_hidden_layers=3, sliding_window=4)
    assert config.layer_types == ["sliding_attention"] * 3
    config = AutoConfig.from_pretrained(saved["encoder"], num_hidden_layers=3)
    assert config.layer_types == ["full_attention"] * 3
    assert AutoConfig.from_pretrained(saved["gpt"], head_dim=16).head_dim == 16  # an explicit override stays


def test_overrides_rederive_only_what_the_class_leaves_to_derivation():
    base = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    gpt = MiniGPTConfig.from_dict(base, num_attention_heads=8, hidden_size=64)
    assert (gpt.head_dim, gpt.num_key_value_heads, gpt.intermediate_size, gpt.final_norm) == (8, 8, 256, True)
    encoder = MiniEncoderConfig.from_dict({**base, "norm_position": "pre"}, num_attention_heads=8)
    assert (encoder.head_dim, encoder.intermediate_size, encoder.final_norm) == (4, 3072, False)  # its defaults


def test_save_pretrained_validates_attributes_set_after_construction(tmp_path):
    config = tiny("gpt")
    config.hidden_act = "foo"
    with pytest.raises(ValueError, match="`hidden_act`"):
        config.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("name, value", [("hidden_act", "foo"), ("position_embedding_type", "rotery"),
                                         ("norm_position", "middle")])
def test_models_are_never_built_from_an_unchecked_config(name, value):
    config = tiny("gpt")
    setattr(config, name, value)
    with pytest.raises(ValueError, match=f"`{name}`"):
        MiniGPTForCausalLM(config)


@pytest.mark.parametrize("family", FAMILIES)
def test_validate_architecture_is_idempotent(family):
    config = tiny(family)
    before = config.to_dict()
    config.validate_architecture()
    config.validate_architecture()
    assert config.to_dict() == before


# 2. flags

@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("flag", ["tie_word_embeddings", "final_norm", "embedding_norm", "scale_embeddings",
                                  "use_cache", "norm_gain_offset"])
def test_flags_must_be_bools(family, flag):
    with pytest.raises(ValueError, match=f"`{flag}` must be True or False"):
        tiny(family, **{flag: "false"})


@pytest.mark.parametrize("family", FAMILIES)
def test_norm_gain_offset_needs_rmsnorm(family):
    with pytest.raises(ValueError, match="`norm_gain_offset=True` .* `norm_type='rmsnorm'`; got 'layernorm'"):
        tiny(family, norm_gain_offset=True, norm_type="layernorm")
    assert tiny(family, norm_gain_offset=True, norm_type="rmsnorm").norm_gain_offset


# 3, 4, 10. numbers

NOT_POSITIVE_FINITE = [0, -1, math.nan, math.inf, True, "10000", None]


@pytest.mark.parametrize("value", NOT_POSITIVE_FINITE, ids=repr)
@pytest.mark.parametrize("name", ["rope_theta", "initializer_range"])
def test_positive_finite_numbers(name, value):
    with pytest.raises(ValueError, match=f"`{name}` must be a positive finite number"):
        tiny("gpt", position_embedding_type="rotary", **{name: value})


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=repr)
@pytest.mark.parametrize("name, options", [("attention_softcap", {}), ("attention_scaling", {}),
                                           ("final_logit_softcap", {}),
                                           ("sliding_rope_theta", {"position_embedding_type": "rotary",
                                                                   "sliding_window": 4})])
def test_optional_numbers_must_be_finite(name, options, value):
    with pytest.raises(ValueError, match=f"`{name}` must be None or a positive finite number"):
        tiny("gpt", **options, **{name: value})


@pytest.mark.parametrize("value", [math.inf, math.nan], ids=repr)
def test_layer_norm_eps_must_be_finite(value):
    with pytest.raises(ValueError, match="`layer_norm_eps`"):
        tiny("gpt", layer_norm_eps=value)


# 5. rotary options without rotary positions

@pytest.mark.parametrize("name, value", [("rotary_scaling", {"rope_type": "linear", "factor": 2.0}),
                                         ("partial_rotary_factor", 0.5)])
@pytest.mark.parametrize("position_embedding_type", ["learned", "sinusoidal", "none"])
def test_rotary_options_need_rotary_positions(name, value, position_embedding_type):
    with pytest.raises(ValueError, match=f"`{name}` shapes rotary positions"):
        tiny("gpt", position_embedding_type=position_embedding_type, **{name: value})
    assert getattr(tiny("gpt", position_embedding_type="rotary", **{name: value}), name) == value


# 6, 7. token ids

@pytest.mark.parametrize("family, name", [(family, "pad_token_id") for family in FAMILIES] + [
    ("seq2seq", "decoder_start_token_id"), ("gpt", "bos_token_id"), ("gpt", "eos_token_id"),
    ("encoder", "sep_token_id")])
def test_token_ids_are_not_bools(family, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        tiny(family, **{name: True})


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name, value", [("bos_token_id", -1), ("bos_token_id", "0"), ("bos_token_id", 1.5),
                                         ("eos_token_id", -1), ("eos_token_id", "0"), ("eos_token_id", 1.5),
                                         ("eos_token_id", [1, "2"]), ("eos_token_id", []),
                                         ("eos_token_id", [1, True])], ids=repr)
def test_bos_and_eos_must_be_ids(family, name, value):
    with pytest.raises(ValueError, match=f"`{name}` must be None or an id >= 0"):
        tiny(family, **{name: value})


def test_bos_and_eos_may_lie_past_a_small_vocabulary():
    """transformers' own defaults do (GPT-2's 50256), and the converters copy them."""
    config = tiny("gpt", bos_token_id=50256, eos_token_id=[50256, 2])
    assert (config.bos_token_id, config.eos_token_id) == (50256, [50256, 2])


# 8, 9, 11, 12. shapes and layouts

@pytest.mark.parametrize("value", [0, "0", 1.5], ids=repr)
def test_nope_layers_must_be_a_list_of_indices(value):
    with pytest.raises(ValueError, match="`nope_layers`"):
        tiny("gpt", position_embedding_type="rotary", nope_layers=value)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("value", ["4", 4.0, True, 0], ids=repr)
def test_vocab_size_must_be_a_positive_int(family, value):
    with pytest.raises(ValueError, match="`vocab_size` must be an integer >= 1"):
        tiny(family, vocab_size=value)


@pytest.mark.parametrize("value", [0, True, 2.0, "2"], ids=repr)
def test_seq2seq_names_num_hidden_layers_when_given(value):
    with pytest.raises(ValueError, match="`num_hidden_layers` must be an integer >= 1"):
        tiny("seq2seq", num_hidden_layers=value)


@pytest.mark.parametrize("name, value", [("layer_types", ["foo", "foo"]), ("layer_types", ["full_attention"] * 2),
                                         ("sliding_window", 4), ("sliding_rope_theta", 10.0)])
def test_seq2seq_has_no_sliding_window_options(saved, name, value):
    with pytest.raises(ValueError, match=f"`{name}` must be None: MiniSeq2SeqConfig has no sliding-window layers"):
        tiny("seq2seq", **{name: value})
    with pytest.raises(ValueError, match=f"`{name}` must be None"):
        AutoConfig.from_pretrained(saved["seq2seq"], **{name: value})


def test_encoder_builds_from_a_checked_config():
    """The model-side check accepts every valid config: a tiny encoder still builds."""
    assert MiniEncoderModel(tiny("encoder")).config.head_dim == 8


@pytest.mark.parametrize("window", [0, 1])
def test_a_gpt_window_holds_at_least_two_tokens(window):
    """A causal window of 1 passed the check and decoded wrongly: transformers' dynamic sliding cache keeps the last
    ``window - 1`` keys, ``[-0:]`` (all of them) for 1. The encoder's window (tokens on either side) may be 1."""
    with pytest.raises(ValueError, match="`sliding_window` must be"):
        tiny("gpt", sliding_window=window, position_embedding_type="rotary")
    assert tiny("gpt", sliding_window=2, position_embedding_type="rotary").sliding_window == 2
    assert tiny("encoder", sliding_window=1, position_embedding_type="rotary").sliding_window == 1
