"""Every export either raises or is exact: for each family's base layout, each config option is changed on its own, and
``to_hf`` must either refuse the result with a ``ValueError`` or give a transformers model that computes the same
outputs and holds every weight. This catches an option that an exporter forgets to check, whose model would otherwise
export silently and compute another function."""

import pytest
import torch

from modeling_mini import (
    MiniEncoderConfig,
    MiniEncoderForMaskedLM,
    MiniEncoderForSequenceClassification,
    MiniEncoderModel,
    MiniGPTConfig,
    MiniGPTForCausalLM,
    MiniSeq2SeqConfig,
    MiniSeq2SeqForConditionalGeneration,
)
from modeling_mini.convert import to_hf

SHAPE = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
             max_position_embeddings=64, pad_token_id=0, hidden_dropout=0.0, attention_dropout=0.0,
             attn_implementation="eager")
#: a base layout per export target (each exports as it is)
BASES = {
    "gpt2": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="learned")),
    "llama": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="rotary", norm_type="rmsnorm",
                                                       hidden_act="swiglu", attention_bias=False, mlp_bias=False,
                                                       tie_word_embeddings=False)),
    "neox": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="rotary", partial_rotary_factor=0.5,
                                                      parallel_residual=True, hidden_act="gelu",
                                                      tie_word_embeddings=False)),
    "neox-sequential": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="rotary", hidden_act="gelu",
                                                                 tie_word_embeddings=False)),
    "phi": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="rotary", partial_rotary_factor=0.5,
                                                     parallel_residual=True, parallel_shared_norm=True,
                                                     lm_head_bias=True, tie_word_embeddings=False)),
    "gptj": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="rotary", partial_rotary_factor=0.5,
                                                      parallel_residual=True, parallel_shared_norm=True,
                                                      lm_head_bias=True, attention_bias=False,
                                                      tie_word_embeddings=False)),
    "falcon": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="rotary", parallel_residual=True,
                                                        parallel_shared_norm=True, num_key_value_heads=1,
                                                        attention_bias=False, mlp_bias=False)),
    "falcon-40b": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="rotary", parallel_residual=True,
                                                            num_key_value_heads=2, attention_bias=False,
                                                            mlp_bias=False)),
    "bloom": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="alibi", embedding_norm=True,
                                                       hidden_act="gelu_new", intermediate_size=128)),
    "opt": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="learned", position_offset=2,
                                                     pad_aware_positions=True, max_position_embeddings=66,
                                                     hidden_act="relu", layer_norm_eps=1e-5)),
    "opt-350m": (MiniGPTConfig, MiniGPTForCausalLM, dict(position_embedding_type="learned", position_offset=2,
                                                          pad_aware_positions=True, max_position_embeddings=66,
                                                          hidden_act="relu", layer_norm_eps=1e-5, norm_position="post",
                                                          final_norm=False, token_embedding_size=16)),
    "bert-mlm": (MiniEncoderConfig, MiniEncoderForMaskedLM, dict(position_embedding_type="learned")),
    "roberta-mlm": (MiniEncoderConfig, MiniEncoderForMaskedLM, dict(position_embedding_type="learned",
                                                                     pad_aware_positions=True, position_offset=1)),
    "roberta-classifier": (MiniEncoderConfig, MiniEncoderForSequenceClassification, dict(
        position_embedding_type="learned", pad_aware_positions=True, position_offset=1, num_labels=3)),
    "distilbert-classifier": (MiniEncoderConfig, MiniEncoderForSequenceClassification, dict(
        position_embedding_type="learned", type_vocab_size=0, pooler_activation="relu", num_labels=3)),
    "electra-classifier": (MiniEncoderConfig, MiniEncoderForSequenceClassification, dict(
        position_embedding_type="learned", embedding_size=16, pooler_activation="gelu", num_labels=3)),
    "albert-mlm": (MiniEncoderConfig, MiniEncoderForMaskedLM, dict(
        position_embedding_type="learned", embedding_size=16, num_hidden_groups=1, hidden_act="gelu_new")),
    "bert-classifier": (MiniEncoderConfig, MiniEncoderForSequenceClassification,
                        dict(position_embedding_type="learned", num_labels=3)),
    "modernbert": (MiniEncoderConfig, MiniEncoderForMaskedLM, dict(
        position_embedding_type="rotary", norm_position="pre", final_norm=True, norm_bias=False, hidden_act="geglu",
        attention_bias=False, mlp_bias=False, head_bias=False, skip_first_attention_norm=True, type_vocab_size=0,
        sliding_window=3, layer_types=["full_attention", "sliding_attention"], sliding_rope_theta=100.0)),
    "marian": (MiniSeq2SeqConfig, MiniSeq2SeqForConditionalGeneration, dict(sinusoidal_layout="concatenated",
                                                                            decoder_start_token_id=0)),
    "pegasus": (MiniSeq2SeqConfig, MiniSeq2SeqForConditionalGeneration, dict(sinusoidal_layout="concatenated",
                                                                             norm_position="pre",
                                                                             decoder_start_token_id=0)),
    "t5": (MiniSeq2SeqConfig, MiniSeq2SeqForConditionalGeneration, dict(
        position_embedding_type="relative", norm_type="rmsnorm", norm_position="pre", attention_bias=False,
        scale_embeddings=False,
        mlp_bias=False, attention_scaling=1.0, freeze_padding_row=False, scale_decoder_output=True,
        relative_attention_num_buckets=8, relative_attention_max_distance=12, decoder_start_token_id=0)),
    "t5-encoder": (MiniEncoderConfig, MiniEncoderModel, dict(
        position_embedding_type="relative", norm_type="rmsnorm", norm_position="pre", final_norm=True,
        embedding_norm=False, type_vocab_size=0, add_pooler=False, attention_bias=False, mlp_bias=False,
        attention_scaling=1.0, relative_attention_num_buckets=8, relative_attention_max_distance=12)),
    "bart": (MiniSeq2SeqConfig, MiniSeq2SeqForConditionalGeneration, dict(
        position_embedding_type="learned", position_offset=2, max_position_embeddings=66, embedding_norm=True,
        decoder_start_token_id=2)),
    "mbart": (MiniSeq2SeqConfig, MiniSeq2SeqForConditionalGeneration, dict(
        position_embedding_type="learned", position_offset=2, max_position_embeddings=66, embedding_norm=True,
        norm_position="pre", decoder_start_token_id=2, start_with_last_token=True)),
}
#: one change at a time: option -> another value (a change the config itself refuses is skipped)
CHANGES = {
    "hidden_act": "relu", "position_embedding_type": "sinusoidal", "sinusoidal_layout": "interleaved",
    "norm_type": "rmsnorm", "norm_position": "sandwich", "norm_bias": False, "skip_first_attention_norm": True,
    "parallel_residual": True, "embedding_norm": True, "final_norm": False, "scale_embeddings": True,
    "attention_bias": False, "attention_output_bias": False, "qk_norm": True, "attention_scaling": 0.3,
    "attention_softcap": 2.0, "mlp_bias": False, "num_key_value_heads": 2, "head_dim": 16,
    "partial_rotary_factor": 0.5, "rotary_scaling": {"rope_type": "linear", "factor": 2.0}, "rope_theta": 500.0,
    "final_logit_softcap": 2.0, "lm_head_bias": True, "sliding_window": 3, "nope_layers": [0],
    "embedding_size": 16, "pooler_activation": "relu", "classifier_pooling": "mean", "head_transform": True,
    "head_bias": False, "type_vocab_size": 0, "layer_norm_eps": 1e-3, "max_position_embeddings": 48,
    "position_offset": 2, "share_embeddings": False, "tie_word_embeddings": False, "pad_aware_positions": True,
    "final_logits_bias": False, "encoder_layers": 1, "add_cross_attention": True, "scale_decoder_output": False,
    "freeze_padding_row": True, "relative_attention_num_buckets": 16, "relative_attention_max_distance": 20,
    "num_hidden_groups": 1, "relative_bias_per_layer": True, "token_embedding_size": 16, "norm_gain_offset": True,
    "start_with_last_token": True,
}


def _output(outputs) -> torch.Tensor:
    """The logits, or a bare backbone's hidden states."""
    return outputs.logits if "logits" in outputs else outputs.last_hidden_state


def _inputs(family: str, config):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 99, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0
    inputs = dict(input_ids=ids, attention_mask=mask)
    if BASES[family][0] is MiniSeq2SeqConfig:
        inputs["decoder_input_ids"] = torch.randint(3, 99, (2, 5), generator=g)
    if getattr(config, "add_cross_attention", False) and config.model_type == "mini_gpt":  # a GPT reading an encoder
        inputs["encoder_hidden_states"] = torch.randn(2, 4, config.hidden_size, generator=g)
    return inputs


def _build(family: str, change: dict):
    config_cls, model_cls, layout = BASES[family]
    try:
        config = config_cls(**{**SHAPE, **layout, **change})
    except (ValueError, TypeError):
        return None
    torch.manual_seed(0)
    model = model_cls(config).eval()
    with torch.no_grad():  # every weight away from its initial value (norm gains and biases start at 1 and 0)
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


@pytest.mark.parametrize("family", BASES)
def test_each_option_either_exports_exactly_or_is_refused(family):
    assert _build(family, {}) is not None
    silently_different = []
    for option, value in [(None, None), *CHANGES.items()]:
        change = {} if option is None else {option: value}
        if option in BASES[family][2] and BASES[family][2][option] == value:
            continue
        mini = _build(family, change)
        if mini is None:
            continue
        try:
            exported = to_hf(mini)
        except ValueError:
            assert option is not None, f"the {family} base layout itself does not export"
            continue
        held = sum(p.numel() for p in mini.parameters())
        if sum(p.numel() for p in exported.parameters()) < held:  # a weight left behind: not the same model
            silently_different.append(f"{option}={value!r}: the export holds fewer numbers than the model")
            continue
        inputs = _inputs(family, mini.config)
        with torch.no_grad():
            ours, theirs = _output(mini(**inputs)), _output(exported(**inputs))
        seq2seq = BASES[family][0] is MiniSeq2SeqConfig
        real = inputs["attention_mask"].bool() if ours.dim() == 3 and not seq2seq else slice(None)
        if not torch.allclose(ours[real], theirs[real], atol=1e-4, rtol=0):
            silently_different.append(f"{option}={value!r}: max diff {(ours[real] - theirs[real]).abs().max():.2e}")
    assert not silently_different, f"{family}: exported without a ValueError but computes another function: " \
                                   f"{silently_different}"
