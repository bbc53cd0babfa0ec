"""BLOOM <-> MiniGPT: the config translation and the weight-name map (through ``convert.py``).

BigScience's BLOOM (and BLOOMZ) is a MiniGPT with **ALiBi** (``position_embedding_type="alibi"``: no position vectors,
each head's scores fall off linearly with the distance, ``positional.AlibiBias``), a LayerNorm on the token embeddings
(``embedding_norm``), pre-norm LayerNorm blocks with biases, a tanh GELU (``gelu_new``), a feed-forward four times the
width, a final norm and an output layer tied to the embeddings.

BLOOM adds ``slope * (key position)`` to the scores; we add ``-slope * (query position - key position)``. Per query the
two differ by a constant, which the softmax ignores. Both count positions over the tokens the attention mask keeps, so
padding anywhere in a row (a right-padded prompt's, once ``generate`` appends to it) moves no distance; ours reads them
from the 4D mask, so a static cache's prepared masks count them as well. Its fused ``query_key_value`` keeps Q, K and V
per head, as GPT-NeoX's: the same regrouping serves.

Not expressed, raising ``ValueError``: ``apply_residual_connection_post_layernorm`` (the residual taken after the norm),
``slow_but_exact`` (a tensor-parallel summation order).
"""

import copy

from transformers import (
    BloomConfig,
    BloomForCausalLM,
    BloomForQuestionAnswering,
    BloomForSequenceClassification,
    BloomForTokenClassification,
    BloomModel,
)

from .configuration_mini import MiniGPTConfig
from .convert import (
    LAYERNORM_DECODER,
    check_expressible,
    check_no_embedding_dropout,
    join_fused_qkv,
    load_mapped,
    new_model,
    separate_attention_projections,
    split_fused_qkv,
)
from .convert_gpt_neox import per_head_to_stacked, stacked_to_per_head
from .modeling_gpt import (
    MiniGPTForCausalLM,
    MiniGPTForQuestionAnswering,
    MiniGPTForSequenceClassification,
    MiniGPTForTokenClassification,
    MiniGPTModel,
)

_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "initializer_range",
           "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings", "hidden_dropout", "attention_dropout",
           "use_cache", "num_labels", "id2label", "label2id", "problem_type")

# hf class name -> (mini class, mini backbone prefix, hf class, hf backbone prefix, head keys {mini: hf})
_PAIRS = {
    "BloomModel": (MiniGPTModel, "", BloomModel, "", {}),
    "BloomForCausalLM": (MiniGPTForCausalLM, "model.", BloomForCausalLM, "transformer.", {}),
    "BloomForSequenceClassification": (MiniGPTForSequenceClassification, "model.", BloomForSequenceClassification,
                                       "transformer.", {"score.weight": "score.weight"}),
    "BloomForTokenClassification": (MiniGPTForTokenClassification, "model.", BloomForTokenClassification,
                                    "transformer.", {"score.weight": "classifier.weight",
                                                     "score.bias": "classifier.bias"}),
    "BloomForQuestionAnswering": (MiniGPTForQuestionAnswering, "model.", BloomForQuestionAnswering, "transformer.",
                                   {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"}),
}


def mini_config_from_bloom(hf: BloomConfig, **overrides) -> MiniGPTConfig:
    """The MiniGPT config computing what ``hf`` computes; ``ValueError`` for BLOOM options it lacks."""
    if hf.apply_residual_connection_post_layernorm:
        raise ValueError("BLOOM's `apply_residual_connection_post_layernorm=True` (the residual taken after the "
                         "norm) has no mini equivalent: it needs False.")
    if hf.slow_but_exact and hf.pretraining_tp > 1:
        raise ValueError("BLOOM's `slow_but_exact=True` (summing in tensor-parallel slices) is not supported: it needs "
                         "`slow_but_exact=False`.")
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    kwargs.update(
        intermediate_size=4 * hf.hidden_size,
        hidden_act="gelu_new",  # its bloom_gelu: the tanh GELU
        position_embedding_type="alibi",
        norm_type="layernorm",
        norm_position="pre",
        final_norm=True,
        embedding_norm=True,
        layer_norm_eps=float(hf.layer_norm_epsilon),
        attention_bias=True,
        mlp_bias=True,
        embedding_dropout=0.0,  # its embeddings never drop out
        classifier_dropout=getattr(hf, "classifier_dropout", None),
    )
    kwargs.update(overrides)
    return MiniGPTConfig(**kwargs)


def bloom_config_from_mini(config: MiniGPTConfig) -> BloomConfig:
    """The BLOOM config for a MiniGPT config; ``ValueError`` naming the first option BLOOM cannot express."""
    required = {
        **LAYERNORM_DECODER,
        "position_embedding_type": "alibi",
        "embedding_norm": True,
        "attention_bias": True,
        "attention_output_bias": True,
        "hidden_act": "gelu_new",
        "intermediate_size": 4 * config.hidden_size,
        "add_cross_attention": False,
        "freeze_padding_row": False,
    }
    check_expressible(config, "BLOOM", required, allow=("embedding_dropout",))
    check_no_embedding_dropout(config, "BLOOM")
    kwargs = {key: getattr(config, key) for key in _SHARED}
    return BloomConfig(layer_norm_epsilon=config.layer_norm_eps, classifier_dropout=config.classifier_dropout,
                       **kwargs)


def _mapping(num_layers: int, mini: str, hf: str, untied_head: bool) -> dict:
    """{mini key: hf key}; our separate q / k / v projections map to the split rows
    ``<...>query_key_value.q.weight``."""
    mapping = {f"{mini}embeddings.embed_tokens.weight": f"{hf}word_embeddings.weight"}
    for ours, theirs in (("embeddings.norm", "word_embeddings_layernorm"), ("norm", "ln_f")):
        for p in ("weight", "bias"):
            mapping[f"{mini}{ours}.{p}"] = f"{hf}{theirs}.{p}"
    for i in range(num_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}h.{i}."
        names = [("self_attn_norm", "input_layernorm"), ("mlp_norm", "post_attention_layernorm"),
                 ("self_attn.o_proj", "self_attention.dense"), ("mlp.up_proj", "mlp.dense_h_to_4h"),
                 ("mlp.down_proj", "mlp.dense_4h_to_h")]
        names += [(f"self_attn.{p}_proj", f"self_attention.query_key_value.{p}") for p in "qkv"]
        for ours, theirs in names:
            for p in ("weight", "bias"):
                mapping[f"{m}{ours}.{p}"] = f"{h}{theirs}.{p}"
    if untied_head:
        mapping["lm_head.weight"] = "lm_head.weight"
    return mapping


def _from_hf(hf_model, **overrides):
    mini_cls, mini_prefix, _, hf_prefix, head = _PAIRS[type(hf_model).__name__]
    config = mini_config_from_bloom(hf_model.config, **overrides)
    config._attn_implementation = "sdpa"  # transformers' BLOOM has only eager attention; ours runs ALiBi in sdpa
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    heads = config.num_attention_heads
    state = split_fused_qkv(hf_model.state_dict(), lambda fused: per_head_to_stacked(fused, heads))
    mapping = {**_mapping(config.num_hidden_layers, mini_prefix, hf_prefix, untied), **head}
    mini = load_mapped(new_model(mini_cls, config, hf_model.dtype), state, mapping)
    if mini_cls is MiniGPTForCausalLM:
        mini.generation_config = copy.deepcopy(hf_model.generation_config)
    return mini


def to_bloom(mini_model):
    """The BLOOM model equivalent to a MiniGPT with ALiBi; ``convert.to_hf`` calls it."""
    name = next(k for k, v in _PAIRS.items() if v[0] is type(mini_model))
    mini_cls, mini_prefix, hf_cls, hf_prefix, head = _PAIRS[name]
    config = bloom_config_from_mini(mini_model.config)
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    mapping = {**_mapping(config.num_hidden_layers, mini_prefix, hf_prefix, untied), **head}
    state = separate_attention_projections(mini_model)
    heads = config.num_attention_heads
    hf_state = join_fused_qkv({hf_key: state[mini_key] for mini_key, hf_key in mapping.items()},
                              lambda q, k, v: stacked_to_per_head(q, k, v, heads))
    hf_model = load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state})
    if mini_cls is MiniGPTForCausalLM:
        hf_model.generation_config = copy.deepcopy(mini_model.generation_config)
    return hf_model


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # MiniGPT exports through convert_gpt2, which hands ALiBi models to to_bloom
