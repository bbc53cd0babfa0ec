"""Configurations of the three Transformer families.

One base class, :class:`MiniConfig`, holds every architecture option the shared building blocks read
(`positional.py`, `attention.py`, `feed_forward.py`, `normalization.py`, `blocks.py`) and validates them
once. The three family configs only set their defaults and add what is theirs:

* :class:`MiniGPTConfig` (``mini_gpt``): decoder-only, causal self-attention, pre-norm.
* :class:`MiniEncoderConfig` (``mini_encoder``): bidirectional encoder (BERT-like), post-norm, segments.
* :class:`MiniSeq2SeqConfig` (``mini_seq2seq``): encoder-decoder, the original Transformer's defaults.

Field names follow transformers (``hidden_size``, ``num_hidden_layers``, ...) because generic HF code
(caches, the Trainer, PEFT, pipelines) reads them by those names. Options are stored as strings, never
classes, so that ``config.json`` stays plain JSON.

Every bad value raises ``ValueError`` naming the field and what is allowed.
"""

import inspect
import math

from transformers import PreTrainedConfig

from .activations import ACTIVATIONS, POOLER_ACTIVATIONS, is_gated

POSITION_EMBEDDING_TYPES = ("sinusoidal", "learned", "rotary", "relative", "alibi", "none")
SINUSOIDAL_LAYOUTS = ("interleaved", "concatenated")
NORM_TYPES = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("pre", "post", "sandwich", "output")
QK_NORM_SCOPES = ("head", "all_heads")
CLASSIFIER_POOLINGS = ("cls", "mean")
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
#: what a layer's self-attention sees (``layer_types``): every token it may see, or only those within ``sliding_window``
ATTENTION_LAYER_TYPES = ("full_attention", "sliding_attention")


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


def _refuse_relative(config) -> None:
    """T5's relative attention bias is built by the encoder and the seq2seq stacks, not the GPT's."""
    if config.position_embedding_type == "relative":
        raise ValueError(f"`position_embedding_type='relative'` (T5's attention bias) is a MiniEncoderConfig and "
                         f"MiniSeq2SeqConfig option; {type(config).__name__} takes one of 'sinusoidal', 'learned', "
                         "'rotary', 'alibi', 'none'.")


def _refuse_alibi(config) -> None:
    """ALiBi (BLOOM's causal distance penalty) is built by the GPT only."""
    if config.position_embedding_type == "alibi":
        raise ValueError(f"`position_embedding_type='alibi'` (BLOOM's causal distance penalty) is a MiniGPTConfig "
                         f"option; {type(config).__name__} takes one of 'sinusoidal', 'learned', 'rotary', 'relative', "
                         "'none'.")


def _refuse_unused_rotary(config) -> None:
    """``rotary_scaling`` and a ``partial_rotary_factor`` below 1 shape rotary positions: without them they would be
    accepted and ignored."""
    if config.position_embedding_type == "rotary":
        return
    for name, unset in (("rotary_scaling", None), ("partial_rotary_factor", 1.0)):
        if getattr(config, name) != unset:
            raise ValueError(f"`{name}` shapes rotary positions: it needs `position_embedding_type='rotary'` (or "
                             f"`{name}={unset!r}`); got position_embedding_type={config.position_embedding_type!r}, "
                             f"{name}={getattr(config, name)!r}.")


def _check_positive(name: str, value, allow_zero: bool = False, alias: str | None = None) -> None:
    """``value`` must be an integer >= 1 (>= 0 with ``allow_zero``); the error names ``alias`` too, the field's other
    name (a seq2seq config's ``num_hidden_layers`` is its ``decoder_layers``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        named = f"`{name}` (`{alias}`)" if alias else f"`{name}`"
        raise ValueError(f"{named} must be an integer {bound}; got {value!r}.")


#: rotary scaling types and the numbers each needs (``rotary_scaling``)
ROTARY_SCALING_KEYS = {
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "yarn": ("factor", "original_max_position_embeddings"),
    "longrope": ("short_factor", "long_factor", "original_max_position_embeddings"),
}
#: ... and the ones it may have (YaRN's defaults: beta_fast 32, beta_slow 1, the attention factor from ``factor``,
#: truncate True)
ROTARY_SCALING_OPTIONAL_KEYS = {
    "yarn": ("beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim", "truncate"),
    "longrope": ("factor", "attention_factor"),
}
#: the keys holding one number per pair of head features (LongRoPE's per-frequency stretches)
ROTARY_SCALING_LIST_KEYS = ("short_factor", "long_factor")


def _check_rotary_scaling(scaling) -> None:
    if scaling is None:
        return
    if not isinstance(scaling, dict):
        raise ValueError(f"`rotary_scaling` must be None or a dict with a 'rope_type'; got {scaling!r}.")
    _check_choice("rotary_scaling['rope_type']", scaling.get("rope_type"), tuple(ROTARY_SCALING_KEYS))
    rope_type = scaling["rope_type"]
    required, optional = ROTARY_SCALING_KEYS[rope_type], ROTARY_SCALING_OPTIONAL_KEYS.get(rope_type, ())
    unknown = sorted(set(scaling) - {"rope_type", *required, *optional})
    if unknown:
        raise ValueError(f"`rotary_scaling` of type {rope_type!r} takes {', '.join(required + optional)}; unknown "
                         f"keys {unknown}.")
    for key in ROTARY_SCALING_LIST_KEYS:
        if key in required and not (isinstance(scaling[key], (list, tuple)) and scaling[key] and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in scaling[key])):
            raise ValueError(f"`rotary_scaling[{key!r}]` must be a list of positive numbers, one per pair of head "
                             f"features; got {scaling[key]!r}.")
    for key in required + tuple(key for key in optional if key in scaling and key != "truncate"):
        if key in ROTARY_SCALING_LIST_KEYS:
            continue
        value = scaling.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"`rotary_scaling[{key!r}]` must be a positive number for rope_type "
                             f"{rope_type!r}; got {value!r}.")
    if "truncate" in scaling and not isinstance(scaling["truncate"], bool):
        raise ValueError(f"`rotary_scaling['truncate']` must be True or False; got {scaling['truncate']!r}.")
    if rope_type == "llama3" and scaling["high_freq_factor"] <= scaling["low_freq_factor"]:
        raise ValueError("`rotary_scaling['high_freq_factor']` must be greater than `low_freq_factor`.")


def _check_flags(config, names: tuple[str, ...]) -> None:
    """Each named option must be a real bool (a string such as "false" would read as true)."""
    for name in names:
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"`{name}` must be True or False; got {getattr(config, name)!r}.")


def _is_positive_number(value) -> bool:
    """A real, finite number above 0: not a bool (Python counts True as 1), a string, nan or inf."""
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and value > 0)


def _check_positive_number(name: str, value) -> None:
    """``value`` must be a positive finite number (``rope_theta``, ``initializer_range``)."""
    if not _is_positive_number(value):
        raise ValueError(f"`{name}` must be a positive finite number; got {value!r}.")


def _check_optional_positive_number(name: str, value) -> None:
    """``value`` must be None or a positive finite number (a cap or a scale: nan and inf would poison every score)."""
    if value is not None and not _is_positive_number(value):
        raise ValueError(f"`{name}` must be None or a positive finite number; got {value!r}.")


def _check_token_ids(config, in_vocab: tuple[str, ...]) -> None:
    """Special token ids: None or an id ``>= 0``, never a bool (which Python counts as the id 0 or 1).

    The ids in ``in_vocab`` index the embedding table, so they must lie in ``[0, vocab_size)``. ``bos_token_id`` and
    ``eos_token_id`` (which may be a list of ids, as transformers allows) only need to be ids: converted configs
    keep the source's, and transformers' own defaults lie past a small vocabulary (GPT-2's 50256 with a test
    vocabulary of 99). Any other ``*_token_id`` (one a config was given) must not be a bool.
    """
    for name in in_vocab:
        token_id = getattr(config, name)
        if token_id is not None and not (isinstance(token_id, int) and not isinstance(token_id, bool)
                                         and 0 <= token_id < config.vocab_size):
            raise ValueError(f"`{name}` must be None or an id in [0, vocab_size={config.vocab_size}); "
                             f"got {token_id!r}.")
    for name in ("bos_token_id", "eos_token_id"):
        token_id = getattr(config, name)
        ids = token_id if name == "eos_token_id" and isinstance(token_id, (list, tuple)) and token_id else [token_id]
        if token_id is not None and not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            allowed = "an id >= 0" + (" or a non-empty list of such ids" if name == "eos_token_id" else "")
            raise ValueError(f"`{name}` must be None or {allowed}; got {token_id!r}.")
    for name, token_id in vars(config).items():
        if name.endswith("_token_id") and isinstance(token_id, bool):
            raise ValueError(f"`{name}` must be None or a token id, not a bool; got {token_id!r}.")


def _check_layer_types(layer_types, num_layers: int, sliding_window) -> None:
    """``layer_types``: a list of ``num_layers`` known names, with a window if any layer slides."""
    if not isinstance(layer_types, list) or len(layer_types) != num_layers:
        raise ValueError(f"`layer_types` must be None or a list of num_hidden_layers={num_layers} entries; "
                         f"got {layer_types!r}.")
    for layer_type in layer_types:
        _check_choice("layer_types[i]", layer_type, ATTENTION_LAYER_TYPES)
    if "sliding_attention" in layer_types and sliding_window is None:
        raise ValueError("`layer_types` has 'sliding_attention' layers: set `sliding_window` (the number of tokens "
                         "such a layer sees).")


def _check_probability(name: str, value) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1); got {value!r}.")


#: the options of sliding-window layers, which the encoder-decoder lacks
SLIDING_WINDOW_OPTIONS = ("sliding_window", "layer_types", "sliding_rope_theta")


def _refuse_windows(options: dict) -> None:
    """Every layer of the encoder-decoder attends fully: it takes no sliding-window options (``options``: its
    keyword arguments or attributes), which would otherwise be accepted and ignored."""
    for name in SLIDING_WINDOW_OPTIONS:
        if options.get(name) is not None:
            raise ValueError(f"`{name}` must be None: MiniSeq2SeqConfig has no sliding-window layers (every encoder "
                             f"and decoder layer attends to all tokens); got {options[name]!r}.")


class MiniConfig(PreTrainedConfig):
    r"""Options shared by every family. Not registered itself: use one of the family configs.

    Args:
        vocab_size: number of token ids the embedding knows.
        hidden_size: width of the residual stream (d_model).
        num_hidden_layers: number of Transformer blocks (the decoder's, for seq2seq).
        num_attention_heads: query heads per attention layer; must divide ``hidden_size`` unless ``head_dim`` is given.
        num_key_value_heads: key/value heads (grouped-query attention); ``None`` means one per query head.
        head_dim: width of one attention head; ``None`` means ``hidden_size / num_attention_heads`` (then
            ``hidden_size`` must divide evenly). Some models choose it apart (Mistral NeMo: 5120 wide, 32 heads of 128):
            Q, K and V then project to ``heads * head_dim`` features and the output projection back to ``hidden_size``.
        intermediate_size: width of the feed-forward hidden layer; ``None`` means ``4 * hidden_size``.
        hidden_act: feed-forward activation, one of ``activations.ACTIVATIONS``; gated variants
            (``swiglu``, ``geglu``, ``reglu``) use an extra gate projection.
        position_embedding_type: ``sinusoidal`` (fixed, added to the embeddings, as in the original
            Transformer), ``learned`` (a trained table, as in GPT-2 and BERT), ``rotary`` (rotates queries
            and keys inside attention), ``relative`` (T5's trained bias per head and bucketed distance, added to the
            attention scores; encoder and seq2seq models), ``alibi`` (BLOOM's fixed penalty per head, proportional to
            the distance; GPT models) or ``none`` (no order information at all).
        sinusoidal_layout: ``interleaved`` (sin on even, cos on odd features, as in the paper) or
            ``concatenated`` (all sines then all cosines, as Marian does).
        max_position_embeddings: longest sequence; a hard limit only for ``learned`` positions.
        rope_theta: base of the rotary frequencies.
        partial_rotary_factor: the fraction of each head's features that rotary positions rotate (the first
            ``rotary_dim = head_dim * factor``; the rest pass through unrotated), 1.0 by default (Phi-4-mini: 0.75).
        rotary_scaling: ``None``, or how to stretch rotary positions past the length a model was trained on:
            ``{"rope_type": "linear", "factor": f}`` (every frequency divided by ``f``) or ``{"rope_type": "llama3",
            "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}`` (Llama 3.1's:
            only the slow frequencies are divided) or ``{"rope_type": "yarn", "factor",
            "original_max_position_embeddings"}`` (YaRN, with its optional ``beta_fast``, ``beta_slow``,
            ``attention_factor``, ``mscale``, ``mscale_all_dim``, ``truncate``) or ``{"rope_type": "longrope",
            "short_factor", "long_factor", "original_max_position_embeddings"}`` (Phi-3's LongRoPE: a stretch per
            frequency, the long set once the input passes the original length; optional ``factor``, default
            ``max_position_embeddings / original_max_position_embeddings``, and ``attention_factor``); see
            ``positional.scaled_rotary_frequencies``.
        norm_type: ``layernorm`` or ``rmsnorm``.
        norm_position: ``pre`` (normalise the input of each sub-layer, GPT-2), ``post`` (normalise after
            the residual sum, the original Transformer and BERT), ``sandwich`` (normalise a sub-layer's input and
            also its output, before the residual sum: Gemma 2) or ``output`` (normalise only the sub-layer's output,
            before the residual sum: OLMo 2).
        layer_norm_eps: epsilon of the normalisation layers.
        norm_gain_offset: ``rmsnorm`` only: each gain is stored as its offset from 1 (it starts at 0) and the norm
            scales by ``1 + gain``, in float32 (Gemma 1-3; the Gemma converter sets it). Storing ``1 + gain`` instead
            would compute the same in float32, but would round each gain near 1 in bfloat16, where Gemma checkpoints
            live: a converted model would drift from the checkpoint and not export back to the same weights.
        norm_bias: LayerNorm's learned shift (``layernorm`` only; ``rmsnorm`` never has one). ModernBERT drops it.
        skip_first_attention_norm: the first block of each stack feeds its self-attention the residual stream as it
            is, without a norm of its own (pre- or sandwich-norm). ModernBERT does so: its embeddings are normalised
            already.
        parallel_residual: the attention and the feed-forward of a block both read the block's input, each through
            its own norm, and both outputs join the residual stream at once, ``x + attn(norm1(x)) + mlp(norm2(x))``
            (GPT-NeoX / Pythia; pre-norm, no cross-attention). The two sub-layers no longer wait for each other (their
            matrix products can run at once); the feed-forward no longer sees this block's attention output.
        parallel_shared_norm: with ``parallel_residual``, one norm feeds both sub-layers, ``x + attn(norm(x)) +
            mlp(norm(x))`` (Phi-1/1.5/2, GPT-J); without, each has its own (GPT-NeoX).
        embedding_norm: normalise the summed embeddings before the first block (BERT, BART).
        final_norm: normalise the output of the last block; ``None`` means "yes, unless post-norm".
        scale_embeddings: multiply token embeddings by ``sqrt(hidden_size)`` (original Transformer, Marian).
        clamp_float16: T5's float16 handling, as transformers' T5 does it (the T5 converter sets it): T5 and mT5
            checkpoints grow activations past float16's 65504, which would turn into inf and then NaN. In float16 the
            residual stream is clamped after each sub-layer to just inside the float16 range, and
            ``from_pretrained(dtype=torch.float16)`` keeps each feed-forward output projection in float32
            (``_keep_in_fp32_modules``, ``feed_forward.InputCastingLinear``; the norms then hand float16 on:
            ``normalization.HalfWeightRMSNorm``).
        attention_bias / mlp_bias: biases in the attention and feed-forward projections.
        attention_output_bias: a bias in the attention's output projection; ``None`` follows ``attention_bias``
            (Qwen2 has biases on Q, K and V only).
        qk_norm: normalise every head's query and key vectors (``norm_type`` over ``head_dim``, a gain per feature)
            before the rotary positions and the dot product, as Qwen3 and OLMo 2 do: the attention logits then cannot
            grow without bound, which keeps large-scale training steady.
        qk_norm_scope: what one query-key norm covers: ``"head"`` (each head's vector, ``head_dim`` gains shared by the
            heads: Qwen3, Gemma 3) or ``"all_heads"`` (the whole projection at once, a gain per feature of every head:
            OLMo 2).
        attention_scaling: the factor on ``q . k`` before the softmax; ``None`` is the usual ``head_dim ** -0.5``
            (Gemma 2 scales by ``query_pre_attn_scalar ** -0.5``).
        attention_softcap: ``None``, or soft-cap the attention scores at this value, ``cap * tanh(score / cap)``,
            before the mask (Gemma 2). PyTorch's sdpa kernel cannot do it: such a model runs ``eager`` by default
            (or ``flex_attention``), and asking it for ``sdpa`` raises ``ValueError``.
        hidden_dropout / attention_dropout / classifier_dropout: dropout probabilities
            (``classifier_dropout=None`` uses ``hidden_dropout``).
        embedding_dropout: dropout on the embeddings' output; ``None`` uses ``hidden_dropout`` (Phi-2 drops out
            its sub-layers' outputs but not its embeddings).
        activation_dropout: dropout on the feed-forward's widened hidden layer, after the activation
            (BART, Marian, T5 and ModernBERT have it; 0 elsewhere).
        initializer_range: standard deviation of the normal weight initialisation.
        use_cache: return a key/value cache for generation.
        tie_word_embeddings: share the input embedding matrix with the output (LM) head.
    """

    model_type = "mini"
    keys_to_ignore_at_inference = ["cache"]
    #: Where the base model's block stacks are, and which of them have cross-attention (tensor-parallel plan).
    _block_stacks: tuple[str, ...] = ("layers",)
    _cross_attention_stacks: tuple[str, ...] = ()
    #: the special token ids that index the embedding table, so must lie in [0, vocab_size)
    _embedding_token_ids: tuple[str, ...] = ("pad_token_id",)

    def __init__(
        self,
        vocab_size: int = 32000,
        hidden_size: int = 512,
        num_hidden_layers: int = 6,
        num_attention_heads: int = 8,
        num_key_value_heads: int | None = None,
        head_dim: int | None = None,
        intermediate_size: int | None = None,
        hidden_act: str = "gelu",
        position_embedding_type: str = "sinusoidal",
        sinusoidal_layout: str = "interleaved",
        max_position_embeddings: int = 1024,
        rope_theta: float = 10000.0,
        partial_rotary_factor: float = 1.0,
        rotary_scaling: dict | None = None,
        norm_type: str = "layernorm",
        norm_position: str = "pre",
        layer_norm_eps: float = 1e-5,
        norm_gain_offset: bool = False,
        norm_bias: bool = True,
        skip_first_attention_norm: bool = False,
        parallel_residual: bool = False,
        parallel_shared_norm: bool = False,
        embedding_norm: bool = False,
        final_norm: bool | None = None,
        scale_embeddings: bool = False,
        clamp_float16: bool = False,
        attention_bias: bool = True,
        attention_output_bias: bool | None = None,
        qk_norm: bool = False,
        qk_norm_scope: str = "head",
        attention_scaling: float | None = None,
        attention_softcap: float | None = None,
        mlp_bias: bool = True,
        hidden_dropout: float = 0.1,
        attention_dropout: float = 0.1,
        classifier_dropout: float | None = None,
        activation_dropout: float = 0.0,
        embedding_dropout: float | None = None,
        initializer_range: float = 0.02,
        use_cache: bool = True,
        tie_word_embeddings: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        # None: derived from other options by validate_architecture (_fill_derived)
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.position_embedding_type = position_embedding_type
        self.sinusoidal_layout = sinusoidal_layout
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.partial_rotary_factor = partial_rotary_factor
        self.rotary_scaling = rotary_scaling
        self.norm_type = norm_type
        self.norm_position = norm_position
        self.layer_norm_eps = layer_norm_eps
        self.norm_gain_offset = norm_gain_offset
        self.norm_bias = norm_bias
        self.skip_first_attention_norm = skip_first_attention_norm
        self.parallel_residual = parallel_residual
        self.parallel_shared_norm = parallel_shared_norm
        self.embedding_norm = embedding_norm
        self.final_norm = final_norm
        self.scale_embeddings = scale_embeddings
        self.clamp_float16 = clamp_float16
        self.attention_bias = attention_bias
        self.attention_output_bias = attention_output_bias
        self.qk_norm = qk_norm
        self.qk_norm_scope = qk_norm_scope
        self.attention_scaling = attention_scaling
        self.attention_softcap = attention_softcap
        self.mlp_bias = mlp_bias
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.classifier_dropout = classifier_dropout
        self.activation_dropout = activation_dropout
        self.embedding_dropout = embedding_dropout
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        self.tie_word_embeddings = tie_word_embeddings
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        # before transformers' own token-id check, which compares the ids with vocab_size (a TypeError for a string)
        _check_positive("vocab_size", vocab_size)
        super().__init__(**kwargs)
        self.validate_architecture()

    #: the options whose None means "derived from the others": their values, given the other options
    _DERIVED = {
        "num_key_value_heads": lambda config: config.num_attention_heads,
        "intermediate_size": lambda config: 4 * config.hidden_size,
        "final_norm": lambda config: config.norm_position != "post",
        "attention_output_bias": lambda config: config.attention_bias,
        "head_dim": lambda config: None,  # validate_architecture divides hidden_size among the heads
        "layer_types": lambda config: None,  # SlidingWindowOptions.validate_architecture: from sliding_window
    }

    def _fill_derived(self) -> None:
        """Give each derived option left None its value from the others (``_DERIVED``); idempotent."""
        for name, derive in self._DERIVED.items():
            if name in vars(self) and getattr(self, name) is None:
                setattr(self, name, derive(self))

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """transformers' ``from_dict``, which builds the config from ``config_dict`` and then *sets* the keyword
        arguments that name options (``from_pretrained(path, num_attention_heads=8)``), past ``__init__``'s checks.

        Here those overrides are checked too: the options the dict leaves to derivation (``None`` or absent, such as
        ``head_dim`` or ``layer_types``) are derived again from the overridden values, unless overridden themselves,
        and :meth:`validate_architecture` runs again.
        """
        return_unused_kwargs = kwargs.pop("return_unused_kwargs", False)
        config, unused = super().from_dict(config_dict, return_unused_kwargs=True, **kwargs)
        overrides = {key for key in kwargs if key not in unused}
        if overrides:
            for name in cls._DERIVED:
                if name in vars(config) and name not in overrides and config_dict.get(name,
                                                                                     cls._init_default(name)) is None:
                    setattr(config, name, None)
            config.validate_architecture()
        return (config, unused) if return_unused_kwargs else config

    @classmethod
    def _init_default(cls, name: str):
        """The default ``cls(...)`` gives option ``name`` when not passed (the encoder's ``final_norm`` is False, the
        base's None: derived); None for an option no ``__init__`` names."""
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            parameter = inspect.signature(init).parameters.get(name) if init is not None else None
            if parameter is not None:
                return parameter.default
        return None

    def validate(self) -> None:
        """transformers' check at save time (``save_pretrained``), which runs only ``PreTrainedConfig``'s own
        validators: :meth:`validate_architecture` first, so that an option set after construction
        (``config.hidden_act = "foo"``) cannot be saved unchecked."""
        self.validate_architecture()
        super().validate()

    @property
    def base_model_tp_plan(self) -> dict[str, str]:
        """How ``from_pretrained(..., tp_plan="auto")`` shards each block over the ranks of a tensor-parallel run.

        Feed-forward: Megatron's split. ``up_proj`` (and ``gate_proj``) are split by output feature, so each rank
        computes a slice of the hidden layer; ``down_proj`` is split by input feature, and the ranks' partial
        outputs are summed (one all-reduce). Attention: the fused ``qkv_proj`` (and cross-attention's ``q_proj`` /
        ``kv_proj``) stacks Q, K and V row-wise, so a plain split would hand a rank some of Q and none of V; each
        rank computes its slice of the rows and the slices are gathered (as transformers does for Phi-3's fused
        projection), then ``o_proj`` splits its input and all-reduces. Embeddings, norms and the tied head stay
        whole on every rank.
        """
        ffn = {"up_proj": "colwise", "down_proj": "rowwise"}
        if is_gated(self.hidden_act):
            ffn["gate_proj"] = "colwise"
        attention = {"qkv_proj": "colwise_gather_output", "o_proj": "rowwise_split_input"}
        cross = {"q_proj": "colwise_gather_output", "kv_proj": "colwise_gather_output", "o_proj": "rowwise_split_input"}
        plan = {}
        for stack in self._block_stacks:
            plan |= {f"{stack}.*.self_attn.{name}": style for name, style in attention.items()}
            plan |= {f"{stack}.*.mlp.{name}": style for name, style in ffn.items()}
        for stack in self._cross_attention_stacks:
            plan |= {f"{stack}.*.cross_attn.{name}": style for name, style in cross.items()}
        return plan

    @property
    def base_model_fsdp_plan(self) -> dict[str, str]:
        """How transformers' own FSDP2 (``DistributedConfig(fsdp_size=N)``) groups the parameters it shards: one unit
        per block, gathered for its forward and freed after; the final norm kept gathered, since the head runs right
        after it. The embeddings stay in the root unit, with the output head that shares their matrix."""
        plan = {f"{stack}.*": "free_full_weight" for stack in self._block_stacks}
        if self.final_norm:  # "layers" -> "norm", "decoder.layers" -> "decoder.norm"
            plan |= {stack.removesuffix("layers") + "norm": "keep_full_weight" for stack in self._block_stacks}
        return plan

    @property
    def rotary_dim(self) -> int:
        """How many features of each head rotary positions rotate: ``head_dim * partial_rotary_factor``."""
        return int(self.head_dim * self.partial_rotary_factor)

    def to_dict(self) -> dict:
        """transformers' dict, with ``head_dim`` as None where it is ``hidden_size / num_attention_heads``: a derived
        value is derived again on loading, so a saved config whose width or head count is then changed (a
        ``--config_overrides``) cannot keep a stale head width."""
        out = super().to_dict()
        if self.head_dim is not None and self.head_dim * self.num_attention_heads == self.hidden_size:
            out["head_dim"] = None
        return out

    @property
    def float32_feed_forward_output(self) -> bool:
        """T5's float16 handling (``clamp_float16``): ``from_pretrained(dtype=torch.float16)`` keeps each feed-forward
        output projection in float32, so the residual stream is float32. Only where every reader of that stream is a
        norm that hands float16 on (``normalization.HalfWeightRMSNorm``): not with offset gains (Gemma's norm keeps
        its input's dtype), nor in a pre-norm stack without a final norm, whose head would read the stream itself."""
        if not self.clamp_float16 or self.norm_gain_offset:
            return False
        return bool(self.final_norm) or self.norm_position == "post"

    def validate_architecture(self) -> None:
        """Raise ``ValueError`` naming the first field whose value the blocks cannot build."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "max_position_embeddings"):
            _check_positive(name, getattr(self, name))
        self._fill_derived()
        for name in ("num_key_value_heads", "intermediate_size"):
            _check_positive(name, getattr(self, name))
        if self.head_dim is None:  # the usual layout: the heads split the hidden state between them
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(
                    f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                    f"({self.num_attention_heads}): each head gets hidden_size / num_attention_heads features "
                    "(or set `head_dim`)."
                )
            self.head_dim = self.hidden_size // self.num_attention_heads
        _check_positive("head_dim", self.head_dim)
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must be divisible by `num_key_value_heads` "
                f"({self.num_key_value_heads}): each key/value head serves a whole group of query heads. (A config "
                "made without `num_key_value_heads` and `head_dim` derives them from the heads count it was made "
                "with, and keeps them when `num_attention_heads` is changed later: change them with it.)"
            )
        _check_choice("hidden_act", self.hidden_act, tuple(ACTIVATIONS))
        _check_choice("position_embedding_type", self.position_embedding_type, POSITION_EMBEDDING_TYPES)
        _check_choice("sinusoidal_layout", self.sinusoidal_layout, SINUSOIDAL_LAYOUTS)
        _check_choice("norm_type", self.norm_type, NORM_TYPES)
        _check_choice("norm_position", self.norm_position, NORM_POSITIONS)
        _check_choice("qk_norm_scope", self.qk_norm_scope, QK_NORM_SCOPES)
        _check_choice("problem_type", self.problem_type, (None, *PROBLEM_TYPES))
        _check_rotary_scaling(self.rotary_scaling)
        _check_flags(self, ("clamp_float16", "norm_gain_offset", "attention_bias", "attention_output_bias", "qk_norm",
                            "mlp_bias", "norm_bias", "skip_first_attention_norm", "parallel_residual",
                            "parallel_shared_norm", "tie_word_embeddings", "final_norm", "embedding_norm",
                            "scale_embeddings", "use_cache"))
        _check_positive_number("rope_theta", self.rope_theta)
        _check_positive_number("initializer_range", self.initializer_range)
        if self.norm_gain_offset and self.norm_type != "rmsnorm":
            raise ValueError("`norm_gain_offset=True` stores RMSNorm gains as offsets from 1: it needs "
                             f"`norm_type='rmsnorm'`; got {self.norm_type!r}.")
        if self.parallel_shared_norm and not self.parallel_residual:
            raise ValueError("`parallel_shared_norm=True` shares one norm between the two sub-layers of a parallel "
                             "block: it needs `parallel_residual=True`.")
        if self.parallel_residual and self.norm_position != "pre":
            raise ValueError("`parallel_residual=True` feeds both sub-layers the normalised block input: it needs "
                             f"`norm_position='pre'`; got {self.norm_position!r}.")
        if self.skip_first_attention_norm and self.norm_position not in ("pre", "sandwich"):
            raise ValueError("`skip_first_attention_norm=True` removes the first block's norm before self-attention: "
                             f"it needs `norm_position` 'pre' or 'sandwich'; got {self.norm_position!r}.")
        factor = self.partial_rotary_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1:
            raise ValueError(f"`partial_rotary_factor` must be a number in (0, 1]; got {factor!r}.")
        _refuse_unused_rotary(self)
        if self.position_embedding_type == "rotary" and (self.rotary_dim % 2 or self.rotary_dim < 2):
            raise ValueError(f"`position_embedding_type='rotary'` rotates pairs of features: it needs an even "
                             f"head_dim * partial_rotary_factor >= 2; got {self.rotary_dim}.")
        for key in ROTARY_SCALING_LIST_KEYS:
            stretches = (self.rotary_scaling or {}).get(key)
            if stretches is not None and len(stretches) != self.rotary_dim // 2:
                raise ValueError(f"`rotary_scaling[{key!r}]` needs rotary_dim / 2 = {self.rotary_dim // 2} numbers, "
                                 f"one per rotated pair; got {len(stretches)}.")
        if self.position_embedding_type == "sinusoidal" and self.hidden_size % 2:
            raise ValueError(
                f"`position_embedding_type='sinusoidal'` needs an even `hidden_size`; got {self.hidden_size}."
            )
        for name in ("attention_scaling", "attention_softcap"):
            _check_optional_positive_number(name, getattr(self, name))
        for name in ("hidden_dropout", "attention_dropout", "activation_dropout"):
            _check_probability(name, getattr(self, name))
        for name in ("classifier_dropout", "embedding_dropout"):
            if getattr(self, name) is not None:
                _check_probability(name, getattr(self, name))
        if not (isinstance(self.layer_norm_eps, float) and _is_positive_number(self.layer_norm_eps)):
            raise ValueError(f"`layer_norm_eps` must be a positive finite float; got {self.layer_norm_eps!r}.")
        _check_token_ids(self, self._embedding_token_ids)


class SlidingWindowOptions:
    """The logic of the sliding-window options, ``sliding_window``, ``layer_types`` and ``sliding_rope_theta``, which
    the GPT and the encoder share (a mixin: each config documents what its window means)."""

    def _set_windows(self, sliding_window, layer_types, sliding_rope_theta, depth) -> None:
        self.sliding_window = sliding_window
        self.sliding_rope_theta = sliding_rope_theta
        self.layer_types = list(layer_types) if isinstance(layer_types, tuple) else layer_types  # None: filled later
        if layer_types is not None:  # before transformers' own check, which raises no ValueError
            _check_positive("num_hidden_layers", depth)
            _check_layer_types(self.layer_types, depth, sliding_window)

    def layer_sliding_window(self, layer_idx: int) -> int | None:
        """The window of layer ``layer_idx``'s self-attention: ``sliding_window`` for a sliding layer, else None."""
        return self.sliding_window if self.layer_types[layer_idx] == "sliding_attention" else None

    def to_dict(self) -> dict:
        """As :meth:`MiniConfig.to_dict`, with ``layer_types`` as None where it is the default for ``sliding_window``
        (every layer slides, or none), so that a saved config given another depth stays consistent."""
        out = super().to_dict()
        depth = self.num_hidden_layers
        if type(depth) is not int:  # a bad override, logged by transformers before validate_architecture names it
            return out
        default = ["full_attention" if self.sliding_window is None else "sliding_attention"] * depth
        if self.layer_types == default:
            out["layer_types"] = None
        return out

    def validate_architecture(self) -> None:
        super().validate_architecture()
        if self.sliding_window is not None:
            _check_positive("sliding_window", self.sliding_window)
        if self.layer_types is None:  # transformers' default: every layer slides when there is a window, else none
            kind = "full_attention" if self.sliding_window is None else "sliding_attention"
            self.layer_types = [kind] * self.num_hidden_layers
        _check_layer_types(self.layer_types, self.num_hidden_layers, self.sliding_window)
        _check_optional_positive_number("sliding_rope_theta", self.sliding_rope_theta)
        if self.sliding_rope_theta is not None and (self.position_embedding_type != "rotary"
                                                    or "sliding_attention" not in self.layer_types):
            raise ValueError("`sliding_rope_theta` is the rotary base of sliding-window layers: it needs "
                             "`position_embedding_type='rotary'` and a `sliding_window`; this model has "
                             f"position_embedding_type={self.position_embedding_type!r}, layer_types "
                             f"{sorted(set(self.layer_types))}.")


class RelativeBiasOptions:
    """T5's relative attention bias options, ``relative_attention_num_buckets`` and ``relative_attention_max_distance``,
    which the encoder and the seq2seq model share (a mixin: each documents them); used with
    ``position_embedding_type="relative"``."""

    def _set_relative(self, num_buckets, max_distance, per_layer) -> None:
        self.relative_attention_num_buckets = num_buckets
        self.relative_attention_max_distance = max_distance
        self.relative_bias_per_layer = per_layer

    def _check_relative(self) -> None:
        _check_positive("relative_attention_num_buckets", self.relative_attention_num_buckets)
        _check_positive("relative_attention_max_distance", self.relative_attention_max_distance)
        _check_flags(self, ("relative_bias_per_layer",))
        if self.position_embedding_type != "relative":
            if self.relative_bias_per_layer:
                raise ValueError("`relative_bias_per_layer=True` gives each layer a T5 bias of its own: it needs "
                                 f"`position_embedding_type='relative'`; got {self.position_embedding_type!r}.")
            return
        # a direction's first half of buckets counts distances exactly, the rest on a log scale up to the distance:
        # a causal stack gives the past all the buckets, so num_buckets / 2 distances are exact there
        buckets, distance = self.relative_attention_num_buckets, self.relative_attention_max_distance
        if buckets < 4 or distance <= buckets // 2:
            raise ValueError("`position_embedding_type='relative'` needs `relative_attention_num_buckets >= 4` and "
                             "`relative_attention_max_distance` above half of them; got "
                             f"{self.relative_attention_num_buckets} and {self.relative_attention_max_distance}.")
        if self.position_offset or getattr(self, "pad_aware_positions", False):
            raise ValueError("`position_embedding_type='relative'` reads distances between positions counted from 0: "
                             f"it needs `position_offset=0` and `pad_aware_positions=False`; got "
                             f"{self.position_offset!r} and {getattr(self, 'pad_aware_positions', False)!r}.")


class MiniGPTConfig(SlidingWindowOptions, MiniConfig):
    r"""Decoder-only GPT: a stack of causal (masked) self-attention blocks and a language-model head.

    Defaults are GPT-2 small's shape with the original Transformer's sinusoidal positions; see
    ``configuration/models/`` for presets and :mod:`modeling_mini.convert` for exact GPT-2 settings.

    Args (besides :class:`MiniConfig`'s):
        add_cross_attention: give every block a cross-attention sub-layer over ``encoder_hidden_states``, as
            GPT-2's option of that name. This makes the GPT the decoder of transformers' ``EncoderDecoderModel``
            (e.g. a pretrained encoder and a pretrained GPT warm-started into a seq2seq model, whose new
            cross-attention is then fine-tuned). ``EncoderDecoderModel.from_encoder_decoder_pretrained`` sets it.
        freeze_padding_row: the pad token's embedding row never trains (its lookups pass no gradient), as in Llama.
            Off by default, as in GPT-2: a causal LM's pad token is usually its end-of-text token, which it must learn.
        final_logit_softcap: ``None``, or soft-cap the language-model head's logits, ``cap * tanh(logit / cap)``
            (Gemma 2): no score grows past ``cap``.
        lm_head_bias: a bias in the language-model head (one per vocabulary entry), as Phi-1/1.5/2 have; never tied.
        token_embedding_size: ``None`` (the token table is ``hidden_size`` wide), or a narrower width of the token table
            alone (OPT-350M: 512 for 1024-wide layers). Each token's embedding is projected up to ``hidden_size``
            (``embeddings.project_tokens``, no bias) before the positions, which stay ``hidden_size`` wide, are added;
            after the last layer (and final norm) ``project_out`` maps the hidden states back down, so the backbone's
            output, and what every head reads, is ``token_embedding_size`` wide (:attr:`output_size`) and the
            language-model head stays tied to the narrow table. Not ELECTRA's ``embedding_size`` (the encoder's), which
            narrows the position and segment tables too and projects their sum.
        position_offset: added to every position id, made here or given, before looking up absolute positions (OPT's
            learned table starts at row 2, as BART's); 0 elsewhere. Position ids given to ``forward`` (``generate``
            makes them) count from 0 as usual.
        pad_aware_positions: without given position ids, number positions among the tokens the 2D ``attention_mask``
            keeps (``positional.positions_from_attention_mask``), as OPT does: a left-padded text gets the positions
            it has alone, and pad tokens get position ``position_offset - 1``. Needs absolute positions and
            ``position_offset >= 1``. Off (as GPT-2): positions then count every token, pad or not.
        sliding_window: ``None`` (every token sees all tokens before it), or the number of tokens (at least 2) a token
            sees in a *sliding-window* layer: itself and the ``sliding_window - 1`` tokens before it (Mistral's local
            attention). Information still travels further through the stack, one window per layer, while the attention
            cost and the key/value cache of such a layer stop growing with the length.
        layer_types: one entry per layer, ``"full_attention"`` or ``"sliding_attention"`` (Qwen2's and Ministral's
            mix); ``None`` makes every layer slide when ``sliding_window`` is set, and none otherwise. transformers'
            caches and mask builders read the same two fields: a cache made for this config keeps only a window for
            the sliding layers, and ``generate`` may pass a mask per layer type.
        sliding_rope_theta: ``None`` (sliding-window layers rotate as the others do), or the rotary base of the
            sliding-window layers, which then ignore ``rotary_scaling`` (Gemma 3: 10,000 for its local layers,
            1,000,000 and a linear stretch for the global ones). A window never sees long distances, so its layers keep
            fast, unstretched frequencies; only the full layers are tuned for long contexts.
        nope_layers: ``None``, or the indices of the layers whose attention gets no rotary positions at all ("NoPE":
            SmolLM3 leaves out every fourth). The causal mask alone already tells a token how many tokens precede it;
            such layers can attend by content over any distance, while the rotary layers handle word order.
    """

    model_type = "mini_gpt"
    attribute_map = {"n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "n_embd": "hidden_size"}

    def __init__(
        self,
        vocab_size: int = 50257,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        hidden_act: str = "gelu_new",
        norm_position: str = "pre",
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        add_cross_attention: bool = False,
        freeze_padding_row: bool = False,
        final_logit_softcap: float | None = None,
        lm_head_bias: bool = False,
        token_embedding_size: int | None = None,
        position_offset: int = 0,
        pad_aware_positions: bool = False,
        sliding_window: int | None = None,
        sliding_rope_theta: float | None = None,
        layer_types: list[str] | None = None,
        nope_layers: list[int] | None = None,
        **kwargs,
    ):
        self.lm_head_bias = lm_head_bias
        self.token_embedding_size = token_embedding_size
        kwargs.pop("output_size", None)  # derived (a property), not a field: a config dict that lists it still loads
        self.position_offset = position_offset
        self.pad_aware_positions = pad_aware_positions
        self.nope_layers = list(nope_layers) if isinstance(nope_layers, (tuple, range)) else nope_layers
        self.add_cross_attention = add_cross_attention
        self.freeze_padding_row = freeze_padding_row
        self.final_logit_softcap = final_logit_softcap
        # GPT-2's name for the depth (attribute_map) wins, as it will below
        self._set_windows(sliding_window, layer_types, sliding_rope_theta, kwargs.get("n_layer", num_hidden_layers))
        super().__init__(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            hidden_act=hidden_act,
            norm_position=norm_position,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )

    @property
    def _cross_attention_stacks(self) -> tuple[str, ...]:
        return ("layers",) if self.add_cross_attention else ()

    @property
    def output_size(self) -> int:
        """The width of the backbone's output, which every head reads: ``token_embedding_size`` when set (the last
        hidden states are projected down to the token table's width), else ``hidden_size``."""
        return self.token_embedding_size or self.hidden_size

    def validate_architecture(self) -> None:
        super().validate_architecture()
        _check_flags(self, ("add_cross_attention", "freeze_padding_row", "lm_head_bias", "pad_aware_positions"))
        if self.token_embedding_size is not None:
            _check_positive("token_embedding_size", self.token_embedding_size)
        _refuse_relative(self)
        if self.sliding_window is not None and self.sliding_window < 2:
            # transformers' dynamic sliding cache keeps the last `window - 1` keys, which for 1 reads as all of them
            raise ValueError("`sliding_window` must be None or at least 2 (a token and the one before it): a window of "
                             "1 is each token attending to itself alone, which transformers' sliding cache cannot "
                             f"decode; got {self.sliding_window!r}.")
        if self.position_embedding_type == "alibi" and "sliding_attention" in self.layer_types:
            raise ValueError("`position_embedding_type='alibi'` has no sliding-window layers here: it needs "
                             "`sliding_window=None`.")
        _check_positive("position_offset", self.position_offset, allow_zero=True)
        absolute = self.position_embedding_type in ("learned", "sinusoidal")
        if (self.position_offset or self.pad_aware_positions) and not absolute:
            raise ValueError("`position_offset` and `pad_aware_positions` shift the rows of an absolute position "
                             "table: they need `position_embedding_type` 'learned' or 'sinusoidal'; got "
                             f"{self.position_embedding_type!r}.")
        if self.pad_aware_positions and self.position_offset < 1:
            raise ValueError("`pad_aware_positions=True` gives pad tokens position `position_offset - 1`: it needs "
                             f"`position_offset >= 1`; got {self.position_offset!r}.")
        if self.parallel_residual and self.add_cross_attention:
            raise ValueError("`parallel_residual=True` has no place for a cross-attention sub-layer: it needs "
                             "`add_cross_attention=False`.")
        _check_optional_positive_number("final_logit_softcap", self.final_logit_softcap)
        nope = self.nope_layers
        if nope is not None:
            depth = self.num_hidden_layers
            valid = isinstance(nope, (list, tuple)) and all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < depth for i in nope)
            if not valid or len(set(nope)) != len(nope):
                raise ValueError(f"`nope_layers` must be None or distinct layer indices in [0, num_hidden_layers="
                                 f"{self.num_hidden_layers}); got {nope!r}.")
            if self.position_embedding_type != "rotary":
                raise ValueError("`nope_layers` leaves rotary positions out of some layers: it needs "
                                 f"`position_embedding_type='rotary'`; got {self.position_embedding_type!r}.")


class MiniEncoderConfig(SlidingWindowOptions, RelativeBiasOptions, MiniConfig):
    r"""Bidirectional encoder (BERT-like): every token attends to every other real token of its input.

    Defaults are BERT-base's shape and layout: post-norm LayerNorm (eps 1e-12), exact ``gelu``, a normalised
    embedding sum, no final norm, two segment types and a pooler. Positions keep the package default,
    ``sinusoidal`` (the original Transformer's fixed encoding): a freshly built encoder then has no length
    limit and nothing to learn for order, and it is the same default in every family. ``from_hf`` sets
    ``position_embedding_type="learned"`` when it converts a BERT checkpoint, so converted models are exact.

    Args (besides :class:`MiniConfig`'s):
        type_vocab_size: number of segment (token-type) ids, e.g. 2 for BERT's sentence A / sentence B;
            0 disables segment embeddings, and ``token_type_ids`` are then ignored (as DistilBERT and ModernBERT
            ignore them): a text pair is told apart by its separator token alone.
        add_pooler: give :class:`MiniEncoderModel` a pooler (dense + tanh over the first token, BERT's
            ``[CLS]`` summary). The sequence-classification and multiple-choice heads always have one.
        sparse_prediction: when the masked-LM head gets ``labels``, score only the labelled (masked) positions,
            skipping the vocabulary projection for the ~85% of tokens the loss ignores; ``logits`` are then
            (num_masked, vocab_size) instead of (B, T, vocab_size). Off by default (BERT's behaviour).
        position_offset: added to every position id the model makes (RoBERTa's table starts at ``pad_token_id + 1``;
            ``position_ids`` you pass are table rows, used as they are, as RoBERTa's are); 0 for BERT.
        pad_aware_positions: number positions among the real tokens only, as RoBERTa does
            (``positional.positions_of_real_tokens``): a left-padded text gets the positions it has alone, and
            pad tokens get position ``position_offset - 1``, a row of a learned table that never trains (RoBERTa's
            ``padding_idx``). Needs ``pad_token_id`` and ``position_offset >= 1``.
        freeze_padding_row: the pad token's embedding row starts at zero and never trains, as in BERT, RoBERTa,
            DistilBERT, ELECTRA, ALBERT and ModernBERT (their tables have a ``padding_idx``); T5's encoder trains it.
        head_bias: a bias on the dense layer of the masked-LM head's transform, and of the task heads' with
            ``head_transform`` (BERT: yes; ModernBERT: no).
        head_transform: every task head passes the hidden states through a dense -> activation -> norm of its own
            before its classifier, and the pooler is that transform instead of BERT's dense -> tanh (ModernBERT).
        classifier_pooling: what the pooler reads: ``"cls"``, the first token (BERT), or ``"mean"``, the average of
            the real tokens (ModernBERT's option).
        pooler_activation: the function after the pooler's dense layer, ``"tanh"`` (BERT), ``"relu"``
            (DistilBERT's ``pre_classifier``) or ``"gelu"`` (ELECTRA's classification head); with ``head_transform``
            the pooler is that transform and applies ``hidden_act`` instead, so this must stay ``"tanh"``.
        embedding_size: ``None`` (the embeddings are ``hidden_size`` wide), or a width of their own, usually smaller
            (ELECTRA-small: 128 for a 256-wide model): the token, segment and position tables and the embedding
            norm are that wide, and one linear map projects their sum up to ``hidden_size``. This *factorised*
            embedding stores ``vocab_size * embedding_size + embedding_size * hidden_size`` numbers instead of
            ``vocab_size * hidden_size``; the masked-LM head projects back down before its tied output layer.
        sliding_window: ``None`` (every token sees the whole input), or how far a token sees on either side in a
            *sliding-window* (local) layer: the tokens at most ``sliding_window`` positions away (ModernBERT: 64, its
            128-token local attention). The cost of such a layer grows with the length times the window, not the
            length squared, and information still crosses the input through the full layers.
        layer_types: one entry per layer, ``"full_attention"`` or ``"sliding_attention"`` (ModernBERT: every third
            layer full, from the first); ``None`` makes every layer slide when ``sliding_window`` is set.
        sliding_rope_theta: ``None``, or the rotary base of the sliding layers, which then ignore ``rotary_scaling``
            (ModernBERT: 10,000 for its local layers, 160,000 for the global ones).
        relative_attention_num_buckets / relative_attention_max_distance: with ``position_embedding_type="relative"``
            (T5's encoder), how many distance buckets the encoder learns a bias per head for, and the distance from
            which all tokens share the last bucket (``positional.relative_position_buckets``).
        relative_bias_per_layer: with ``position_embedding_type="relative"``, each layer learns a bias table of its
            own (UMT5) instead of one for the stack (T5).
        num_hidden_groups: ``None`` (every layer has weights of its own), or how many distinct blocks the layers
            share, ALBERT's *cross-layer parameter sharing*: layer ``i`` runs block ``i * num_hidden_groups //
            num_hidden_layers``, so ALBERT's ``1`` runs one block ``num_hidden_layers`` times. The compute is a deep
            model's; the parameters, a shallow one's.
    """

    model_type = "mini_encoder"

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int | None = 3072,
        hidden_act: str = "gelu",
        max_position_embeddings: int = 512,
        norm_position: str = "post",
        layer_norm_eps: float = 1e-12,
        embedding_norm: bool = True,
        final_norm: bool | None = False,
        type_vocab_size: int = 2,
        add_pooler: bool = True,
        sparse_prediction: bool = False,
        position_offset: int = 0,
        pad_aware_positions: bool = False,
        freeze_padding_row: bool = True,
        head_bias: bool = True,
        head_transform: bool = False,
        classifier_pooling: str = "cls",
        pooler_activation: str = "tanh",
        embedding_size: int | None = None,
        sliding_window: int | None = None,
        sliding_rope_theta: float | None = None,
        layer_types: list[str] | None = None,
        relative_attention_num_buckets: int = 32,
        relative_attention_max_distance: int = 128,
        relative_bias_per_layer: bool = False,
        num_hidden_groups: int | None = None,
        pad_token_id: int | None = 0,
        use_cache: bool = False,
        **kwargs,
    ):
        self.num_hidden_groups = num_hidden_groups
        self.head_bias = head_bias
        self.head_transform = head_transform
        self.classifier_pooling = classifier_pooling
        self.pooler_activation = pooler_activation
        self.embedding_size = embedding_size
        self._set_windows(sliding_window, layer_types, sliding_rope_theta, num_hidden_layers)
        self._set_relative(relative_attention_num_buckets, relative_attention_max_distance, relative_bias_per_layer)
        self.type_vocab_size = type_vocab_size
        self.add_pooler = add_pooler
        self.sparse_prediction = sparse_prediction
        self.position_offset = position_offset
        self.pad_aware_positions = pad_aware_positions
        self.freeze_padding_row = freeze_padding_row
        super().__init__(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            intermediate_size=intermediate_size,
            hidden_act=hidden_act,
            max_position_embeddings=max_position_embeddings,
            norm_position=norm_position,
            layer_norm_eps=layer_norm_eps,
            embedding_norm=embedding_norm,
            final_norm=final_norm,
            pad_token_id=pad_token_id,
            use_cache=use_cache,
            **kwargs,
        )

    def validate_architecture(self) -> None:
        super().validate_architecture()
        _check_positive("type_vocab_size", self.type_vocab_size, allow_zero=True)
        _check_positive("position_offset", self.position_offset, allow_zero=True)
        _check_flags(self, ("add_pooler", "sparse_prediction", "pad_aware_positions", "freeze_padding_row", "head_bias",
                            "head_transform"))
        self._check_relative()
        _refuse_alibi(self)
        if self.position_embedding_type == "relative" and "sliding_attention" in self.layer_types:
            raise ValueError("`position_embedding_type='relative'` (T5's bias) has no sliding-window layers here: it "
                             "needs `sliding_window=None`.")
        _check_choice("classifier_pooling", self.classifier_pooling, CLASSIFIER_POOLINGS)
        _check_choice("pooler_activation", self.pooler_activation, tuple(POOLER_ACTIVATIONS))
        if self.embedding_size is not None:
            _check_positive("embedding_size", self.embedding_size)
            if self.position_embedding_type == "sinusoidal" and self.embedding_size % 2:
                raise ValueError(f"`position_embedding_type='sinusoidal'` needs an even `embedding_size`; got "
                                 f"{self.embedding_size}.")
        if self.num_hidden_groups is not None:
            _check_positive("num_hidden_groups", self.num_hidden_groups)
            if self.num_hidden_groups > self.num_hidden_layers:
                raise ValueError(f"`num_hidden_groups` ({self.num_hidden_groups}) must be at most `num_hidden_layers` "
                                 f"({self.num_hidden_layers}): the layers share that many blocks.")
            if "sliding_attention" in self.layer_types:
                raise ValueError("`num_hidden_groups` (shared blocks) needs every layer to attend alike: it needs "
                                 "`sliding_window=None`.")
        if self.head_transform and self.pooler_activation != "tanh":
            raise ValueError("`pooler_activation` sets the dense pooler's function; with `head_transform=True` the "
                             "pooler is the head transform (it applies `hidden_act`): leave "
                             f"`pooler_activation='tanh'`; got {self.pooler_activation!r}.")
        if self.pad_aware_positions and (self.pad_token_id is None or self.position_offset < 1):
            raise ValueError(
                "`pad_aware_positions=True` gives pad tokens position `position_offset - 1`: it needs a "
                f"`pad_token_id` and `position_offset >= 1`; got pad_token_id={self.pad_token_id!r}, "
                f"position_offset={self.position_offset!r}."
            )


class MiniSeq2SeqConfig(RelativeBiasOptions, MiniConfig):
    r"""Encoder-decoder (the original Transformer): a bidirectional encoder reads the source, a causal decoder
    writes the target while attending to the encoder's output through cross-attention.

    Defaults are "Attention Is All You Need" (base): d_model 512, 6 + 6 layers, 8 heads, feed-forward 2048 with
    ReLU, sinusoidal positions, post-norm, embeddings scaled by ``sqrt(d_model)``, dropout 0.1, one embedding
    matrix shared by encoder, decoder and output layer.

    Args (besides :class:`MiniConfig`'s):
        encoder_layers / decoder_layers: depth of each stack (``None``: ``num_hidden_layers``).
            ``num_hidden_layers`` is always the decoder's depth: generic HF code (``DynamicCache``) sizes the
            decoder's key/value cache from it. It is another name of ``decoder_layers`` (``attribute_map``), not a
            copy, so setting either (as ``from_pretrained(..., decoder_layers=3)`` does after ``__init__``) sets both.
        share_embeddings: the encoder and decoder use one token-embedding matrix (a shared vocabulary).
        tie_word_embeddings: the output layer reuses the decoder's token embeddings.
        final_logits_bias: add a fixed per-token bias to the logits, saved with the weights but not trained
            (BART's and Marian's buffer of that name; see ``modeling_base.MiniLMHeadBias``).
        scale_decoder_output: multiply the decoder's output by ``hidden_size ** -0.5`` before the output layer (T5,
            whose tied output layer then reads the embedding table at the scale the embeddings have going in).
        freeze_padding_row: the pad token's embedding row starts at zero and never trains, as in BART and Marian
            (whose embeddings have a ``padding_idx``, even where the pad token starts the decoder, as Marian's does).
            T5 trains it: its pad token is its decoder's start token, and its table has no ``padding_idx``.
        position_offset: added to every position id before looking up learned positions (BART's tables start
            at row 2); 0 elsewhere.
        relative_attention_num_buckets / relative_attention_max_distance: with ``position_embedding_type="relative"``
            (T5), how many distance buckets each stack learns a bias per head for, and the distance from which all
            tokens share the last bucket (``positional.relative_position_buckets``).
        relative_bias_per_layer: with ``position_embedding_type="relative"``, each self-attention layer learns a bias
            table of its own (UMT5) instead of one for each stack (T5).
        decoder_start_token_id: the first decoder input, from which generation starts; labels are shifted
            right behind it to make ``decoder_input_ids``.
        start_with_last_token: teacher forcing starts each row with that row's last real token instead of
            ``decoder_start_token_id`` (mBART, whose rows end in their language code, which the decoder reads
            first; the mBART converter sets it). Used wherever ``decoder_input_ids`` are made from labels or, in the
            classification and question-answering heads, from ``input_ids`` (``shift_tokens_right``).
    """

    model_type = "mini_seq2seq"
    # the Trainer's evaluation keeps every output it is not told to drop: the encoder's states would pile up and turn
    # a classifier's predictions into a tuple
    keys_to_ignore_at_inference = ["cache", "encoder_last_hidden_state"]
    # BART's / T5's name for the width: generic seq2seq code (e.g. transformers' ExecuTorch export) reads it; and the
    # decoder's depth under its generic name, one attribute, so that an override of either cannot leave the other stale
    attribute_map = {"d_model": "hidden_size", "num_hidden_layers": "decoder_layers"}
    _block_stacks = ("encoder.layers", "decoder.layers")
    _cross_attention_stacks = ("decoder.layers",)
    _embedding_token_ids = ("pad_token_id", "decoder_start_token_id")

    def __init__(
        self,
        vocab_size: int = 32000,
        hidden_size: int = 512,
        num_hidden_layers: int | None = None,
        encoder_layers: int | None = None,
        decoder_layers: int | None = None,
        num_attention_heads: int = 8,
        intermediate_size: int | None = 2048,
        hidden_act: str = "relu",
        position_embedding_type: str = "sinusoidal",
        norm_position: str = "post",
        scale_embeddings: bool = True,
        share_embeddings: bool = True,
        tie_word_embeddings: bool = True,
        final_logits_bias: bool = False,
        scale_decoder_output: bool = False,
        freeze_padding_row: bool = True,
        position_offset: int = 0,
        relative_attention_num_buckets: int = 32,
        relative_attention_max_distance: int = 128,
        relative_bias_per_layer: bool = False,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        decoder_start_token_id: int | None = None,
        start_with_last_token: bool = False,
        is_encoder_decoder: bool = True,
        **kwargs,
    ):
        if num_hidden_layers is not None:  # named as given, before it becomes the default of both depths
            _check_positive("num_hidden_layers", num_hidden_layers)
        _refuse_windows(kwargs)  # before transformers' own layer_types check, which raises no ValueError
        default_depth = 6 if num_hidden_layers is None else num_hidden_layers
        self.decoder_layers = default_depth if decoder_layers is None else decoder_layers
        self.encoder_layers = default_depth if encoder_layers is None else encoder_layers
        if num_hidden_layers is not None and decoder_layers is not None and num_hidden_layers != decoder_layers:
            raise ValueError(
                f"`num_hidden_layers` ({num_hidden_layers}) is the decoder's depth and must equal `decoder_layers` "
                f"({decoder_layers}); set only `encoder_layers` / `decoder_layers`."
            )
        self.share_embeddings = share_embeddings
        self.final_logits_bias = final_logits_bias
        self.scale_decoder_output = scale_decoder_output
        self.freeze_padding_row = freeze_padding_row
        self._set_relative(relative_attention_num_buckets, relative_attention_max_distance, relative_bias_per_layer)
        self.position_offset = position_offset
        self.decoder_start_token_id = decoder_start_token_id
        self.start_with_last_token = start_with_last_token
        super().__init__(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=self.decoder_layers,
            num_attention_heads=num_attention_heads,
            intermediate_size=intermediate_size,
            hidden_act=hidden_act,
            position_embedding_type=position_embedding_type,
            norm_position=norm_position,
            scale_embeddings=scale_embeddings,
            tie_word_embeddings=tie_word_embeddings,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            is_encoder_decoder=is_encoder_decoder,
            **kwargs,
        )

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """:meth:`MiniConfig.from_dict`, refusing the sliding-window options as overrides too: they name no option
        here, so transformers would hand them back unused (and ``AutoConfig.from_pretrained`` would drop them)."""
        _refuse_windows(kwargs)
        return super().from_dict(config_dict, **kwargs)

    def to_dict(self) -> dict:
        """:class:`MiniConfig`'s dict, which also lists ``num_hidden_layers`` (the decoder's depth): an attribute
        map keeps no value of its own, and readers of a saved ``config.json`` look for that name."""
        return {**super().to_dict(), "num_hidden_layers": self.decoder_layers}

    def validate_architecture(self) -> None:
        _check_positive("encoder_layers", self.encoder_layers)
        _check_positive("decoder_layers", self.decoder_layers, alias="num_hidden_layers")  # two names, one field
        super().validate_architecture()
        _check_positive("position_offset", self.position_offset, allow_zero=True)
        _check_flags(self, ("share_embeddings", "final_logits_bias", "scale_decoder_output", "freeze_padding_row",
                            "start_with_last_token"))
        _refuse_windows(vars(self))
        self._check_relative()
        _refuse_alibi(self)
        if self.parallel_residual:
            raise ValueError("`parallel_residual=True` has no place for the decoder's cross-attention: a seq2seq model "
                             "needs `parallel_residual=False`.")
        if self.is_encoder_decoder is not True:
            raise ValueError(
                f"`is_encoder_decoder` must be True for {type(self).__name__}; got {self.is_encoder_decoder!r}."
            )
