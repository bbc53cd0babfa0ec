"""Every import raises or is exact: for each transformers family ``from_hf`` converts, every boolean and float option
of its config is changed on its own, and ``from_hf`` must either refuse the model with a ``ValueError`` or give a
mini model computing the same logits. An option a converter forgets to read would otherwise convert silently into
another function (the mirror of ``test_export_options.py``)."""

import dataclasses

import pytest
import torch
import transformers
from torch import nn

from modeling_mini.convert import from_hf, load_mapped

#: small shapes, by the field names each family's config uses
_BERT = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=64)
_LLAMA = dict(_BERT, intermediate_size=48, num_key_value_heads=2)
_SEQ2SEQ = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64)
#: a small config per family (the class named is what from_hf gets)
BASE = {
    "GPT2LMHeadModel": dict(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64),
    "GPTJForCausalLM": dict(vocab_size=99, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=64),
    "LlamaForCausalLM": _LLAMA,
    "Qwen2ForCausalLM": _LLAMA,
    "Gemma2ForCausalLM": dict(_LLAMA, head_dim=8),
    "GPTNeoXForCausalLM": dict(_BERT, intermediate_size=48),
    "PhiForCausalLM": dict(_BERT, intermediate_size=48),
    "FalconForCausalLM": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              max_position_embeddings=64),
    "FalconForCausalLM-40b": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  max_position_embeddings=64, new_decoder_architecture=True, num_kv_heads=2),
    "BloomForCausalLM": dict(vocab_size=99, hidden_size=32, n_layer=2, n_head=4),
    "OPTForCausalLM": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=48,
                           word_embed_proj_dim=32, max_position_embeddings=64),
    "OPTForCausalLM-350m": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=48,
                                word_embed_proj_dim=16, do_layer_norm_before=False, max_position_embeddings=64),
    "BertForMaskedLM": _BERT,
    "RobertaForMaskedLM": dict(_BERT, pad_token_id=1),
    "ElectraForMaskedLM": dict(_BERT, embedding_size=16),
    "AlbertForMaskedLM": dict(_BERT, embedding_size=16, num_hidden_groups=1),
    "DistilBertForMaskedLM": dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                  max_position_embeddings=64),
    "ModernBertForMaskedLM": dict(_BERT, num_hidden_layers=3, intermediate_size=48, local_attention=8,
                                  global_attn_every_n_layers=3, pad_token_id=0),
    "MarianMTModel": dict(_SEQ2SEQ, pad_token_id=0, decoder_start_token_id=0),
    "BartForConditionalGeneration": _SEQ2SEQ,
    "MBartForConditionalGeneration": _SEQ2SEQ,
    "PegasusForConditionalGeneration": _SEQ2SEQ,
    "T5ForConditionalGeneration": dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=6,
                                       relative_attention_num_buckets=8, relative_attention_max_distance=12),
    "T5EncoderModel": dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=6,
                           relative_attention_num_buckets=8, relative_attention_max_distance=12),
    "MT5ForConditionalGeneration": dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=6,
                                        relative_attention_num_buckets=8, relative_attention_max_distance=12),
    "UMT5ForConditionalGeneration": dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=6,
                                         relative_attention_num_buckets=8, relative_attention_max_distance=12),
}
#: options that do not change what the model computes in an eval forward, or that select another class of model
#: (not `tie_word_embeddings`: untied, transformers 5 keeps separate token tables, which must all carry over)
IGNORED = {"return_dict", "output_hidden_states", "output_attentions", "torchscript", "use_cache", "is_encoder_decoder",
           "tie_encoder_decoder", "chunk_size_feed_forward", "is_decoder", "add_cross_attention"}


def _changed(value):
    """Another value for a boolean or float option (None: not an option this test changes)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return value * 3 + 0.01
    return None


@pytest.mark.parametrize("name", BASE)
def test_each_option_either_converts_exactly_or_is_refused(name):
    cls = getattr(transformers, name.split("-")[0])  # "<class>-<variant>": another base config of that class
    config_cls, shape = cls.config_class, BASE[name]
    base = config_cls(**shape)
    silently_different, refused_unnamed, compared = [], [], 0
    for field in (f.name for f in dataclasses.fields(config_cls)):
        skipped = ("dropout", "pdrop", "range", "std", "initializer", "layerdrop")
        if field in IGNORED or field.startswith("_") or any(word in field for word in skipped):
            continue  # dropout is off in eval; initialisation ranges do not matter to converted weights
        value = _changed(getattr(base, field, None))
        if value is None:
            continue
        try:
            torch.manual_seed(0)
            hf = cls(config_cls(**{**shape, field: value})).eval()
        except Exception:  # noqa: BLE001  transformers refuses the combination itself
            continue
        with torch.no_grad():  # every trained weight away from its initial value (norm gains start at 1, biases 0)
            for param in hf.parameters():
                if param.requires_grad:
                    param.add_(0.05 * torch.randn_like(param))
        try:
            mini = from_hf(hf)
        except ValueError as error:  # a refusal names what it refuses (the option, or the value the option set)
            if field not in str(error) and repr(value) not in str(error):
                refused_unnamed.append(f"{field}={value!r}: {error}")
            continue
        ids = torch.randint(3, 99, (2, 9), generator=torch.Generator().manual_seed(0))
        mask = torch.ones_like(ids)
        mask[0, -2:] = 0
        inputs = dict(input_ids=ids, attention_mask=mask)
        seq2seq = hf.config.is_encoder_decoder and not cls.__name__.endswith("EncoderModel")  # T5EncoderModel: set
        if seq2seq:
            inputs["decoder_input_ids"] = torch.randint(3, 99, (2, 5), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            theirs, ours = (out.logits if "logits" in out else out.last_hidden_state for out in (hf(**inputs),
                                                                                                 mini(**inputs)))
        real = slice(None) if seq2seq else mask.bool()
        compared += 1
        if not torch.allclose(ours[real], theirs[real], atol=1e-4, rtol=0):
            silently_different.append(f"{field}={value!r}: max diff {(ours[real] - theirs[real]).abs().max():.2e}")
    assert compared >= 1, f"{name}: no option change was compared"
    assert not refused_unnamed, f"{name}: refused without naming the option: {refused_unnamed}"
    assert not silently_different, f"{name}: converted without a ValueError but computes another function: " \
                                   f"{silently_different}"


def test_a_source_tensor_no_map_entry_reads_is_refused_by_name():
    """A map that fills every target tensor can still leave a source tensor behind (the decoder's table of an untied
    BART did): that raises, naming it, unless the tensor is another name of one that is read (tied) or the map skips
    it by name (a table the target computes, a copy nothing reads)."""
    weight, bias = torch.randn(2, 2), torch.randn(2)
    source = {"w": weight, "b": bias, "tied_w": weight, "extra": torch.randn(2)}
    mapping = {"weight": "w", "bias": "b"}
    with pytest.raises(RuntimeError, match=r"\['extra'\]"):
        load_mapped(nn.Linear(2, 2), source, mapping)
    with pytest.raises(RuntimeError, match=r"\['tied_w'\]"):  # equal values are not the same tensor
        load_mapped(nn.Linear(2, 2), {**source, "tied_w": weight.clone()}, mapping, skip=("extra",))
    target = load_mapped(nn.Linear(2, 2), source, mapping, skip=("extra",))
    assert torch.equal(target.weight, weight) and torch.equal(target.bias, bias)
