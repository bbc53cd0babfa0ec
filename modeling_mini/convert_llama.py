"""Llama (and Mistral, Ministral, Qwen2, Qwen3, Gemma 1-3, Phi-3, SmolLM3, OLMo 2-3) <-> MiniGPT: the config
translation and the weight-name map (used through ``convert.py``).

Llama is a MiniGPT with the modern options: rotary positions, RMSNorm before each sub-layer and after the last
block, a gated feed-forward (SwiGLU: ``down(silu(gate(x)) * up(x))``), grouped-query attention, no biases, no
dropout on the residual stream and, usually, an output layer of its own (``tie_word_embeddings=False``). Its module
names are almost ours already; only the two norms of a block are named differently. Llama keeps Q, K and V as three
matrices, which ``load_mapped`` stacks into our fused ``qkv_proj``.

Mistral, Ministral, Qwen2 and Qwen3 are the same network under other names, with these differences: they may limit
attention to a sliding window (Mistral on every layer, the others on the layers their ``layer_types`` name: our
``sliding_window`` and ``layer_types``); Qwen2 has biases on Q, K and V but not on the output projection
(``attention_output_bias=False``); Qwen3 normalises each head's queries and keys (``qk_norm``). Gemma (the first one)
multiplies its embeddings by ``sqrt(hidden_size)`` (``scale_embeddings``), gates with the tanh GELU (``geglu_tanh``) and
stores each RMSNorm gain as an offset from 1 (``norm_gain_offset``); Gemma 2 adds a norm after each sub-layer
(``sandwich``), soft-capped scores and logits and its own attention scale, and alternates sliding and full layers; Gemma
3 adds query-key norms and rotates its sliding layers with a base of their own (``sliding_rope_theta``). Phi-3 is
Llama's network with Q, K, V in one matrix (as ours) and the gate and up projections in another; it exports as Llama
(Mistral with its window). SmolLM3 is Llama with no rotary positions in every fourth layer (``nope_layers``). OLMo 2
normalises only the sub-layers' outputs (``norm_position="output"``) and all heads' queries and keys at once
(``qk_norm_scope``); OLMo 3 adds Gemma 3's sliding layers with their own rotary base.
"""

import copy

import torch
import transformers

from .configuration_mini import MiniGPTConfig
from .convert import (
    HF_CLASSIFIER_DROPOUT,
    check_expressible,
    load_mapped,
    new_model,
    rope_parameters_per_layer_type,
    rotary_options,
    separate_attention_projections,
    sliding_rope_theta,
)
from .modeling_gpt import (
    MiniGPTForCausalLM,
    MiniGPTForQuestionAnswering,
    MiniGPTForSequenceClassification,
    MiniGPTForTokenClassification,
    MiniGPTModel,
)

_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
           "intermediate_size", "max_position_embeddings", "initializer_range", "bos_token_id", "eos_token_id",
           "pad_token_id", "tie_word_embeddings", "attention_bias", "mlp_bias", "attention_dropout", "use_cache",
           "num_labels", "id2label", "label2id", "problem_type")
#: Llama's ``hidden_act`` (the gate's function) <-> our gated activation
#: transformers' names of a gated feed-forward's gate function -> ours ("swish" is silu, "gelu_new" the same tanh GELU
#: as "gelu_pytorch_tanh"; listed first, so that an export names the usual ones)
_GATED = {"swish": "swiglu", "gelu_new": "geglu_tanh",
          "silu": "swiglu", "gelu": "geglu", "relu": "reglu", "gelu_pytorch_tanh": "geglu_tanh"}


#: What each family fixes, whatever its config says (as mini options); the rest of the layout is Llama's, and Llama's
#: own biases are config fields. Options not named here keep their Llama values: no query-key norm, unscaled
#: embeddings, and a bias on every attention projection or on none.
_FIXED = {
    "Llama": {},
    "Mistral": {"attention_bias": False, "mlp_bias": False},
    "Ministral": {"attention_bias": False, "mlp_bias": False},
    "Qwen2": {"attention_bias": True, "attention_output_bias": False, "mlp_bias": False},
    "Qwen3": {"mlp_bias": False, "qk_norm": True},
    "Gemma": {"mlp_bias": False, "scale_embeddings": True},
    "Gemma2": {"mlp_bias": False, "scale_embeddings": True, "norm_position": "sandwich"},
    "Gemma3": {"mlp_bias": False, "scale_embeddings": True, "norm_position": "sandwich", "qk_norm": True},
    "Phi3": {"attention_bias": False, "mlp_bias": False},
    "SmolLM3": {},
    "Olmo2": {"mlp_bias": False, "norm_position": "output", "qk_norm": True, "qk_norm_scope": "all_heads"},
    "Olmo3": {"mlp_bias": False, "norm_position": "output", "qk_norm": True, "qk_norm_scope": "all_heads"},
}
FAMILIES = tuple(_FIXED)
#: the families whose layers may attend through a sliding window (Mistral, Phi-3: every layer or none). Phi-3 is the
#: Llama network with fused matrices (``qkv_proj``, ``gate_up_proj``): it exports as Llama (Mistral with a window)
#: unless only part of each head rotates (``partial_rotary_factor``, Phi-4-mini), which only Phi-3 expresses.
_SLIDING = ("Mistral", "Ministral", "Qwen2", "Qwen3", "Phi3", "Gemma2", "Gemma3", "SmolLM3", "Olmo3")
#: the families keeping a rotation per layer type (``rope_parameters["sliding_attention"]``: ``sliding_rope_theta``)
_ROPE_PER_LAYER_TYPE = ("Gemma3", "Olmo3")
#: the families storing each RMSNorm gain as its offset from 1 (scaling by ``1 + weight``): ``norm_gain_offset``
_GAIN_OFFSET_FAMILIES = ("Gemma", "Gemma2", "Gemma3")
#: Gemma 2's and 3's extras: soft-capped attention scores and logits, their own attention scale. transformers' Gemma 3
#: keeps ``attn_logit_softcapping`` in its config but never applies it (its released models set None): a converted
#: Gemma 3 leaves it out as well, and a model with capped scores does not export as Gemma 3
_SOFTCAP_FAMILIES = ("Gemma2", "Gemma3")
_UNAPPLIED_ATTENTION_SOFTCAP = ("Gemma3",)
_SOFTCAP_OPTIONS = ("attention_softcap", "final_logit_softcap", "attention_scaling")


def _hf_class_name(family: str, head: str) -> str:
    """transformers' class of a family's head. Gemma 3's plain names are its vision-language model's: its text-only
    classes carry "Text", but for the causal LM (``Gemma3ForCausalLM``, text only)."""
    return f"Gemma3Text{head}" if family == "Gemma3" and head != "ForCausalLM" else f"{family}{head}"


def _hf_config_name(family: str) -> str:
    return "Gemma3TextConfig" if family == "Gemma3" else f"{family}Config"


def _windows(hf) -> dict:
    """Which layers attend through a sliding window: Mistral's all of them when ``sliding_window`` is set, the others'
    those their ``layer_types`` name (Qwen's ``sliding_window`` is None unless ``use_sliding_window``)."""
    window = getattr(hf, "sliding_window", None)
    layer_types = getattr(hf, "layer_types", None) if window is not None else None
    if layer_types is not None and all(kind == "sliding_attention" for kind in layer_types):
        layer_types = None  # every layer slides: the mini default for a window
    return {"sliding_window": window, "layer_types": layer_types}


def mini_config_from_llama(hf, family: str = "Llama", **overrides) -> MiniGPTConfig:
    """The MiniGPT config computing what ``hf`` (a config of one of :data:`FAMILIES`) computes; ``ValueError`` for
    options it lacks."""
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    kwargs.update(_windows(hf))
    rope = dict(hf.rope_parameters or {})
    if family in _ROPE_PER_LAYER_TYPE:  # a rotation per layer type: the full layers' is ours, the sliding may differ
        window, layer_types = kwargs["sliding_window"], kwargs["layer_types"]  # None: every layer slides
        has_sliding = window is not None and (layer_types is None or "sliding_attention" in layer_types)
        kwargs["sliding_rope_theta"] = sliding_rope_theta(hf, family, has_sliding)
        rope = dict(rope.get("full_attention") or {})
        # transformers reads YaRN's `truncate` from the top of rope_parameters, which here holds the layer types:
        # it always finds none, so truncates; so do we
        rope.pop("truncate", None)
    kwargs.update(rotary_options(rope, hf, family))
    hidden_act = getattr(hf, "hidden_activation", None) or hf.hidden_act  # Gemma 2's name for it
    if hidden_act not in _GATED:
        raise ValueError(f"{family} `hidden_act={hidden_act!r}` has no mini gated equivalent; one of "
                         f"{list(_GATED)}.")
    dropouts = {name: getattr(hf, name) for name in ("resid_pdrop", "embd_pdrop") if getattr(hf, name, 0.0)}
    if dropouts:  # Phi-3's: our residual dropout would also drop out the embeddings
        raise ValueError(f"{family} residual / embedding dropout {dropouts} has no mini equivalent; only 0.0.")
    kwargs["head_dim"] = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    classifier_dropout = getattr(hf, "classifier_dropout", None)
    kwargs.update(
        hidden_act=_GATED[hidden_act],
        position_embedding_type="rotary",
        norm_type="rmsnorm",
        norm_position="pre",
        final_norm=True,
        layer_norm_eps=float(hf.rms_norm_eps),
        embedding_norm=False,
        hidden_dropout=0.0,
        activation_dropout=0.0,
        classifier_dropout=HF_CLASSIFIER_DROPOUT if classifier_dropout is None else classifier_dropout,
        freeze_padding_row=hf.pad_token_id is not None,  # Llama's embedding has padding_idx = pad_token_id
    )
    kwargs.update(_FIXED[family])
    kwargs["norm_gain_offset"] = family in _GAIN_OFFSET_FAMILIES  # the gains as the checkpoint stores them
    if family == "SmolLM3":  # its flags say which layers *do* rotate (1) and which do not (0)
        kwargs["nope_layers"] = [i for i, rotates in enumerate(hf.no_rope_layers) if not rotates] or None
        if not getattr(hf, "use_sliding_window", False):
            kwargs.update(sliding_window=None, layer_types=None)  # its window is read only when it is switched on
    if getattr(hf, "use_bidirectional_attention", False):
        raise ValueError(f"{family} with `use_bidirectional_attention=True` (EmbeddingGemma) has no mini equivalent: "
                         "MiniGPT is causal; only False.")
    if family in _SOFTCAP_FAMILIES:
        softcap = None if family in _UNAPPLIED_ATTENTION_SOFTCAP else hf.attn_logit_softcapping
        kwargs.update(attention_softcap=softcap, final_logit_softcap=hf.final_logit_softcapping,
                      attention_scaling=hf.query_pre_attn_scalar**-0.5)
    kwargs.update(overrides)
    return MiniGPTConfig(**kwargs)


def export_family(config: MiniGPTConfig) -> str:
    """The family whose fixed layout (:data:`_FIXED`) ``config`` has: SmolLM3 for layers without rotary positions; OLMo
    for output norms (OLMo 3 with sliding layers);
    Gemma for scaled embeddings (Gemma 3 with query-key norms or a sliding layers' rotary base, Gemma 2 with sandwich
    norms); Qwen3 for query-key norms; Qwen2 for biases on Q, K and V only; else, with sliding-window layers, Mistral
    (every layer slides) or Ministral (some do); else Llama."""
    if config.nope_layers:
        return "SmolLM3"
    if config.norm_position == "output":
        return "Olmo3" if "sliding_attention" in config.layer_types else "Olmo2"
    if config.scale_embeddings and (config.qk_norm or config.sliding_rope_theta is not None):
        return "Gemma3"
    if config.scale_embeddings:
        return "Gemma2" if config.norm_position == "sandwich" else "Gemma"
    if config.qk_norm:
        return "Qwen3"
    if config.attention_bias and not config.attention_output_bias:
        return "Qwen2"
    if config.partial_rotary_factor != 1.0:
        return "Phi3"
    windows = [config.layer_sliding_window(i) for i in range(config.num_hidden_layers)]
    if all(window is None for window in windows):
        return "Llama"
    return "Mistral" if None not in windows else "Ministral"


def llama_config_from_mini(config: MiniGPTConfig):
    """The config of :func:`export_family`'s family for a MiniGPT config; ``ValueError`` naming the first option that
    family cannot express.

    Llama never trains its pad token's embedding row; a MiniGPT with ``freeze_padding_row=False`` and a pad token
    exports with the same weights and outputs, and differs only there in further training."""
    family = export_family(config)
    required = {
        "position_embedding_type": "rotary",
        "norm_type": "rmsnorm",
        "norm_position": "pre",
        "skip_first_attention_norm": False,
        "final_norm": True,
        "embedding_norm": False,
        "hidden_dropout": 0.0,
        "activation_dropout": 0.0,
        "add_cross_attention": False,
        "qk_norm": False,
        "scale_embeddings": False,
        "attention_output_bias": config.attention_bias,  # Llama: a bias on every attention projection or on none
        "partial_rotary_factor": config.partial_rotary_factor if family == "Phi3" else 1.0,
        **{name: None for name in _SOFTCAP_OPTIONS if family not in _SOFTCAP_FAMILIES},
        **({"attention_softcap": None} if family in _UNAPPLIED_ATTENTION_SOFTCAP else {}),
        **({} if family in _ROPE_PER_LAYER_TYPE else {"sliding_rope_theta": None}),
        **({"qk_norm_scope": "head"} if config.qk_norm else {}),
        **_FIXED[family],
    }
    # heads, windows, the gate and the Gemma / SmolLM3 options are checked per family, above and below
    check_expressible(config, family, required, standard_heads=False, sliding=True, gated=True,
                      allow=("attention_scaling", "attention_softcap", "final_logit_softcap", "nope_layers",
                             "sliding_rope_theta", "norm_gain_offset"))
    if family not in _SLIDING and "sliding_attention" in config.layer_types:
        raise ValueError(f"{family} attends to every earlier token: it needs `sliding_window=None`; this model has "
                         f"{config.sliding_window!r}.")
    if family == "Phi3" and len(set(config.layer_types)) > 1:
        raise ValueError("Phi3 slides on every layer or on none: it needs `layer_types` all alike; this model has "
                         f"{config.layer_types!r}.")
    if family == "Phi3" and config.rotary_scaling is not None and config.rotary_scaling["rope_type"] != "longrope":
        # transformers' Phi-3 takes no other scaling (it would read YaRN as LongRoPE)
        raise ValueError("Phi3 (the only family for `partial_rotary_factor` below 1) scales rotary positions with "
                         "LongRoPE only: it needs `rotary_scaling` None or of rope_type 'longrope'; this model has "
                         f"{config.rotary_scaling!r}.")
    if (family in _ROPE_PER_LAYER_TYPE and config.rotary_scaling
            and config.rotary_scaling.get("truncate", True) is not True):
        raise ValueError(f"{family} always truncates YaRN's correction range (transformers reads `truncate` from "
                         "the top of its per-layer-type rope_parameters, where it finds none): it needs "
                         f"`rotary_scaling['truncate']` True or absent; got {config.rotary_scaling['truncate']!r}.")
    if family in _SOFTCAP_FAMILIES and config.attention_scaling is not None:
        scalar = _whole_if_close(config.attention_scaling**-2)
        if not isinstance(scalar, int):  # transformers keeps the scale as a whole length
            raise ValueError(f"{family} scales attention by 1 / sqrt(query_pre_attn_scalar), a whole number: it needs "
                             f"`attention_scaling` = 1 / sqrt(n) for a whole n; got {config.attention_scaling!r} "
                             f"(n = {scalar!r}).")
    gate = {ours: theirs for theirs, ours in _GATED.items()}
    if config.hidden_act not in gate:
        raise ValueError(f"{family}'s feed-forward is gated: `hidden_act` must be one of {list(gate)}; got "
                         f"{config.hidden_act!r}.")
    # a fixed option is not a field of that family's config
    kwargs = {key: getattr(config, key) for key in _SHARED if key not in _FIXED[family]}
    layer_types = ["full_attention" if config.layer_sliding_window(i) is None else "sliding_attention"
                   for i in range(config.num_hidden_layers)]
    if family in ("Mistral", "Phi3"):
        kwargs["sliding_window"] = config.layer_sliding_window(0)
    elif family in _SOFTCAP_FAMILIES:
        # Gemma 2's scale is a length (1 / sqrt(query_pre_attn_scalar)); None: the usual one, head_dim. transformers
        # builds Gemma's sliding mask even when no layer reads it, so a model without a window exports with one as
        # long as its context, on no layer
        scale = config.attention_scaling
        kwargs.update(sliding_window=config.sliding_window or config.max_position_embeddings, layer_types=layer_types,
                      attn_logit_softcapping=config.attention_softcap,
                      final_logit_softcapping=config.final_logit_softcap,
                      query_pre_attn_scalar=config.head_dim if scale is None else _whole_if_close(scale**-2))
    if family == "Phi3" and "original_max_position_embeddings" in (config.rotary_scaling or {}):
        # Phi-3 keeps the original length as a field of its own, which overrides the one in rope_parameters
        kwargs["original_max_position_embeddings"] = config.rotary_scaling["original_max_position_embeddings"]
    elif family in ("Ministral", "Olmo3"):
        kwargs.update(sliding_window=config.sliding_window, layer_types=layer_types)
    elif family in ("Qwen2", "Qwen3") and "sliding_attention" in layer_types:
        kwargs.update(use_sliding_window=True, sliding_window=config.sliding_window, layer_types=layer_types,
                      max_window_layers=layer_types.index("sliding_attention"))  # Qwen's rule when none is given
    elif family in ("Qwen2", "Qwen3"):
        kwargs["use_sliding_window"] = False
    if family == "SmolLM3":
        nope = set(config.nope_layers)
        kwargs.update(no_rope_layers=[int(i not in nope) for i in range(config.num_hidden_layers)],
                      use_sliding_window="sliding_attention" in layer_types, sliding_window=config.sliding_window,
                      layer_types=layer_types)
    kwargs["hidden_activation" if family in _SOFTCAP_FAMILIES else "hidden_act"] = gate[config.hidden_act]
    rope = {"rope_type": "default", "rope_theta": config.rope_theta, **(config.rotary_scaling or {}),
            **({"partial_rotary_factor": config.partial_rotary_factor} if family == "Phi3" else {})}
    if family in _ROPE_PER_LAYER_TYPE:  # a rotation per layer type
        rope = rope_parameters_per_layer_type(config)
    config_class = getattr(transformers, _hf_config_name(family))
    return config_class(
        rms_norm_eps=config.layer_norm_eps,
        rope_parameters=rope,
        head_dim=config.head_dim,
        classifier_dropout=config.classifier_dropout if config.classifier_dropout is not None else 0.0,
        **kwargs,
    )


def _whole_if_close(value: float) -> int | float:
    """``224.00000000000003`` -> 224 (a length computed back from its inverse square root)."""
    return round(value) if abs(value - round(value)) < 1e-6 else value


def _mapping(num_layers: int, mini: str, hf: str, untied_head: bool, qk_norm: bool = False,
             norm_position: str = "pre") -> dict:
    """{mini key: hf key}; our separate q/k/v names are fused by ``load_mapped``."""
    mapping = {f"{mini}embeddings.embed_tokens.weight": f"{hf}embed_tokens.weight",
               f"{mini}norm.weight": f"{hf}norm.weight"}
    for i in range(num_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}layers.{i}."
        before = [("self_attn_norm", "input_layernorm")]
        after = [("self_attn_out_norm", "post_attention_layernorm"), ("mlp_out_norm", "post_feedforward_layernorm")]
        names = {  # the block's norms: before each sub-layer (Llama), before and after (Gemma 2), after (OLMo 2)
            "pre": [*before, ("mlp_norm", "post_attention_layernorm")],
            "sandwich": [*before, ("mlp_norm", "pre_feedforward_layernorm"), *after],
            "output": after,
        }[norm_position]
        names += [(f"self_attn.{p}", f"self_attn.{p}") for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        names += [(f"mlp.{p}", f"mlp.{p}") for p in ("gate_proj", "up_proj", "down_proj")]
        names += [(f"self_attn.{p}", f"self_attn.{p}") for p in ("q_norm", "k_norm") if qk_norm]  # Qwen3's
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


# class name after the family -> (mini class, mini prefix, hf prefix, head keys {mini: hf})
_HEADS = {
    "Model": (MiniGPTModel, "", "", {}),
    "ForCausalLM": (MiniGPTForCausalLM, "model.", "model.", {}),
    "ForSequenceClassification": (MiniGPTForSequenceClassification, "model.", "model.",
                                  {"score.weight": "score.weight"}),
    "ForTokenClassification": (MiniGPTForTokenClassification, "model.", "model.",
                               {"score.weight": "score.weight", "score.bias": "score.bias"}),
    # the backbone's name varies by family (``transformer`` or ``model``): the class's ``base_model_prefix``
    "ForQuestionAnswering": (MiniGPTForQuestionAnswering, "model.", None,
                             {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"}),
}


#: transformers' class name -> (family, head), for the heads transformers has (Gemma has no token classifier, ...)
_HF_CLASSES = {_hf_class_name(family, head): (family, head) for family in FAMILIES for head in _HEADS
               if hasattr(transformers, _hf_class_name(family, head))}


def _norm_gains(mapping: dict, family: str, config: MiniGPTConfig, into_mini: bool) -> dict:
    """{mini key: fn} moving every RMSNorm gain between the two ways of storing it: Gemma scales by ``1 + weight``,
    Llama by ``weight``, and a mini model by either (``norm_gain_offset``). A converted Gemma keeps Gemma's way, so
    its gains cross unchanged; a gain crossing between the two ways gains or loses 1 (a mini model set to store them
    as offsets exporting as Llama, say). Empty when no gain changes."""
    shift = float(config.norm_gain_offset) - float(family in _GAIN_OFFSET_FAMILIES)  # ours - theirs, for the offset
    shift = -shift if into_mini else shift
    if not shift:
        return {}
    return {key: (lambda weight: weight + shift) for key in mapping if key.endswith("norm.weight")}


def _unpack_phi3(state: dict, config: MiniGPTConfig, prefix: str) -> dict:
    """Phi-3's fused ``qkv_proj`` (rows Q, K, V) and ``gate_up_proj`` (rows gate, up) as Llama's separate matrices."""
    state = dict(state)
    q_size, kv_size = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    for i in range(config.num_hidden_layers):
        layer = f"{prefix}layers.{i}."
        q, k, v = state.pop(f"{layer}self_attn.qkv_proj.weight").split([q_size, kv_size, kv_size])
        gate, up = state.pop(f"{layer}mlp.gate_up_proj.weight").chunk(2)
        state |= {f"{layer}self_attn.q_proj.weight": q, f"{layer}self_attn.k_proj.weight": k,
                  f"{layer}self_attn.v_proj.weight": v, f"{layer}mlp.gate_proj.weight": gate,
                  f"{layer}mlp.up_proj.weight": up}
    return state


def _pack_phi3(state: dict, num_layers: int, prefix: str) -> dict:
    """The inverse of :func:`_unpack_phi3`: the separate matrices (under Phi-3's names) fused as Phi-3 keeps them."""
    state = dict(state)
    for i in range(num_layers):
        attention, mlp = f"{prefix}layers.{i}.self_attn.", f"{prefix}layers.{i}.mlp."
        state[f"{attention}qkv_proj.weight"] = torch.cat([state.pop(f"{attention}{p}_proj.weight") for p in "qkv"])
        state[f"{mlp}gate_up_proj.weight"] = torch.cat([state.pop(f"{mlp}{p}_proj.weight") for p in ("gate", "up")])
    return state


def _from_hf(hf_model, **overrides):
    family, head_name = _HF_CLASSES[type(hf_model).__name__]
    mini_cls, mini_prefix, hf_prefix, head = _HEADS[head_name]
    hf_prefix = f"{type(hf_model).base_model_prefix}." if hf_prefix is None else hf_prefix
    config = mini_config_from_llama(hf_model.config, family, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    state = hf_model.state_dict()
    if family == "Phi3":
        state = _unpack_phi3(state, config, hf_prefix)
    mapping = _with_biases({**_mapping(config.num_hidden_layers, mini_prefix, hf_prefix, untied, config.qk_norm,
                                       config.norm_position), **head}, state, True)
    transforms = _norm_gains(mapping, family, config, into_mini=True) or None
    mini = load_mapped(new_model(mini_cls, config, hf_model.dtype), state, mapping, transforms)
    if head_name == "ForCausalLM":  # stop tokens and sampling defaults of a chat model travel along
        mini.generation_config = copy.deepcopy(hf_model.generation_config)
    return mini


def to_llama(mini_model):
    """The model of :func:`export_family`'s family equivalent to a MiniGPT with rotary positions and RMSNorm;
    ``convert.to_hf`` calls it for such models."""
    head_name = next(name for name, entry in _HEADS.items() if entry[0] is type(mini_model))
    _, mini_prefix, hf_prefix, head = _HEADS[head_name]
    family = export_family(mini_model.config)
    if _hf_class_name(family, head_name) not in _HF_CLASSES:
        raise ValueError(f"transformers' {family} has no {head_name.removeprefix('For')} head: export the backbone "
                         "(`model.model`) instead.")
    config = llama_config_from_mini(mini_model.config)
    hf_cls = getattr(transformers, _hf_class_name(family, head_name))
    config._attn_implementation = mini_model.config._attn_implementation
    if config._attn_implementation == "sdpa" and not hf_cls._supports_sdpa:
        config._attn_implementation = "eager"  # transformers runs Gemma 2 without sdpa; eager computes the same
    hf_prefix = f"{hf_cls.base_model_prefix}." if hf_prefix is None else hf_prefix
    untied = head_name == "ForCausalLM" and not config.tie_word_embeddings
    state = separate_attention_projections(mini_model)
    mapping = _with_biases({**_mapping(config.num_hidden_layers, mini_prefix, hf_prefix, untied,
                                       mini_model.config.qk_norm, mini_model.config.norm_position),
                            **head}, state, False)
    hf_state = {hf_key: state[mini_key] for mini_key, hf_key in mapping.items()}
    if family == "Phi3":
        hf_state = _pack_phi3(hf_state, config.num_hidden_layers, hf_prefix)
    shifts = _norm_gains(mapping, family, mini_model.config, into_mini=False)
    transforms = {mapping[mini_key]: shift for mini_key, shift in shifts.items()}  # by HF name, as load_mapped takes
    hf_model = load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state}, transforms)
    if isinstance(mini_model, MiniGPTForCausalLM):
        hf_model.generation_config = copy.deepcopy(mini_model.generation_config)
    return hf_model


FROM_HF = dict.fromkeys(_HF_CLASSES, _from_hf)
TO_HF = {}  # MiniGPT exports through convert_gpt2, which hands Llama-shaped models (rotary, RMSNorm) to to_llama
