"""DistilBERT <-> MiniEncoder: BERT's layer without segments, under other names (used through ``convert.py``).

DistilBERT (Sanh et al. 2019) is a 6-layer BERT trained to imitate a 12-layer one (knowledge distillation). Its layer
computes what BERT's does: post-norm LayerNorm (eps 1e-12), learned positions added to the token embeddings and
normalised, exact GELU. What differs, and where it lands in a MiniEncoder:

* no segment embeddings (``type_vocab_size=0``) and no pooler in the backbone;
* the sequence-classification and multiple-choice heads read the first token through ``pre_classifier`` and a
  *ReLU* (BERT's pooler: tanh): our pooler with ``pooler_activation="relu"``;
* the masked-LM head (``vocab_transform`` -> activation -> ``vocab_layer_norm`` -> ``vocab_projector``) is BERT's
  under other names; with ``sinusoidal_pos_embds=True`` the fixed table is copied as learned positions (the same
  values, so the same function).

Dropout sits in other places (no dropout on the attention output before its residual sum, dropout before the
question-answering scores): in eval mode the two compute the same function; a training step with dropout > 0 drops
different units. A MiniEncoder without segments and with BERT's layout exports as DistilBERT.
"""

from transformers import (
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForMultipleChoice,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertModel,
)

from .configuration_mini import MiniEncoderConfig
from .convert import activation_from_hf, load_mapped, new_model, separate_attention_projections
from .convert_bert import check_bert_layout, refuse_backbone_pooler
from .modeling_encoder import (
    MiniEncoderForMaskedLM,
    MiniEncoderForMultipleChoice,
    MiniEncoderForQuestionAnswering,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
)

#: DistilBERT's LayerNorms have a fixed epsilon (it is not in its config)
LAYER_NORM_EPS = 1e-12
_SHARED = ("vocab_size", "max_position_embeddings", "initializer_range", "pad_token_id", "bos_token_id",
           "eos_token_id", "tie_word_embeddings", "num_labels", "id2label", "label2id", "problem_type")
#: {mini config field: DistilBERT config field} for the fields named differently
_RENAMED = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
            "intermediate_size": "hidden_dim", "hidden_dropout": "dropout", "attention_dropout": "attention_dropout"}

_CLASSIFIER = {"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}
# the sentence-level heads: pre_classifier + ReLU over the first token = our pooler with pooler_activation="relu"
_POOLING_CLASSIFIER = {"model.pooler.dense.weight": "pre_classifier.weight",
                       "model.pooler.dense.bias": "pre_classifier.bias", **_CLASSIFIER}
_MLM_HEAD = {
    "transform.dense.weight": "vocab_transform.weight",
    "transform.dense.bias": "vocab_transform.bias",
    "transform.norm.weight": "vocab_layer_norm.weight",
    "transform.norm.bias": "vocab_layer_norm.bias",
    "lm_head.weight": "vocab_projector.weight",  # the tied embedding matrix, unless untied
    "lm_head.bias": "vocab_projector.bias",
}
_QA = {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"}

# hf class name -> (mini class, hf class, head keys {mini: hf}); the heads with a pooler are the sentence-level ones
_PAIRS = {
    "DistilBertModel": (MiniEncoderModel, DistilBertModel, {}),
    "DistilBertForMaskedLM": (MiniEncoderForMaskedLM, DistilBertForMaskedLM, _MLM_HEAD),
    "DistilBertForSequenceClassification": (MiniEncoderForSequenceClassification, DistilBertForSequenceClassification,
                                            _POOLING_CLASSIFIER),
    "DistilBertForTokenClassification": (MiniEncoderForTokenClassification, DistilBertForTokenClassification,
                                         _CLASSIFIER),
    "DistilBertForQuestionAnswering": (MiniEncoderForQuestionAnswering, DistilBertForQuestionAnswering, _QA),
    "DistilBertForMultipleChoice": (MiniEncoderForMultipleChoice, DistilBertForMultipleChoice, _POOLING_CLASSIFIER),
}
_SENTENCE_LEVEL = (MiniEncoderForSequenceClassification, MiniEncoderForMultipleChoice)


def mini_config_from_distilbert(hf: DistilBertConfig, sentence_level: bool = False, **overrides) -> MiniEncoderConfig:
    """The MiniEncoder config computing what ``hf`` computes. ``sentence_level``: for a sequence-classification or
    multiple-choice head (a ReLU pooler, and ``seq_classif_dropout`` before the classifier)."""
    activation = activation_from_hf(hf.activation, "DistilBERT", "activation")
    kwargs = {key: getattr(hf, key) for key in _SHARED if hasattr(hf, key)}
    kwargs.update({ours: getattr(hf, theirs) for ours, theirs in _RENAMED.items()})
    kwargs.update(
        hidden_act=activation,
        position_embedding_type="learned",
        norm_type="layernorm",
        norm_position="post",
        embedding_norm=True,
        final_norm=False,
        scale_embeddings=False,
        attention_bias=True,
        mlp_bias=True,
        layer_norm_eps=LAYER_NORM_EPS,
        type_vocab_size=0,
        add_pooler=sentence_level,
        pooler_activation="relu",
        classifier_dropout=float(hf.seq_classif_dropout) if sentence_level else None,
    )
    kwargs.update(overrides)
    return MiniEncoderConfig(**kwargs)


def distilbert_config_from_mini(config: MiniEncoderConfig, pooler: bool = False) -> DistilBertConfig:
    """The DistilBERT config for a MiniEncoder config; ``ValueError`` naming the first option DistilBERT cannot
    express. ``pooler``: whether the exported model has ``pre_classifier`` (then the pooler must apply ReLU)."""
    check_bert_layout(config, "DistilBERT", pooler_activation="relu" if pooler else None)
    if config.type_vocab_size != 0:
        raise ValueError(f"DistilBERT has no segment embeddings: it needs `type_vocab_size=0`; this model has "
                         f"{config.type_vocab_size}.")
    if config.pad_aware_positions or config.position_offset:
        raise ValueError("DistilBERT numbers positions 0, 1, ... over every token: it needs `pad_aware_positions="
                         "False` and `position_offset=0`.")
    if config.layer_norm_eps != LAYER_NORM_EPS:
        raise ValueError(f"DistilBERT's LayerNorms use eps {LAYER_NORM_EPS}: it needs `layer_norm_eps="
                         f"{LAYER_NORM_EPS}`; this model has {config.layer_norm_eps!r}.")
    kwargs = {key: getattr(config, key) for key in _SHARED}
    kwargs.update({theirs: getattr(config, ours) for ours, theirs in _RENAMED.items()})
    classifier_dropout = config.classifier_dropout
    return DistilBertConfig(
        activation=config.hidden_act,
        seq_classif_dropout=config.hidden_dropout if classifier_dropout is None else classifier_dropout,
        qa_dropout=0.0,  # our question-answering head has no dropout before its scores
        **kwargs,
    )


def _mapping(mini_cls, num_layers: int, head: dict) -> dict:
    """{mini key: hf key} for the embeddings, the blocks and the head."""
    mini, hf = ("", "") if mini_cls is MiniEncoderModel else ("model.", "distilbert.")
    mapping = {
        f"{mini}embeddings.embed_tokens.weight": f"{hf}embeddings.word_embeddings.weight",
        f"{mini}embeddings.embed_positions.weight": f"{hf}embeddings.position_embeddings.weight",
        f"{mini}embeddings.norm.weight": f"{hf}embeddings.LayerNorm.weight",
        f"{mini}embeddings.norm.bias": f"{hf}embeddings.LayerNorm.bias",
    }
    for i in range(num_layers):
        m, h = f"{mini}layers.{i}.", f"{hf}transformer.layer.{i}."
        for ours, theirs in (
            ("self_attn.q_proj", "attention.q_lin"),
            ("self_attn.k_proj", "attention.k_lin"),
            ("self_attn.v_proj", "attention.v_lin"),
            ("self_attn.o_proj", "attention.out_lin"),
            ("self_attn_norm", "sa_layer_norm"),
            ("mlp.up_proj", "ffn.lin1"),
            ("mlp.down_proj", "ffn.lin2"),
            ("mlp_norm", "output_layer_norm"),
        ):
            for p in ("weight", "bias"):
                mapping[f"{m}{ours}.{p}"] = f"{h}{theirs}.{p}"
    return {**mapping, **head}


def _from_hf(hf_model, **overrides):
    mini_cls, _, head = _PAIRS[type(hf_model).__name__]
    config = mini_config_from_distilbert(hf_model.config, sentence_level=mini_cls in _SENTENCE_LEVEL, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    mini = new_model(mini_cls, config, hf_model.dtype)
    return load_mapped(mini, hf_model.state_dict(), _mapping(mini_cls, config.num_hidden_layers, head))


def to_distilbert(mini_model):
    """The DistilBERT model equivalent to a MiniEncoder without segments; ``convert.to_hf`` calls it for such models.
    A bare ``MiniEncoderModel`` must have no pooler (DistilBERT's backbone has none, and its weights would be lost)."""
    name = next(k for k, v in _PAIRS.items() if v[0] is type(mini_model))
    mini_cls, hf_cls, head = _PAIRS[name]
    refuse_backbone_pooler(mini_model, "DistilBertModel")
    config = distilbert_config_from_mini(mini_model.config, pooler=mini_cls in _SENTENCE_LEVEL)
    config._attn_implementation = mini_model.config._attn_implementation
    state = separate_attention_projections(mini_model)
    hf_state = {hf_key: state[mini_key]
                for mini_key, hf_key in _mapping(mini_cls, config.n_layers, head).items()}
    return load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state})


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # the MiniEncoder classes export through convert_bert, which hands models without segments to to_distilbert
