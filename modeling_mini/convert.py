"""Convert between transformers' reference models and mini models, both ways, weight for weight.

    from modeling_mini.convert import from_hf, to_hf
    mini = from_hf(GPT2LMHeadModel.from_pretrained("gpt2"))   # start from real GPT-2 weights
    back = to_hf(mini)                                        # export to native transformers again

:func:`from_hf` reads the HF config, builds the equivalent mini config (raising ``ValueError`` for HF
options the mini blocks cannot express), and copies every weight through an explicit name map; the parity
tests then prove the two models compute the same function. :func:`to_hf` is the inverse, where the mini
config is expressible in the HF architecture (else ``ValueError`` naming the option).

Each HF family has one converter module (``convert_gpt2.py``, ...) exposing ``FROM_HF`` and ``TO_HF``
tables: HF class name -> function, mini class name -> function. This module dispatches, and translates between
the mini models' fused attention projections (``qkv_proj``, ``kv_proj``) and the separate ``q_proj`` / ``k_proj`` /
``v_proj`` that the converters' name maps use (BERT, BART and Marian keep three matrices):
:func:`load_mapped` fuses on the way in, :func:`separate_attention_projections` splits on the way out.
Not imported by model code: it is a tool for users and tests.
"""

import importlib
import re

import torch
from torch import nn

_CONVERTER_MODULES = ("convert_gpt2", "convert_llama", "convert_gpt_neox", "convert_phi", "convert_gptj", "convert_opt",
                      "convert_falcon", "convert_bloom",
                      "convert_bert", "convert_roberta", "convert_distilbert", "convert_electra", "convert_modernbert",
                      "convert_albert", "convert_bart", "convert_t5")


def _tables() -> tuple[dict, dict]:
    from_hf_table, to_hf_table = {}, {}
    for name in _CONVERTER_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.{name}":
                raise
            continue
        from_hf_table.update(module.FROM_HF)
        to_hf_table.update(module.TO_HF)
    return from_hf_table, to_hf_table


def convertible_classes() -> list[str]:
    """The transformers class names :func:`from_hf` accepts (``"BertForMaskedLM"``, ``"GPT2LMHeadModel"``, ...)."""
    return sorted(_tables()[0])


def from_hf(model: nn.Module, **config_overrides) -> nn.Module:
    """The mini model equivalent to a transformers model (same weights, same outputs), in eval mode.

    ``config_overrides`` are passed to the mini config (for example ``attn_implementation``-independent
    options such as ``use_cache``). The checkpoint the model was loaded from (its ``name_or_path``, when it has one)
    is remembered: a card written for the converted model names it as the base model and inherits its licence
    (:func:`hub.default_card`). A Hub id goes into ``config.converted_from``, saved and published with the config.
    A local folder stays in memory only, as ``converted_from_folder`` on the returned model: the config is
    published, and its path could name a user's home or a private project (:func:`hub.is_hub_id`).
    """
    from .hub import is_hub_id

    from_hf_table, _ = _tables()
    name = type(model).__name__
    if name not in from_hf_table:
        raise ValueError(f"Cannot convert {name}; supported transformers classes: {', '.join(sorted(from_hf_table))}.")
    mini = from_hf_table[name](model, **config_overrides)
    # from_pretrained sets both names; a model built from a loaded config carries the config's
    source = str(getattr(model, "name_or_path", "") or getattr(model.config, "name_or_path", ""))
    if source and is_hub_id(source):
        mini.config.converted_from = source
    elif source:
        mini.converted_from_folder = source
    return mini


def to_hf(model: nn.Module) -> nn.Module:
    """The transformers model equivalent to a mini model, in eval mode."""
    _, to_hf_table = _tables()
    name = type(model).__name__
    if name not in to_hf_table:
        raise ValueError(f"Cannot export {name}; supported mini classes: {', '.join(sorted(to_hf_table))}.")
    return to_hf_table[name](as_package_model(model))


def as_package_model(model: nn.Module) -> nn.Module:
    """``model`` as an instance of this package's class of the same name.

    A model loaded with ``trust_remote_code=True`` before this package was imported is an instance of a *copy* of our
    class (module ``transformers_modules...``, the checkpoint's own files); the converters key on this package's
    classes, so such a model is rebuilt as one: the same config, the same weights, the same generation settings.
    """
    package = importlib.import_module(__package__)
    package_cls = getattr(package, type(model).__name__, None)
    if package_cls is None or isinstance(model, package_cls):
        return model
    config = package_cls.config_class.from_dict(model.config.to_dict())
    config._attn_implementation = model.config._attn_implementation
    rebuilt = new_model(package_cls, config, model.dtype)
    rebuilt.load_state_dict(model.state_dict())
    if getattr(model, "generation_config", None) is not None:
        rebuilt.generation_config = model.generation_config
    return rebuilt.eval()


def export_pair(pairs: dict, mini_model, family: str) -> tuple:
    """The entry of a converter's ``_PAIRS`` ({hf class name: (mini class, ...)}) whose mini class is
    ``mini_model``'s, or a ``ValueError`` naming the classes that export as ``family``."""
    by_mini_class = {entry[0]: entry for entry in pairs.values()}
    if type(mini_model) not in by_mini_class:
        raise ValueError(f"{family} has no model for {type(mini_model).__name__} in transformers; the classes that "
                         f"export as {family}: {', '.join(cls.__name__ for cls in by_mini_class)}.")
    return by_mini_class[type(mini_model)]


def hf_plain_activations() -> list[str]:
    """The (non-gated) activation names a transformers config may set that a mini feed-forward computes: ours and
    transformers' other names for them (``activations.HF_ALIASES``)."""
    from .activations import ACTIVATIONS, HF_ALIASES

    plain = [name for name, (_, gated) in ACTIVATIONS.items() if not gated]
    return plain + [alias for alias, name in HF_ALIASES.items() if name in plain]


def activation_from_hf(value, family: str, field: str) -> str:
    """Our ``hidden_act`` for the (non-gated) feed-forward activation a transformers config sets in ``field``
    (``activation_function``, ``hidden_act``, ...); ``ValueError`` naming that field, its value and the values that
    convert."""
    from .activations import HF_ALIASES

    allowed = hf_plain_activations()
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{family} `{field}={value!r}` has no mini equivalent; `{field}` must be one of "
                         f"{', '.join(map(repr, allowed))}.")
    return HF_ALIASES.get(value, value)


def check_expressible(config, family: str, required: dict, *, allow: tuple[str, ...] = (), standard_heads: bool = True,
                      sliding: bool = False, gated: bool = False) -> None:
    """``ValueError`` naming the first option of ``config`` that ``family``'s architecture cannot express: a field
    whose value differs from ``required`` {field: value}, then (unless the family has them) non-standard heads
    (:func:`check_standard_heads`), the options of :func:`check_layout_extras` not in ``allow``, sliding-window
    layers and a gated feed-forward."""
    from .activations import is_gated

    for field, value in required.items():
        if getattr(config, field) != value:
            raise ValueError(f"{family} needs `{field}={value!r}`; this model has {getattr(config, field)!r}.")
    if standard_heads:
        check_standard_heads(config, family)
    check_layout_extras(config, family, allow)
    if not sliding and "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        sees = "every earlier token" if config.model_type == "mini_gpt" else "the whole input"
        raise ValueError(f"{family} attends to {sees}: it needs `sliding_window=None` (or no 'sliding_attention' in "
                         f"`layer_types`); this model has {config.sliding_window!r}.")
    if not gated and is_gated(config.hidden_act):
        raise ValueError(f"{family} has no gated feed-forward; `hidden_act` must not be {config.hidden_act!r}.")


def check_standard_heads(config, family: str) -> None:
    """``ValueError`` unless ``config`` has one head per ``hidden_size / num_attention_heads`` features, a key/value
    head per query head and no query-key norm: GPT-2, BERT, BART and Marian have no other attention."""
    if config.qk_norm:
        raise ValueError(f"{family} has no query-key norm: it needs `qk_norm=False`.")
    if config.num_key_value_heads != config.num_attention_heads:
        raise ValueError(f"{family} needs `num_key_value_heads == num_attention_heads` (no grouped-query attention).")
    if config.head_dim * config.num_attention_heads != config.hidden_size:
        raise ValueError(f"{family} needs `head_dim = hidden_size / num_attention_heads` = "
                         f"{config.hidden_size / config.num_attention_heads:g}; this model has {config.head_dim}.")


def check_no_embedding_dropout(config, family: str) -> None:
    """``ValueError`` unless ``config``'s embeddings never drop out (``embedding_dropout``, or ``hidden_dropout`` when
    that is None), as in ``family`` (OPT, Falcon, BLOOM), whose training would otherwise differ there."""
    rate = config.hidden_dropout if config.embedding_dropout is None else config.embedding_dropout
    if rate:
        raise ValueError(f"{family} never drops out its embeddings: it needs `embedding_dropout=0.0`; this model drops "
                         f"them out with {rate!r}.")


def split_fused_qkv(state: dict, split) -> dict:
    """``state`` with every fused ``...query_key_value.{weight,bias}`` (GPT-NeoX, Falcon, BLOOM) replaced by its
    ``...query_key_value.{q,k,v}.{weight,bias}`` row blocks, ``split(tensor) -> (q, k, v)`` ordering them as ours."""
    out = {}
    for key, tensor in state.items():
        stem, kind = key.rsplit(".", 1)
        if stem.endswith(".query_key_value"):
            out.update({f"{stem}.{part}.{kind}": rows for part, rows in zip("qkv", split(tensor), strict=True)})
        else:
            out[key] = tensor
    return out


def join_fused_qkv(state: dict, join) -> dict:
    """The inverse of :func:`split_fused_qkv`: ``join(q, k, v) -> tensor`` lays the row blocks out as the family's."""
    out = {key: tensor for key, tensor in state.items() if ".query_key_value." not in key}
    for key in [k for k in state if ".query_key_value.q." in k]:
        stem, kind = key.rsplit(".q.", 1)  # "...query_key_value", "weight" or "bias"
        out[f"{stem}.{kind}"] = join(*(state[f"{stem}.{part}.{kind}"] for part in "qkv"))
    return out


#: transformers' token-classification head (GPT-2's, Llama's, Phi's...) drops out with this when its config names
#: neither ``classifier_dropout`` nor ``hidden_dropout``
HF_CLASSIFIER_DROPOUT = 0.1

#: The decoder layout GPT-2, GPT-NeoX, Phi, GPT-J, Falcon and BLOOM share (as ``check_expressible``'s ``required``,
#: Falcon without feed-forward biases, BLOOM with an embedding norm): pre-norm LayerNorm with shifts before every
#: sub-layer and after the last block, plain summed embeddings, a biased plain feed-forward.
LAYERNORM_DECODER = {
    "norm_type": "layernorm",
    "norm_bias": True,
    "norm_position": "pre",
    "skip_first_attention_norm": False,
    "final_norm": True,
    "embedding_norm": False,
    "scale_embeddings": False,
    "mlp_bias": True,
    "activation_dropout": 0.0,
}


def check_layout_extras(config, family: str, allow: tuple[str, ...] = ()) -> None:
    """``ValueError`` for the options only a few families have, unless ``allow`` names them: parallel blocks
    (GPT-NeoX, Phi), a bias in the language-model head (Phi), an embedding dropout of its own (GPT-2, Phi), a
    factorised embedding (ELECTRA), a narrower token table alone (OPT-350M), an attention scale of its own and
    soft-capping (Gemma 2 and 3), layers without rotary positions (SmolLM3), a rotary base for the sliding layers
    (Gemma 3, OLMo 3, ModernBERT) and norm gains stored as offsets from 1 (Gemma; Llama-shaped exports add the 1)."""
    extras = {
        "attention_scaling": config.attention_scaling is not None,
        "attention_softcap": config.attention_softcap is not None,
        "final_logit_softcap": getattr(config, "final_logit_softcap", None) is not None,
        "nope_layers": getattr(config, "nope_layers", None) is not None,
        "sliding_rope_theta": getattr(config, "sliding_rope_theta", None) is not None,
        # each family's own option (another family's config keeps such a keyword unread, as transformers does)
        "embedding_size": config.model_type == "mini_encoder"
        and config.embedding_size not in (None, config.hidden_size),
        "token_embedding_size": config.model_type == "mini_gpt" and config.output_size != config.hidden_size,
        "parallel_residual": config.parallel_residual,
        "parallel_shared_norm": config.parallel_shared_norm,
        "lm_head_bias": getattr(config, "lm_head_bias", False),
        "embedding_dropout": config.embedding_dropout not in (None, config.hidden_dropout),
        "num_hidden_groups": getattr(config, "num_hidden_groups", None) is not None,
        "norm_gain_offset": getattr(config, "norm_gain_offset", False),
    }
    for name, present in extras.items():
        if present and name not in allow:
            value = getattr(config, name, None)
            reason = " (its embeddings drop out with `hidden_dropout`)" if name == "embedding_dropout" else ""
            raise ValueError(f"{family} cannot express `{name}={value!r}`{reason}.")


def rotary_options(rope: dict, hf_config, family: str) -> dict:
    """Our ``rope_theta``, ``rotary_scaling`` and ``partial_rotary_factor`` for one of transformers'
    ``rope_parameters`` dicts; ``ValueError`` for a scaling type we lack."""
    from .configuration_mini import ROTARY_SCALING_KEYS, ROTARY_SCALING_OPTIONAL_KEYS

    rope = dict(rope)
    rope_type = rope.get("rope_type", "default")
    if rope_type != "default" and rope_type not in ROTARY_SCALING_KEYS:
        raise ValueError(f"{family} `rope_parameters` of type {rope_type!r} have no mini equivalent; one of "
                         f"{['default', *ROTARY_SCALING_KEYS]}.")
    scaling = None
    if rope_type != "default":  # our rotary_scaling takes the numbers its type needs, under HF's names
        rope.setdefault("original_max_position_embeddings", hf_config.max_position_embeddings)  # HF's fallback
        if rope.get("factor") is None and rope_type == "yarn":  # DeepSeek's form: HF takes the length ratio
            rope["factor"] = hf_config.max_position_embeddings / rope["original_max_position_embeddings"]
        optional = [key for key in ROTARY_SCALING_OPTIONAL_KEYS.get(rope_type, ()) if rope.get(key) is not None]
        scaling = {"rope_type": rope_type, **{key: rope[key] for key in (*ROTARY_SCALING_KEYS[rope_type], *optional)}}
    return {"rope_theta": float(rope.get("rope_theta", 10000.0)), "rotary_scaling": scaling,
            "partial_rotary_factor": float(rope.get("partial_rotary_factor", 1.0))}


def sliding_rope_theta(hf_config, family: str, has_sliding_layers: bool) -> float | None:
    """Our ``sliding_rope_theta`` for a model keeping a rotation per layer type (Gemma 3, ModernBERT:
    ``rope_parameters = {"full_attention": ..., "sliding_attention": ...}``): None when the sliding layers rotate as the
    full ones (or there are none), else their base; ``ValueError`` if they are stretched (ours never are)."""
    full, sliding = hf_config.rope_parameters.get("full_attention"), hf_config.rope_parameters.get("sliding_attention")
    if not has_sliding_layers or sliding is None:
        return None
    ours, theirs = rotary_options(sliding, hf_config, family), rotary_options(full or {}, hf_config, family)
    if ours == theirs:
        return None
    if ours["rotary_scaling"] is not None or ours["partial_rotary_factor"] != theirs["partial_rotary_factor"]:
        raise ValueError(f"{family} sliding layers' `rope_parameters` {sliding!r} have no mini equivalent: sliding "
                         "layers rotate as the full ones, or with a base of their own and no scaling "
                         "(`sliding_rope_theta`).")
    return ours["rope_theta"]


def rope_parameters_per_layer_type(config) -> dict:
    """The inverse of :func:`sliding_rope_theta`: transformers' ``rope_parameters`` per layer type for a mini config."""
    full = {"rope_type": "default", "rope_theta": config.rope_theta, **(config.rotary_scaling or {})}
    sliding = dict(full) if config.sliding_rope_theta is None else {"rope_type": "default",
                                                                    "rope_theta": config.sliding_rope_theta}
    return {"full_attention": full, "sliding_attention": sliding}


def new_model(cls, config, dtype: torch.dtype, **kwargs) -> nn.Module:
    """A fresh ``cls(config, **kwargs)`` to fill with converted weights, in ``dtype`` as transformers'
    ``from_pretrained(dtype=...)`` makes it: what a checkpoint holds (parameters, saved buffers such as BART's
    ``final_logits_bias``) in ``dtype``, except the modules the class keeps in float32 at that dtype
    (``_keep_in_fp32_modules``: T5's feed-forward output ``wo`` in float16); the tables the class computes instead
    (rotary inverse frequencies, GPT-J's sine table: unsaved buffers) as computed in float32. ``model.to(dtype)``
    would cast those too: an export whose rotary angles drift at long positions."""
    model = cls(config, **kwargs)
    saved = model.state_dict().keys()
    plan = model._get_dtype_plan(dtype)  # {module name pattern: dtype}, matched inside tensor names, as on load
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name in saved and tensor.is_floating_point():
            kept = next((kept for pattern, kept in plan.items() if re.search(pattern.replace("*", ".*"), name)), dtype)
            tensor.data = tensor.data.to(kept)
    return model


def load_mapped(target: nn.Module, source_state: dict, mapping: dict, transforms: dict | None = None,
                skip: tuple[str, ...] = ()) -> nn.Module:
    """Fill ``target`` from ``source_state`` through ``mapping`` {target key: source key}, strictly.

    ``transforms`` {target key: fn} adapts a tensor on the way (transpose, split). Every target tensor
    must be mapped and every source tensor used, so a silently dropped weight cannot pass; tied target
    weights may be left out of ``mapping``. A source tensor no entry reads is allowed only as another name of one
    that is read (a tied alias: the same storage, as a tied ``lm_head.weight``) or when ``skip`` names it (a table the
    target computes instead, a copy the source keeps but never reads), so each deliberate omission is in its
    converter's map.
    """
    transforms = transforms or {}
    state = {}
    for target_key, source_key in mapping.items():
        tensor = source_state[source_key]
        state[target_key] = transforms[target_key](tensor) if target_key in transforms else tensor
    read = set(mapping.values())
    read_tensors = {_storage_key(source_state[key]) for key in read}
    unused = [key for key, tensor in source_state.items()
              if key not in read and key not in skip and _storage_key(tensor) not in read_tensors]
    if unused:
        raise RuntimeError(f"Weight map incomplete: source tensors {unused} are read by no entry of the map (this "
                           f"conversion would drop them) and are not tied to one that is.")
    state = fuse_attention_projections(target, state)
    missing, unexpected = target.load_state_dict(state, strict=False)
    tied = set(getattr(target, "all_tied_weights_keys", {}) or {})
    missing = [key for key in missing if key not in tied]
    if missing or unexpected:
        raise RuntimeError(f"Weight map incomplete: missing {missing}, unexpected {unexpected}.")
    if hasattr(target, "tie_weights"):
        target.tie_weights()
    return target.eval()


def _storage_key(tensor: torch.Tensor) -> tuple:
    """What two names of one tensor (tied weights) have in common: the same memory, read as the same shape."""
    return tensor.device, tensor.data_ptr(), tuple(tensor.shape), tensor.stride()


def _fused_projections(model: nn.Module):
    """(key prefix, fused name, separate names, their row counts) for every mini attention module of ``model``:
    ``qkv_proj`` = ``q_proj`` + ``k_proj`` + ``v_proj`` in self-attention, ``kv_proj`` = ``k_proj`` + ``v_proj``
    in cross-attention."""
    from .attention import MiniAttention

    for name, module in model.named_modules():
        if isinstance(module, MiniAttention):
            prefix = f"{name}." if name else ""
            if module.is_cross_attention:
                yield prefix, "kv_proj", ("k_proj", "v_proj"), module.split_sizes[1:]
            else:
                yield prefix, "qkv_proj", ("q_proj", "k_proj", "v_proj"), module.split_sizes


def fuse_attention_projections(model: nn.Module, state: dict) -> dict:
    """``state`` with separate ``q_proj`` / ``k_proj`` / ``v_proj`` entries stacked into the fused matrices that
    ``model``'s attention modules hold (``qkv_proj``; ``kv_proj`` for cross-attention). A no-op for models
    without mini attention (an HF target) and for states that are already fused."""
    state = dict(state)
    for prefix, fused, parts, _ in _fused_projections(model):
        for kind in ("weight", "bias"):
            keys = [f"{prefix}{part}.{kind}" for part in parts]
            if all(key in state for key in keys):
                state[f"{prefix}{fused}.{kind}"] = torch.cat([state.pop(key) for key in keys])  # rows Q, K, V
    return state


def separate_attention_projections(model: nn.Module) -> dict:
    """``model.state_dict()`` with each fused attention matrix split into ``q_proj`` / ``k_proj`` / ``v_proj``
    entries (the inverse of :func:`fuse_attention_projections`)."""
    state = dict(model.state_dict())
    for prefix, fused, parts, sizes in _fused_projections(model):
        for kind in ("weight", "bias"):
            key = f"{prefix}{fused}.{kind}"
            if key in state:
                for part, tensor in zip(parts, state.pop(key).split(sizes, dim=0), strict=True):
                    state[f"{prefix}{part}.{kind}"] = tensor
    return state
