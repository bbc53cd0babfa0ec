"""ALBERT <-> MiniEncoder: BERT's layer behind a factorised embedding, one block shared by every layer (used through
``convert.py``).

ALBERT (Lan et al. 2019) shrinks BERT two ways, both of which the MiniEncoder has as options:

* a *factorised embedding*: the token, position and segment tables are ``embedding_size`` wide (128 for
  albert-base's 768-wide layers) and ``encoder.embedding_hidden_mapping_in`` maps their normalised sum up to
  ``hidden_size``: our ``embedding_size`` and ``embeddings.project``, as ELECTRA's. The masked-LM head
  (``predictions``: dense -> ``hidden_act`` -> LayerNorm, ``embedding_size`` wide, then the tied decoder) is our
  transform and output layer;
* *cross-layer parameter sharing*: ``num_hidden_groups`` blocks (1 in every released ALBERT) run in turn for the
  ``num_hidden_layers`` layers: our ``num_hidden_groups``.

Its block is BERT's post-norm layer under other names (``attention.query`` ... ``attention.LayerNorm``, ``ffn``,
``ffn_output``, ``full_layer_layer_norm``), its pooler BERT's dense + tanh over the first token. Not expressed, raising
``ValueError``: ``inner_group_num > 1`` (several different blocks inside a group), an embedding as wide as the layers
(ALBERT still maps it, ours then has no map), and the sentence-order head of ``AlbertForPreTraining`` (convert
``AlbertModel`` or ``AlbertForMaskedLM``).

Training differs at one dropout site: our block drops out the feed-forward output before the residual sum, as
Google's original ALBERT does, while transformers' ``AlbertLayer`` defines that dropout but never applies it. With
``hidden_dropout_prob > 0`` (0.1 in the v1 checkpoints, 0.0 in v2) a seeded training step therefore differs from
transformers'; outputs in eval mode are the same.
"""

from transformers import (
    AlbertConfig,
    AlbertForMaskedLM,
    AlbertForMultipleChoice,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertModel,
)

from .configuration_mini import MiniEncoderConfig
from .convert import load_mapped, new_model, separate_attention_projections
from .convert_bert import bert_layout_kwargs, mini_config_from_bert
from .modeling_encoder import (
    MiniEncoderForMaskedLM,
    MiniEncoderForMultipleChoice,
    MiniEncoderForQuestionAnswering,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
)

_CLASSIFIER = {"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}
# hf class name -> (mini class, hf class, head keys {mini: hf}, whether the backbone has a pooler)
_PAIRS = {
    "AlbertModel": (MiniEncoderModel, AlbertModel, {}, None),
    "AlbertForMaskedLM": (MiniEncoderForMaskedLM, AlbertForMaskedLM, {
        "transform.dense.weight": "predictions.dense.weight",
        "transform.dense.bias": "predictions.dense.bias",
        "transform.norm.weight": "predictions.LayerNorm.weight",
        "transform.norm.bias": "predictions.LayerNorm.bias",
        "lm_head.weight": "predictions.decoder.weight",  # the tied embedding matrix, unless untied
        # the bias the decoder adds; ALBERT ties it to predictions.bias, which nothing reads when untied
        # (transformers 5 ties nothing under `tie_word_embeddings=False`)
        "lm_head.bias": "predictions.decoder.bias",
    }, False),
    "AlbertForSequenceClassification": (MiniEncoderForSequenceClassification, AlbertForSequenceClassification,
                                        _CLASSIFIER, True),
    "AlbertForTokenClassification": (MiniEncoderForTokenClassification, AlbertForTokenClassification, _CLASSIFIER,
                                     False),
    "AlbertForQuestionAnswering": (MiniEncoderForQuestionAnswering, AlbertForQuestionAnswering,
                                   {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"},
                                   False),
    "AlbertForMultipleChoice": (MiniEncoderForMultipleChoice, AlbertForMultipleChoice, _CLASSIFIER, True),
}
#: our block's parts -> ALBERT's, inside ``encoder.albert_layer_groups.<g>.albert_layers.0``
_BLOCK = (
    ("self_attn.q_proj", "attention.query"),
    ("self_attn.k_proj", "attention.key"),
    ("self_attn.v_proj", "attention.value"),
    ("self_attn.o_proj", "attention.dense"),
    ("self_attn_norm", "attention.LayerNorm"),
    ("mlp.up_proj", "ffn"),
    ("mlp.down_proj", "ffn_output"),
    ("mlp_norm", "full_layer_layer_norm"),
)


def mini_config_from_albert(hf: AlbertConfig, add_pooler: bool = True, **overrides) -> MiniEncoderConfig:
    """The MiniEncoder config computing what ``hf`` computes; ``ValueError`` for ALBERT options it lacks."""
    if hf.inner_group_num != 1:
        raise ValueError(f"ALBERT's `inner_group_num={hf.inner_group_num}` (several different blocks inside each "
                         "shared group) has no mini equivalent: it needs `inner_group_num=1`.")
    if hf.embedding_size == hf.hidden_size:
        raise ValueError(f"ALBERT with `embedding_size == hidden_size` ({hf.hidden_size}) still maps its embeddings "
                         "through a linear layer, which a MiniEncoder only has for a narrower embedding: it needs "
                         "`embedding_size != hidden_size`.")
    options = dict(embedding_size=hf.embedding_size, num_hidden_groups=hf.num_hidden_groups,
                   classifier_dropout=hf.classifier_dropout_prob)
    return mini_config_from_bert(hf, add_pooler=add_pooler, family="ALBERT", **{**options, **overrides})


def albert_config_from_mini(config: MiniEncoderConfig, pooler: bool = False) -> AlbertConfig:
    """The ALBERT config for a MiniEncoder config; ``ValueError`` naming the first option ALBERT cannot express."""
    if config.pad_aware_positions or config.position_offset:
        raise ValueError("ALBERT numbers positions 0, 1, ... over every token: it needs `pad_aware_positions=False` "
                         "and `position_offset=0`.")
    if config.embedding_size in (None, config.hidden_size):
        raise ValueError("ALBERT maps a narrower embedding up to the layers: it needs `embedding_size` below (or "
                         f"other than) `hidden_size`; got {config.embedding_size!r}.")
    kwargs = bert_layout_kwargs(config, pooler=pooler, family="ALBERT", allow=("embedding_size", "num_hidden_groups"))
    kwargs["classifier_dropout_prob"] = kwargs.pop("classifier_dropout")
    if kwargs["classifier_dropout_prob"] is None:
        kwargs["classifier_dropout_prob"] = config.hidden_dropout
    return AlbertConfig(embedding_size=config.embedding_size, num_hidden_groups=config.num_hidden_groups or
                        config.num_hidden_layers, inner_group_num=1, **kwargs)


def _mapping(mini_cls, config, head: dict, pooler: bool) -> dict:
    """{mini key: ALBERT key}: embeddings and their map, one entry per shared block, the pooler, the head."""
    mini, hf = ("", "") if mini_cls is MiniEncoderModel else ("model.", "albert.")
    mapping = {
        f"{mini}embeddings.embed_tokens.weight": f"{hf}embeddings.word_embeddings.weight",
        f"{mini}embeddings.embed_positions.weight": f"{hf}embeddings.position_embeddings.weight",
        f"{mini}embeddings.token_type_embeddings.weight": f"{hf}embeddings.token_type_embeddings.weight",
    }
    for p in ("weight", "bias"):
        mapping[f"{mini}embeddings.norm.{p}"] = f"{hf}embeddings.LayerNorm.{p}"
        mapping[f"{mini}embeddings.project.{p}"] = f"{hf}encoder.embedding_hidden_mapping_in.{p}"
        if pooler:
            mapping[f"{mini}pooler.dense.{p}"] = f"{hf}pooler.{p}"
        for group in range(config.num_hidden_groups or config.num_hidden_layers):
            for ours, theirs in _BLOCK:
                mapping[f"{mini}layers.{group}.{ours}.{p}"] = (
                    f"{hf}encoder.albert_layer_groups.{group}.albert_layers.0.{theirs}.{p}")
    return {**mapping, **head}


def _from_hf(hf_model, **overrides):
    mini_cls, _, head, pooler = _PAIRS[type(hf_model).__name__]
    if pooler is None:  # AlbertModel may be built with or without its pooler
        pooler = hf_model.pooler is not None
    if isinstance(hf_model, AlbertForQuestionAnswering) and hf_model.config.num_labels != 2:
        raise ValueError(f"AlbertForQuestionAnswering needs `num_labels=2` (start, end); "
                         f"got {hf_model.config.num_labels}.")
    config = mini_config_from_albert(hf_model.config, add_pooler=pooler, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    mini = new_model(mini_cls, config, hf_model.dtype)
    return load_mapped(mini, hf_model.state_dict(), _mapping(mini_cls, config, head, pooler),
                       skip=("predictions.bias",))  # the MLM head's unread (or tied) second bias


def to_albert(mini_model):
    """The ALBERT model equivalent to a MiniEncoder whose layers share blocks (``num_hidden_groups``);
    ``convert.to_hf`` calls it for such models."""
    name = next(k for k, v in _PAIRS.items() if v[0] is type(mini_model))
    mini_cls, hf_cls, head, pooler = _PAIRS[name]
    if pooler is None:
        pooler = mini_model.pooler is not None
    config = albert_config_from_mini(mini_model.config, pooler=pooler)
    config._attn_implementation = mini_model.config._attn_implementation
    state = separate_attention_projections(mini_model)
    hf_state = {hf_key: state[mini_key] for mini_key, hf_key in _mapping(mini_cls, mini_model.config, head,
                                                                          pooler).items()}
    if "lm_head.bias" in head:  # both biases, as when tied
        hf_state["predictions.bias"] = state["lm_head.bias"]
    pooling = {"add_pooling_layer": pooler} if hf_cls is AlbertModel else {}
    return load_mapped(new_model(hf_cls, config, mini_model.dtype, **pooling), hf_state, {k: k for k in hf_state})


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # the MiniEncoder classes export through convert_bert, which hands shared-block models to to_albert
