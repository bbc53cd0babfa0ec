"""GPT-NeoX (Pythia) <-> MiniGPT: the config translation and the weight-name map (used through ``convert.py``).

GPT-NeoX (Black et al. 2022), and EleutherAI's Pythia suite trained with it, is a MiniGPT with rotary positions on
the first quarter of each head (``partial_rotary_factor``), pre-norm LayerNorm, exact GELU, biases, a final norm, an
output layer of its own and, usually, **parallel residual** blocks: the attention and the feed-forward both read the
block's input, ``x + attn(norm1(x)) + mlp(norm2(x))`` (our ``parallel_residual``; ``use_parallel_residual=False`` is
the usual sequential pre-norm block).

Its fused ``query_key_value`` projection keeps Q, K and V *per head*: its output rows are (head 0: q, k, v; head 1:
q, k, v; ...), where our ``qkv_proj`` has all queries, then all keys, then all values. The map regroups the rows, both
ways; nothing else is transformed.
"""

import copy

import torch
from transformers import (
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    GPTNeoXForQuestionAnswering,
    GPTNeoXForSequenceClassification,
    GPTNeoXForTokenClassification,
    GPTNeoXModel,
)

from .configuration_mini import MiniGPTConfig
from .convert import (
    LAYERNORM_DECODER,
    activation_from_hf,
    check_expressible,
    join_fused_qkv,
    load_mapped,
    new_model,
    rotary_options,
    separate_attention_projections,
    split_fused_qkv,
)
from .modeling_gpt import (
    MiniGPTForCausalLM,
    MiniGPTForQuestionAnswering,
    MiniGPTForSequenceClassification,
    MiniGPTForTokenClassification,
    MiniGPTModel,
)

_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
           "max_position_embeddings", "initializer_range", "bos_token_id", "eos_token_id", "pad_token_id",
           "tie_word_embeddings", "attention_bias", "hidden_dropout", "attention_dropout", "classifier_dropout",
           "use_cache", "num_labels", "id2label", "label2id", "problem_type")
#: our activation names that transformers spells otherwise, for the export (ours is PyTorch's fused tanh GELU)
_HF_ACTIVATION = {"gelu_new": "gelu_pytorch_tanh"}

# hf class name -> (mini class, mini backbone prefix, hf class, hf backbone prefix, head keys {mini: hf})
_PAIRS = {
    "GPTNeoXModel": (MiniGPTModel, "", GPTNeoXModel, "", {}),
    "GPTNeoXForCausalLM": (MiniGPTForCausalLM, "model.", GPTNeoXForCausalLM, "gpt_neox.", {}),
    "GPTNeoXForSequenceClassification": (MiniGPTForSequenceClassification, "model.", GPTNeoXForSequenceClassification,
                                         "gpt_neox.", {"score.weight": "score.weight"}),
    "GPTNeoXForTokenClassification": (MiniGPTForTokenClassification, "model.", GPTNeoXForTokenClassification,
                                      "gpt_neox.", {"score.weight": "classifier.weight",
                                                    "score.bias": "classifier.bias"}),
    "GPTNeoXForQuestionAnswering": (MiniGPTForQuestionAnswering, "model.", GPTNeoXForQuestionAnswering, "gpt_neox.",
                                     {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"}),
}


def mini_config_from_gpt_neox(hf: GPTNeoXConfig, **overrides) -> MiniGPTConfig:
    """The MiniGPT config computing what ``hf`` computes; ``ValueError`` for GPT-NeoX options it lacks."""
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    kwargs.update(rotary_options(dict(hf.rope_parameters or {}), hf, "GPT-NeoX"))
    kwargs.update(
        hidden_act=activation_from_hf(hf.hidden_act, "GPT-NeoX", "hidden_act"),
        position_embedding_type="rotary",
        norm_type="layernorm",
        norm_position="pre",
        parallel_residual=bool(hf.use_parallel_residual),
        final_norm=True,
        layer_norm_eps=float(hf.layer_norm_eps),
        embedding_norm=False,
        mlp_bias=True,  # its feed-forward always has biases; `attention_bias` covers the attention's
    )
    kwargs.update(overrides)
    return MiniGPTConfig(**kwargs)


def gpt_neox_config_from_mini(config: MiniGPTConfig) -> GPTNeoXConfig:
    """The GPT-NeoX config for a MiniGPT config; ``ValueError`` naming the first option GPT-NeoX cannot express."""
    required = {
        **LAYERNORM_DECODER,
        "position_embedding_type": "rotary",
        "attention_output_bias": config.attention_bias,  # one flag for all four projections
        "add_cross_attention": False,
        "freeze_padding_row": False,
    }
    check_expressible(config, "GPT-NeoX", required, allow=("parallel_residual",))
    rope = {"rope_type": "default", "rope_theta": config.rope_theta, **(config.rotary_scaling or {}),
            "partial_rotary_factor": config.partial_rotary_factor}
    kwargs = {key: getattr(config, key) for key in _SHARED}
    if kwargs["classifier_dropout"] is None:  # ours then drops out with hidden_dropout; GPT-NeoX needs a number
        kwargs["classifier_dropout"] = config.hidden_dropout
    return GPTNeoXConfig(
        hidden_act=_HF_ACTIVATION.get(config.hidden_act, config.hidden_act),
        layer_norm_eps=config.layer_norm_eps,
        use_parallel_residual=config.parallel_residual,
        rope_parameters=rope,
        **kwargs,
    )


def per_head_to_stacked(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    """GPT-NeoX's ``query_key_value`` rows (per head: q, k, v) -> separate (q, k, v) row blocks, each (H * Dh, ...)."""
    grouped = tensor.view(heads, 3, -1, *tensor.shape[1:])  # (H, 3, Dh, ...)
    return tuple(grouped[:, part].reshape(-1, *tensor.shape[1:]).contiguous() for part in range(3))


def stacked_to_per_head(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """The inverse of :func:`per_head_to_stacked`: (q, k, v) row blocks -> rows ordered per head (q, k, v)."""
    stacked = torch.stack([x.view(heads, -1, *x.shape[1:]) for x in (q, k, v)], dim=1)  # (H, 3, Dh, ...)
    return stacked.reshape(-1, *q.shape[1:]).contiguous()


def _mapping(num_layers: int, mini: str, hf: str, untied_head: bool, attention_bias: bool) -> dict:
    """{mini key: hf key}, with our separate ``q_proj`` / ``k_proj`` / ``v_proj`` named after the split rows
    (``<hf>query_key_value.q.weight``, ...), which ``convert.split_fused_qkv`` / ``join_fused_qkv`` produce and
    consume."""
    mapping = {f"{mini}embeddings.embed_tokens.weight": f"{hf}embed_in.weight",
               f"{mini}norm.weight": f"{hf}final_layer_norm.weight",
               f"{mini}norm.bias": f"{hf}final_layer_norm.bias"}
    for i in range(num_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}layers.{i}."
        names = [("self_attn_norm", "input_layernorm", True), ("mlp_norm", "post_attention_layernorm", True),
                 ("mlp.up_proj", "mlp.dense_h_to_4h", True), ("mlp.down_proj", "mlp.dense_4h_to_h", True),
                 ("self_attn.o_proj", "attention.dense", attention_bias)]
        names += [(f"self_attn.{p}_proj", f"attention.query_key_value.{p}", attention_bias) for p in "qkv"]
        for ours, theirs, bias in names:
            mapping[f"{m}{ours}.weight"] = f"{h}{theirs}.weight"
            if bias:
                mapping[f"{m}{ours}.bias"] = f"{h}{theirs}.bias"
    if untied_head:
        mapping["lm_head.weight"] = "lm_head.weight"
    return mapping


def _from_hf(hf_model, **overrides):
    mini_cls, mini_prefix, _, hf_prefix, head = _PAIRS[type(hf_model).__name__]
    config = mini_config_from_gpt_neox(hf_model.config, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    mapping = {**_mapping(config.num_hidden_layers, mini_prefix, hf_prefix, untied, config.attention_bias), **head}
    heads = config.num_attention_heads
    state = split_fused_qkv(hf_model.state_dict(), lambda fused: per_head_to_stacked(fused, heads))
    mini = load_mapped(new_model(mini_cls, config, hf_model.dtype), state, mapping)
    if mini_cls is MiniGPTForCausalLM:
        mini.generation_config = copy.deepcopy(hf_model.generation_config)
    return mini


def to_gpt_neox(mini_model):
    """The GPT-NeoX model equivalent to a MiniGPT with rotary positions and LayerNorm (parallel residual blocks or
    not); ``convert.to_hf`` calls it for such models."""
    name = next(k for k, v in _PAIRS.items() if v[0] is type(mini_model))
    mini_cls, mini_prefix, hf_cls, hf_prefix, head = _PAIRS[name]
    config = gpt_neox_config_from_mini(mini_model.config)
    config._attn_implementation = mini_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    mapping = {**_mapping(config.num_hidden_layers, mini_prefix, hf_prefix, untied, config.attention_bias), **head}
    state = separate_attention_projections(mini_model)
    heads = config.num_attention_heads
    hf_state = join_fused_qkv({hf_key: state[mini_key] for mini_key, hf_key in mapping.items()},
                              lambda q, k, v: stacked_to_per_head(q, k, v, heads))
    hf_model = load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state})
    if mini_cls is MiniGPTForCausalLM:
        hf_model.generation_config = copy.deepcopy(mini_model.generation_config)
    return hf_model


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # MiniGPT exports through convert_gpt2, which hands rotary models with LayerNorm to to_gpt_neox
