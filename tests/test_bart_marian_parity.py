"""Parity with transformers' Marian, BART, mBART and Pegasus: randomly initialised reference models converted with
``modeling_mini.convert.from_hf`` compute the same logits, losses and generations, and ``to_hf`` exports them
back exactly. Norm gains / biases and ``final_logits_bias`` are randomised so that every weight matters."""

import pytest
import torch
from conftest import assert_one_training_step_matches
from transformers import (
    AutoModelForSeq2SeqLM,
    BartConfig,
    BartForConditionalGeneration,
    BartModel,
    MarianConfig,
    MarianModel,
    MarianMTModel,
    MBartConfig,
    MBartForConditionalGeneration,
    MBartModel,
    PegasusConfig,
    PegasusForConditionalGeneration,
    PegasusModel,
)

from modeling_mini import MiniSeq2SeqConfig, MiniSeq2SeqForConditionalGeneration
from modeling_mini.convert import from_hf, to_hf

SHAPE = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
             decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
             dropout=0.0, attention_dropout=0.0, forced_eos_token_id=None)


def marian_config(**overrides) -> MarianConfig:
    # Marian's own conventions: swish, scaled embeddings, the pad token as decoder start
    return MarianConfig(**{**SHAPE, "activation_function": "swish", "scale_embedding": True, "pad_token_id": 0,
                           "eos_token_id": 2, "decoder_start_token_id": 0, **overrides})


def bart_config(**overrides) -> BartConfig:
    return BartConfig(**{**SHAPE, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
                         "decoder_start_token_id": 2, **overrides})


def mbart_config(**overrides) -> MBartConfig:
    # mBART-50's conventions: BART's special tokens, scaled embeddings, the end token as decoder start
    return MBartConfig(**{**SHAPE, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
                          "decoder_start_token_id": 2, "scale_embedding": True, **overrides})


def pegasus_config(**overrides) -> PegasusConfig:
    return PegasusConfig(**{**SHAPE, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
                            **overrides})


def _randomise(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
        if hasattr(model, "final_logits_bias"):
            model.final_logits_bias.normal_()
    return model.eval()


REFERENCES = {
    "marian": lambda: MarianMTModel(marian_config()),
    "marian-unshared": lambda: MarianMTModel(marian_config(share_encoder_decoder_embeddings=False)),
    "bart": lambda: BartForConditionalGeneration(bart_config()),
    "bart-gelu-new-scaled": lambda: BartForConditionalGeneration(bart_config(activation_function="gelu_new",
                                                                             scale_embedding=True)),
    "mbart": lambda: MBartForConditionalGeneration(mbart_config()),
    "pegasus": lambda: PegasusForConditionalGeneration(pegasus_config()),
}
BASE_MODELS = {"marian": (MarianModel, marian_config), "bart": (BartModel, bart_config),
               "mbart": (MBartModel, mbart_config), "pegasus": (PegasusModel, pegasus_config)}


def reference(kind: str, attn_implementation: str = "sdpa"):
    torch.manual_seed(0)
    model = _randomise(REFERENCES[kind]())
    model.set_attn_implementation(attn_implementation)
    return model


def padded_pair(pad: int):
    """A source batch right-padded in row 0 and a target batch padded in row 1 (the tokenizers' layout)."""
    g = torch.Generator().manual_seed(0)
    source = torch.randint(3, 99, (3, 9), generator=g)
    source_mask = torch.ones_like(source)
    source_mask[0, -3:] = 0
    target = torch.randint(3, 99, (3, 6), generator=g)
    target_mask = torch.ones_like(target)
    target_mask[1, -2:] = 0
    return (source.masked_fill(source_mask == 0, pad), source_mask,
            target.masked_fill(target_mask == 0, pad), target_mask)


def labels_of(kind: str, target: torch.Tensor, target_mask: torch.Tensor, eos: int) -> torch.Tensor:
    """``target`` as labels (-100 on padding). For mBART each row ends with the end token, mBART-50's layout, under
    which its own label shift (the last real token moves to the front) starts the decoder as ours does."""
    if kind == "mbart":
        last = target_mask.sum(dim=1) - 1
        target = target.clone()
        target[torch.arange(target.shape[0]), last] = eos
    return target.masked_fill(target_mask == 0, -100)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", list(REFERENCES))
def test_logits_and_loss_match_on_padded_batches(kind, attn_implementation):
    hf = reference(kind, attn_implementation)
    mini = from_hf(hf)
    # the converted model runs the source's backend, and its export too (before, BART's family always came as sdpa)
    assert mini.config._attn_implementation == attn_implementation == to_hf(mini).config._attn_implementation
    source, source_mask, target, target_mask = padded_pair(hf.config.pad_token_id)
    labels = labels_of(kind, target, target_mask, hf.config.eos_token_id)
    with torch.no_grad():
        ours = mini(input_ids=source, attention_mask=source_mask, decoder_input_ids=target,
                    decoder_attention_mask=target_mask)
        theirs = hf(input_ids=source, attention_mask=source_mask, decoder_input_ids=target,
                    decoder_attention_mask=target_mask)
        # with labels only: both build decoder_input_ids by shifting them right behind the start token
        our_loss = mini(input_ids=source, attention_mask=source_mask, labels=labels)
        their_loss = hf(input_ids=source, attention_mask=source_mask, labels=labels)
    assert max_diff(ours.logits, theirs.logits) <= 1e-5
    assert max_diff(ours.encoder_last_hidden_state, theirs.encoder_last_hidden_state) <= 1e-5
    assert max_diff(our_loss.logits, their_loss.logits) <= 1e-5
    assert abs(our_loss.loss.item() - their_loss.loss.item()) <= 1e-5


@pytest.mark.parametrize("kind", ["marian", "marian-unshared", "bart", "mbart", "pegasus"])
def test_a_training_step_changes_the_same_weights_by_the_same_amount(kind):
    """Fine-tuning a converted checkpoint is fine-tuning the original; ``final_logits_bias`` is trained by neither."""
    hf = reference(kind)
    source, source_mask, target, target_mask = padded_pair(hf.config.pad_token_id)
    labels = labels_of(kind, target, target_mask, hf.config.eos_token_id)
    assert_one_training_step_matches(hf, from_hf(hf), dict(input_ids=source, attention_mask=source_mask, labels=labels))
    assert torch.equal(hf.final_logits_bias, reference(kind).final_logits_bias)  # untouched


@pytest.mark.parametrize("kind", ["marian", "bart", "mbart", "pegasus"])
def test_greedy_and_beam_search_generate_the_same_tokens(kind):
    hf = reference(kind)
    mini = from_hf(hf)
    source, source_mask, _, _ = padded_pair(hf.config.pad_token_id)
    for settings in ({"num_beams": 1}, {"num_beams": 4, "length_penalty": 1.0}):
        kwargs = dict(attention_mask=source_mask, max_new_tokens=10, do_sample=False, **settings)
        assert torch.equal(mini.generate(source, **kwargs), hf.generate(source, **kwargs)), settings


@pytest.mark.parametrize("kind", list(BASE_MODELS))
def test_base_models_convert_and_round_trip(kind):
    base_cls, make_config = BASE_MODELS[kind]
    torch.manual_seed(0)
    hf = _randomise(base_cls(make_config()))
    mini = from_hf(hf)
    source, source_mask, target, target_mask = padded_pair(hf.config.pad_token_id)
    kwargs = dict(input_ids=source, attention_mask=source_mask, decoder_input_ids=target,
                  decoder_attention_mask=target_mask)
    with torch.no_grad():
        assert max_diff(mini(**kwargs).last_hidden_state, hf(**kwargs).last_hidden_state) <= 1e-5
    back = to_hf(mini)
    assert type(back) is base_cls
    _assert_same_state(back, hf)


@pytest.mark.parametrize("kind", ["bart", "mbart"])
def test_without_decoder_inputs_the_decoder_reads_the_source_shifted_as_bart_does(kind):
    """BART's and mBART's models, given no decoder inputs, decode ``input_ids`` shifted right (mBART's way for mBART):
    the features the `feature-extraction` pipeline takes, and the generation head's reconstruction. Before, ours
    refused, so that pipeline failed on a converted BART."""
    base_cls, make_config = BASE_MODELS[kind]
    source, source_mask, _, _ = padded_pair(make_config().pad_token_id)
    for hf in (_randomise(base_cls(make_config())), reference(kind)):
        mini = from_hf(hf)
        with torch.no_grad():
            expected, got = hf(input_ids=source, attention_mask=source_mask), mini(source, attention_mask=source_mask)
        key = "logits" if "logits" in expected else "last_hidden_state"
        assert max_diff(got[key], expected[key]) <= 1e-5, type(hf).__name__


def _assert_same_state(a, b):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


@pytest.mark.parametrize("kind", list(REFERENCES))
def test_to_hf_of_from_hf_round_trips_exactly(kind):
    hf = reference(kind)
    back = to_hf(from_hf(hf))
    assert type(back) is type(hf)
    _assert_same_state(back, hf)
    for field in ("d_model", "encoder_layers", "decoder_layers", "activation_function", "scale_embedding",
                  "max_position_embeddings", "decoder_start_token_id", "pad_token_id", "tie_word_embeddings"):
        expected = "silu" if getattr(hf.config, field) == "swish" else getattr(hf.config, field)
        assert getattr(back.config, field) == expected, field


#: models whose token tables are not tied (`tie_word_embeddings=False`: transformers 5 then ties nothing)
UNTIED = {
    "bart": lambda: BartForConditionalGeneration(bart_config(tie_word_embeddings=False)),
    "bart-base-model": lambda: BartModel(bart_config(tie_word_embeddings=False)),
    "mbart": lambda: MBartForConditionalGeneration(mbart_config(tie_word_embeddings=False)),
    "marian": lambda: MarianMTModel(marian_config(tie_word_embeddings=False)),
    "marian-unshared": lambda: MarianMTModel(marian_config(tie_word_embeddings=False,
                                                           share_encoder_decoder_embeddings=False)),
    "pegasus": lambda: PegasusForConditionalGeneration(pegasus_config(tie_word_embeddings=False)),
}


@pytest.mark.parametrize("kind", list(UNTIED))
def test_untied_token_tables_convert_as_three_and_export_back(kind):
    """Untied, the encoder, the decoder and the output layer each read a table of their own (BART's `shared` is a
    fourth that nothing reads). Each converts as itself: the decoder used to read the encoder's table (BART's logits
    off by about 0.4). The export keeps the three, and `shared` gets the encoder's (the input embeddings)."""
    torch.manual_seed(0)
    hf = _randomise(UNTIED[kind]())
    mini = from_hf(hf)
    source, source_mask, target, target_mask = padded_pair(hf.config.pad_token_id)
    kwargs = dict(input_ids=source, attention_mask=source_mask, decoder_input_ids=target,
                  decoder_attention_mask=target_mask)
    with torch.no_grad():
        ours, theirs = (out.logits if "logits" in out else out.last_hidden_state for out in (mini(**kwargs),
                                                                                             hf(**kwargs)))
    assert max_diff(ours, theirs) <= 1e-5
    assert (mini.config.share_embeddings, mini.config.tie_word_embeddings) == (False, False)
    back = to_hf(mini)
    assert type(back) is type(hf) and back.config.tie_word_embeddings is False
    read = {key: tensor for key, tensor in hf.state_dict().items() if not key.endswith("shared.weight")}
    exported = back.state_dict()
    for key, tensor in read.items():
        assert torch.equal(exported[key], tensor), key
    assert {key for key in exported if not key.endswith("shared.weight")} == read.keys()
    for key in [key for key in exported if key.endswith("shared.weight")]:
        assert torch.equal(exported[key], read[key.replace("shared", "encoder.embed_tokens")])


def test_converted_model_saves_and_reloads_through_auto_with_equal_logits(tmp_path):
    hf = reference("bart")
    mini = from_hf(hf)
    mini.save_pretrained(tmp_path)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert type(reloaded) is MiniSeq2SeqForConditionalGeneration
    source, source_mask, target, _ = padded_pair(hf.config.pad_token_id)
    with torch.no_grad():
        expected = hf(input_ids=source, attention_mask=source_mask, decoder_input_ids=target).logits
        got = reloaded(input_ids=source, attention_mask=source_mask, decoder_input_ids=target).logits
    assert max_diff(got, expected) <= 1e-5


FAIRSEQ_FIELDS = {"normalize_before": True, "add_final_layer_norm": True, "normalize_embedding": True}
GENERATION_CLASSES = {"marian": (MarianMTModel, marian_config), "bart": (BartForConditionalGeneration, bart_config),
                      "mbart": (MBartForConditionalGeneration, mbart_config),
                      "pegasus": (PegasusForConditionalGeneration, pegasus_config)}


@pytest.mark.parametrize("kind", list(GENERATION_CLASSES))
def test_fairseq_norm_fields_that_transformers_ignores_convert(kind):
    """`normalize_before`, `add_final_layer_norm` and `normalize_embedding` (fairseq's names, in some converted
    checkpoints' configs) are read by none of BART, mBART, Marian and Pegasus in transformers 5: the family fixes the
    norms. A model whose config sets them converts with the same logits, and exports back."""
    cls, config = GENERATION_CLASSES[kind]
    torch.manual_seed(0)
    hf = _randomise(cls(config(**FAIRSEQ_FIELDS)))
    mini = from_hf(hf)
    back = to_hf(mini)
    assert type(back) is cls
    source, source_mask, target, _ = padded_pair(hf.config.pad_token_id)
    with torch.no_grad():
        theirs = hf(input_ids=source, attention_mask=source_mask, decoder_input_ids=target).logits
        for model in (mini, back):
            got = model(input_ids=source, attention_mask=source_mask, decoder_input_ids=target).logits
            assert max_diff(got, theirs) <= 1e-5


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (bart_config(activation_function="quick_gelu"),
         r"BART `activation_function='quick_gelu'` has no mini equivalent; `activation_function` must be one of"),
        (bart_config(decoder_attention_heads=2), "encoder_attention_heads.*decoder_attention_heads"),
        (bart_config(decoder_ffn_dim=40), "encoder_ffn_dim.*decoder_ffn_dim"),
        (bart_config(encoder_layerdrop=0.1), "encoder_layerdrop"),
        (marian_config(decoder_vocab_size=50, share_encoder_decoder_embeddings=False), "decoder_vocab_size"),
    ],
)
def test_from_hf_rejects_options_it_cannot_express(config, match):
    cls = MarianMTModel if isinstance(config, MarianConfig) else BartForConditionalGeneration
    with pytest.raises(ValueError, match=match):
        from_hf(cls(config))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({}, "Marian needs `sinusoidal_layout='concatenated'`"),  # the original Transformer's interleaved sinusoids
        ({"sinusoidal_layout": "concatenated", "norm_position": "sandwich"}, "norm_position` 'post'.*or 'pre'"),
        ({"sinusoidal_layout": "concatenated", "norm_position": "pre", "final_norm": False},
         "Pegasus needs `final_norm=True`"),
        ({"position_embedding_type": "learned", "norm_position": "pre", "position_offset": 2, "embedding_norm": False},
         "mBART needs `embedding_norm=True`"),
        ({"position_embedding_type": "rotary"}, "position_embedding_type.*'sinusoidal'.*'learned'"),
        ({"position_embedding_type": "learned"}, "BART needs `position_offset=2`"),
        ({"sinusoidal_layout": "concatenated", "hidden_act": "swiglu"}, "gated"),
        ({"sinusoidal_layout": "concatenated", "num_key_value_heads": 2}, "num_key_value_heads"),
        ({"sinusoidal_layout": "concatenated", "attention_scaling": 0.5}, "Marian cannot express `attention_scaling"),
    ],
)
def test_to_hf_rejects_configs_bart_and_marian_cannot_express(overrides, match):
    config = MiniSeq2SeqConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                               intermediate_size=37, decoder_start_token_id=0, **overrides)
    with pytest.raises(ValueError, match=match):
        to_hf(MiniSeq2SeqForConditionalGeneration(config))


def test_activation_dropout_carries_over_both_ways():
    hf = BartForConditionalGeneration(bart_config(activation_dropout=0.25))
    mini = from_hf(hf)
    assert mini.config.activation_dropout == 0.25
    assert to_hf(mini).config.activation_dropout == 0.25


@pytest.mark.parametrize("kind", ["mbart", "pegasus"])
def test_pre_norm_variants_have_final_norms_and_are_needed(kind):
    """mBART and Pegasus are BART and Marian made pre-norm, each stack ending in a norm: converted, they are
    pre-norm MiniSeq2Seq models, and the same weights in a post-norm model compute another function."""
    hf = reference(kind)
    mini = from_hf(hf)
    assert (mini.config.norm_position, mini.config.final_norm) == ("pre", True)
    assert mini.model.encoder.norm is not None and mini.model.decoder.norm is not None
    post = MiniSeq2SeqForConditionalGeneration(MiniSeq2SeqConfig(**{**mini.config.to_dict(), "norm_position": "post",
                                                                     "final_norm": False})).eval()
    post.load_state_dict(mini.state_dict(), strict=False)
    source, source_mask, target, _ = padded_pair(hf.config.pad_token_id)
    with torch.no_grad():
        expected = hf(input_ids=source, attention_mask=source_mask, decoder_input_ids=target).logits
        assert max_diff(post(input_ids=source, attention_mask=source_mask, decoder_input_ids=target).logits,
                        expected) > 1e-3


def test_mbart_starts_each_decoder_row_with_its_last_real_token():
    """mBART-cc25 ends each row with its language code, which mBART's own shift moves to the front of the decoder
    inputs, where the others start with `decoder_start_token_id`: labels alone give mBART's loss, and its
    classification and question-answering heads (which shift their `input_ids` so) give its outputs. Before, the
    loss was off by about 0.5 and the QA logits by about 1."""
    from transformers import MBartForQuestionAnswering, MBartForSequenceClassification
    from transformers.models.mbart.modeling_mbart import shift_tokens_right

    hf = reference("mbart")
    mini = from_hf(hf)
    assert mini.config.start_with_last_token
    source, source_mask, target, target_mask = padded_pair(hf.config.pad_token_id)
    labels = target.masked_fill(target_mask == 0, -100)  # rows end with an ordinary token, as a language code
    torch.testing.assert_close(mini.prepare_decoder_input_ids_from_labels(labels),
                               shift_tokens_right(labels, hf.config.pad_token_id), rtol=0, atol=0)
    with torch.no_grad():
        theirs = hf(input_ids=source, attention_mask=source_mask, labels=labels).loss
        ours = mini(input_ids=source, attention_mask=source_mask, labels=labels).loss
    assert abs(ours.item() - theirs.item()) <= 1e-5
    for head in (MBartForSequenceClassification, MBartForQuestionAnswering):
        torch.manual_seed(0)
        hf_head = _randomise(head(mbart_config(num_labels=3)))
        mini_head = from_hf(hf_head)
        ids = source.clone()
        eos = hf.config.eos_token_id
        ids[0, 5], ids[1:, -1] = eos, eos  # one end token per row: the classifier pools there
        with torch.no_grad():
            expected = hf_head(input_ids=ids, attention_mask=source_mask)
            got = mini_head(ids, attention_mask=source_mask)
        for key in ("logits", "start_logits", "end_logits"):
            if key in expected:
                torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=0)
    plain = MiniSeq2SeqConfig(**{**mini.config.to_dict(), "start_with_last_token": False})
    with pytest.raises(ValueError, match="mBART starts each decoder row with each row's last real token.*"
                                         "`start_with_last_token=True`"):
        to_hf(type(mini)(plain))


@pytest.mark.parametrize("kind", ["marian", "bart"])
def test_half_precision_models_convert_in_their_dtype(kind):
    """A float16 checkpoint stays float16 both ways (it used to come out float32: twice the size, and saved so)."""
    hf = reference(kind).half()
    mini = from_hf(hf)
    assert mini.dtype == torch.float16 and mini.model.encoder.layers[0].self_attn.o_proj.weight.dtype == torch.float16
    back = to_hf(mini)
    assert back.dtype == torch.float16
    _assert_same_state(hf, back)


@pytest.mark.parametrize("kind", ["marian", "pegasus"])
def test_a_changed_sinusoid_table_is_refused(kind):
    """Marian's and Pegasus's sinusoid tables are frozen weights the converted model computes instead; a table that is
    not the sinusoids (edited, or trained) is refused by name, where it was dropped silently (logits 0.1 off). One
    that went through bfloat16 (rounded by up to 2^-8) still converts."""
    hf = reference(kind)
    from_hf(hf.to(torch.bfloat16).float())
    with torch.no_grad():
        hf.model.decoder.embed_positions.weight[3, 2] += 0.05
    with pytest.raises(ValueError, match=r"`model.decoder.embed_positions.weight` is not the sinusoid table"):
        from_hf(hf)
