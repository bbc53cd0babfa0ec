"""Bad inputs to every family and head are a ``ValueError`` naming the argument and what it allows, found from shapes
and dtypes alone (no device read): never an obscure ``RuntimeError`` / ``IndexError`` from deep inside, nor a silent
broadcast. The shapes that ``generate``, padding-free batches and custom 4D masks legitimately pass still work."""

import re

import pytest
import torch
from conftest import TINY, tiny_gpt_config

from modeling_mini import (
    MiniEncoderForMaskedLM,
    MiniEncoderForMultipleChoice,
    MiniEncoderForQuestionAnswering,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
    MiniGPTForCausalLM,
    MiniGPTForQuestionAnswering,
    MiniGPTForSequenceClassification,
    MiniGPTForTokenClassification,
    MiniGPTModel,
    MiniSeq2SeqConfig,
    MiniSeq2SeqForConditionalGeneration,
    MiniSeq2SeqForQuestionAnswering,
    MiniSeq2SeqForSequenceClassification,
    MiniSeq2SeqModel,
)

EOS = TINY["eos_token_id"]
GPT_HEADS = [MiniGPTModel, MiniGPTForCausalLM, MiniGPTForSequenceClassification, MiniGPTForTokenClassification,
             MiniGPTForQuestionAnswering]
ENCODER_HEADS = [MiniEncoderModel, MiniEncoderForMaskedLM, MiniEncoderForSequenceClassification,
                 MiniEncoderForTokenClassification, MiniEncoderForQuestionAnswering]
SEQ2SEQ_HEADS = [MiniSeq2SeqModel, MiniSeq2SeqForConditionalGeneration, MiniSeq2SeqForSequenceClassification,
                 MiniSeq2SeqForQuestionAnswering]
HEADS = GPT_HEADS + ENCODER_HEADS + SEQ2SEQ_HEADS
#: the heads that read (B, T) inputs with learned, rotary and sinusoidal positions
POSITIONED = [MiniGPTForCausalLM, MiniEncoderForMaskedLM]

_models = {}


def build(cls, **overrides):
    """A tiny model of ``cls`` (cached per class and options), in eval mode."""
    key = (cls, tuple(sorted(overrides.items())))
    if key not in _models:
        extra = {"decoder_start_token_id": TINY["bos_token_id"]} if cls.config_class is MiniSeq2SeqConfig else {}
        torch.manual_seed(0)
        _models[key] = cls(cls.config_class(**{**TINY, **extra, **overrides})).eval()
    return _models[key]


def ids_with_eos(batch=2, length=5):
    ids = torch.randint(3, 99, (batch, length), generator=torch.Generator().manual_seed(0))
    ids[:, -1] = EOS  # the seq2seq classifier pools at each row's last eos
    return ids


def run(model, **inputs):
    """Call ``model`` without gradients. An encoder-decoder that cannot build its decoder inputs itself (the model and
    the generator never do, the readers only from ``input_ids``) gets valid ones, unless some are given."""
    builds = type(model) not in (MiniSeq2SeqModel, MiniSeq2SeqForConditionalGeneration) and "input_ids" in inputs
    decoder_given = "decoder_input_ids" in inputs or "decoder_inputs_embeds" in inputs
    if isinstance(model.config, MiniSeq2SeqConfig) and not builds and not decoder_given:
        inputs["decoder_input_ids"] = ids_with_eos()
    with torch.no_grad():
        return model(**inputs)


def name_of(cls):
    return cls.__name__


# --- 1. position_ids --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("position_embedding_type", ["learned", "rotary", "sinusoidal"])
@pytest.mark.parametrize("cls", POSITIONED, ids=name_of)
@pytest.mark.parametrize("shape", [(2, 1, 5), (2, 6), (3, 5), (5,)], ids=str)
def test_position_ids_of_another_shape_are_refused(cls, position_embedding_type, shape):
    """(B, 1, T) used to broadcast the encoder's logits to (B, B, T, V), silently; the GPT failed unnamed."""
    model = build(cls, position_embedding_type=position_embedding_type)
    with pytest.raises(ValueError, match=r"`position_ids` must have shape \(batch_size, sequence_length\) = \(2, 5\)"):
        run(model, input_ids=ids_with_eos(), position_ids=torch.zeros(shape, dtype=torch.long))


@pytest.mark.parametrize("cls", POSITIONED, ids=name_of)
def test_position_ids_per_row_or_shared_by_all_rows_are_read(cls):
    model = build(cls, position_embedding_type="learned")
    ids = ids_with_eos()
    default = run(model, input_ids=ids).logits
    torch.testing.assert_close(run(model, input_ids=ids, position_ids=torch.arange(5)[None]).logits, default)
    torch.testing.assert_close(run(model, input_ids=ids, position_ids=torch.arange(5).expand(2, 5)).logits, default)


@pytest.mark.parametrize("name", ["position_ids", "decoder_position_ids"])
@pytest.mark.parametrize("cls", SEQ2SEQ_HEADS, ids=name_of)
def test_position_ids_given_to_an_encoder_decoder_are_refused_not_ignored(cls, name):
    """The encoder-decoder numbers its positions itself: given ids reached the attention layers unread."""
    with pytest.raises(ValueError, match=rf"`{name}` given to an encoder-decoder"):
        run(build(cls), input_ids=ids_with_eos(), **{name: torch.arange(5)[None]})


# --- 2. the encoder-decoder classifier pools at the eos tokens of input_ids -------------------------------------------

@pytest.mark.parametrize("length", [3, 8], ids=["shorter", "longer"])
@pytest.mark.parametrize("given", ["decoder_input_ids", "decoder_inputs_embeds"])
def test_seq2seq_classifier_refuses_decoder_inputs_of_another_length(length, given):
    """Longer decoder inputs were pooled at a position that is no eos, silently; shorter ones an IndexError."""
    model = build(MiniSeq2SeqForSequenceClassification, num_labels=3)
    decoder = ids_with_eos(2, length) if given == "decoder_input_ids" else torch.zeros(2, length, 32)
    with pytest.raises(ValueError, match=rf"`{given}` must have the shape of `input_ids` .* = \(2, 5\)"):
        run(model, input_ids=ids_with_eos(), **{given: decoder})


def test_seq2seq_classifier_still_refuses_rows_without_eos():
    model = build(MiniSeq2SeqForSequenceClassification, num_labels=3)
    ids = ids_with_eos()
    ids[1, -1] = 5
    with pytest.raises(ValueError, match="Every row of `input_ids` must contain the end-of-sequence token"):
        run(model, input_ids=ids, decoder_input_ids=ids_with_eos())


# --- 3. token_type_ids of a GPT ---------------------------------------------------------------------------------------

def test_float_token_type_ids_of_a_gpt_are_named_as_the_argument():
    with pytest.raises(ValueError, match=r"^`token_type_ids` must hold integer ids .*; got dtype torch.float32"):
        run(build(MiniGPTForCausalLM), input_ids=ids_with_eos(), token_type_ids=torch.zeros(2, 5))


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int16])
@pytest.mark.parametrize("cls", HEADS, ids=name_of)
def test_ids_of_a_small_integer_dtype_are_refused_by_name(cls, dtype):
    """An embedding lookup takes int64 or int32 ids; int8 ones failed inside it, naming no argument."""
    with pytest.raises(ValueError, match=rf"`input_ids` must hold integer ids \(torch.int64, or torch.int32\); got "
                                         rf"dtype {dtype}"):
        run(build(cls, num_labels=3), input_ids=ids_with_eos().to(dtype))


@pytest.mark.parametrize("position_embedding_type", ["rotary", "sinusoidal", "learned"])
def test_boolean_position_ids_are_refused(position_embedding_type):
    """Before, only a learned table refused them; rotary and sinusoidal positions failed inside transformers'
    masking."""
    model = build(MiniGPTForCausalLM, position_embedding_type=position_embedding_type)
    with pytest.raises(ValueError, match=r"`position_ids` must hold integer positions; got dtype torch.bool"):
        run(model, input_ids=ids_with_eos(), position_ids=torch.ones(2, 5, dtype=torch.bool))


# --- 4. empty batches and sequences -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 0), (0, 5)], ids=["no-token", "no-row"])
@pytest.mark.parametrize("cls", HEADS, ids=name_of)
def test_an_empty_batch_or_sequence_is_refused(cls, shape):
    model = build(cls, num_labels=3)
    with pytest.raises(ValueError, match=r"`input_ids` must hold at least one row and one token"):
        run(model, input_ids=torch.zeros(shape, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`inputs_embeds` must hold at least one row and one token"):
        run(model, inputs_embeds=torch.zeros(*shape, 32))


@pytest.mark.parametrize("cls", [MiniSeq2SeqModel, MiniSeq2SeqForConditionalGeneration], ids=name_of)
def test_an_empty_target_is_refused(cls):
    with pytest.raises(ValueError, match=r"`decoder_input_ids` must hold at least one row and one token"):
        run(build(cls), input_ids=ids_with_eos(), decoder_input_ids=torch.zeros(2, 0, dtype=torch.long))


# --- 5. ids of the wrong number of dimensions -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5,), (2, 5, 3)], ids=["1D", "3D"])
@pytest.mark.parametrize("cls", HEADS, ids=name_of)
def test_input_ids_must_be_two_dimensional(cls, shape):
    with pytest.raises(ValueError, match=r"`input_ids` must have shape \(batch_size, sequence_length\)"):
        run(build(cls, num_labels=3), input_ids=torch.full(shape, 5))


@pytest.mark.parametrize("cls", [MiniGPTForCausalLM, MiniEncoderForMaskedLM, MiniSeq2SeqForConditionalGeneration],
                         ids=name_of)
def test_the_input_is_blamed_before_the_labels_compared_to_it(cls):
    with pytest.raises(ValueError, match=r"`input_ids` must have shape \(batch_size, sequence_length\)"):
        run(build(cls), input_ids=torch.full((5,), 5), labels=ids_with_eos(1))


@pytest.mark.parametrize("shape", [(5,), (2, 5, 3)], ids=["1D", "3D"])
@pytest.mark.parametrize("cls", SEQ2SEQ_HEADS, ids=name_of)
def test_decoder_input_ids_must_be_two_dimensional(cls, shape):
    with pytest.raises(ValueError, match=r"`decoder_input_ids` must have shape \(batch_size, sequence_length\)"):
        run(build(cls, num_labels=3), input_ids=ids_with_eos(), decoder_input_ids=torch.full(shape, 5))


@pytest.mark.parametrize(("bad", "message"), [(torch.full((2, 5), 5.0), r"`decoder_input_ids` must hold integer ids"),
                                              (torch.full((2, 5), 99), r"`decoder_input_ids` contains 99, outside"),
                                              (torch.full((2, 5), -5), r"`decoder_input_ids` contains -5, outside")])
@pytest.mark.parametrize("cls", SEQ2SEQ_HEADS, ids=name_of)
def test_decoder_ids_outside_the_vocabulary_are_named_as_the_decoders(cls, bad, message):
    """The decoder's lookups are checked as ``decoder_input_ids``: before, valid source ids and bad decoder ids were
    reported as bad ``input_ids``."""
    with pytest.raises(ValueError, match=message):
        run(build(cls, num_labels=3), input_ids=ids_with_eos(), decoder_input_ids=bad)


# --- 6. inputs_embeds -------------------------------------------------------------------------------------------------

BAD_EMBEDDINGS = {"narrow": torch.zeros(2, 5, 7), "2D": torch.zeros(5, 32), "integer": torch.zeros(2, 5, 32).long()}


@pytest.mark.parametrize("bad", BAD_EMBEDDINGS)
@pytest.mark.parametrize("cls", HEADS, ids=name_of)
def test_inputs_embeds_must_be_floating_and_as_wide_as_the_token_table(cls, bad):
    """Integer embeddings went through the encoder and the encoder-decoder silently."""
    with pytest.raises(ValueError, match=r"`inputs_embeds` must be a floating-point tensor of shape \(batch_size, "
                                         r"sequence_length, 32\)"):
        run(build(cls, num_labels=3), inputs_embeds=BAD_EMBEDDINGS[bad])


@pytest.mark.parametrize("bad", BAD_EMBEDDINGS)
@pytest.mark.parametrize("cls", [MiniSeq2SeqModel, MiniSeq2SeqForConditionalGeneration], ids=name_of)
def test_decoder_inputs_embeds_must_be_floating_and_as_wide_as_the_token_table(cls, bad):
    with pytest.raises(ValueError, match=r"`decoder_inputs_embeds` must be a floating-point tensor of shape"):
        run(build(cls), input_ids=ids_with_eos(), decoder_inputs_embeds=BAD_EMBEDDINGS[bad])


def test_a_gpt_with_a_narrow_token_table_takes_embeddings_of_the_tables_width():
    """OPT-350M's: the token table is 16 wide and projected up; its lookups are what ``inputs_embeds`` stand for."""
    model = build(MiniGPTForCausalLM, token_embedding_size=16)
    ids = ids_with_eos()
    embeds = model.get_input_embeddings()(ids)  # (2, 5, 16)
    torch.testing.assert_close(run(model, inputs_embeds=embeds).logits, run(model, input_ids=ids).logits)
    with pytest.raises(ValueError, match=r"`inputs_embeds` must be .* \(batch_size, sequence_length, 16\)"):
        run(model, inputs_embeds=torch.zeros(2, 5, 32))


# --- 7. 4D attention masks --------------------------------------------------------------------------------------------

BAD_MASKS = {
    "keys": torch.ones(2, 1, 5, 4, dtype=torch.bool),
    "queries": torch.ones(2, 1, 4, 5, dtype=torch.bool),
    "batch": torch.ones(3, 1, 5, 5, dtype=torch.bool),
    "heads": torch.ones(2, 2, 5, 5, dtype=torch.bool),  # neither 1 nor num_attention_heads=4 (a raw error in sdpa)
    "long": torch.ones(2, 1, 5, 5, dtype=torch.long),
}


@pytest.mark.parametrize("bad", BAD_MASKS)
@pytest.mark.parametrize("cls", [MiniGPTForCausalLM, MiniEncoderForMaskedLM, MiniSeq2SeqForConditionalGeneration],
                         ids=name_of)
def test_a_4d_mask_of_another_size_or_an_integer_dtype_is_refused(cls, bad):
    with pytest.raises(ValueError, match=r"`attention_mask` is a 4D mask: it must be boolean .* or floating"):
        run(build(cls), input_ids=ids_with_eos(), attention_mask=BAD_MASKS[bad])


def test_a_4d_decoder_mask_of_another_size_is_refused():
    with pytest.raises(ValueError, match=r"`decoder_attention_mask` is a 4D mask"):
        run(build(MiniSeq2SeqForConditionalGeneration), input_ids=ids_with_eos(),
            decoder_attention_mask=torch.ones(2, 1, 5, 6, dtype=torch.bool))


@pytest.mark.parametrize("cls", [MiniGPTForCausalLM, MiniEncoderForMaskedLM], ids=name_of)
def test_4d_masks_that_fit_still_pass_boolean_additive_or_broadcast(cls):
    model = build(cls)
    ids = ids_with_eos()
    allowed = torch.ones(5, 5, dtype=torch.bool)
    if cls is MiniGPTForCausalLM:
        allowed = allowed.tril()
    expected = run(model, input_ids=ids).logits
    additive = torch.zeros(5, 5).masked_fill(~allowed, torch.finfo(torch.float32).min)
    for mask in (allowed.expand(2, 1, 5, 5), allowed[None, None], additive[None, None].expand(2, 4, 5, 5)):
        torch.testing.assert_close(run(model, input_ids=ids, attention_mask=mask).logits, expected)
    if cls is MiniEncoderForMaskedLM:  # BERT's extended padding mask (B, 1, 1, T) broadcasts over the queries
        torch.testing.assert_close(
            run(model, input_ids=ids, attention_mask=torch.ones(2, 1, 1, 5, dtype=torch.bool)).logits, expected)


# --- 8. multiple choice -----------------------------------------------------------------------------------------------

def test_multiple_choice_names_an_input_that_is_not_one_row_per_choice():
    model = build(MiniEncoderForMultipleChoice)
    ids = torch.randint(3, 99, (2, 3, 5))
    for name, bad in [("attention_mask", torch.ones(2, 5)), ("attention_mask", torch.ones(6, 5)),
                      ("token_type_ids", torch.zeros(2, 5, dtype=torch.long)),
                      ("position_ids", torch.zeros(6, 5, dtype=torch.long))]:
        with pytest.raises(ValueError, match=rf"`{name}` must have one row per choice, shape .* = \(2, 3, 5\)"):
            run(model, input_ids=ids, **{name: bad})
    with pytest.raises(ValueError, match=r"Multiple choice needs `input_ids` of shape"):
        run(model, input_ids=ids[..., None])
    with pytest.raises(ValueError, match=r"Multiple choice needs `inputs_embeds` of shape"):
        run(model, inputs_embeds=torch.zeros(2, 3, 5))
    per_choice = run(model, input_ids=ids, attention_mask=torch.ones(2, 3, 5), token_type_ids=torch.zeros_like(ids))
    torch.testing.assert_close(per_choice.logits, run(model, input_ids=ids).logits)


# --- 9. the encoder-decoder's two batches -----------------------------------------------------------------------------

@pytest.mark.parametrize("cls", SEQ2SEQ_HEADS, ids=name_of)
def test_decoder_rows_must_match_the_sources(cls):
    model = build(cls, num_labels=3)
    # the classifier, which pools the decoder at the eos tokens of `input_ids`, asks for their very shape
    expected = ("must have the shape of `input_ids`" if cls is MiniSeq2SeqForSequenceClassification
                else "has 3 rows but `input_ids` has 2")
    with pytest.raises(ValueError, match=rf"`decoder_input_ids` {expected}"):
        run(model, input_ids=ids_with_eos(), decoder_input_ids=ids_with_eos(3))


@pytest.mark.parametrize("labels", [ids_with_eos(3), ids_with_eos(2)[..., None]], ids=["rows", "3D"])
def test_labels_to_shift_name_the_shape_they_need(labels):
    """Labels shifted into the decoder inputs may have any length: the error says one row per source. Before, it
    asked for "the input's shape", and for 3D labels a shape built from their last dimension."""
    with pytest.raises(ValueError, match=re.escape("`labels` must have shape (batch_size=2, target_length): one row "
                                                   f"of target ids per source; got {tuple(labels.shape)}")):
        with torch.no_grad():  # not `run`: it would add decoder inputs, and the labels are then compared to them
            build(MiniSeq2SeqForConditionalGeneration)(input_ids=ids_with_eos(), labels=labels)


@pytest.mark.parametrize("cls", [MiniSeq2SeqModel, MiniSeq2SeqForConditionalGeneration,
                                 MiniSeq2SeqForQuestionAnswering], ids=name_of)
def test_encoder_outputs_must_match_the_decoders_batch_and_width(cls):
    model = build(cls)
    with pytest.raises(ValueError, match=r"`decoder_input_ids` has 2 rows but `encoder_outputs` has 3"):
        run(model, encoder_outputs=(torch.zeros(3, 5, 32),), decoder_input_ids=ids_with_eos())
    with pytest.raises(ValueError, match=r"`encoder_outputs` must be a floating-point tensor .*hidden_size=32"):
        run(model, encoder_outputs=(torch.zeros(2, 5, 16),), decoder_input_ids=ids_with_eos())


def test_a_gpt_decoder_names_encoder_states_of_another_width():
    model = MiniGPTForCausalLM(tiny_gpt_config(add_cross_attention=True)).eval()
    with pytest.raises(ValueError, match=r"`encoder_hidden_states` must be a floating-point tensor of shape "
                                         r"\(batch_size=2, source_length >= 1, hidden_size=32\)"):
        run(model, input_ids=ids_with_eos(), encoder_hidden_states=torch.zeros(2, 4, 16))


@pytest.mark.parametrize("mask", [torch.ones(2, 4, dtype=torch.long), torch.ones(3, 5, dtype=torch.long),
                                  torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])], ids=["short", "rows", "padded"])
def test_generate_names_a_mask_that_does_not_fit_the_prompt(mask):
    """``generate`` drops a mask of all ones after making the position ids from it: a wrong one reached the forward as
    position ids of the wrong shape, and the error blamed ``position_ids``, which the caller never gave."""
    message = r"generate: `(attention_mask|position_ids)` has shape .* does not fit the prompt: .* = \(2, 5\)"
    with pytest.raises(ValueError, match=message):
        build(MiniGPTForCausalLM).generate(ids_with_eos(), attention_mask=mask, max_new_tokens=2, do_sample=False)
    model, ids = build(MiniGPTForCausalLM), ids_with_eos()
    shared = torch.arange(5)[None]  # position ids for every row alike stay allowed
    model.generate(ids, position_ids=shared, max_new_tokens=2, do_sample=False)
    # the prompt's ids and its embeddings together (transformers' own test_generate_from_inputs_embeds) is one prompt
    embeds = model.get_input_embeddings()(ids)
    alone = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert torch.equal(model.generate(ids, inputs_embeds=embeds, max_new_tokens=3, do_sample=False), alone)
