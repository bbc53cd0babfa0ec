"""Phi (Phi-1, Phi-1.5, Phi-2) <-> MiniGPT: the config translation and the weight-name map (through ``convert.py``).

Microsoft's Phi-1/1.5/2 is a MiniGPT with *parallel* blocks that read **one** norm's output,
``x + attn(norm(x)) + mlp(norm(x))`` (``parallel_residual`` with ``parallel_shared_norm``), rotary positions on part of
each head (``partial_rotary_factor``, 0.4 for Phi-2), LayerNorm, ``gelu_new``, biases everywhere, a final norm, an
untied output layer **with a bias** (``lm_head_bias``) and, optionally, a LayerNorm on each head's queries and keys
(``qk_norm``). Its residual dropout applies to the sub-layers' outputs and a separate one to the embeddings
(``embedding_dropout``). Q, K and V are three matrices there, fused into our ``qkv_proj`` by ``load_mapped``.
Phi-3 is another network (Llama's): see ``convert_llama``.
"""

import copy

from transformers import PhiConfig, PhiForCausalLM, PhiForSequenceClassification, PhiForTokenClassification, PhiModel

from .configuration_mini import MiniGPTConfig
from .convert import (
    HF_CLASSIFIER_DROPOUT,
    LAYERNORM_DECODER,
    activation_from_hf,
    check_expressible,
    export_pair,
    load_mapped,
    new_model,
    rotary_options,
    separate_attention_projections,
)
from .modeling_gpt import (
    MiniGPTForCausalLM,
    MiniGPTForSequenceClassification,
    MiniGPTForTokenClassification,
    MiniGPTModel,
)

_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
           "intermediate_size", "max_position_embeddings", "initializer_range", "bos_token_id", "eos_token_id",
           "pad_token_id", "tie_word_embeddings", "attention_dropout", "use_cache", "num_labels", "id2label",
           "label2id", "problem_type")

# hf class name -> (mini class, hf class, head keys {mini: hf}); both backbones sit under ``model.`` in a head class
_PAIRS = {
    "PhiModel": (MiniGPTModel, PhiModel, {}),
    "PhiForCausalLM": (MiniGPTForCausalLM, PhiForCausalLM, {"lm_head.bias": "lm_head.bias"}),
    "PhiForSequenceClassification": (MiniGPTForSequenceClassification, PhiForSequenceClassification,
                                     {"score.weight": "score.weight"}),
    "PhiForTokenClassification": (MiniGPTForTokenClassification, PhiForTokenClassification,
                                  {"score.weight": "score.weight", "score.bias": "score.bias"}),
}


def mini_config_from_phi(hf: PhiConfig, **overrides) -> MiniGPTConfig:
    """The MiniGPT config computing what ``hf`` computes; ``ValueError`` for Phi options it lacks."""
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    kwargs.update(rotary_options(dict(hf.rope_parameters or {}), hf, "Phi"))
    classifier_dropout = getattr(hf, "classifier_dropout", None)
    kwargs.update(
        hidden_act=activation_from_hf(hf.hidden_act, "Phi", "hidden_act"),
        position_embedding_type="rotary",
        norm_type="layernorm",
        norm_position="pre",
        parallel_residual=True,
        parallel_shared_norm=True,
        final_norm=True,
        layer_norm_eps=float(hf.layer_norm_eps),
        embedding_norm=False,
        attention_bias=True,
        mlp_bias=True,
        lm_head_bias=True,
        qk_norm=bool(hf.qk_layernorm),
        hidden_dropout=float(hf.resid_pdrop),
        embedding_dropout=None if hf.embd_pdrop == hf.resid_pdrop else float(hf.embd_pdrop),
        classifier_dropout=HF_CLASSIFIER_DROPOUT if classifier_dropout is None else classifier_dropout,
        freeze_padding_row=hf.pad_token_id is not None,  # its embedding has padding_idx = pad_token_id
    )
    kwargs.update(overrides)
    return MiniGPTConfig(**kwargs)


def phi_config_from_mini(config: MiniGPTConfig) -> PhiConfig:
    """The Phi config for a MiniGPT config; ``ValueError`` naming the first option Phi cannot express.

    A causal LM without ``lm_head_bias`` exports with a zero bias (the same function). Phi never trains its pad
    token's embedding row; a MiniGPT with ``freeze_padding_row=False`` exports with the same weights and outputs and
    differs only there in further training (as for Llama)."""
    required = {
        **LAYERNORM_DECODER,
        "position_embedding_type": "rotary",
        "parallel_residual": True,
        "parallel_shared_norm": True,
        "attention_bias": True,
        "attention_output_bias": True,
        **({"qk_norm_scope": "head"} if config.qk_norm else {}),
    }
    check_expressible(config, "Phi", required, standard_heads=False,  # grouped-query heads and qk_norm it has
                      allow=("parallel_residual", "parallel_shared_norm", "lm_head_bias", "embedding_dropout"))
    if config.head_dim * config.num_attention_heads != config.hidden_size:
        raise ValueError(f"Phi needs `head_dim = hidden_size / num_attention_heads` = "
                         f"{config.hidden_size / config.num_attention_heads:g}; this model has {config.head_dim}.")
    rope = {"rope_type": "default", "rope_theta": config.rope_theta, **(config.rotary_scaling or {}),
            "partial_rotary_factor": config.partial_rotary_factor}
    kwargs = {key: getattr(config, key) for key in _SHARED}
    return PhiConfig(
        hidden_act=config.hidden_act,
        layer_norm_eps=config.layer_norm_eps,
        qk_layernorm=config.qk_norm,
        resid_pdrop=config.hidden_dropout,
        embd_pdrop=config.hidden_dropout if config.embedding_dropout is None else config.embedding_dropout,
        rope_parameters=rope,
        **kwargs,
    )


def _mapping(num_layers: int, mini: str, untied_head: bool, qk_norm: bool) -> dict:
    """{mini key: hf key} for the embeddings, the blocks and the final norm (and an untied output matrix)."""
    mapping = {f"{mini}embeddings.embed_tokens.weight": "model.embed_tokens.weight",
               f"{mini}norm.weight": "model.final_layernorm.weight",
               f"{mini}norm.bias": "model.final_layernorm.bias"}
    for i in range(num_layers):
        m, h = f"{mini}layers.{i}.", f"model.layers.{i}."
        names = [("self_attn_norm", "input_layernorm"), ("self_attn.q_proj", "self_attn.q_proj"),
                 ("self_attn.k_proj", "self_attn.k_proj"), ("self_attn.v_proj", "self_attn.v_proj"),
                 ("self_attn.o_proj", "self_attn.dense"), ("mlp.up_proj", "mlp.fc1"), ("mlp.down_proj", "mlp.fc2")]
        if qk_norm:
            names += [("self_attn.q_norm", "self_attn.q_layernorm"), ("self_attn.k_norm", "self_attn.k_layernorm")]
        for ours, theirs in names:
            for p in ("weight", "bias"):
                mapping[f"{m}{ours}.{p}"] = f"{h}{theirs}.{p}"
    if untied_head:
        mapping["lm_head.weight"] = "lm_head.weight"
    return mapping


def _prefixed(mapping: dict, mini_cls) -> dict:
    """A bare ``PhiModel`` has no ``model.`` prefix."""
    if mini_cls is not MiniGPTModel:
        return mapping
    return {ours: theirs.removeprefix("model.") for ours, theirs in mapping.items()}


def _from_hf(hf_model, **overrides):
    mini_cls, _, head = _PAIRS[type(hf_model).__name__]
    config = mini_config_from_phi(hf_model.config, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    prefix = "" if mini_cls is MiniGPTModel else "model."
    mapping = _prefixed({**_mapping(config.num_hidden_layers, prefix, untied, config.qk_norm), **head}, mini_cls)
    mini = load_mapped(new_model(mini_cls, config, hf_model.dtype), hf_model.state_dict(), mapping)
    if mini_cls is MiniGPTForCausalLM:
        mini.generation_config = copy.deepcopy(hf_model.generation_config)
    return mini


def to_phi(mini_model):
    """The Phi model equivalent to a MiniGPT with parallel blocks sharing one norm; ``convert.to_hf`` calls it."""
    mini_cls, hf_cls, head = export_pair(_PAIRS, mini_model, "Phi")
    config = phi_config_from_mini(mini_model.config)
    config._attn_implementation = mini_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    prefix = "" if mini_cls is MiniGPTModel else "model."
    mapping = _prefixed({**_mapping(config.num_hidden_layers, prefix, untied, config.qk_layernorm), **head}, mini_cls)
    state = separate_attention_projections(mini_model)
    if mini_cls is MiniGPTForCausalLM and mini_model.lm_head.bias is None:
        state["lm_head.bias"] = mini_model.lm_head.weight.new_zeros(config.vocab_size)  # the same function
    hf_state = {hf_key: state[mini_key] for mini_key, hf_key in mapping.items()}
    hf_model = load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state})
    if mini_cls is MiniGPTForCausalLM:
        hf_model.generation_config = copy.deepcopy(mini_model.generation_config)
    return hf_model


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # MiniGPT exports through convert_gpt2, which hands parallel blocks with one norm to to_phi
