"""GPT-2 <-> MiniGPT: the config translation and the weight-name map (used through ``convert.py``).

GPT-2 is a MiniGPT with learned positions, pre-norm LayerNorm, a final norm, ``gelu_new`` and biases.
Its ``Conv1D`` layers store weights as (in, out), the transpose of ``nn.Linear``, and fuse Q, K and V
into one ``c_attn`` projection, the same layout as our ``qkv_proj`` (transposed). With ``add_cross_attention``
each block's ``crossattention`` has ``q_attn`` (our ``q_proj``) and a ``c_attn`` fusing K and V (our
``kv_proj``), normalised first by ``ln_cross_attn``.
"""

import copy

from transformers import (
    GPT2Config,
    GPT2ForQuestionAnswering,
    GPT2ForSequenceClassification,
    GPT2ForTokenClassification,
    GPT2LMHeadModel,
    GPT2Model,
)

from .configuration_mini import MiniGPTConfig
from .convert import (
    HF_CLASSIFIER_DROPOUT,
    LAYERNORM_DECODER,
    activation_from_hf,
    check_expressible,
    load_mapped,
    new_model,
)
from .modeling_gpt import (
    MiniGPTForCausalLM,
    MiniGPTForQuestionAnswering,
    MiniGPTForSequenceClassification,
    MiniGPTForTokenClassification,
    MiniGPTModel,
)

_SHARED = ("vocab_size", "initializer_range", "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings",
           "num_labels", "id2label", "label2id", "problem_type", "use_cache", "add_cross_attention")


def mini_config_from_gpt2(hf: GPT2Config, **overrides) -> MiniGPTConfig:
    """The MiniGPT config computing what ``hf`` computes; ``ValueError`` for GPT-2 options it lacks."""
    if not hf.scale_attn_weights or hf.scale_attn_by_inverse_layer_idx:
        raise ValueError(
            "GPT-2 options `scale_attn_weights=False` / `scale_attn_by_inverse_layer_idx=True` have no mini equivalent."
        )
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    classifier_dropout = getattr(hf, "classifier_dropout", None)  # not a GPT2Config field, but read when set
    kwargs.update(
        hidden_size=hf.n_embd,
        num_hidden_layers=hf.n_layer,
        num_attention_heads=hf.n_head,
        intermediate_size=hf.n_inner or 4 * hf.n_embd,
        hidden_act=activation_from_hf(hf.activation_function, "GPT-2", "activation_function"),
        position_embedding_type="learned",
        max_position_embeddings=hf.n_positions,
        norm_type="layernorm",
        norm_position="pre",
        final_norm=True,
        layer_norm_eps=float(hf.layer_norm_epsilon),
        hidden_dropout=hf.resid_pdrop,
        embedding_dropout=None if hf.embd_pdrop == hf.resid_pdrop else hf.embd_pdrop,
        attention_dropout=hf.attn_pdrop,
        # GPT-2's config has no hidden_dropout: its token classifier falls back to 0.1, not to resid_pdrop as ours
        classifier_dropout=HF_CLASSIFIER_DROPOUT if classifier_dropout is None else classifier_dropout,
    )
    kwargs.update(overrides)
    return MiniGPTConfig(**kwargs)


def gpt2_config_from_mini(config: MiniGPTConfig) -> GPT2Config:
    """The GPT-2 config for a MiniGPT config; ``ValueError`` naming the first option GPT-2 cannot express."""
    required = {**LAYERNORM_DECODER, "position_embedding_type": "learned", "position_offset": 0,
                "pad_aware_positions": False, "attention_bias": True, "attention_output_bias": True}
    check_expressible(config, "GPT-2", required, allow=("embedding_dropout",))
    kwargs = {key: getattr(config, key) for key in _SHARED}
    return GPT2Config(
        n_embd=config.hidden_size,
        n_layer=config.num_hidden_layers,
        n_head=config.num_attention_heads,
        n_inner=config.intermediate_size,
        n_positions=config.max_position_embeddings,
        activation_function=config.hidden_act,
        layer_norm_epsilon=config.layer_norm_eps,
        resid_pdrop=config.hidden_dropout,
        embd_pdrop=config.hidden_dropout if config.embedding_dropout is None else config.embedding_dropout,
        attn_pdrop=config.attention_dropout,
        summary_first_dropout=config.hidden_dropout,
        # ours falls back to hidden_dropout, GPT-2's to 0.1: name the rate
        classifier_dropout=config.hidden_dropout if config.classifier_dropout is None else config.classifier_dropout,
        **kwargs,
    )


def _backbone_map(num_layers: int, mini: str, hf: str, cross_attention: bool = False) -> tuple[dict, dict]:
    """{mini key: hf key} for the backbone, plus per-key transforms (HF -> mini direction)."""
    mapping = {
        f"{mini}embeddings.embed_tokens.weight": f"{hf}wte.weight",
        f"{mini}embeddings.embed_positions.weight": f"{hf}wpe.weight",
        f"{mini}norm.weight": f"{hf}ln_f.weight",
        f"{mini}norm.bias": f"{hf}ln_f.bias",
    }
    transforms = {}
    transpose = lambda w: w.t().contiguous()  # noqa: E731  Conv1D (in, out) -> Linear (out, in)
    for i in range(num_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}h.{i}."
        norms = [("self_attn_norm", "ln_1"), ("mlp_norm", "ln_2")]
        # c_attn is GPT-2's fused Q, K, V projection, laid out as our qkv_proj once transposed
        linears = [("self_attn.qkv_proj", "attn.c_attn"), ("self_attn.o_proj", "attn.c_proj"),
                   ("mlp.up_proj", "mlp.c_fc"), ("mlp.down_proj", "mlp.c_proj")]
        if cross_attention:
            norms.append(("cross_attn_norm", "ln_cross_attn"))
            linears += [("cross_attn.q_proj", "crossattention.q_attn"), ("cross_attn.kv_proj", "crossattention.c_attn"),
                        ("cross_attn.o_proj", "crossattention.c_proj")]
        for ours, theirs in norms:
            for p in ("weight", "bias"):
                mapping[f"{m}{ours}.{p}"] = f"{h}{theirs}.{p}"
        for ours, theirs in linears:
            mapping[f"{m}{ours}.weight"] = f"{h}{theirs}.weight"
            transforms[f"{m}{ours}.weight"] = transpose
            mapping[f"{m}{ours}.bias"] = f"{h}{theirs}.bias"
    return mapping, transforms


# (mini class, mini backbone prefix, hf class, hf backbone prefix, head keys {mini: hf})
_PAIRS = {
    "GPT2Model": (MiniGPTModel, "", GPT2Model, "", {}),
    "GPT2LMHeadModel": (MiniGPTForCausalLM, "model.", GPT2LMHeadModel, "transformer.", {}),
    "GPT2ForSequenceClassification": (
        MiniGPTForSequenceClassification, "model.", GPT2ForSequenceClassification, "transformer.",
        {"score.weight": "score.weight"},
    ),
    "GPT2ForTokenClassification": (
        MiniGPTForTokenClassification, "model.", GPT2ForTokenClassification, "transformer.",
        {"score.weight": "classifier.weight", "score.bias": "classifier.bias"},
    ),
    "GPT2ForQuestionAnswering": (
        MiniGPTForQuestionAnswering, "model.", GPT2ForQuestionAnswering, "transformer.",
        {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"},
    ),
}


def _from_hf(hf_model, **overrides):
    mini_cls, mini_prefix, _, hf_prefix, head = _PAIRS[type(hf_model).__name__]
    config = mini_config_from_gpt2(hf_model.config, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    mapping, transforms = _backbone_map(config.num_hidden_layers, mini_prefix, hf_prefix, config.add_cross_attention)
    mapping.update(head)
    if mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings:  # an output matrix of its own
        mapping["lm_head.weight"] = "lm_head.weight"
    mini = load_mapped(new_model(mini_cls, config, hf_model.dtype), hf_model.state_dict(), mapping, transforms)
    if mini_cls is MiniGPTForCausalLM:
        mini.generation_config = copy.deepcopy(hf_model.generation_config)
    return mini


def _to_hf(mini_model):
    config = mini_model.config
    if config.position_embedding_type == "alibi":  # ALiBi: BLOOM's layout
        from .convert_bloom import to_bloom

        return to_bloom(mini_model)
    rotary_layernorm = config.position_embedding_type == "rotary" and config.norm_type == "layernorm"
    if rotary_layernorm and not (config.attention_bias or config.mlp_bias or config.lm_head_bias):
        from .convert_falcon import to_falcon  # rotary positions, LayerNorm, no biases anywhere: Falcon's layout

        return to_falcon(mini_model)
    if config.parallel_shared_norm and not config.attention_bias:  # parallel blocks reading one norm: GPT-J's
        from .convert_gptj import to_gptj

        return to_gptj(mini_model)
    if config.parallel_shared_norm:  # the same with attention biases: Phi's layout
        from .convert_phi import to_phi

        return to_phi(mini_model)
    if config.parallel_residual or (config.position_embedding_type == "rotary" and config.norm_type == "layernorm"):
        from .convert_gpt_neox import to_gpt_neox  # rotary positions with LayerNorm: GPT-NeoX's layout

        return to_gpt_neox(mini_model)
    if config.position_offset or config.pad_aware_positions:  # a table starting at row 2, counted by the mask: OPT's
        from .convert_opt import to_opt

        return to_opt(mini_model)
    if config.position_embedding_type == "rotary":  # GPT-2 has learned positions; Llama has rotary ones
        from .convert_llama import to_llama

        return to_llama(mini_model)
    name = next(k for k, v in _PAIRS.items() if v[0] is type(mini_model))
    _, mini_prefix, hf_cls, hf_prefix, head = _PAIRS[name]
    config = gpt2_config_from_mini(mini_model.config)
    config._attn_implementation = mini_model.config._attn_implementation
    mapping, transforms = _backbone_map(config.n_layer, mini_prefix, hf_prefix, config.add_cross_attention)
    if isinstance(mini_model, MiniGPTForCausalLM) and not config.tie_word_embeddings:  # an output matrix of its own
        mapping["lm_head.weight"] = "lm_head.weight"
    state = mini_model.state_dict()
    hf_state = {}
    for mini_key, hf_key in {**mapping, **head}.items():
        tensor = state[mini_key]
        # Linear (out, in) -> Conv1D (in, out), e.g. qkv_proj (3D, D) -> c_attn (D, 3D)
        hf_state[hf_key] = tensor.t().contiguous() if mini_key in transforms else tensor
    hf_model = load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state})
    if isinstance(mini_model, MiniGPTForCausalLM):
        hf_model.generation_config = copy.deepcopy(mini_model.generation_config)
    return hf_model


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {pair[0].__name__: _to_hf for pair in _PAIRS.values()}
