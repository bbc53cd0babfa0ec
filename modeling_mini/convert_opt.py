"""OPT <-> MiniGPT: the config translation and the weight-name map (through ``convert.py``).

Meta's OPT (125M to 66B) is a MiniGPT with learned positions, ReLU, biases everywhere and LayerNorm (eps 1e-5), pre-norm
with a final norm (``do_layer_norm_before``; OPT-350M alone is post-norm, without it). Two things set it apart from
GPT-2:

* Its position table starts at row 2, as BART's: ``position_offset=2``, the table kept whole
  (``max_position_embeddings + 2`` rows) so that export is exact.
* Without given position ids it numbers the tokens its ``attention_mask`` keeps (``pad_aware_positions``), so a
  left-padded prompt has the positions it has alone; pad tokens get row 1.

Its embeddings never drop out (``embedding_dropout=0.0``); its ``activation_dropout`` is read by no layer and maps to
nothing. Q, K and V are three matrices there, fused into our ``qkv_proj`` by ``load_mapped``. OPT-350M also narrows
its token table (``word_embed_proj_dim`` 512 for 1024-wide layers): our ``token_embedding_size``, its ``project_in``
our ``embeddings.project_tokens`` and its ``project_out`` ours.
"""

import copy

from transformers import OPTConfig, OPTForCausalLM, OPTForQuestionAnswering, OPTForSequenceClassification, OPTModel

from .configuration_mini import MiniGPTConfig
from .convert import (
    activation_from_hf,
    check_expressible,
    check_no_embedding_dropout,
    export_pair,
    load_mapped,
    new_model,
    separate_attention_projections,
)
from .modeling_gpt import (
    MiniGPTForCausalLM,
    MiniGPTForQuestionAnswering,
    MiniGPTForSequenceClassification,
    MiniGPTModel,
)

#: OPT's position table keeps two rows before position 0, as BART's
OPT_POSITION_OFFSET = 2
#: OPT's LayerNorms are ``nn.LayerNorm`` with its default eps
OPT_LAYER_NORM_EPS = 1e-5

_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "bos_token_id", "eos_token_id",
           "pad_token_id", "tie_word_embeddings", "attention_dropout", "use_cache", "num_labels", "id2label",
           "label2id", "problem_type")

# hf class name -> (mini class, hf class, mini backbone prefix, hf backbone prefix, head keys {mini: hf})
_PAIRS = {
    "OPTModel": (MiniGPTModel, OPTModel, "", "decoder.", {}),
    "OPTForCausalLM": (MiniGPTForCausalLM, OPTForCausalLM, "model.", "model.decoder.", {}),
    "OPTForSequenceClassification": (MiniGPTForSequenceClassification, OPTForSequenceClassification, "model.",
                                     "model.decoder.", {"score.weight": "score.weight"}),
    "OPTForQuestionAnswering": (MiniGPTForQuestionAnswering, OPTForQuestionAnswering, "model.", "model.decoder.",
                                {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"}),
}


def mini_config_from_opt(hf: OPTConfig, **overrides) -> MiniGPTConfig:
    """The MiniGPT config computing what ``hf`` computes; ``ValueError`` for OPT options it lacks."""
    if not hf.layer_norm_elementwise_affine:
        raise ValueError("OPT's `layer_norm_elementwise_affine=False` (norms without weights) has no mini "
                         "equivalent: it needs `layer_norm_elementwise_affine=True`.")
    if hf.layerdrop:
        raise ValueError(f"OPT's `layerdrop={hf.layerdrop}` (skipping whole layers in training) has no mini "
                         "equivalent: it needs `layerdrop=0.0`.")
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    pre_norm = bool(hf.do_layer_norm_before)
    narrow = hf.word_embed_proj_dim != hf.hidden_size
    kwargs.update(
        token_embedding_size=hf.word_embed_proj_dim if narrow else None,  # OPT-350M's 512 for 1024-wide layers
        intermediate_size=hf.ffn_dim,
        hidden_act=activation_from_hf(hf.activation_function, "OPT", "activation_function"),
        position_embedding_type="learned",
        max_position_embeddings=hf.max_position_embeddings + OPT_POSITION_OFFSET,  # the whole table
        position_offset=OPT_POSITION_OFFSET,
        pad_aware_positions=True,
        norm_type="layernorm",
        norm_position="pre" if pre_norm else "post",
        final_norm=pre_norm and not hf._remove_final_layer_norm,
        layer_norm_eps=OPT_LAYER_NORM_EPS,
        attention_bias=hf.enable_bias,
        attention_output_bias=hf.enable_bias,
        mlp_bias=hf.enable_bias,
        hidden_dropout=float(hf.dropout),
        embedding_dropout=0.0,
        initializer_range=hf.init_std,
        freeze_padding_row=hf.pad_token_id is not None,  # its token table has padding_idx = pad_token_id
    )
    kwargs.update(overrides)
    return MiniGPTConfig(**kwargs)


def opt_config_from_mini(config: MiniGPTConfig) -> OPTConfig:
    """The OPT config for a MiniGPT config; ``ValueError`` naming the first option OPT cannot express.

    OPT never trains its pad token's embedding row; a MiniGPT with ``freeze_padding_row=False`` exports with the same
    weights and outputs and differs only there in further training (as for Llama and Phi).

    OPT never drops out its embeddings: a model whose embeddings do (``embedding_dropout``, or ``hidden_dropout``
    when that is None) is refused, since training it there would differ."""
    bias = config.attention_bias
    required = {
        "position_embedding_type": "learned",
        "position_offset": OPT_POSITION_OFFSET,
        "pad_aware_positions": True,
        "norm_type": "layernorm",
        "norm_bias": True,
        "layer_norm_eps": OPT_LAYER_NORM_EPS,
        "skip_first_attention_norm": False,
        "embedding_norm": False,
        "scale_embeddings": False,
        "attention_output_bias": bias,  # OPT's one `enable_bias` sets all three
        "mlp_bias": bias,
        "activation_dropout": 0.0,
        "add_cross_attention": False,
    }
    if config.norm_position not in ("pre", "post"):
        raise ValueError(f"OPT is pre-norm (or post-norm, as OPT-350M): it needs `norm_position` 'pre' or 'post'; "
                         f"this model has {config.norm_position!r}.")
    if config.norm_position == "post" and config.final_norm:
        raise ValueError("A post-norm OPT has no final norm: it needs `final_norm=False` with `norm_position='post'`.")
    check_expressible(config, "OPT", required, allow=("embedding_dropout", "token_embedding_size"))
    if config.max_position_embeddings <= OPT_POSITION_OFFSET:
        raise ValueError(f"OPT's position table keeps {OPT_POSITION_OFFSET} rows before position 0: it needs "
                         f"`max_position_embeddings > {OPT_POSITION_OFFSET}`; got {config.max_position_embeddings}.")
    check_no_embedding_dropout(config, "OPT")
    kwargs = {key: getattr(config, key) for key in _SHARED}
    pre_norm = config.norm_position == "pre"
    return OPTConfig(
        ffn_dim=config.intermediate_size,
        activation_function=config.hidden_act,
        max_position_embeddings=config.max_position_embeddings - OPT_POSITION_OFFSET,
        do_layer_norm_before=pre_norm,
        _remove_final_layer_norm=pre_norm and not config.final_norm,
        word_embed_proj_dim=config.output_size,
        enable_bias=bias,
        dropout=config.hidden_dropout,
        init_std=config.initializer_range,
        **kwargs,
    )


def _mapping(num_layers: int, mini: str, hf: str, final_norm: bool, bias: bool, untied_head: bool,
             narrow: bool) -> dict:
    """{mini key: hf key} for the embeddings, the blocks and the final norm (and an untied output matrix, and the
    projections in and out of a narrow token table)."""
    mapping = {f"{mini}embeddings.embed_tokens.weight": f"{hf}embed_tokens.weight",
               f"{mini}embeddings.embed_positions.weight": f"{hf}embed_positions.weight"}
    if narrow:
        mapping.update({f"{mini}embeddings.project_tokens.weight": f"{hf}project_in.weight",
                        f"{mini}project_out.weight": f"{hf}project_out.weight"})
    if final_norm:
        mapping.update({f"{mini}norm.weight": f"{hf}final_layer_norm.weight",
                        f"{mini}norm.bias": f"{hf}final_layer_norm.bias"})
    for i in range(num_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}layers.{i}."
        for ours, theirs in (("self_attn_norm", "self_attn_layer_norm"), ("mlp_norm", "final_layer_norm")):
            for p in ("weight", "bias"):
                mapping[f"{m}{ours}.{p}"] = f"{h}{theirs}.{p}"
        for ours, theirs in (("self_attn.q_proj", "self_attn.q_proj"), ("self_attn.k_proj", "self_attn.k_proj"),
                             ("self_attn.v_proj", "self_attn.v_proj"), ("self_attn.o_proj", "self_attn.out_proj"),
                             ("mlp.up_proj", "fc1"), ("mlp.down_proj", "fc2")):
            for p in ("weight", "bias") if bias else ("weight",):
                mapping[f"{m}{ours}.{p}"] = f"{h}{theirs}.{p}"
    if untied_head:
        mapping["lm_head.weight"] = "lm_head.weight"
    return mapping


def _from_hf(hf_model, **overrides):
    mini_cls, _, mini_prefix, hf_prefix, head = _PAIRS[type(hf_model).__name__]
    config = mini_config_from_opt(hf_model.config, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    mapping = _mapping(config.num_hidden_layers, mini_prefix, hf_prefix, config.final_norm, config.attention_bias,
                       untied, config.output_size != config.hidden_size)
    mini = load_mapped(new_model(mini_cls, config, hf_model.dtype), hf_model.state_dict(), {**mapping, **head})
    if mini_cls is MiniGPTForCausalLM:
        mini.generation_config = copy.deepcopy(hf_model.generation_config)
    return mini


def to_opt(mini_model):
    """The OPT model equivalent to a MiniGPT with OPT's offset, mask-counted positions; ``convert.to_hf`` calls it."""
    mini_cls, hf_cls, mini_prefix, hf_prefix, head = export_pair(_PAIRS, mini_model, "OPT")
    config = opt_config_from_mini(mini_model.config)
    config._attn_implementation = mini_model.config._attn_implementation
    mini_config = mini_model.config
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    mapping = _mapping(config.num_hidden_layers, mini_prefix, hf_prefix, mini_config.final_norm,
                       mini_config.attention_bias, untied, mini_config.output_size != mini_config.hidden_size)
    state = separate_attention_projections(mini_model)
    hf_state = {hf_key: state[mini_key] for mini_key, hf_key in {**mapping, **head}.items()}
    hf_model = load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state})
    if mini_cls is MiniGPTForCausalLM:
        hf_model.generation_config = copy.deepcopy(mini_model.generation_config)
    return hf_model


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # MiniGPT exports through convert_gpt2, which hands models with OPT's positions to to_opt
