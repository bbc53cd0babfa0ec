"""ELECTRA <-> MiniEncoder: BERT's layer behind a factorised embedding (used through ``convert.py``).

ELECTRA (Clark et al. 2020) pretrains a BERT-shaped *discriminator* to spot the tokens a small masked-LM *generator*
replaced. Its network is BERT's under the prefix ``electra.``, with two differences:

* the embeddings are ``embedding_size`` wide (128 for ELECTRA-small's 256-wide layers) and ``embeddings_project``
  maps their sum up to ``hidden_size``: our ``embedding_size`` and ``embeddings.project``; the generator's masked-LM
  head (``generator_predictions``: dense -> GELU -> LayerNorm, ``embedding_size`` wide, then the tied
  ``generator_lm_head``) is our transform and output layer;
* the sequence-level heads read the first token through a dense layer and a GELU (``classifier.dense`` and, for
  multiple choice, ``sequence_summary``): our pooler with ``pooler_activation="gelu"``. ELECTRA also applies dropout
  before that dense layer; in eval mode the two compute the same function.

The discriminator's own head (``ElectraForPreTraining``, one score per token) has no mini equivalent: convert
``ElectraModel`` (the backbone every fine-tuning head starts from). A MiniEncoder with a factorised embedding or a
GELU pooler exports as ELECTRA.
"""

from transformers import (
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForMultipleChoice,
    ElectraForQuestionAnswering,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
    ElectraModel,
)

from .configuration_mini import MiniEncoderConfig
from .convert import activation_from_hf, load_mapped, new_model, separate_attention_projections
from .convert_bert import _backbone_map, bert_layout_kwargs, mini_config_from_bert, refuse_backbone_pooler
from .modeling_encoder import (
    MiniEncoderForMaskedLM,
    MiniEncoderForMultipleChoice,
    MiniEncoderForQuestionAnswering,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
)

_CLASSIFIER = {"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}
# hf class name -> (mini class, hf class, head keys {mini: hf}); the sentence-level heads hold our pooler
_PAIRS = {
    "ElectraModel": (MiniEncoderModel, ElectraModel, {}),
    "ElectraForMaskedLM": (MiniEncoderForMaskedLM, ElectraForMaskedLM, {
        "transform.dense.weight": "generator_predictions.dense.weight",
        "transform.dense.bias": "generator_predictions.dense.bias",
        "transform.norm.weight": "generator_predictions.LayerNorm.weight",
        "transform.norm.bias": "generator_predictions.LayerNorm.bias",
        "lm_head.weight": "generator_lm_head.weight",  # the tied embedding matrix, unless untied
        "lm_head.bias": "generator_lm_head.bias",
    }),
    "ElectraForSequenceClassification": (MiniEncoderForSequenceClassification, ElectraForSequenceClassification, {
        "model.pooler.dense.weight": "classifier.dense.weight", "model.pooler.dense.bias": "classifier.dense.bias",
        "classifier.weight": "classifier.out_proj.weight", "classifier.bias": "classifier.out_proj.bias",
    }),
    "ElectraForTokenClassification": (MiniEncoderForTokenClassification, ElectraForTokenClassification, _CLASSIFIER),
    "ElectraForQuestionAnswering": (MiniEncoderForQuestionAnswering, ElectraForQuestionAnswering,
                                    {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"}),
    "ElectraForMultipleChoice": (MiniEncoderForMultipleChoice, ElectraForMultipleChoice, {
        "model.pooler.dense.weight": "sequence_summary.summary.weight",
        "model.pooler.dense.bias": "sequence_summary.summary.bias", **_CLASSIFIER,
    }),
}
_SENTENCE_LEVEL = (MiniEncoderForSequenceClassification, MiniEncoderForMultipleChoice)
#: the summary ELECTRA's multiple-choice head must compute to be our pooler: dense + GELU over the first token
_SUMMARY = {"summary_type": "first", "summary_use_proj": True, "summary_activation": "gelu"}


def mini_config_from_electra(hf: ElectraConfig, mini_cls=MiniEncoderModel, **overrides) -> MiniEncoderConfig:
    """The MiniEncoder config computing what ``hf`` computes for the head ``mini_cls``; ``ValueError`` for options
    it lacks."""
    # `hidden_act` is the layers' feed-forward function (ours too). ELECTRA's generator head (ElectraForMaskedLM)
    # applies GELU whatever it says, where ours applies `hidden_act`: only that head needs 'gelu'. The sentence-level
    # heads' GELU is our pooler's `pooler_activation`, whatever `hidden_act` is.
    if mini_cls is MiniEncoderForMaskedLM and activation_from_hf(hf.hidden_act, "ELECTRA", "hidden_act") != "gelu":
        raise ValueError(f"ElectraForMaskedLM's head applies GELU whatever `hidden_act` says, ours applies "
                         f"`hidden_act`: it needs `hidden_act='gelu'`; got {hf.hidden_act!r}.")
    if mini_cls is MiniEncoderForMultipleChoice:
        for field, value in {**_SUMMARY, "summary_proj_to_labels": False}.items():
            if getattr(hf, field, False) != value:
                raise ValueError(f"ElectraForMultipleChoice needs `{field}={value!r}` (a dense + GELU over the "
                                 f"first token, our pooler); got {getattr(hf, field, False)!r}.")
    sentence_level = mini_cls in _SENTENCE_LEVEL
    summary_dropout = getattr(hf, "summary_last_dropout", None) if mini_cls is MiniEncoderForMultipleChoice else None
    options = dict(embedding_size=None if hf.embedding_size == hf.hidden_size else hf.embedding_size,
                   pooler_activation="gelu")
    if summary_dropout is not None:
        options["classifier_dropout"] = float(summary_dropout)
    return mini_config_from_bert(hf, add_pooler=sentence_level, family="ELECTRA", **{**options, **overrides})


def electra_config_from_mini(config: MiniEncoderConfig, pooler: bool = False,
                             masked_lm: bool = False) -> ElectraConfig:
    """The ELECTRA config for a MiniEncoder config; ``ValueError`` naming the first option ELECTRA cannot express.
    ``pooler``: whether the exported model has a sentence-level head (then the pooler must apply GELU);
    ``masked_lm``: whether it is the masked-LM model (whose head applies GELU, so ``hidden_act`` must be 'gelu')."""
    if config.pad_aware_positions or config.position_offset:
        raise ValueError("ELECTRA numbers positions 0, 1, ... over every token: it needs `pad_aware_positions=False` "
                         "and `position_offset=0`.")
    if masked_lm and config.hidden_act != "gelu":
        raise ValueError(f"ELECTRA's masked-LM head applies GELU (ours applies `hidden_act`): `hidden_act` must be "
                         f"'gelu'; got {config.hidden_act!r}.")
    kwargs = bert_layout_kwargs(config, pooler=pooler, family="ELECTRA", pooler_activation="gelu",
                                allow=("embedding_size",))
    if pooler and config.classifier_dropout is not None:
        kwargs["summary_last_dropout"] = config.classifier_dropout
    return ElectraConfig(embedding_size=config.embedding_size or config.hidden_size, **_SUMMARY, **kwargs)


def _mapping(mini_cls, config, head: dict) -> dict:
    mini, hf = ("", "") if mini_cls is MiniEncoderModel else ("model.", "electra.")
    mapping = {**_backbone_map(config.num_hidden_layers, mini, hf, pooler=False), **head}
    if config.embedding_size not in (None, config.hidden_size):
        for p in ("weight", "bias"):
            mapping[f"{mini}embeddings.project.{p}"] = f"{hf}embeddings_project.{p}"
    return mapping


def _from_hf(hf_model, **overrides):
    mini_cls, _, head = _PAIRS[type(hf_model).__name__]
    if isinstance(hf_model, ElectraForQuestionAnswering) and hf_model.config.num_labels != 2:
        raise ValueError(f"ElectraForQuestionAnswering needs `num_labels=2` (start, end); "
                         f"got {hf_model.config.num_labels}.")
    config = mini_config_from_electra(hf_model.config, mini_cls, **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    mini = new_model(mini_cls, config, hf_model.dtype)
    return load_mapped(mini, hf_model.state_dict(), _mapping(mini_cls, config, head))


def to_electra(mini_model):
    """The ELECTRA model equivalent to a MiniEncoder with a factorised embedding or a GELU pooler; ``convert.to_hf``
    calls it for such models. A bare ``MiniEncoderModel`` must have no pooler (ELECTRA's backbone has none)."""
    name = next(k for k, v in _PAIRS.items() if v[0] is type(mini_model))
    mini_cls, hf_cls, head = _PAIRS[name]
    refuse_backbone_pooler(mini_model, "ElectraModel")
    config = electra_config_from_mini(mini_model.config, pooler=mini_cls in _SENTENCE_LEVEL,
                                      masked_lm=mini_cls is MiniEncoderForMaskedLM)
    config._attn_implementation = mini_model.config._attn_implementation
    state = separate_attention_projections(mini_model)
    hf_state = {hf_key: state[mini_key] for mini_key, hf_key in _mapping(mini_cls, mini_model.config, head).items()}
    return load_mapped(new_model(hf_cls, config, mini_model.dtype), hf_state, {k: k for k in hf_state})


FROM_HF = {name: _from_hf for name in _PAIRS}
TO_HF = {}  # the MiniEncoder classes export through convert_bert, which hands ELECTRA-shaped models to to_electra
