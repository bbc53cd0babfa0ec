"""BART / Marian / mBART / Pegasus <-> MiniSeq2Seq: the config translation and the weight-name map (through
``convert.py``).

BART and Marian are post-norm encoder-decoders with biased projections, LayerNorm (eps 1e-5), no final norm and a
``final_logits_bias``; they differ only in the embeddings:

* **Marian** (the closest relative of the original Transformer): fixed sinusoidal positions in the
  *concatenated* layout (all sines, then all cosines: ``sinusoidal_layout="concatenated"``), token
  embeddings scaled by ``sqrt(d_model)``, the pad token as decoder start. Its position tables are stored
  as frozen weights; ours are computed, so they are dropped on import and rebuilt by Marian on export.
* **BART**: learned positions whose table starts at row 2 (BART's offset), kept whole as
  ``max_position_embeddings + 2`` rows with ``position_offset=2`` so export is exact; a LayerNorm on the
  summed embeddings (``embedding_norm=True``).

mBART is BART made pre-norm, and Pegasus is Marian made pre-norm: each sub-layer reads a normalised input
(``norm_position="pre"``) and each stack ends in a norm of its own (``final_norm``, their ``encoder.layer_norm`` /
``decoder.layer_norm``).

Token tables: with ``tie_word_embeddings=True`` all four families read one matrix in the encoder, the decoder and the
output layer (Marian's ``share_encoder_decoder_embeddings=False`` gives the encoder one of its own). With
``tie_word_embeddings=False`` transformers 5 ties nothing: the encoder, the decoder and the output layer each keep a
table (and BART's ``shared`` is a fourth that nothing reads), so the model converts with ``share_embeddings=False``,
``tie_word_embeddings=False`` and exports back so.

mBART's own ``shift_tokens_right``, used when only ``labels`` are given (and, in its classification and
question-answering heads, on ``input_ids``), moves each row's last real token (its language code or end token) to the
front instead of starting with ``decoder_start_token_id``: a converted mBART does the same (``start_with_last_token``),
for mBART-50's layout (``[lang] text </s>``) and mBART-cc25's (``text </s> [lang]``) alike. Only mBART exports such a
model, and mBART only such a model.

BART's and mBART's classification and question-answering heads (``BartForSequenceClassification``, the head of
BART-large-MNLI and the zero-shot pipeline, and ``BartForQuestionAnswering``) convert to
``MiniSeq2SeqForSequenceClassification`` / ``MiniSeq2SeqForQuestionAnswering`` and back; Marian and Pegasus have none.

Not expressed, raising ``ValueError``: different encoder and decoder widths / heads / feed-forward sizes,
layer drop, a Marian decoder vocabulary of its own. ``activation_dropout`` (dropout inside the feed-forward,
training only) carries over both ways.
"""

import copy

import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BartForQuestionAnswering,
    BartForSequenceClassification,
    BartModel,
    MarianConfig,
    MarianModel,
    MarianMTModel,
    MBartConfig,
    MBartForConditionalGeneration,
    MBartForQuestionAnswering,
    MBartForSequenceClassification,
    MBartModel,
    PegasusConfig,
    PegasusForConditionalGeneration,
    PegasusModel,
)

from .configuration_mini import MiniSeq2SeqConfig
from .convert import activation_from_hf, check_expressible, load_mapped, new_model, separate_attention_projections
from .modeling_seq2seq import (
    MiniSeq2SeqForConditionalGeneration,
    MiniSeq2SeqForQuestionAnswering,
    MiniSeq2SeqForSequenceClassification,
    MiniSeq2SeqModel,
)

BART_POSITION_OFFSET = 2
#: family -> (config class, base model class, generation model class, positions, norm position)
FAMILIES = {
    "Marian": (MarianConfig, MarianModel, MarianMTModel, "sinusoidal", "post"),
    "BART": (BartConfig, BartModel, BartForConditionalGeneration, "learned", "post"),
    "Pegasus": (PegasusConfig, PegasusModel, PegasusForConditionalGeneration, "sinusoidal", "pre"),
    "mBART": (MBartConfig, MBartModel, MBartForConditionalGeneration, "learned", "pre"),
}
#: family -> its (sequence-classification, question-answering) classes, where transformers has them
TASK_HEADS = {
    "BART": (BartForSequenceClassification, BartForQuestionAnswering),
    "mBART": (MBartForSequenceClassification, MBartForQuestionAnswering),
}
_TOKENS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")
LABELS = ("num_labels", "id2label", "label2id", "problem_type")
#: the understanding heads' own weights, {mini key: transformers key} (BART, mBART and T5 name them alike)
HEAD_WEIGHTS = {
    MiniSeq2SeqForSequenceClassification: {f"classification_head.{layer}.{p}": f"classification_head.{layer}.{p}"
                                           for layer in ("dense", "out_proj") for p in ("weight", "bias")},
    MiniSeq2SeqForQuestionAnswering: {f"qa_outputs.{p}": f"qa_outputs.{p}" for p in ("weight", "bias")},
}


def _check_symmetric(hf) -> None:
    for encoder_field, decoder_field in (("encoder_attention_heads", "decoder_attention_heads"),
                                         ("encoder_ffn_dim", "decoder_ffn_dim")):
        if getattr(hf, encoder_field) != getattr(hf, decoder_field):
            raise ValueError(
                f"MiniSeq2Seq needs `{encoder_field}` == `{decoder_field}`; got {getattr(hf, encoder_field)} and "
                f"{getattr(hf, decoder_field)}."
            )
    for field in ("encoder_layerdrop", "decoder_layerdrop"):
        if getattr(hf, field, 0.0):
            raise ValueError(f"MiniSeq2Seq has no layer drop; `{field}` must be 0.0, got {getattr(hf, field)}.")
    # `normalize_before`, `add_final_layer_norm` and `normalize_embedding` (fairseq's names, still found in converted
    # checkpoints' configs) are read by none of the four families in transformers: the family alone fixes where the
    # norms go (BART, Marian post-norm; mBART, Pegasus pre-norm with final norms), so they are ignored here too.


def _family_of_config(hf) -> str:
    return next(name for name, entry in FAMILIES.items() if type(hf) is entry[0])


def mini_config_from_hf(hf, **overrides) -> MiniSeq2SeqConfig:
    """The MiniSeq2Seq config computing what a BART, Marian, mBART or Pegasus config computes.

    Its token tables are transformers 5's for that config: one for encoder and decoder when ``tie_word_embeddings``
    (and, for Marian, ``share_encoder_decoder_embeddings``) is set, and an output layer of its own unless
    ``tie_word_embeddings`` is; ``from_hf`` passes what the model's tensors show instead (:func:`shared_tables`).
    """
    _check_symmetric(hf)
    tied = bool(getattr(hf, "tie_word_embeddings", True))
    _, _, _, positions, norm_position = FAMILIES[_family_of_config(hf)]
    kwargs = {key: getattr(hf, key, None) for key in (*_TOKENS, *LABELS)}
    kwargs.update(
        vocab_size=hf.vocab_size,
        hidden_size=hf.d_model,
        encoder_layers=hf.encoder_layers,
        decoder_layers=hf.decoder_layers,
        num_attention_heads=hf.encoder_attention_heads,
        intermediate_size=hf.encoder_ffn_dim,
        hidden_act=activation_from_hf(hf.activation_function, _family_of_config(hf), "activation_function"),
        norm_type="layernorm",
        norm_position=norm_position,
        layer_norm_eps=1e-5,
        final_norm=norm_position == "pre",  # mBART and Pegasus end each stack with a norm
        scale_embeddings=bool(hf.scale_embedding),
        attention_bias=True,
        mlp_bias=True,
        hidden_dropout=float(hf.dropout),
        attention_dropout=float(hf.attention_dropout),
        activation_dropout=float(hf.activation_dropout),
        classifier_dropout=getattr(hf, "classifier_dropout", None),
        initializer_range=hf.init_std,
        use_cache=hf.use_cache,
        share_embeddings=tied and bool(getattr(hf, "share_encoder_decoder_embeddings", True)),
        tie_word_embeddings=tied,
        final_logits_bias=True,
        start_with_last_token=_family_of_config(hf) == "mBART",  # its decoder inputs start with the row's last token
    )
    if positions == "sinusoidal":
        if getattr(hf, "decoder_vocab_size", hf.vocab_size) != hf.vocab_size:
            raise ValueError(
                f"MiniSeq2Seq has one vocabulary; Marian's `decoder_vocab_size` ({hf.decoder_vocab_size}) must equal "
                f"`vocab_size` ({hf.vocab_size})."
            )
        kwargs.update(
            position_embedding_type="sinusoidal",
            sinusoidal_layout="concatenated",
            max_position_embeddings=hf.max_position_embeddings,
            embedding_norm=False,
        )
    else:
        kwargs.update(
            position_embedding_type="learned",
            max_position_embeddings=hf.max_position_embeddings + BART_POSITION_OFFSET,
            position_offset=BART_POSITION_OFFSET,
            embedding_norm=True,
        )
    kwargs.update(overrides)
    return MiniSeq2SeqConfig(**kwargs)


_COMMON_REQUIRED = {
    "skip_first_attention_norm": False,
    "norm_type": "layernorm",
    "norm_bias": True,
    "layer_norm_eps": 1e-5,
    "attention_bias": True,
    "attention_output_bias": True,
    "mlp_bias": True,
    "scale_decoder_output": False,
}


def export_family(config: MiniSeq2SeqConfig) -> str:
    """Marian (sinusoidal positions, post-norm), Pegasus (sinusoidal, pre-norm), BART (learned, post-norm) or mBART
    (learned, pre-norm); ``ValueError`` for other positions."""
    for name, (_, _, _, positions, norm_position) in FAMILIES.items():
        if (config.position_embedding_type, config.norm_position) == (positions, norm_position):
            return name
    if config.position_embedding_type in ("sinusoidal", "learned"):
        raise ValueError(f"Export needs `norm_position` 'post' (-> Marian, BART) or 'pre' (-> Pegasus, mBART); got "
                         f"{config.norm_position!r}.")
    raise ValueError(
        "Export needs `position_embedding_type` 'sinusoidal' (-> Marian, Pegasus) or 'learned' (-> BART, mBART); "
        f"got {config.position_embedding_type!r}."
    )


def _check_decoder_start(config: MiniSeq2SeqConfig, family: str) -> None:
    """``ValueError`` unless ``config`` starts its decoder rows as ``family`` does: mBART with each row's last real
    token, the others with ``decoder_start_token_id`` (``start_with_last_token``); a model trained one way would
    train the other way once exported."""
    needed = family == "mBART"
    if config.start_with_last_token != needed:
        start = "each row's last real token" if needed else "`decoder_start_token_id`"
        older = (" (an mBART converted before this flag existed loads with it off: set "
                 "`config.start_with_last_token = True`)" if needed else "")
        raise ValueError(f"{family} starts each decoder row with {start}: it needs "
                         f"`start_with_last_token={needed}`; this model has {config.start_with_last_token!r}{older}.")


def hf_config_from_mini(config: MiniSeq2SeqConfig):
    """The config of :func:`export_family`'s family for a MiniSeq2Seq config."""
    family = export_family(config)
    required = {**_COMMON_REQUIRED, "final_norm": config.norm_position == "pre"}
    common = dict(
        vocab_size=config.vocab_size,
        d_model=config.hidden_size,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.num_attention_heads,
        decoder_attention_heads=config.num_attention_heads,
        encoder_ffn_dim=config.intermediate_size,
        decoder_ffn_dim=config.intermediate_size,
        activation_function=config.hidden_act,
        dropout=config.hidden_dropout,
        attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout,
        init_std=config.initializer_range,
        scale_embedding=config.scale_embeddings,
        use_cache=config.use_cache,
        tie_word_embeddings=config.tie_word_embeddings,
        **{key: getattr(config, key) for key in (*_TOKENS, *LABELS)},
    )
    sinusoidal = {"sinusoidal_layout": "concatenated", "position_offset": 0, "embedding_norm": False}
    if family == "Marian":
        check_expressible(config, family, {**required, **sinusoidal})
        _check_decoder_start(config, family)
        # untied, transformers 5 keeps three tables whatever the flag says; True keeps Marian's default (and `shared`)
        return MarianConfig(max_position_embeddings=config.max_position_embeddings,
                            share_encoder_decoder_embeddings=config.share_embeddings or not config.tie_word_embeddings,
                            **common)
    if config.tie_word_embeddings and not config.share_embeddings:
        raise ValueError(f"{family} ties its output layer to the one token table of its encoder and decoder: "
                         "`share_embeddings=False` needs `tie_word_embeddings=False` (three tables).")
    if family == "Pegasus":
        check_expressible(config, family, {**required, **sinusoidal})
        _check_decoder_start(config, family)
        return PegasusConfig(max_position_embeddings=config.max_position_embeddings, **common)
    check_expressible(config, family, {**required, "position_offset": BART_POSITION_OFFSET, "embedding_norm": True})
    _check_decoder_start(config, family)
    return FAMILIES[family][0](max_position_embeddings=config.max_position_embeddings - BART_POSITION_OFFSET,
                               classifier_dropout=config.hidden_dropout if config.classifier_dropout is None
                               else config.classifier_dropout, **common)


def _weight_map(config: MiniSeq2SeqConfig, mini: str, hf: str) -> dict:
    """{mini key: hf key} for the encoder and decoder stacks (without Marian's computed positions)."""
    mapping = {}
    sides = (("encoder", config.encoder_layers, ("self_attn",)),
             ("decoder", config.decoder_layers, ("self_attn", "cross_attn")))
    for side, depth, attentions in sides:
        m, h = f"{mini}{side}.", f"{hf}{side}."
        mapping[f"{m}embeddings.embed_tokens.weight"] = f"{h}embed_tokens.weight"
        if config.position_embedding_type == "learned":
            mapping[f"{m}embeddings.embed_positions.weight"] = f"{h}embed_positions.weight"
        if config.embedding_norm:
            for p in ("weight", "bias"):
                mapping[f"{m}embeddings.norm.{p}"] = f"{h}layernorm_embedding.{p}"
        if config.final_norm:  # mBART, Pegasus
            for p in ("weight", "bias"):
                mapping[f"{m}norm.{p}"] = f"{h}layer_norm.{p}"
        for i in range(depth):
            ml, hl = f"{m}layers.{i}.", f"{h}layers.{i}."
            pairs = [("mlp.up_proj", "fc1"), ("mlp.down_proj", "fc2"), ("mlp_norm", "final_layer_norm")]
            for attention in attentions:
                theirs = "self_attn" if attention == "self_attn" else "encoder_attn"
                pairs += [(f"{attention}.{p}_proj", f"{theirs}.{p}_proj") for p in "qkv"]
                pairs += [(f"{attention}.o_proj", f"{theirs}.out_proj"), (f"{attention}_norm", f"{theirs}_layer_norm")]
            for ours, theirs in pairs:
                for p in ("weight", "bias"):
                    mapping[f"{ml}{ours}.{p}"] = f"{hl}{theirs}.{p}"
    return mapping


def _with_head(config: MiniSeq2SeqConfig, mapping: dict) -> dict:
    mapping = {**mapping, "lm_head.weight": "lm_head.weight"}
    if config.final_logits_bias:
        mapping["final_logits_bias.bias"] = "final_logits_bias"
    return mapping


def _mini_class(model) -> type:
    """The MiniSeq2Seq class for a transformers BART / Marian / mBART / Pegasus model."""
    if isinstance(model, tuple(entry[2] for entry in FAMILIES.values())):
        return MiniSeq2SeqForConditionalGeneration
    for classifier, reader in TASK_HEADS.values():
        if isinstance(model, classifier):
            return MiniSeq2SeqForSequenceClassification
        if isinstance(model, reader):
            return MiniSeq2SeqForQuestionAnswering
    return MiniSeq2SeqModel


def shared_tables(model, prefix: str) -> dict:
    """``share_embeddings`` and ``tie_word_embeddings`` as ``model``'s tensors have them: whether its decoder reads
    the encoder's token table, and its output layer the decoder's (a model without one keeps its config's flag).
    The tensors decide, not the config: transformers 5 ties them only under ``tie_word_embeddings``, whatever
    Marian's ``share_encoder_decoder_embeddings`` says, and a table converted as shared would silently replace the
    other (the decoder then reads the encoder's)."""
    state = model.state_dict()
    decoder = state[f"{prefix}decoder.embed_tokens.weight"].data_ptr()
    tied = (state["lm_head.weight"].data_ptr() == decoder if "lm_head.weight" in state
            else bool(getattr(model.config, "tie_word_embeddings", True)))
    return {"share_embeddings": state[f"{prefix}encoder.embed_tokens.weight"].data_ptr() == decoder,
            "tie_word_embeddings": tied}


def check_span_head(model, family: str) -> None:
    """A question-answering head scores a start and an end: ``num_labels`` must be 2."""
    if model.config.num_labels != 2:
        raise ValueError(f"{family}'s question-answering head needs `num_labels=2` (start, end); got "
                         f"{model.config.num_labels}.")


def _from_hf(model, **overrides):
    mini_cls = _mini_class(model)
    prefix = "" if mini_cls is MiniSeq2SeqModel else "model."
    config = mini_config_from_hf(model.config, **{**shared_tables(model, prefix), **overrides})
    config._attn_implementation = model.config._attn_implementation  # the backend the source ran, as every converter
    with_head = mini_cls is MiniSeq2SeqForConditionalGeneration
    if mini_cls is MiniSeq2SeqForQuestionAnswering:
        check_span_head(model, type(model).__name__)
    mapping = {**_weight_map(config, prefix, prefix), **HEAD_WEIGHTS.get(mini_cls, {})}
    if with_head:
        mapping = _with_head(config, mapping)
    target = new_model(mini_cls, config, model.dtype)
    tied = set(target.all_tied_weights_keys)
    mapping = {ours: theirs for ours, theirs in mapping.items() if ours not in tied}
    transforms = {"final_logits_bias.bias": lambda b: b.reshape(-1).clone()}
    # not carried over: `shared`, which the stacks read only when it is their table (then an alias of one that is
    # read; untied, nothing reads it), and Marian's and Pegasus's sinusoid tables, which ours compute
    skip = (f"{prefix}shared.weight",)
    if config.position_embedding_type == "sinusoidal":
        skip += tuple(f"{prefix}{side}.embed_positions.weight" for side in ("encoder", "decoder"))
    load_mapped(target, model.state_dict(), mapping, transforms, skip=skip)
    if config.position_embedding_type == "sinusoidal":
        check_sinusoid_tables(model.state_dict(), target, prefix)
    if with_head:
        target.generation_config = copy.deepcopy(model.generation_config)
    return target


def check_sinusoid_tables(state: dict, target, prefix: str) -> None:
    """``ValueError`` unless Marian's and Pegasus's stored sinusoid tables (frozen weights that HF computes at
    initialisation) are the sinusoids ``target`` computes in their place: a table edited by hand or trained (the
    conversion would drop it silently, as a weight no entry reads)."""
    for side, stack in (("encoder", target.get_encoder()), ("decoder", target.get_decoder())):
        stored = state[f"{prefix}{side}.embed_positions.weight"]
        positions = torch.arange(stored.shape[0], device=stored.device).unsqueeze(0)  # (1, rows)
        computed = stack.embeddings.embed_positions.encode(positions, torch.float32)[0]  # (rows, D)
        gap = (stored.float() - computed).abs().max().item()
        if gap > 1e-2:  # rounding only, even a table once held in bfloat16 (up to 2^-8)
            raise ValueError(f"`{prefix}{side}.embed_positions.weight` is not the sinusoid table "
                             f"(max abs difference {gap:.3g}): the converted model computes its position vectors, "
                             f"so a changed table cannot be carried over.")


def _to_hf(model):
    config = model.config
    if config.position_embedding_type == "relative":  # T5's attention bias
        from .convert_t5 import to_t5

        return to_t5(model)
    hf_config = hf_config_from_mini(config)
    hf_config._attn_implementation = config._attn_implementation
    family = _family_of_config(hf_config)
    _, base_cls, generation_cls, positions, _ = FAMILIES[family]
    with_head = isinstance(model, MiniSeq2SeqForConditionalGeneration)
    head_weights = HEAD_WEIGHTS.get(type(model), {})
    if head_weights and family not in TASK_HEADS:
        raise ValueError(f"{family} has no {type(model).__name__.removeprefix('MiniSeq2Seq')} head in transformers; "
                         f"BART's layout has (learned positions with `position_offset=2`, `embedding_norm=True`): "
                         f"{', '.join(cls.__name__ for cls in TASK_HEADS['BART'])}.")
    if isinstance(model, MiniSeq2SeqForSequenceClassification):
        hf_cls = TASK_HEADS[family][0]
    elif isinstance(model, MiniSeq2SeqForQuestionAnswering):
        hf_cls = TASK_HEADS[family][1]
    else:
        hf_cls = generation_cls if with_head else base_cls
    prefix = "" if hf_cls is base_cls else "model."
    mapping = {theirs: ours for ours, theirs in {**_weight_map(config, prefix, prefix), **head_weights}.items()}
    if with_head:
        mapping["lm_head.weight"] = "lm_head.weight"
    target = new_model(hf_cls, hf_config, model.dtype)
    source = separate_attention_projections(model)
    hf_state = target.state_dict()
    if with_head and config.final_logits_bias:
        mapping["final_logits_bias"] = "final_logits_bias.bias"
    elif with_head:  # no bias here: HF's stays at its initial zeros
        source["hf:final_logits_bias"] = hf_state["final_logits_bias"]
        mapping["final_logits_bias"] = "hf:final_logits_bias"
    if f"{prefix}shared.weight" in hf_state:
        mapping[f"{prefix}shared.weight"] = f"{prefix}encoder.embeddings.embed_tokens.weight"
    if positions == "sinusoidal":  # Marian's and Pegasus's sinusoid tables are frozen weights they compute: keep theirs
        for side in ("encoder", "decoder"):
            key = f"{prefix}{side}.embed_positions.weight"
            source[f"hf:{key}"] = hf_state[key]
            mapping[key] = f"hf:{key}"
    tied = set(target.all_tied_weights_keys)
    mapping = {theirs: ours for theirs, ours in mapping.items() if theirs not in tied}
    transforms = {"final_logits_bias": lambda b: b.reshape(1, -1).clone()}
    load_mapped(target, source, mapping, transforms)
    if with_head:
        target.generation_config = copy.deepcopy(model.generation_config)
    return target


FROM_HF = {cls.__name__: _from_hf for entry in FAMILIES.values() for cls in entry[1:3]}
FROM_HF.update({cls.__name__: _from_hf for heads in TASK_HEADS.values() for cls in heads})
TO_HF = {cls.__name__: _to_hf for cls in (MiniSeq2SeqModel, MiniSeq2SeqForConditionalGeneration,
                                          MiniSeq2SeqForSequenceClassification, MiniSeq2SeqForQuestionAnswering)}

