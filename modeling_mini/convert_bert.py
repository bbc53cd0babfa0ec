"""BERT <-> MiniEncoder: the config translation and the weight-name map (used through ``convert.py``).

BERT is a MiniEncoder with learned positions, two segment types, post-norm LayerNorm (eps 1e-12), a
normalised embedding sum and no final norm. Its layer is split over several modules
(``attention.self.query``, ``attention.output.dense``, ``attention.output.LayerNorm``, ``intermediate.dense``,
``output.dense``, ``output.LayerNorm``); the map below names where each lands in a :class:`MiniBlock`.
All BERT weights are ``nn.Linear``, so nothing is transposed or split.
"""

from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

from .configuration_mini import MiniEncoderConfig
from .convert import activation_from_hf, check_expressible, load_mapped, new_model, separate_attention_projections
from .modeling_encoder import (
    MiniEncoderForMaskedLM,
    MiniEncoderForMultipleChoice,
    MiniEncoderForQuestionAnswering,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
)

_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
           "max_position_embeddings", "type_vocab_size", "initializer_range", "pad_token_id", "bos_token_id",
           "eos_token_id", "tie_word_embeddings", "classifier_dropout", "num_labels", "id2label", "label2id",
           "problem_type")


def mini_config_from_bert(hf: BertConfig, add_pooler: bool = True, family: str = "BERT",
                          **overrides) -> MiniEncoderConfig:
    """The MiniEncoder config computing what ``hf`` computes; ``ValueError`` for BERT options it lacks (``family``:
    the name the errors give, for the families sharing BERT's layer)."""
    # A `position_embedding_type` ('relative_key', 'relative_key_query'; older configs carry it) is not read by
    # transformers' BERT, RoBERTa, XLM-R, ELECTRA or ALBERT: they add learned absolute positions whatever it says, so
    # it is ignored here too (and the exported config, which leaves it out, computes the same).
    if getattr(hf, "is_decoder", False) or getattr(hf, "add_cross_attention", False):
        raise ValueError("BERT with `is_decoder=True` or `add_cross_attention=True` is a decoder; MiniEncoder converts "
                         "only the bidirectional encoder.")
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    kwargs.update(
        hidden_act=activation_from_hf(hf.hidden_act, family, "hidden_act"),
        position_embedding_type="learned",
        norm_type="layernorm",
        norm_position="post",
        embedding_norm=True,
        final_norm=False,
        scale_embeddings=False,
        attention_bias=True,
        mlp_bias=True,
        layer_norm_eps=float(hf.layer_norm_eps),
        hidden_dropout=float(hf.hidden_dropout_prob),
        attention_dropout=float(hf.attention_probs_dropout_prob),
        add_pooler=add_pooler,
    )
    kwargs.update(overrides)
    return MiniEncoderConfig(**kwargs)


def bert_config_from_mini(config: MiniEncoderConfig, pooler: bool = False) -> BertConfig:
    """The BERT config for a MiniEncoder config; ``ValueError`` naming the first option BERT cannot express.
    ``pooler``: whether the exported model has a pooler (then it must be BERT's dense + tanh)."""
    if config.pad_aware_positions or config.position_offset:
        raise ValueError("BERT numbers positions 0, 1, ... over every token: it needs `pad_aware_positions=False` and "
                         "`position_offset=0` (a model with RoBERTa's numbering exports to RoBERTa).")
    return BertConfig(**bert_layout_kwargs(config, pooler=pooler))


def check_bert_layout(config: MiniEncoderConfig, family: str = "BERT", pooler_activation: str | None = None,
                      allow: tuple[str, ...] = ()) -> None:
    """``ValueError`` unless ``config`` has BERT's layer layout (shared by RoBERTa, DistilBERT and ELECTRA): learned
    positions, post-norm LayerNorm with shifts, a normalised embedding sum, biases everywhere, one plain feed-forward,
    whole-input attention, BERT's head shapes. ``pooler_activation``: the pooler function the exported model applies,
    if it has a pooler."""
    required = {
        "position_embedding_type": "learned",
        "norm_type": "layernorm",
        "norm_bias": True,
        "norm_position": "post",
        "embedding_norm": True,
        "head_bias": True,
        "head_transform": False,
        "classifier_pooling": "cls",
        "final_norm": False,
        "scale_embeddings": False,
        "attention_bias": True,
        "attention_output_bias": True,
        "mlp_bias": True,
        "activation_dropout": 0.0,
    }
    if pooler_activation is not None:
        required["pooler_activation"] = pooler_activation
    check_expressible(config, family, required, allow=allow)


def bert_layout_kwargs(config: MiniEncoderConfig, pooler: bool = False, family: str = "BERT",
                       pooler_activation: str = "tanh", allow: tuple[str, ...] = ()) -> dict:
    """The config arguments of BERT's layout (shared by RoBERTa and ELECTRA), after checking ``config`` has that
    layout; ``pooler``: whether the exported model has a pooler (applying ``pooler_activation``)."""
    check_bert_layout(config, family, pooler_activation=pooler_activation if pooler else None, allow=allow)
    if config.type_vocab_size < 1:
        raise ValueError(f"{family} needs `type_vocab_size >= 1` (it always adds segment embeddings); this model "
                         "has 0.")
    kwargs = {key: getattr(config, key) for key in _SHARED}
    return dict(
        layer_norm_eps=config.layer_norm_eps,
        hidden_dropout_prob=config.hidden_dropout,
        attention_probs_dropout_prob=config.attention_dropout,
        **kwargs,
    )


def refuse_backbone_pooler(mini_model, hf_backbone: str) -> None:
    """``ValueError`` for a bare ``MiniEncoderModel`` with a pooler exported to a backbone class that has none
    (``hf_backbone``: DistilBERT's, ELECTRA's): its weights would be lost."""
    if isinstance(mini_model, MiniEncoderModel) and mini_model.pooler is not None:
        raise ValueError(f"{hf_backbone} has no pooler: export a MiniEncoderModel built with `add_pooling_layer=False` "
                         "(or `add_pooler=False`), or the sequence classifier that holds it.")


def _backbone_map(num_layers: int, mini: str, hf: str, pooler: bool, segments: bool = True) -> dict:
    """{mini key: hf key} for the embeddings, the blocks and (optionally) the pooler."""
    mapping = {
        f"{mini}embeddings.embed_tokens.weight": f"{hf}embeddings.word_embeddings.weight",
        f"{mini}embeddings.embed_positions.weight": f"{hf}embeddings.position_embeddings.weight",
        f"{mini}embeddings.norm.weight": f"{hf}embeddings.LayerNorm.weight",
        f"{mini}embeddings.norm.bias": f"{hf}embeddings.LayerNorm.bias",
    }
    if segments:
        mapping[f"{mini}embeddings.token_type_embeddings.weight"] = f"{hf}embeddings.token_type_embeddings.weight"
    if pooler:
        mapping[f"{mini}pooler.dense.weight"] = f"{hf}pooler.dense.weight"
        mapping[f"{mini}pooler.dense.bias"] = f"{hf}pooler.dense.bias"
    for i in range(num_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}encoder.layer.{i}."
        for ours, theirs in (
            ("self_attn.q_proj", "attention.self.query"),
            ("self_attn.k_proj", "attention.self.key"),
            ("self_attn.v_proj", "attention.self.value"),
            ("self_attn.o_proj", "attention.output.dense"),
            ("self_attn_norm", "attention.output.LayerNorm"),
            ("mlp.up_proj", "intermediate.dense"),
            ("mlp.down_proj", "output.dense"),
            ("mlp_norm", "output.LayerNorm"),
        ):
            for p in ("weight", "bias"):
                mapping[f"{m}{ours}.{p}"] = f"{h}{theirs}.{p}"
    return mapping


_MLM_HEAD = {
    "transform.dense.weight": "cls.predictions.transform.dense.weight",
    "transform.dense.bias": "cls.predictions.transform.dense.bias",
    "transform.norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "transform.norm.bias": "cls.predictions.transform.LayerNorm.bias",
    "lm_head.weight": "cls.predictions.decoder.weight",  # the tied embedding matrix, unless untied
    "lm_head.bias": "cls.predictions.decoder.bias",  # BERT ties it to cls.predictions.bias
}
#: read by no entry: the MLM head's second bias, tied to the one the decoder adds (then an alias of a read tensor);
#: untied (transformers 5 ties nothing under `tie_word_embeddings=False`), BERT never reads it
_UNREAD = ("cls.predictions.bias",)
_CLASSIFIER = {"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}

# hf class name -> (mini class, hf class, head keys {mini: hf}, whether the backbone has a pooler)
_PAIRS = {
    "BertModel": (MiniEncoderModel, BertModel, {}, None),
    "BertForMaskedLM": (MiniEncoderForMaskedLM, BertForMaskedLM, _MLM_HEAD, False),
    "BertForSequenceClassification": (MiniEncoderForSequenceClassification, BertForSequenceClassification,
                                      _CLASSIFIER, True),
    "BertForTokenClassification": (MiniEncoderForTokenClassification, BertForTokenClassification, _CLASSIFIER, False),
    "BertForQuestionAnswering": (MiniEncoderForQuestionAnswering, BertForQuestionAnswering,
                                 {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"},
                                 False),
    "BertForMultipleChoice": (MiniEncoderForMultipleChoice, BertForMultipleChoice, _CLASSIFIER, True),
}


def _prefixes(mini_cls) -> tuple[str, str]:
    return ("", "") if mini_cls is MiniEncoderModel else ("model.", "bert.")


def _from_hf(hf_model, **overrides):
    mini_cls, _, head, pooler = _PAIRS[type(hf_model).__name__]
    if pooler is None:  # BertModel may be built with or without its pooler
        pooler = hf_model.pooler is not None
    if isinstance(hf_model, BertForQuestionAnswering) and hf_model.config.num_labels != 2:
        raise ValueError(
            f"BertForQuestionAnswering needs `num_labels=2` (start, end); got {hf_model.config.num_labels}.")
    config = mini_config_from_bert(hf_model.config, add_pooler=pooler, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    mini_prefix, hf_prefix = _prefixes(mini_cls)
    mapping = _backbone_map(config.num_hidden_layers, mini_prefix, hf_prefix, pooler)
    mapping.update(head)
    mini = new_model(mini_cls, config, hf_model.dtype)
    return load_mapped(mini, hf_model.state_dict(), mapping, skip=_UNREAD)


def _to_hf(mini_model):
    if mini_model.config.position_embedding_type == "relative":  # T5's attention bias: its encoder alone
        from .convert_t5 import to_t5

        return to_t5(mini_model)
    if mini_model.config.position_embedding_type == "rotary":  # ModernBERT's layout
        from .convert_modernbert import to_modernbert

        return to_modernbert(mini_model)
    config = mini_model.config
    if config.num_hidden_groups is not None:  # layers sharing blocks: ALBERT's
        from .convert_albert import to_albert

        return to_albert(mini_model)
    if config.embedding_size not in (None, config.hidden_size) or config.pooler_activation == "gelu":
        from .convert_electra import to_electra  # a factorised embedding or a GELU pooler: ELECTRA's

        return to_electra(mini_model)
    if mini_model.config.pad_aware_positions:  # RoBERTa's position numbering: the model exports as RoBERTa
        from .convert_roberta import to_roberta

        return to_roberta(mini_model)
    if mini_model.config.type_vocab_size == 0:  # no segments: DistilBERT's layout
        from .convert_distilbert import to_distilbert

        return to_distilbert(mini_model)
    name = next(k for k, v in _PAIRS.items() if v[0] is type(mini_model))
    _, hf_cls, head, pooler = _PAIRS[name]
    if pooler is None:
        pooler = mini_model.pooler is not None
    config = bert_config_from_mini(mini_model.config, pooler=mini_model.base_model.pooler is not None)
    config._attn_implementation = mini_model.config._attn_implementation
    mini_prefix, hf_prefix = _prefixes(type(mini_model))
    mapping = {**_backbone_map(config.num_hidden_layers, mini_prefix, hf_prefix, pooler), **head}
    state = separate_attention_projections(mini_model)
    hf_state = {hf_key: state[mini_key] for mini_key, hf_key in mapping.items()}
    if "lm_head.bias" in head:
        hf_state["cls.predictions.bias"] = state["lm_head.bias"]
    pooling = {"add_pooling_layer": pooler} if hf_cls is BertModel else {}
    return load_mapped(new_model(hf_cls, config, mini_model.dtype, **pooling), hf_state, {k: k for k in hf_state})


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {pair[0].__name__: _to_hf for pair in _PAIRS.values()}
