"""FlexAttention (``attn_implementation="flex_attention"``) gives the eager reference's outputs in every family.

The models declare ``_supports_flex_attn``; transformers then builds each mask as a ``BlockMask`` and compiles the
kernel for it. On the CPU that compile takes seconds per mask shape and torch 2.13 has no backward, so these tests
run forwards only, one per family and mask kind. The first call in a process compiles (about 15 s).
"""

import pytest
import torch
from conftest import TINY, assert_padding_free_batch_equals_the_padded_batch, padded_batch, tiny_gpt_config

from modeling_mini import (
    MiniEncoderConfig,
    MiniEncoderForMaskedLM,
    MiniGPTForCausalLM,
    MiniSeq2SeqConfig,
    MiniSeq2SeqForConditionalGeneration,
)

pytestmark = pytest.mark.slow


def _logits_under(build, attn: str, **inputs) -> torch.Tensor:
    torch.manual_seed(0)
    model = build(attn).eval()
    assert model.config._attn_implementation == attn
    with torch.no_grad():
        return model(**inputs).logits


def _assert_flex_equals_eager(build, real: torch.Tensor, **inputs) -> None:
    eager, flex = (_logits_under(build, attn, **inputs) for attn in ("eager", "flex_attention"))
    torch.testing.assert_close(flex[real], eager[real], atol=1e-5, rtol=1e-5)


def test_gpt_causal_mask_with_left_padding():
    ids, mask = padded_batch(left=True)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    _assert_flex_equals_eager(
        lambda attn: MiniGPTForCausalLM(tiny_gpt_config(position_embedding_type="rotary", attn_implementation=attn)),
        mask.bool(), input_ids=ids, attention_mask=mask, position_ids=positions,
    )


def test_gpt_sliding_window_and_full_layers_with_left_padding():
    ids, mask = padded_batch(left=True)
    _assert_flex_equals_eager(
        lambda attn: MiniGPTForCausalLM(tiny_gpt_config(
            position_embedding_type="rotary", sliding_window=3, layer_types=["sliding_attention", "full_attention"],
            attn_implementation=attn)),
        mask.bool(), input_ids=ids, attention_mask=mask,
    )


def test_gpt_padding_free_batch_gets_a_block_diagonal_mask():
    torch.manual_seed(0)
    model = MiniGPTForCausalLM(tiny_gpt_config(position_embedding_type="rotary", attn_implementation="flex_attention"))
    assert_padding_free_batch_equals_the_padded_batch(model, backward=False)


def test_encoder_bidirectional_mask_with_padding_and_segments():
    ids, mask = padded_batch(left=False)
    segments = (torch.arange(ids.shape[1]) >= 4).long().expand_as(ids)
    _assert_flex_equals_eager(
        lambda attn: MiniEncoderForMaskedLM(MiniEncoderConfig(**TINY, attn_implementation=attn)),
        mask.bool(), input_ids=ids, attention_mask=mask, token_type_ids=segments,
    )


def test_seq2seq_causal_self_attention_and_cross_attention_masks():
    source, source_mask = padded_batch(left=False)
    target, target_mask = padded_batch(length=7, left=False, generator_seed=1)
    _assert_flex_equals_eager(
        lambda attn: MiniSeq2SeqForConditionalGeneration(
            MiniSeq2SeqConfig(**TINY, decoder_start_token_id=TINY["bos_token_id"], attn_implementation=attn)
        ),
        target_mask.bool(), input_ids=source, attention_mask=source_mask, decoder_input_ids=target,
        decoder_attention_mask=target_mask,
    )


def test_encoder_local_and_global_layers_with_padding():
    ids, mask = padded_batch(left=True)
    _assert_flex_equals_eager(
        lambda attn: MiniEncoderForMaskedLM(MiniEncoderConfig(
            **TINY, position_embedding_type="rotary", sliding_window=2, sliding_rope_theta=10.0,
            layer_types=["full_attention", "sliding_attention"], attn_implementation=attn)),
        mask.bool(), input_ids=ids, attention_mask=mask,
    )


def test_a_4d_tensor_mask_is_refused_in_every_family_and_mask_slot():
    """transformers' flex attention adds a tensor mask to the scores as a bias (a boolean one adds 0 and 1 instead of
    masking), and on the CPU torch's compiled flex kernel crashed the process reading it: every family refuses a 4D
    tensor mask, self and cross, before anything compiles, naming the argument and what to pass instead."""
    ids, _ = padded_batch(batch=2, length=5)
    causal = torch.ones(5, 5, dtype=torch.bool).tril().expand(2, 1, 5, 5)  # (B, 1, T, S)
    additive = torch.zeros(2, 1, 5, 5).masked_fill(~causal, torch.finfo(torch.float32).min)
    gpt = MiniGPTForCausalLM(tiny_gpt_config(attn_implementation="flex_attention")).eval()
    gpt_cross = MiniGPTForCausalLM(tiny_gpt_config(add_cross_attention=True, attn_implementation="flex_attention"))
    encoder = MiniEncoderForMaskedLM(MiniEncoderConfig(**TINY, attn_implementation="flex_attention")).eval()
    seq2seq = MiniSeq2SeqForConditionalGeneration(
        MiniSeq2SeqConfig(**TINY, decoder_start_token_id=TINY["bos_token_id"], attn_implementation="flex_attention")
    ).eval()
    source = torch.randn(2, 5, TINY["hidden_size"])
    calls = {
        "attention_mask": [lambda m: gpt(ids, attention_mask=m), lambda m: encoder(ids, attention_mask=m),
                           lambda m: seq2seq(ids, attention_mask=m, decoder_input_ids=ids)],
        "encoder_attention_mask": [lambda m: gpt_cross.eval()(ids, encoder_hidden_states=source,
                                                              encoder_attention_mask=m)],
        "decoder_attention_mask": [lambda m: seq2seq(ids, decoder_input_ids=ids, decoder_attention_mask=m)],
    }
    for name, forwards in calls.items():
        for forward in forwards:
            for mask in (causal, additive):
                with torch.no_grad(), pytest.raises(ValueError, match=rf"`{name}` is a 4D tensor.*flex_attention.*"
                                                                      r"2D padding mask.*'sdpa' or 'eager'"):
                    forward(mask)
