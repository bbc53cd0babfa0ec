"""ModernBERT <-> MiniEncoder: the config translation and the weight-name map (used through ``convert.py``).

ModernBERT (2024) is a BERT rebuilt with the decoders' habits: rotary positions instead of a position table, pre-norm
blocks with a final norm, a gated GELU feed-forward (GeGLU), LayerNorms and projections without biases, and
local attention: two layers in three see only the tokens within 64 positions (``sliding_window``, its 128-token
``local_attention``), with a rotary base of their own (``sliding_rope_theta``). Its embeddings are normalised, so the
first block's attention has no input norm (``skip_first_attention_norm``).

Its Q, K and V are one matrix, ``Wqkv``, stacked as ours; its feed-forward's ``Wi`` stacks the activated half first
(our ``gate_proj``) and the multiplier second (our ``up_proj``). Its task heads pass the hidden states through a dense
-> activation -> norm of their own (``head_transform``), after first-token or mean pooling for the sentence-level ones
(``classifier_pooling``); every head converts both ways.
"""

import torch
import transformers
from transformers import ModernBertConfig

from .activations import ACTIVATIONS, HF_ALIASES
from .configuration_mini import MiniEncoderConfig
from .convert import (
    check_expressible,
    load_mapped,
    new_model,
    rope_parameters_per_layer_type,
    rotary_options,
    sliding_rope_theta,
)
from .modeling_encoder import (
    MiniEncoderForMaskedLM,
    MiniEncoderForMultipleChoice,
    MiniEncoderForQuestionAnswering,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
)

_SPECIAL_TOKENS = ("cls_token_id", "sep_token_id")
_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
           "max_position_embeddings", "initializer_range", "pad_token_id", "bos_token_id", "eos_token_id",
           "tie_word_embeddings", "attention_bias", "mlp_bias", "sparse_prediction", "num_labels", "id2label",
           "label2id", "problem_type")
#: ModernBERT's ``hidden_activation`` (the activated half's function, transformers' name) -> our gated activation
_GATED = {function: name for name, (function, gated) in ACTIVATIONS.items() if gated}


def _gated_activation(hf_name) -> str | None:
    """Our gated activation whose activated half applies transformers' ``hf_name`` (after its other names,
    ``activations.HF_ALIASES``: 'swish' is silu, 'gelu_python' gelu, ...); ``None`` if there is none."""
    name = HF_ALIASES.get(hf_name, hf_name) if isinstance(hf_name, str) else None
    if name not in ACTIVATIONS or ACTIVATIONS[name][1]:
        return None
    return _GATED.get(ACTIVATIONS[name][0])


#: the ``hidden_activation`` values that convert
_HF_GATED_NAMES = [name for name in (*ACTIVATIONS, *HF_ALIASES) if _gated_activation(name) is not None]


def mini_config_from_modernbert(hf: ModernBertConfig, add_pooler: bool = False, **overrides) -> MiniEncoderConfig:
    """The MiniEncoder config computing what ``hf`` computes; ``ValueError`` for ModernBERT options it lacks."""
    hidden_act = _gated_activation(hf.hidden_activation)
    if hidden_act is None:
        raise ValueError(f"ModernBERT `hidden_activation={hf.hidden_activation!r}` has no mini gated equivalent; one "
                         f"of {_HF_GATED_NAMES}.")
    if _gated_activation(hf.classifier_activation) != hidden_act:  # the same function under another name is fine
        raise ValueError("ModernBERT's masked-LM head must use the feed-forward's activation (ours does): "
                         f"`classifier_activation` must be {hf.hidden_activation!r}; got {hf.classifier_activation!r}.")
    dropouts = {name: getattr(hf, name) for name in ("embedding_dropout", "attention_dropout") if getattr(hf, name)}
    if dropouts:  # ModernBERT drops out attention's output with the same rate as its probabilities: we cannot
        raise ValueError(f"ModernBERT {dropouts} have no mini equivalent; only 0.0.")
    if not hf.decoder_bias or hf.sparse_pred_ignore_index != -100:
        raise ValueError("ModernBERT needs `decoder_bias=True` and `sparse_pred_ignore_index=-100` (as ours); got "
                         f"{hf.decoder_bias!r} and {hf.sparse_pred_ignore_index!r}.")
    layer_types = list(hf.layer_types)
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    kwargs.update({key: getattr(hf, key) for key in _SPECIAL_TOKENS})  # kept as extra config fields, for the export
    kwargs.update(rotary_options(hf.rope_parameters["full_attention"], hf, "ModernBERT"))
    kwargs.update(
        hidden_act=hidden_act,
        position_embedding_type="rotary",
        sliding_window=hf.sliding_window,
        layer_types=layer_types,
        sliding_rope_theta=sliding_rope_theta(hf, "ModernBERT", "sliding_attention" in layer_types),
        norm_type="layernorm",
        norm_position="pre",
        norm_bias=hf.norm_bias,
        layer_norm_eps=float(hf.norm_eps),
        skip_first_attention_norm=True,
        embedding_norm=True,
        final_norm=True,
        type_vocab_size=0,
        add_pooler=add_pooler,
        head_bias=hf.classifier_bias,
        head_transform=True,
        classifier_pooling=hf.classifier_pooling,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=float(hf.mlp_dropout),
        classifier_dropout=float(hf.classifier_dropout),
    )
    kwargs.update(overrides)
    return MiniEncoderConfig(**kwargs)


def modernbert_config_from_mini(config: MiniEncoderConfig) -> ModernBertConfig:
    """The ModernBERT config for a MiniEncoder config; ``ValueError`` naming the first option it cannot express."""
    required = {
        "position_embedding_type": "rotary",
        "partial_rotary_factor": 1.0,
        "norm_type": "layernorm",
        "norm_position": "pre",
        "skip_first_attention_norm": True,
        "embedding_norm": True,
        "final_norm": True,
        "type_vocab_size": 0,
        "scale_embeddings": False,
        "pad_aware_positions": False,
        "position_offset": 0,
        "attention_output_bias": config.attention_bias,  # one bias flag for Wqkv and Wo
        "attention_scaling": None,
        "attention_softcap": None,
        "hidden_dropout": 0.0,  # ModernBERT has no dropout on the residual stream
        "attention_dropout": 0.0,  # its attention dropout also drops the attention output
    }
    check_expressible(config, "ModernBERT", required, sliding=True, gated=True, allow=("sliding_rope_theta",))
    gate = {ours: theirs for theirs, ours in _GATED.items()}
    if config.hidden_act not in gate:
        raise ValueError(f"ModernBERT's feed-forward is gated: `hidden_act` must be one of {list(gate)}; got "
                         f"{config.hidden_act!r}.")
    kwargs = {key: getattr(config, key) for key in _SHARED}
    kwargs.update({key: getattr(config, key, None) for key in _SPECIAL_TOKENS})
    activation = gate[config.hidden_act]  # the masked-LM head's function too, as ours
    return ModernBertConfig(
        hidden_activation=activation,
        classifier_activation=activation,
        rope_parameters=rope_parameters_per_layer_type(config),
        local_attention=2 * (config.sliding_window or 64),  # unused when no layer slides
        layer_types=list(config.layer_types),
        norm_bias=config.norm_bias,
        norm_eps=config.layer_norm_eps,
        classifier_bias=config.head_bias,
        classifier_pooling=config.classifier_pooling,
        mlp_dropout=config.activation_dropout,
        classifier_dropout=config.classifier_dropout if config.classifier_dropout is not None else 0.0,
        **kwargs,
    )


def _mapping(config, head_name: str) -> dict:
    """{mini key: ModernBERT key} for the class ``ModernBert<head_name>``: the backbone's (under ``model.`` in both,
    but for the bare backbone) and its head's; ``Wi`` is named for both halves of our gated feed-forward (split by
    the caller)."""
    prefix = "" if head_name == "Model" else "model."
    mapping = {f"{prefix}embeddings.embed_tokens.weight": f"{prefix}embeddings.tok_embeddings.weight",
               f"{prefix}embeddings.norm.weight": f"{prefix}embeddings.norm.weight",
               f"{prefix}norm.weight": f"{prefix}final_norm.weight"}
    for i in range(config.num_hidden_layers):
        layer = f"{prefix}layers.{i}."
        mapping |= {f"{layer}self_attn.qkv_proj.weight": f"{layer}attn.Wqkv.weight",
                    f"{layer}self_attn.o_proj.weight": f"{layer}attn.Wo.weight",
                    f"{layer}mlp_norm.weight": f"{layer}mlp_norm.weight",
                    f"{layer}mlp.gate_proj.weight": f"{layer}mlp.Wi.weight",
                    f"{layer}mlp.up_proj.weight": f"{layer}mlp.Wi.weight",
                    f"{layer}mlp.down_proj.weight": f"{layer}mlp.Wo.weight"}
        if i > 0:  # the first block's attention reads the normalised embeddings directly
            mapping[f"{layer}self_attn_norm.weight"] = f"{layer}attn_norm.weight"
    mapping |= _PAIRS[head_name][1]
    biases = {"norm": config.norm_bias, "self_attn.": config.attention_bias, "mlp.": config.mlp_bias,
              "transform.dense": config.head_bias}
    for ours, theirs in list(mapping.items()):
        if any(part in ours for part, on in biases.items() if on) and "embed_tokens" not in ours:
            mapping.setdefault(ours.removesuffix("weight") + "bias", theirs.removesuffix("weight") + "bias")
    return mapping


def _halves(mapping: dict) -> dict:
    """{mini key: fn}: the gate projection takes ``Wi``'s first half of rows, the up projection its second."""
    return {key: (lambda w, half=int("up_proj" in key): w.chunk(2)[half]) for key in mapping
            if ".mlp.gate_proj." in key or ".mlp.up_proj." in key}


def _head(transform: str, **linear) -> dict:
    """A head's keys {mini: ModernBERT}: its transform (ModernBERT's ``head``) at ``transform``, then its linear
    layers, weight and bias, {mini name: ModernBERT name}."""
    keys = {f"{transform}.dense.weight": "head.dense.weight", f"{transform}.norm.weight": "head.norm.weight"}
    for ours, theirs in linear.items():
        keys |= {f"{ours}.weight": f"{theirs}.weight", f"{ours}.bias": f"{theirs}.bias"}
    return keys


# ModernBERT class suffix -> (mini class, head keys {mini: ModernBERT}, whether the backbone has a pooler)
_PAIRS = {
    "Model": (MiniEncoderModel, {}, False),
    "ForMaskedLM": (MiniEncoderForMaskedLM, _head("transform", lm_head="decoder"), False),
    "ForSequenceClassification": (MiniEncoderForSequenceClassification,
                                  _head("model.pooler.transform", classifier="classifier"), True),
    "ForTokenClassification": (MiniEncoderForTokenClassification, _head("transform", classifier="classifier"), False),
    "ForQuestionAnswering": (MiniEncoderForQuestionAnswering, _head("transform", qa_outputs="classifier"), False),
    "ForMultipleChoice": (MiniEncoderForMultipleChoice, _head("model.pooler.transform", classifier="classifier"),
                          True),
}


def _from_hf(hf_model, **overrides):
    head_name = type(hf_model).__name__.removeprefix("ModernBert")
    mini_cls, _, pooler = _PAIRS[head_name]
    if head_name == "ForQuestionAnswering" and hf_model.config.num_labels != 2:
        raise ValueError(f"ModernBertForQuestionAnswering needs `num_labels=2` (start, end); got "
                         f"{hf_model.config.num_labels}.")
    config = mini_config_from_modernbert(hf_model.config, add_pooler=pooler, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    mapping = _mapping(config, head_name)
    return load_mapped(new_model(mini_cls, config, hf_model.dtype), hf_model.state_dict(), mapping, _halves(mapping))


def to_modernbert(mini_model):
    """The ModernBERT model equivalent to a MiniEncoder with ModernBERT's layout; ``convert.to_hf`` calls it for
    encoders with rotary positions."""
    head_name = next(name for name, (cls, _, _) in _PAIRS.items() if cls is type(mini_model))
    pooler = _PAIRS[head_name][2]
    config = modernbert_config_from_mini(mini_model.config)
    if head_name not in ("Model", "ForMaskedLM") and not mini_model.config.head_transform:
        raise ValueError(f"ModernBERT's {head_name.removeprefix('For')} head transforms the hidden states first: it "
                         "needs `head_transform=True`; this model has False.")
    if (mini_model.base_model.pooler is not None) != pooler:
        raise ValueError(f"ModernBert{head_name} {'needs' if pooler else 'has no'} pooler: build the backbone with "
                         f"`add_pooler={pooler}`.")
    config._attn_implementation = mini_model.config._attn_implementation
    mapping = _mapping(mini_model.config, head_name)
    state = mini_model.state_dict()
    hf_state = {}
    for ours, theirs in mapping.items():
        if ".mlp.up_proj." in ours:
            continue
        if ".mlp.gate_proj." in ours:  # Wi: the activated half, then the multiplier
            hf_state[theirs] = torch.cat([state[ours], state[ours.replace("gate_proj", "up_proj")]])
        else:
            hf_state[theirs] = state[ours]
    hf_cls = getattr(transformers, f"ModernBert{head_name}")
    return load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state})


FROM_HF = {f"ModernBert{head}": _from_hf for head in _PAIRS}
TO_HF = {}  # the MiniEncoder classes export through convert_bert, which hands rotary encoders to to_modernbert
