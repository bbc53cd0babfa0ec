"""Warm starting: transformers' ``EncoderDecoderModel`` built from a mini encoder and a mini GPT.

A pretrained encoder and a pretrained GPT become a seq2seq model: ``from_encoder_decoder_pretrained`` turns on the
GPT's ``add_cross_attention`` (new cross-attention sub-layers, the only weights that start from scratch) and
fine-tuning then teaches the decoder to read the encoder. These tests hold our two families to that contract, and
to HF's own composition of BERT and GPT-2.
"""

import pytest
import torch
from conftest import TINY, padded_batch
from test_gpt2_parity import cross_attention_gpt2
from transformers import BertConfig, BertModel, EncoderDecoderModel

import modeling_mini
from modeling_mini import MiniEncoderConfig, MiniGPTConfig, MiniGPTForCausalLM
from modeling_mini.convert import from_hf


def composed(encoder, decoder) -> EncoderDecoderModel:
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder).eval()
    model.config.decoder_start_token_id, model.config.pad_token_id = 1, 0
    model.generation_config.decoder_start_token_id, model.generation_config.pad_token_id = 1, 0
    return model


def bert2gpt2(impl="sdpa") -> EncoderDecoderModel:
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                        max_position_embeddings=64, pad_token_id=0)
    bert = BertModel(config, add_pooling_layer=False)
    bert.set_attn_implementation(impl)
    return composed(bert, cross_attention_gpt2(impl))


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_bert2gpt2_and_its_mini_conversion_compute_the_same_function(impl):
    """Logits on padded sources; greedy and beam-search generation, token for token and score for score."""
    reference = bert2gpt2(impl)
    ours = composed(from_hf(reference.encoder), from_hf(reference.decoder))
    ids, mask = padded_batch(left=False)
    target = torch.randint(3, 99, (3, 5), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = reference(input_ids=ids, attention_mask=mask, decoder_input_ids=target).logits
        got = ours(input_ids=ids, attention_mask=mask, decoder_input_ids=target).logits
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    for search in (dict(do_sample=False), dict(num_beams=3)):
        kwargs = dict(attention_mask=mask, max_new_tokens=6, return_dict_in_generate=True, output_scores=True, **search)
        theirs, mine = reference.generate(ids, **kwargs), ours.generate(ids, **kwargs)
        assert torch.equal(mine.sequences, theirs.sequences)
        torch.testing.assert_close(torch.stack(mine.scores), torch.stack(theirs.scores), atol=1e-5, rtol=0)


def test_cached_generation_equals_the_uncached_and_reads_the_encoder_once():
    reference = bert2gpt2()
    model = composed(from_hf(reference.encoder), from_hf(reference.decoder))
    ids, mask = padded_batch(left=False)
    projections = []
    model.decoder.model.layers[0].cross_attn.kv_proj.register_forward_hook(lambda *_: projections.append(1))
    encoder_runs = []
    model.encoder.register_forward_hook(lambda *_: encoder_runs.append(1))
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, return_dict_in_generate=True,
                  output_scores=True)
    cached = model.generate(ids, **kwargs)
    assert len(projections) == 1 and len(encoder_runs) == 1  # cross keys/values made once, then read from the cache
    uncached = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(torch.stack(cached.scores), torch.stack(uncached.scores), atol=1e-5, rtol=0)


def test_warm_start_from_a_saved_encoder_and_a_saved_gpt_trains_saves_and_reloads(tmp_path):
    """``from_encoder_decoder_pretrained`` keeps every pretrained weight, adds cross-attention, learns a copy task
    step by step, and the composite saves and reloads with equal logits."""
    encoder = modeling_mini.MiniEncoderForMaskedLM(MiniEncoderConfig(**TINY))
    gpt = MiniGPTForCausalLM(MiniGPTConfig(**TINY))
    encoder.save_pretrained(tmp_path / "encoder")
    gpt.save_pretrained(tmp_path / "gpt")
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(tmp_path / "encoder", tmp_path / "gpt")
    model.config.decoder_start_token_id, model.config.pad_token_id = 1, 0
    assert model.decoder.config.add_cross_attention and model.decoder.model.layers[0].cross_attn is not None
    for name, tensor in gpt.state_dict().items():
        assert torch.equal(model.decoder.state_dict()[name], tensor), name  # the GPT's own weights, unchanged
    for name, tensor in encoder.model.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor), name

    source = torch.randint(3, 99, (8, 6), generator=torch.Generator().manual_seed(3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(60):
        loss = model(input_ids=source, labels=source).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]  # copying is learnt: the decoder reads the source

    model.eval().save_pretrained(tmp_path / "composite")
    reloaded = EncoderDecoderModel.from_pretrained(tmp_path / "composite").eval()
    assert type(reloaded.decoder) is MiniGPTForCausalLM
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=source, labels=source).logits,
                                   model(input_ids=source, labels=source).logits, atol=0, rtol=0)


def test_cross_attention_inputs_must_fit_the_model():
    ids = torch.randint(3, 99, (2, 5))
    states = torch.randn(2, 4, TINY["hidden_size"])
    with pytest.raises(ValueError, match="add_cross_attention=True"):
        MiniGPTForCausalLM(MiniGPTConfig(**TINY))(ids, encoder_hidden_states=states)
    decoder = MiniGPTForCausalLM(MiniGPTConfig(**TINY, add_cross_attention=True))
    with pytest.raises(ValueError, match="pass `encoder_hidden_states`"):
        decoder(ids)
    with pytest.raises(ValueError, match=r"encoder_attention_mask.*\(2, 4\)"):
        decoder(ids, encoder_hidden_states=states, encoder_attention_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="add_cross_attention.*True or False"):
        MiniGPTConfig(**TINY, add_cross_attention="yes")
