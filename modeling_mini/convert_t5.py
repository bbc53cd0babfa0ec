"""T5 / mT5 <-> MiniSeq2Seq: the config translation and the weight-name map (through ``convert.py``).

T5 (and T5 v1.1, Flan-T5, mT5) is a pre-norm MiniSeq2Seq with these choices:

* no position vectors: a learned bias per head and distance bucket on the attention scores
  (``position_embedding_type="relative"``, ``positional.RelativePositionBias``), bidirectional in the encoder, causal
  in the decoder, none in cross-attention; T5 keeps it in each stack's first layer and every layer reuses it, we keep
  one per stack;
* no ``1 / sqrt(head_dim)`` on the scores (``attention_scaling=1.0``: its initialisation absorbs it) and a head width
  of its own (``d_kv``: ``head_dim``);
* RMSNorm without bias (its ``T5LayerNorm``), no biases anywhere, a final norm per stack, one shared token table
  (``share_embeddings``) whose pad row trains (the pad token is the decoder's start token:
  ``freeze_padding_row=False``);
* ReLU (T5) or a gated feed-forward (``gated-gelu``, T5 v1.1 / Flan-T5 / mT5: ``geglu_tanh``, its ``wi_0`` our gate);
* original T5 multiplies the decoder output by ``d_model ** -0.5`` before its tied output layer
  (``scale_decoder_output``); v1.1 and mT5 do not, and their output layer is a matrix of its own. transformers 5 ties
  the two when a checkpoint holds one matrix and unties them when it holds two: we read which from the model itself.

Its dropout sits where ours does (embeddings, each sub-layer's output, attention weights, inside the feed-forward),
plus once more after each stack's final norm, which ours lacks: only training differs there.
``T5EncoderModel`` / ``MT5EncoderModel`` (T5's encoder alone: sentence-T5, the text encoder of many image generators)
converts to a ``MiniEncoderModel`` with the same bias, bidirectional, no segments and no pooler, and back;
``T5ForTokenClassification`` / ``MT5ForTokenClassification`` (a linear layer on each of its tokens' states) to a
``MiniEncoderForTokenClassification`` on it, and back.

``T5ForSequenceClassification`` / ``T5ForQuestionAnswering`` (and mT5's) convert to
``MiniSeq2SeqForSequenceClassification`` / ``MiniSeq2SeqForQuestionAnswering`` and back: the same heads as BART's.

Not expressed, raising ``ValueError``: ``feed_forward_proj`` activations we lack.
"""

import copy

from torch import nn
from transformers import (
    MT5EncoderModel,
    MT5ForConditionalGeneration,
    MT5ForQuestionAnswering,
    MT5ForSequenceClassification,
    MT5ForTokenClassification,
    MT5Model,
    T5Config,
    T5EncoderModel,
    T5ForConditionalGeneration,
    T5ForQuestionAnswering,
    T5ForSequenceClassification,
    T5ForTokenClassification,
    T5Model,
    UMT5Config,
    UMT5EncoderModel,
    UMT5ForConditionalGeneration,
    UMT5ForQuestionAnswering,
    UMT5ForSequenceClassification,
    UMT5ForTokenClassification,
    UMT5Model,
)

from .activations import HF_ALIASES, is_gated
from .configuration_mini import MiniEncoderConfig, MiniSeq2SeqConfig
from .convert import check_expressible, load_mapped, new_model, separate_attention_projections
from .convert_bart import HEAD_WEIGHTS, LABELS, check_span_head
from .modeling_encoder import MiniEncoderForTokenClassification, MiniEncoderModel
from .modeling_seq2seq import (
    MiniSeq2SeqForConditionalGeneration,
    MiniSeq2SeqForQuestionAnswering,
    MiniSeq2SeqForSequenceClassification,
    MiniSeq2SeqModel,
)

#: T5's gated feed-forward ``gated-<act>``: our gated activation for its ``act``, and back
GATED = {"gelu_new": "geglu_tanh", "relu": "reglu", "silu": "swiglu"}
GATED_TO_T5 = {"geglu_tanh": "gated-gelu", "reglu": "gated-relu", "swiglu": "gated-silu"}
#: transformers class -> mini class
_CLASSES = {T5Model: MiniSeq2SeqModel, T5ForConditionalGeneration: MiniSeq2SeqForConditionalGeneration,
            MT5Model: MiniSeq2SeqModel, MT5ForConditionalGeneration: MiniSeq2SeqForConditionalGeneration,
            T5EncoderModel: MiniEncoderModel, MT5EncoderModel: MiniEncoderModel,
            T5ForSequenceClassification: MiniSeq2SeqForSequenceClassification,
            MT5ForSequenceClassification: MiniSeq2SeqForSequenceClassification,
            T5ForQuestionAnswering: MiniSeq2SeqForQuestionAnswering,
            MT5ForQuestionAnswering: MiniSeq2SeqForQuestionAnswering,
            T5ForTokenClassification: MiniEncoderForTokenClassification,
            MT5ForTokenClassification: MiniEncoderForTokenClassification,
            # UMT5: mT5's network with a relative bias in every self-attention layer (`relative_bias_per_layer`)
            UMT5Model: MiniSeq2SeqModel, UMT5ForConditionalGeneration: MiniSeq2SeqForConditionalGeneration,
            UMT5EncoderModel: MiniEncoderModel, UMT5ForSequenceClassification: MiniSeq2SeqForSequenceClassification,
            UMT5ForQuestionAnswering: MiniSeq2SeqForQuestionAnswering,
            UMT5ForTokenClassification: MiniEncoderForTokenClassification}
#: the encoder-only classes: T5's encoder alone, and the tagger on it (a linear layer on each token's state)
_ENCODER_CLASSES = (T5EncoderModel, MT5EncoderModel, UMT5EncoderModel, T5ForTokenClassification,
                    MT5ForTokenClassification, UMT5ForTokenClassification)
#: where each transformers class keeps its T5 backbone (the classifiers wrap a ``T5Model`` / ``T5EncoderModel``)
_HF_PREFIX = {cls: "transformer." for cls in (T5ForSequenceClassification, MT5ForSequenceClassification,
                                                UMT5ForSequenceClassification, T5ForTokenClassification,
                                                MT5ForTokenClassification, UMT5ForTokenClassification)}
#: the tagger's own weights, ours -> T5's
_TAGGER = {"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}
#: the options a T5 encoder-only model sets beyond its seq2seq layout's, and the ones it drops
_ENCODER_ONLY = dict(type_vocab_size=0, add_pooler=False, embedding_norm=False, max_position_embeddings=512)
_SEQ2SEQ_ONLY = ("encoder_layers", "decoder_layers", "share_embeddings", "tie_word_embeddings",
                 "scale_decoder_output", "decoder_start_token_id", "start_with_last_token")


def mini_config_from_t5(hf, tied_output: bool = True, **overrides) -> MiniSeq2SeqConfig:
    """The MiniSeq2Seq config computing what a T5 / mT5 config ``hf`` computes. ``tied_output``: whether the model's
    output layer is its token table (transformers 5 decides it from the checkpoint, not the config)."""
    activation = HF_ALIASES.get(hf.dense_act_fn, hf.dense_act_fn)
    if hf.is_gated_act:
        if activation not in GATED:
            raise ValueError(f"T5's `feed_forward_proj={hf.feed_forward_proj!r}` has no mini equivalent; gated ones: "
                             f"{sorted('gated-' + act for act in GATED)}.")
        activation = GATED[activation]
    dropout = float(hf.dropout_rate)
    kwargs = dict(
        vocab_size=hf.vocab_size,
        hidden_size=hf.d_model,
        encoder_layers=hf.num_layers,
        decoder_layers=hf.num_decoder_layers,
        num_attention_heads=hf.num_heads,
        head_dim=hf.d_kv,
        intermediate_size=hf.d_ff,
        hidden_act=activation,
        position_embedding_type="relative",
        relative_attention_num_buckets=hf.relative_attention_num_buckets,
        relative_attention_max_distance=hf.relative_attention_max_distance,
        relative_bias_per_layer=hf.model_type == "umt5",  # UMT5: a bias table in every self-attention layer
        norm_type="rmsnorm",
        norm_position="pre",
        final_norm=True,
        layer_norm_eps=float(hf.layer_norm_epsilon),
        scale_embeddings=False,
        clamp_float16=True,  # T5's float16 guard: the residual stream clamped after each sub-layer
        share_embeddings=True,
        freeze_padding_row=False,
        tie_word_embeddings=tied_output,
        scale_decoder_output=bool(getattr(hf, "scale_decoder_outputs", False)),  # mT5: never
        attention_bias=False,
        attention_output_bias=False,
        mlp_bias=False,
        attention_scaling=1.0,
        hidden_dropout=dropout,
        attention_dropout=dropout,
        activation_dropout=dropout,
        classifier_dropout=hf.classifier_dropout,
        use_cache=hf.use_cache,
        pad_token_id=hf.pad_token_id,
        eos_token_id=hf.eos_token_id,
        bos_token_id=getattr(hf, "bos_token_id", None),
        decoder_start_token_id=_decoder_start_token_id(hf),
        **{key: getattr(hf, key) for key in LABELS},
    )
    kwargs.update(overrides)
    return MiniSeq2SeqConfig(**kwargs)


def _decoder_start_token_id(hf) -> int | None:
    """The config's ``decoder_start_token_id``, or, only when it has none, the pad token (T5's start token): an
    explicit 0 is an id like any other and stays (``or`` would replace it)."""
    start = getattr(hf, "decoder_start_token_id", None)
    return hf.pad_token_id if start is None else start


def mini_encoder_config_from_t5(hf, **overrides) -> MiniEncoderConfig:
    """The MiniEncoder config computing what a T5 / mT5 encoder-only model computes."""
    kwargs = mini_config_from_t5(hf).to_dict()
    kwargs = {key: value for key, value in kwargs.items() if key not in (*_SEQ2SEQ_ONLY, "model_type",
                                                                         "is_encoder_decoder", "transformers_version")}
    kwargs.update(num_hidden_layers=hf.num_layers, **_ENCODER_ONLY, **overrides)
    return MiniEncoderConfig(**kwargs)


def t5_config_from_mini(config) -> T5Config:
    """The T5 config for a MiniSeq2Seq config (or a MiniEncoder's, for ``T5EncoderModel``); ``ValueError`` naming the
    first option T5 cannot express."""
    encoder_only = config.model_type == "mini_encoder"
    required = {
        "position_embedding_type": "relative",
        "norm_type": "rmsnorm",
        "norm_position": "pre",
        "final_norm": True,
        "skip_first_attention_norm": False,
        "embedding_norm": False,
        "scale_embeddings": False,
        **(dict(type_vocab_size=0, add_pooler=False) if encoder_only else
           dict(share_embeddings=True, final_logits_bias=False)),
        "position_offset": 0,
        **({} if encoder_only else {"start_with_last_token": False}),
        "attention_bias": False,
        "attention_output_bias": False,
        "mlp_bias": False,
        "attention_scaling": 1.0,
        "qk_norm": False,
        "num_key_value_heads": config.num_attention_heads,
        # one dropout rate everywhere
        "attention_dropout": config.hidden_dropout,
        "activation_dropout": config.hidden_dropout,
    }
    check_expressible(config, "T5", required, allow=("attention_scaling", "embedding_dropout"), standard_heads=False,
                      gated=True)
    if config.embedding_dropout not in (None, config.hidden_dropout):
        raise ValueError(f"T5 drops out its embeddings with its one `dropout_rate`: it needs `embedding_dropout` None "
                         f"or `hidden_dropout` ({config.hidden_dropout}); got {config.embedding_dropout!r}.")
    if is_gated(config.hidden_act):
        if config.hidden_act not in GATED_TO_T5:
            raise ValueError(f"T5 has no gated feed-forward with `hidden_act={config.hidden_act!r}`; one of "
                             f"{sorted(GATED_TO_T5)} (its 'gated-gelu' is the tanh GELU).")
        feed_forward = GATED_TO_T5[config.hidden_act]
    else:
        feed_forward = config.hidden_act
    return (UMT5Config if config.relative_bias_per_layer else T5Config)(
        vocab_size=config.vocab_size,
        d_model=config.hidden_size,
        d_kv=config.head_dim,
        d_ff=config.intermediate_size,
        num_layers=config.num_hidden_layers if encoder_only else config.encoder_layers,
        num_decoder_layers=None if encoder_only else config.decoder_layers,
        num_heads=config.num_attention_heads,
        relative_attention_num_buckets=config.relative_attention_num_buckets,
        relative_attention_max_distance=config.relative_attention_max_distance,
        dropout_rate=config.hidden_dropout,
        layer_norm_epsilon=config.layer_norm_eps,
        feed_forward_proj=feed_forward,
        tie_word_embeddings=not encoder_only and config.scale_decoder_output,  # T5Config: "scale the decoder output"
        classifier_dropout=config.hidden_dropout if config.classifier_dropout is None else config.classifier_dropout,
        use_cache=config.use_cache,
        pad_token_id=config.pad_token_id,
        eos_token_id=config.eos_token_id,
        bos_token_id=config.bos_token_id,
        decoder_start_token_id=None if encoder_only else config.decoder_start_token_id,
        **{key: getattr(config, key) for key in LABELS},
    )


def _weight_map(config, mini: str, hf: str = "") -> dict:
    """{mini key: T5 key} for both stacks (the decoder's token table is the encoder's: tied), or, for a MiniEncoder,
    T5's encoder alone; ours under ``mini``, T5's under ``hf``."""
    if config.model_type == "mini_encoder":
        return {f"{mini}embeddings.embed_tokens.weight": f"{hf}shared.weight",
                **_stack_map(config, mini, f"{hf}encoder", config.num_hidden_layers, ("self_attn",))}
    return {f"{mini}encoder.embeddings.embed_tokens.weight": f"{hf}shared.weight",
            **_stack_map(config, f"{mini}encoder.", f"{hf}encoder", config.encoder_layers, ("self_attn",)),
            **_stack_map(config, f"{mini}decoder.", f"{hf}decoder", config.decoder_layers, ("self_attn", "cross_attn"))}


def _stack_map(config, m: str, side: str, depth: int, attentions: tuple[str, ...]) -> dict:
    """{mini key: T5 key} for one stack, ours under ``m``, T5's under ``side``."""
    mapping = {}
    gated = is_gated(config.hidden_act)
    if config.relative_bias_per_layer:  # UMT5: every layer's self-attention keeps a table of its own
        for i in range(depth):
            mapping[f"{m}layer_biases.{i}.embed.weight"] = (
                f"{side}.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight")
    else:
        first_attention = f"{side}.block.0.layer.0.SelfAttention"  # where T5 keeps the stack's one bias table
        mapping[f"{m}relative_bias.embed.weight"] = f"{first_attention}.relative_attention_bias.weight"
    mapping[f"{m}norm.weight"] = f"{side}.final_layer_norm.weight"
    for i in range(depth):
        ml, hl = f"{m}layers.{i}.", f"{side}.block.{i}.layer."
        # T5's sub-layers are numbered: self-attention 0, cross-attention 1 (decoder), feed-forward last
        for index, attention in enumerate(attentions):
            theirs = "SelfAttention" if attention == "self_attn" else "EncDecAttention"
            mapping[f"{ml}{attention}_norm.weight"] = f"{hl}{index}.layer_norm.weight"
            for ours, t5 in (("q_proj", "q"), ("k_proj", "k"), ("v_proj", "v"), ("o_proj", "o")):
                mapping[f"{ml}{attention}.{ours}.weight"] = f"{hl}{index}.{theirs}.{t5}.weight"
        ff = f"{hl}{len(attentions)}."
        mapping[f"{ml}mlp_norm.weight"] = f"{ff}layer_norm.weight"
        projections = ((("gate_proj", "wi_0"), ("up_proj", "wi_1")) if gated else (("up_proj", "wi"),))
        for ours, t5 in (*projections, ("down_proj", "wo")):
            mapping[f"{ml}mlp.{ours}.weight"] = f"{ff}DenseReluDense.{t5}.weight"
    return mapping


def _from_hf(model, **overrides):
    with_head = hasattr(model, "lm_head")
    tied = not with_head or model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()
    if isinstance(model, _ENCODER_CLASSES):
        config = mini_encoder_config_from_t5(model.config, **overrides)
    else:
        config = mini_config_from_t5(model.config, tied_output=tied, **overrides)
    config._attn_implementation = "sdpa" if model.config._attn_implementation == "sdpa" else "eager"
    mini_cls = _CLASSES[type(model)]
    if mini_cls is MiniSeq2SeqForQuestionAnswering:
        check_span_head(model, type(model).__name__)
    mini_prefix = "" if mini_cls in (MiniSeq2SeqModel, MiniEncoderModel) else "model."
    mapping = {**_weight_map(config, mini_prefix, _HF_PREFIX.get(type(model), "")), **HEAD_WEIGHTS.get(mini_cls, {})}
    if mini_cls is MiniEncoderForTokenClassification:
        mapping |= _TAGGER
    if with_head and not tied:
        mapping["lm_head.weight"] = "lm_head.weight"
    mini = load_mapped(new_model(mini_cls, config, model.dtype), model.state_dict(), mapping)
    if with_head:
        mini.generation_config = copy.deepcopy(model.generation_config)
    return mini


def to_t5(model):
    """The T5 model equivalent to a MiniSeq2Seq with relative attention bias (or, as ``T5EncoderModel``, a
    MiniEncoderModel); ``convert.to_hf`` calls it (through ``convert_bart`` / ``convert_bert``, which export the other
    layouts). T5 trains its pad token's embedding row; a model with ``freeze_padding_row=True`` exports with the same
    weights and outputs and differs only there in further training."""
    config = model.config
    if config.model_type == "mini_encoder" and not isinstance(model, (MiniEncoderModel,
                                                                      MiniEncoderForTokenClassification)):
        raise ValueError(f"A T5 encoder exports from a bare MiniEncoderModel (as `T5EncoderModel`) or a "
                         f"MiniEncoderForTokenClassification (as `T5ForTokenClassification`); T5 has no "
                         f"{type(model).__name__.removeprefix('MiniEncoder')} head on its encoder alone.")
    if isinstance(model, MiniEncoderForTokenClassification) and model.transform is not None:
        raise ValueError("T5ForTokenClassification is one linear layer on each token's state: it needs "
                         "`head_transform=False`.")
    hf_config = t5_config_from_mini(config)
    with_head = isinstance(model, MiniSeq2SeqForConditionalGeneration)
    hf_config._attn_implementation = config._attn_implementation if config._attn_implementation == "sdpa" else "eager"
    # T5's (not mT5's: the same network), or UMT5's for a bias in every layer
    umt5 = config.relative_bias_per_layer
    hf_cls = next(hf for hf, mini in _CLASSES.items()
                  if mini is type(model) and hf.__name__.startswith("UMT5") == umt5)
    target = new_model(hf_cls, hf_config, model.dtype)
    source = separate_attention_projections(model)
    mini_prefix = "" if isinstance(model, (MiniSeq2SeqModel, MiniEncoderModel)) else "model."
    mapping = {**_weight_map(config, mini_prefix, _HF_PREFIX.get(hf_cls, "")), **HEAD_WEIGHTS.get(type(model), {})}
    if isinstance(model, MiniEncoderForTokenClassification):
        mapping |= _TAGGER
    mapping = {theirs: ours for ours, theirs in mapping.items()}
    own_head = with_head and not config.tie_word_embeddings  # an output matrix of its own (T5 v1.1, mT5)
    # copied after loading, not through the map: a T5 config that scales the decoder output also ties the head, and
    # load_mapped's re-tying would overwrite it
    load_mapped(target, source, mapping, skip=("lm_head.weight",) if own_head else ())
    if own_head:
        target.lm_head.weight = nn.Parameter(source["lm_head.weight"].detach().clone())
    if with_head:
        target.generation_config = copy.deepcopy(model.generation_config)
    return target.eval()


FROM_HF = {cls.__name__: _from_hf for cls in _CLASSES}
TO_HF = {}  # MiniSeq2Seq exports through convert_bart, which hands relative-bias models to to_t5
