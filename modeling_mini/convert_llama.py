"""Llama <-> MiniGPT: the config translation and the weight-name map (used through ``convert.py``).

Llama is a MiniGPT with the modern options: rotary positions, RMSNorm before each sub-layer and after the last
block, a gated feed-forward (SwiGLU: ``down(silu(gate(x)) * up(x))``), grouped-query attention, no biases, no
dropout on the residual stream and, usually, an output layer of its own (``tie_word_embeddings=False``). Its module
names are almost ours already; only the two norms of a block are named differently. Llama keeps Q, K and V as three
matrices, which ``load_mapped`` stacks into our fused ``qkv_proj``.
"""

import copy

from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    LlamaForTokenClassification,
    LlamaModel,
)

from .configuration_mini import ROTARY_SCALING_KEYS, MiniGPTConfig
from .convert import load_mapped, separate_attention_projections
from .modeling_gpt import (
    MiniGPTForCausalLM,
    MiniGPTForSequenceClassification,
    MiniGPTForTokenClassification,
    MiniGPTModel,
)

_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
           "intermediate_size", "max_position_embeddings", "initializer_range", "bos_token_id", "eos_token_id",
           "pad_token_id", "tie_word_embeddings", "attention_bias", "mlp_bias", "attention_dropout", "use_cache",
           "num_labels", "id2label", "label2id", "problem_type")
#: Llama's ``hidden_act`` (the gate's function) <-> our gated activation
_GATED = {"silu": "swiglu", "gelu": "geglu", "relu": "reglu"}
#: transformers' token-classification head drops out with this when the config names no ``classifier_dropout``
_HF_CLASSIFIER_DROPOUT = 0.1


def mini_config_from_llama(hf: LlamaConfig, **overrides) -> MiniGPTConfig:
    """The MiniGPT config computing what ``hf`` computes; ``ValueError`` for Llama options it lacks."""
    rope = dict(hf.rope_parameters or {})
    rope_type = rope.get("rope_type", "default")
    if rope_type != "default" and rope_type not in ROTARY_SCALING_KEYS:
        raise ValueError(f"Llama `rope_parameters` of type {rope_type!r} have no mini equivalent; one of "
                         f"{['default', *ROTARY_SCALING_KEYS]}.")
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"Llama `partial_rotary_factor={rope['partial_rotary_factor']}` (rotating part of each head) "
                         "has no mini equivalent; only 1.0.")
    scaling = None
    if rope_type != "default":  # our rotary_scaling takes the numbers its type needs, under HF's names
        rope.setdefault("original_max_position_embeddings", hf.max_position_embeddings)  # HF's fallback
        scaling = {"rope_type": rope_type, **{key: rope[key] for key in ROTARY_SCALING_KEYS[rope_type]}}
    if hf.head_dim != hf.hidden_size // hf.num_attention_heads:
        raise ValueError(f"Llama `head_dim={hf.head_dim}` differs from hidden_size / num_attention_heads = "
                         f"{hf.hidden_size // hf.num_attention_heads}; MiniGPT heads are hidden_size / heads wide.")
    if hf.hidden_act not in _GATED:
        raise ValueError(f"Llama `hidden_act={hf.hidden_act!r}` has no mini gated equivalent; one of {list(_GATED)}.")
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    classifier_dropout = getattr(hf, "classifier_dropout", None)
    kwargs.update(
        hidden_act=_GATED[hf.hidden_act],
        position_embedding_type="rotary",
        rope_theta=float(rope.get("rope_theta", 10000.0)),
        rotary_scaling=scaling,
        norm_type="rmsnorm",
        norm_position="pre",
        final_norm=True,
        layer_norm_eps=float(hf.rms_norm_eps),
        embedding_norm=False,
        scale_embeddings=False,
        hidden_dropout=0.0,
        activation_dropout=0.0,
        classifier_dropout=_HF_CLASSIFIER_DROPOUT if classifier_dropout is None else classifier_dropout,
        freeze_padding_row=hf.pad_token_id is not None,  # Llama's embedding has padding_idx = pad_token_id
    )
    kwargs.update(overrides)
    return MiniGPTConfig(**kwargs)


def llama_config_from_mini(config: MiniGPTConfig) -> LlamaConfig:
    """The Llama config for a MiniGPT config; ``ValueError`` naming the first option Llama cannot express.

    Llama never trains its pad token's embedding row; a MiniGPT with ``freeze_padding_row=False`` and a pad token
    exports with the same weights and outputs, and differs only there in further training."""
    required = {
        "position_embedding_type": "rotary",
        "norm_type": "rmsnorm",
        "norm_position": "pre",
        "final_norm": True,
        "embedding_norm": False,
        "scale_embeddings": False,
        "hidden_dropout": 0.0,
        "activation_dropout": 0.0,
        "add_cross_attention": False,
    }
    for field, value in required.items():
        if getattr(config, field) != value:
            raise ValueError(f"Llama needs `{field}={value!r}`; this model has {getattr(config, field)!r}.")
    gate = {ours: theirs for theirs, ours in _GATED.items()}
    if config.hidden_act not in gate:
        raise ValueError(f"Llama's feed-forward is gated: `hidden_act` must be one of {list(gate)}; got "
                         f"{config.hidden_act!r}.")
    kwargs = {key: getattr(config, key) for key in _SHARED}
    return LlamaConfig(
        hidden_act=gate[config.hidden_act],
        rms_norm_eps=config.layer_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta, **(config.rotary_scaling or {})},
        head_dim=config.head_dim,
        classifier_dropout=config.classifier_dropout if config.classifier_dropout is not None else 0.0,
        **kwargs,
    )


def _mapping(num_layers: int, mini: str, hf: str, untied_head: bool) -> dict:
    """{mini key: hf key}; our separate q/k/v names are fused by ``load_mapped``."""
    mapping = {f"{mini}embeddings.embed_tokens.weight": f"{hf}embed_tokens.weight",
               f"{mini}norm.weight": f"{hf}norm.weight"}
    for i in range(num_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}layers.{i}."
        names = [("self_attn_norm", "input_layernorm"), ("mlp_norm", "post_attention_layernorm")]
        names += [(f"self_attn.{p}", f"self_attn.{p}") for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        names += [(f"mlp.{p}", f"mlp.{p}") for p in ("gate_proj", "up_proj", "down_proj")]
        for ours, theirs in names:
            mapping[f"{m}{ours}.weight"] = f"{h}{theirs}.weight"
    if untied_head:
        mapping["lm_head.weight"] = "lm_head.weight"
    return mapping


def _with_biases(mapping: dict, source_keys, source_is_hf: bool) -> dict:
    """``mapping`` plus the bias of every mapped linear layer whose bias the source state has: Llama's
    ``attention_bias`` / ``mlp_bias`` (off by default) add them, as ours do."""
    out = dict(mapping)
    for ours, theirs in mapping.items():
        if "norm" in ours or not ours.endswith(".weight"):
            continue
        ours_bias, theirs_bias = ours.removesuffix("weight") + "bias", theirs.removesuffix("weight") + "bias"
        if (theirs_bias if source_is_hf else ours_bias) in source_keys:
            out.setdefault(ours_bias, theirs_bias)
    return out


# hf class name -> (mini class, hf class, mini prefix, hf prefix, head keys {mini: hf})
_PAIRS = {
    "LlamaModel": (MiniGPTModel, LlamaModel, "", "", {}),
    "LlamaForCausalLM": (MiniGPTForCausalLM, LlamaForCausalLM, "model.", "model.", {}),
    "LlamaForSequenceClassification": (MiniGPTForSequenceClassification, LlamaForSequenceClassification, "model.",
                                       "model.", {"score.weight": "score.weight"}),
    "LlamaForTokenClassification": (MiniGPTForTokenClassification, LlamaForTokenClassification, "model.", "model.",
                                    {"score.weight": "score.weight", "score.bias": "score.bias"}),
}


def _from_hf(hf_model, **overrides):
    mini_cls, _, mini_prefix, hf_prefix, head = _PAIRS[type(hf_model).__name__]
    config = mini_config_from_llama(hf_model.config, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    state = hf_model.state_dict()
    mapping = _with_biases({**_mapping(config.num_hidden_layers, mini_prefix, hf_prefix, untied), **head}, state, True)
    mini = load_mapped(mini_cls(config).to(hf_model.dtype), state, mapping)
    if isinstance(hf_model, LlamaForCausalLM):  # stop tokens and sampling defaults of a chat model travel along
        mini.generation_config = copy.deepcopy(hf_model.generation_config)
    return mini


def _to_hf(mini_model):
    name = next(k for k, v in _PAIRS.items() if v[0] is type(mini_model))
    _, hf_cls, mini_prefix, hf_prefix, head = _PAIRS[name]
    config = llama_config_from_mini(mini_model.config)
    config._attn_implementation = mini_model.config._attn_implementation
    untied = hf_cls is LlamaForCausalLM and not config.tie_word_embeddings
    state = separate_attention_projections(mini_model)
    mapping = _with_biases({**_mapping(config.num_hidden_layers, mini_prefix, hf_prefix, untied), **head}, state, False)
    hf_state = {hf_key: state[mini_key] for mini_key, hf_key in mapping.items()}
    hf_model = load_mapped(hf_cls(config).to(mini_model.dtype), hf_state, {k: k for k in hf_state})
    if isinstance(mini_model, MiniGPTForCausalLM):
        hf_model.generation_config = copy.deepcopy(mini_model.generation_config)
    return hf_model


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # MiniGPT exports through convert_gpt2, which hands Llama-shaped models (rotary, RMSNorm) to to_llama


def to_llama(mini_model):
    """The Llama model equivalent to a MiniGPT with Llama's options; ``convert.to_hf`` calls it for such models."""
    return _to_hf(mini_model)
