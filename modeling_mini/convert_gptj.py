"""GPT-J <-> MiniGPT: the config translation and the weight-name map (used through ``convert.py``).

EleutherAI's GPT-J is Phi's block (``convert_phi``) without attention biases: parallel sub-layers reading one
LayerNorm (``parallel_residual``, ``parallel_shared_norm``), ``gelu_new``, a biased feed-forward, a final norm and an
output layer with a bias (``lm_head_bias``), rotary positions on the first ``rotary_dim`` features of each head.

Its rotation pairs *neighbouring* features, (0, 1), (2, 3), ... ("rotate every two"), where ours pairs each feature
of the first half with its partner in the second, (0, rd/2), (1, rd/2 + 1), ... ("rotate half"), with the same
frequency for pair ``i``. Reordering the rotated rows of each head's query and key projections (the even features
first, then the odd ones) turns one into the other: queries and keys are reordered alike, so every dot product, and
the model's function, is unchanged. The import applies that reordering, the export undoes it.
"""

import copy

import torch
from transformers import GPTJConfig, GPTJForCausalLM, GPTJForQuestionAnswering, GPTJForSequenceClassification, GPTJModel

from .configuration_mini import MiniGPTConfig
from .convert import LAYERNORM_DECODER, activation_from_hf, check_expressible, export_pair, load_mapped, new_model
from .modeling_gpt import (
    MiniGPTForCausalLM,
    MiniGPTForQuestionAnswering,
    MiniGPTForSequenceClassification,
    MiniGPTModel,
)

_SHARED = ("vocab_size", "initializer_range", "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings",
           "use_cache", "num_labels", "id2label", "label2id", "problem_type")
#: GPT-J's rotary base, fixed in its code
ROPE_THETA = 10000.0

# hf class name -> (mini class, hf class, head keys {mini: hf})
_PAIRS = {
    "GPTJModel": (MiniGPTModel, GPTJModel, {}),
    "GPTJForCausalLM": (MiniGPTForCausalLM, GPTJForCausalLM, {"lm_head.bias": "lm_head.bias"}),
    "GPTJForSequenceClassification": (MiniGPTForSequenceClassification, GPTJForSequenceClassification,
                                      {"score.weight": "score.weight"}),
    "GPTJForQuestionAnswering": (MiniGPTForQuestionAnswering, GPTJForQuestionAnswering,
                                 {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"}),
}


def mini_config_from_gptj(hf: GPTJConfig, **overrides) -> MiniGPTConfig:
    """The MiniGPT config computing what ``hf`` computes."""
    head_dim = hf.n_embd // hf.n_head
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    kwargs.update(
        hidden_size=hf.n_embd,
        num_hidden_layers=hf.n_layer,
        num_attention_heads=hf.n_head,
        intermediate_size=hf.n_inner or 4 * hf.n_embd,
        max_position_embeddings=hf.n_positions,
        hidden_act=activation_from_hf(hf.activation_function, "GPT-J", "activation_function"),
        position_embedding_type="rotary",
        rope_theta=ROPE_THETA,
        partial_rotary_factor=(hf.rotary_dim or head_dim) / head_dim,
        norm_type="layernorm",
        norm_position="pre",
        parallel_residual=True,
        parallel_shared_norm=True,
        final_norm=True,
        layer_norm_eps=float(hf.layer_norm_epsilon),
        attention_bias=False,
        mlp_bias=True,
        lm_head_bias=True,
        hidden_dropout=float(hf.resid_pdrop),
        embedding_dropout=None if hf.embd_pdrop == hf.resid_pdrop else float(hf.embd_pdrop),
        attention_dropout=float(hf.attn_pdrop),
    )
    kwargs.update(overrides)
    return MiniGPTConfig(**kwargs)


def gptj_config_from_mini(config: MiniGPTConfig) -> GPTJConfig:
    """The GPT-J config for a MiniGPT config; ``ValueError`` naming the first option GPT-J cannot express."""
    required = {
        **LAYERNORM_DECODER,
        "position_embedding_type": "rotary",
        "rope_theta": ROPE_THETA,
        "rotary_scaling": None,
        "parallel_residual": True,
        "parallel_shared_norm": True,
        "attention_bias": False,
        "attention_output_bias": False,
        "freeze_padding_row": False,
    }
    check_expressible(config, "GPT-J", required, allow=("parallel_residual", "parallel_shared_norm", "lm_head_bias",
                                                        "embedding_dropout"))
    kwargs = {key: getattr(config, key) for key in _SHARED}
    return GPTJConfig(
        n_embd=config.hidden_size,
        n_layer=config.num_hidden_layers,
        n_head=config.num_attention_heads,
        n_inner=config.intermediate_size,
        n_positions=config.max_position_embeddings,
        rotary_dim=config.rotary_dim,
        activation_function=config.hidden_act,
        layer_norm_epsilon=config.layer_norm_eps,
        resid_pdrop=config.hidden_dropout,
        embd_pdrop=config.hidden_dropout if config.embedding_dropout is None else config.embedding_dropout,
        attn_pdrop=config.attention_dropout,
        **kwargs,
    )


def _rotary_order(config: MiniGPTConfig, inverse: bool = False) -> torch.Tensor:
    """The row order taking GPT-J's query (key) rows to ours: in each head, the rotated features' even indices, then
    their odd ones, then the features that do not rotate; ``inverse``: ours back to GPT-J's."""
    head_dim, rotated = config.head_dim, config.rotary_dim
    within = torch.cat([torch.arange(0, rotated, 2), torch.arange(1, rotated, 2), torch.arange(rotated, head_dim)])
    if inverse:
        within = torch.argsort(within)
    return torch.cat([head * head_dim + within for head in range(config.num_attention_heads)])


def _mapping(config: MiniGPTConfig, mini: str, hf: str, untied_head: bool) -> dict:
    mapping = {f"{mini}embeddings.embed_tokens.weight": f"{hf}wte.weight",
               f"{mini}norm.weight": f"{hf}ln_f.weight", f"{mini}norm.bias": f"{hf}ln_f.bias"}
    for i in range(config.num_hidden_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}h.{i}."
        for ours, theirs in (("self_attn_norm", "ln_1"), ("mlp.up_proj", "mlp.fc_in"), ("mlp.down_proj", "mlp.fc_out")):
            for p in ("weight", "bias"):
                mapping[f"{m}{ours}.{p}"] = f"{h}{theirs}.{p}"
        for ours, theirs in (("q_proj", "q_proj"), ("k_proj", "k_proj"), ("v_proj", "v_proj"), ("o_proj", "out_proj")):
            mapping[f"{m}self_attn.{ours}.weight"] = f"{h}attn.{theirs}.weight"
    if untied_head:
        mapping["lm_head.weight"] = "lm_head.weight"
    return mapping


def _reordered(mapping: dict, order: torch.Tensor, keys_are_ours: bool) -> dict:
    """{key: reorder} for the query and key projections among ``mapping``'s targets."""
    targets = mapping if keys_are_ours else mapping.values()
    return {key: (lambda w: w[order].contiguous()) for key in targets
            if key.endswith(("q_proj.weight", "k_proj.weight"))}


def _from_hf(hf_model, **overrides):
    mini_cls, _, head = _PAIRS[type(hf_model).__name__]
    config = mini_config_from_gptj(hf_model.config, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    mapping = {**_mapping(config, "" if mini_cls is MiniGPTModel else "model.",
                          "" if mini_cls is MiniGPTModel else "transformer.", untied), **head}
    transforms = _reordered(mapping, _rotary_order(config), keys_are_ours=True)
    mini = load_mapped(new_model(mini_cls, config, hf_model.dtype), hf_model.state_dict(), mapping, transforms)
    if mini_cls is MiniGPTForCausalLM:
        mini.generation_config = copy.deepcopy(hf_model.generation_config)
    return mini


def to_gptj(mini_model):
    """The GPT-J model equivalent to a MiniGPT with parallel blocks sharing one norm and no attention biases;
    ``convert.to_hf`` calls it for such models. A causal LM without ``lm_head_bias`` exports with a zero bias."""
    from .convert import separate_attention_projections

    mini_cls, hf_cls, head = export_pair(_PAIRS, mini_model, "GPT-J")
    config = gptj_config_from_mini(mini_model.config)
    config._attn_implementation = mini_model.config._attn_implementation
    untied = mini_cls is MiniGPTForCausalLM and not config.tie_word_embeddings
    mapping = {**_mapping(mini_model.config, "" if mini_cls is MiniGPTModel else "model.",
                          "" if mini_cls is MiniGPTModel else "transformer.", untied), **head}
    state = separate_attention_projections(mini_model)
    if mini_cls is MiniGPTForCausalLM and mini_model.lm_head.bias is None:
        state["lm_head.bias"] = mini_model.lm_head.weight.new_zeros(config.vocab_size)  # the same function
    hf_state = {hf_key: state[mini_key] for mini_key, hf_key in mapping.items()}
    transforms = _reordered(mapping, _rotary_order(mini_model.config, inverse=True), keys_are_ours=False)
    hf_model = load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state}, transforms)
    if mini_cls is MiniGPTForCausalLM:
        hf_model.generation_config = copy.deepcopy(mini_model.generation_config)
    return hf_model


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # MiniGPT exports through convert_gpt2, which hands GPT-J-shaped models to to_gptj
