"""Falcon <-> MiniGPT: the config translation and the weight-name map (through ``convert.py``).

TII's Falcon is a MiniGPT with rotary positions, pre-norm LayerNorm, exact GELU, no biases (``bias=False``), a final
norm, an output layer tied to the embeddings, and few key/value heads. Its block comes in three layouts:

* Falcon-7B: *parallel* attention and feed-forward reading **one** norm (``parallel_residual`` with
  ``parallel_shared_norm``), one key/value head for all query heads (``multi_query``: ``num_key_value_heads=1``);
* Falcon-40B / 180B (``new_decoder_architecture``): parallel, each sub-layer behind a norm of its own (``ln_attn``,
  ``ln_mlp``: GPT-NeoX's parallel block), grouped-query heads (``num_kv_heads``); Falcon-11B the same with one norm
  (``num_ln_in_parallel_attn=1``);
* ``parallel_attn=False``: the usual sequential pre-norm block.

Its fused ``query_key_value`` projection keeps Q, K and V *per key/value group*: its rows are (group 0: its queries,
its key, its value; group 1: ...), where our ``qkv_proj`` has all queries, then all keys, then all values. All three
layouts are that order with ``G`` groups (Falcon-7B's one, Falcon-40B's eight, or one per head without
``multi_query``), so one regrouping serves them, both ways.

In training, Falcon drops out the *sum* of the two parallel branches once (we drop out each), and a sequential
block's attention output with ``attention_dropout``: only training differs there. Not expressed, raising
``ValueError``: ALiBi positions (Falcon-RW), biases, ``new_decoder_architecture`` without parallel blocks (which
transformers' Falcon cannot run either).
"""

import copy

import torch
from transformers import (
    FalconConfig,
    FalconForCausalLM,
    FalconForQuestionAnswering,
    FalconForSequenceClassification,
    FalconForTokenClassification,
    FalconModel,
)

from .configuration_mini import MiniGPTConfig
from .convert import (
    LAYERNORM_DECODER,
    activation_from_hf,
    check_expressible,
    check_no_embedding_dropout,
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

_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings",
           "initializer_range", "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings",
           "hidden_dropout", "attention_dropout", "use_cache", "num_labels", "id2label", "label2id", "problem_type")

# hf class name -> (mini class, mini backbone prefix, hf class, hf backbone prefix, head keys {mini: hf})
_PAIRS = {
    "FalconModel": (MiniGPTModel, "", FalconModel, "", {}),
    "FalconForCausalLM": (MiniGPTForCausalLM, "model.", FalconForCausalLM, "transformer.", {}),
    "FalconForSequenceClassification": (MiniGPTForSequenceClassification, "model.", FalconForSequenceClassification,
                                        "transformer.", {"score.weight": "score.weight"}),
    "FalconForTokenClassification": (MiniGPTForTokenClassification, "model.", FalconForTokenClassification,
                                     "transformer.", {"score.weight": "classifier.weight",
                                                      "score.bias": "classifier.bias"}),
    "FalconForQuestionAnswering": (MiniGPTForQuestionAnswering, "model.", FalconForQuestionAnswering, "transformer.",
                                    {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"}),
}


def _kv_heads(hf: FalconConfig) -> int:
    """The key/value heads (groups) of a Falcon config."""
    if hf.new_decoder_architecture:
        return hf.num_kv_heads
    return 1 if hf.multi_query else hf.num_attention_heads


def _norms(hf: FalconConfig) -> int:
    """How many norms a parallel Falcon block has: 2 (``ln_attn``, ``ln_mlp``) or 1 (``input_layernorm``)."""
    if hf.new_decoder_architecture:
        return 2 if hf.num_ln_in_parallel_attn in (None, 2) else 1
    return 1


def mini_config_from_falcon(hf: FalconConfig, **overrides) -> MiniGPTConfig:
    """The MiniGPT config computing what ``hf`` computes; ``ValueError`` for Falcon options it lacks."""
    if hf.alibi:
        raise ValueError("Falcon's `alibi=True` (ALiBi: a linear distance penalty on the scores, Falcon-RW) has no "
                         "mini equivalent: it needs `alibi=False` (rotary positions).")
    if hf.bias:
        raise ValueError("Falcon's `bias=True` (biases on every projection and a shared one) is not supported: it "
                         "needs `bias=False`, as every released Falcon.")
    if not hf.new_decoder_architecture and hf.parallel_attn and hf.num_ln_in_parallel_attn == 2:
        raise ValueError("Falcon's `num_ln_in_parallel_attn=2` (a norm per parallel branch) needs "
                         "`new_decoder_architecture=True`: the old layout builds the two norms but reads "
                         "`input_layernorm`, which it lacks (transformers' Falcon cannot run it either).")
    if hf.new_decoder_architecture and not hf.parallel_attn:
        raise ValueError("Falcon's `new_decoder_architecture=True` needs `parallel_attn=True` (transformers' Falcon "
                         "cannot run it otherwise).")
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    rope = dict(hf.rope_parameters or {})
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError(f"Falcon's `partial_rotary_factor={rope['partial_rotary_factor']}` is read by none of its "
                         "layers (Falcon rotates whole heads): remove it, or set it to 1.0.")
    kwargs.update(rotary_options(rope, hf, "Falcon"))
    parallel = bool(hf.parallel_attn)
    kwargs.update(
        num_key_value_heads=_kv_heads(hf),
        intermediate_size=hf.ffn_hidden_size,
        hidden_act=activation_from_hf(hf.activation, "Falcon", "activation"),
        position_embedding_type="rotary",
        norm_type="layernorm",
        norm_position="pre",
        parallel_residual=parallel,
        parallel_shared_norm=parallel and _norms(hf) == 1,
        final_norm=True,
        layer_norm_eps=float(hf.layer_norm_epsilon),
        attention_bias=False,
        attention_output_bias=False,
        mlp_bias=False,
        embedding_dropout=0.0,  # its embeddings never drop out
        classifier_dropout=getattr(hf, "classifier_dropout", None),
    )
    kwargs.update(overrides)
    return MiniGPTConfig(**kwargs)


def falcon_config_from_mini(config: MiniGPTConfig) -> FalconConfig:
    """The Falcon config for a MiniGPT config; ``ValueError`` naming the first option Falcon cannot express.

    A parallel block sharing one norm exports as Falcon-7B's layout when its key/value heads are one or one per head,
    else as Falcon-11B's (``new_decoder_architecture`` with one norm); parallel blocks with two norms as
    Falcon-40B's."""
    required = {
        **LAYERNORM_DECODER,
        "position_embedding_type": "rotary",
        "partial_rotary_factor": 1.0,
        "attention_bias": False,
        "attention_output_bias": False,
        "mlp_bias": False,
        "add_cross_attention": False,
        "freeze_padding_row": False,
        "qk_norm": False,
    }
    check_expressible(config, "Falcon", required, standard_heads=False, allow=("parallel_residual",
                                                                               "parallel_shared_norm",
                                                                               "embedding_dropout"))
    if config.head_dim * config.num_attention_heads != config.hidden_size:
        raise ValueError(f"Falcon needs `head_dim = hidden_size / num_attention_heads` = "
                         f"{config.hidden_size / config.num_attention_heads:g}; this model has {config.head_dim}.")
    check_no_embedding_dropout(config, "Falcon")
    groups, heads = config.num_key_value_heads, config.num_attention_heads
    if not config.parallel_residual and groups not in (1, heads):
        raise ValueError(f"A sequential Falcon block has one key/value head or one per head: it needs "
                         f"`num_key_value_heads` 1 or {heads} with `parallel_residual=False`; got {groups}.")
    new_architecture = config.parallel_residual and (not config.parallel_shared_norm or groups not in (1, heads))
    rope = {"rope_type": "default", "rope_theta": config.rope_theta, **(config.rotary_scaling or {})}
    kwargs = {key: getattr(config, key) for key in _SHARED}
    return FalconConfig(
        num_kv_heads=groups,
        multi_query=new_architecture or groups == 1,  # read only by the old layout; Falcon-40B's config says True
        new_decoder_architecture=new_architecture,
        num_ln_in_parallel_attn=(1 if config.parallel_shared_norm else 2) if new_architecture else None,
        parallel_attn=config.parallel_residual,
        bias=False,
        alibi=False,
        ffn_hidden_size=config.intermediate_size,
        activation=config.hidden_act,
        layer_norm_epsilon=config.layer_norm_eps,
        rope_parameters=rope,
        classifier_dropout=config.classifier_dropout,
        **kwargs,
    )


def _split_groups(tensor: torch.Tensor, groups: int, head_dim: int) -> tuple[torch.Tensor, ...]:
    """Falcon's fused rows (per group: its queries, its key, its value) -> our q, k, v row blocks, all queries first.
    (G * (Q/G + 2) * Dh, ...) -> (Q * Dh, ...), (G * Dh, ...), (G * Dh, ...)."""
    grouped = tensor.view(groups, -1, head_dim, *tensor.shape[1:])  # (G, Q/G + 2, Dh, ...)
    rest = tensor.shape[1:]
    return tuple(part.reshape(-1, *rest).contiguous() for part in (grouped[:, :-2], grouped[:, -2], grouped[:, -1]))


def _join_groups(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, groups: int, head_dim: int) -> torch.Tensor:
    """The inverse of :func:`_split_groups`."""
    rest = q.shape[1:]
    queries = q.view(groups, -1, head_dim, *rest)  # (G, Q/G, Dh, ...)
    keys, values = (x.view(groups, 1, head_dim, *rest) for x in (k, v))
    return torch.cat([queries, keys, values], dim=1).reshape(-1, *rest).contiguous()


def _mapping(config: MiniGPTConfig, mini: str, hf: str, untied_head: bool) -> dict:
    """{mini key: hf key}; our separate q / k / v projections map to the split rows ``<...>query_key_value.q.weight``
    that :func:`_from_hf` makes and :func:`to_falcon` joins."""
    mapping = {f"{mini}embeddings.embed_tokens.weight": f"{hf}word_embeddings.weight",
               f"{mini}norm.weight": f"{hf}ln_f.weight", f"{mini}norm.bias": f"{hf}ln_f.bias"}
    if not config.parallel_residual:
        norms = (("self_attn_norm", "input_layernorm"), ("mlp_norm", "post_attention_layernorm"))
    elif config.parallel_shared_norm:
        norms = (("self_attn_norm", "input_layernorm"),)
    else:
        norms = (("self_attn_norm", "ln_attn"), ("mlp_norm", "ln_mlp"))
    for i in range(config.num_hidden_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}h.{i}."
        for ours, theirs in norms:
            for p in ("weight", "bias"):
                mapping[f"{m}{ours}.{p}"] = f"{h}{theirs}.{p}"
        linears = [("self_attn.o_proj", "self_attention.dense"), ("mlp.up_proj", "mlp.dense_h_to_4h"),
                   ("mlp.down_proj", "mlp.dense_4h_to_h")]
        linears += [(f"self_attn.{p}_proj", f"self_attention.query_key_value.{p}") for p in "qkv"]
        for ours, theirs in linears:
            mapping[f"{m}{ours}.weight"] = f"{h}{theirs}.weight"
    if untied_head:
        mapping["lm_head.weight"] = "lm_head.weight"
    return mapping


def _from_hf(hf_model, **overrides):
    mini_cls, mini_prefix, _, hf_prefix, head = _PAIRS[type(hf_model).__name__]
    config = mini_config_from_falcon(hf_model.config, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    groups, head_dim = config.num_key_value_heads, config.head_dim
    state = split_fused_qkv(hf_model.state_dict(), lambda fused: _split_groups(fused, groups, head_dim))
    mapping = {**_mapping(config, mini_prefix, hf_prefix, untied), **head}
    mini = load_mapped(new_model(mini_cls, config, hf_model.dtype), state, mapping)
    if mini_cls is MiniGPTForCausalLM:
        mini.generation_config = copy.deepcopy(hf_model.generation_config)
    return mini


def to_falcon(mini_model):
    """The Falcon model equivalent to a MiniGPT with rotary positions, LayerNorm and no biases; ``convert.to_hf``
    calls it."""
    name = next(k for k, v in _PAIRS.items() if v[0] is type(mini_model))
    mini_cls, mini_prefix, hf_cls, hf_prefix, head = _PAIRS[name]
    mini_config = mini_model.config
    config = falcon_config_from_mini(mini_config)
    config._attn_implementation = mini_config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    mapping = {**_mapping(mini_config, mini_prefix, hf_prefix, untied), **head}
    state = separate_attention_projections(mini_model)
    groups, head_dim = mini_config.num_key_value_heads, mini_config.head_dim
    hf_state = join_fused_qkv({hf_key: state[mini_key] for mini_key, hf_key in mapping.items()},
                              lambda q, k, v: _join_groups(q, k, v, groups, head_dim))
    hf_model = load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state})
    if mini_cls is MiniGPTForCausalLM:
        hf_model.generation_config = copy.deepcopy(mini_model.generation_config)
    return hf_model


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # MiniGPT exports through convert_gpt2, which hands bias-free rotary models with LayerNorm to to_falcon
