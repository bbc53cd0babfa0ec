"""RoBERTa and XLM-RoBERTa <-> MiniEncoder: BERT's weights, RoBERTa's positions and heads (through ``convert.py``).

RoBERTa (Liu et al. 2019) is BERT's architecture pretrained differently, and its backbone has BERT's module and weight
names under ``roberta.``, so the backbone map is :mod:`convert_bert`'s. What differs:

* Positions count only real tokens and start after a padding row: ``position_offset = pad_token_id + 1`` and
  ``pad_aware_positions=True`` (see ``positional.positions_of_real_tokens``); the table is kept whole.
* The masked-LM head is ``lm_head.dense -> gelu -> lm_head.layer_norm -> decoder (+ bias)``: our transform and
  output layer, under other names.
* The sequence-classification head is BERT's pooler moved into the head: ``classifier.dense`` + tanh over ``<s>``,
  then ``classifier.out_proj``. It maps onto our pooler + classifier; RoBERTa also applies dropout *before* the dense
  layer, so in training (dropout > 0) the two drop different units; in eval they compute the same function.

XLM-RoBERTa's classes are RoBERTa's under other names and convert the same way.
"""

from transformers import (
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaForMultipleChoice,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaModel,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaForMultipleChoice,
    XLMRobertaForQuestionAnswering,
    XLMRobertaForSequenceClassification,
    XLMRobertaForTokenClassification,
    XLMRobertaModel,
)

from .configuration_mini import MiniEncoderConfig
from .convert import activation_from_hf, load_mapped, new_model, separate_attention_projections
from .convert_bert import _backbone_map as bert_backbone_map
from .convert_bert import bert_layout_kwargs, mini_config_from_bert
from .modeling_encoder import (
    MiniEncoderForMaskedLM,
    MiniEncoderForMultipleChoice,
    MiniEncoderForQuestionAnswering,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
)


def mini_config_from_roberta(hf: RobertaConfig, add_pooler: bool = True, masked_lm: bool = False,
                             **overrides) -> MiniEncoderConfig:
    """BERT's translation plus RoBERTa's position numbering; ``ValueError`` for options it lacks. ``masked_lm``: the
    config is for the masked-LM model (whose head applies GELU, so ``hidden_act`` must be GELU)."""
    if hf.pad_token_id is None:
        raise ValueError("RoBERTa needs `pad_token_id`: its positions start after the padding row.")
    # `hidden_act` is the layers' feed-forward function (ours too); the masked-LM head applies exact gelu whatever
    # it says, where ours applies `hidden_act`: only that head needs GELU (the classification head's tanh is our
    # pooler's)
    if masked_lm and activation_from_hf(hf.hidden_act, "RoBERTa", "hidden_act") != "gelu":
        raise ValueError(f"RoBERTa's masked-LM head applies gelu whatever `hidden_act` says, ours applies "
                         f"`hidden_act`: it needs `hidden_act='gelu'` (or 'gelu_python'); got {hf.hidden_act!r}.")
    overrides = {"position_offset": hf.pad_token_id + 1, "pad_aware_positions": True, **overrides}
    return mini_config_from_bert(hf, add_pooler=add_pooler, family="RoBERTa", **overrides)


def roberta_config_from_mini(config: MiniEncoderConfig, config_class=RobertaConfig,
                             pooler: bool = False, masked_lm: bool = False) -> RobertaConfig:
    """The RoBERTa config for a MiniEncoder config; ``ValueError`` naming the first option RoBERTa cannot express.
    ``pooler``: whether the exported model has a pooler or a classification head's dense + tanh; ``masked_lm``:
    whether it is the masked-LM model (whose head applies gelu)."""
    if not config.pad_aware_positions or config.pad_token_id is None:
        raise ValueError("RoBERTa needs `pad_aware_positions=True` (positions count only real tokens).")
    if config.position_offset != config.pad_token_id + 1:
        raise ValueError(f"RoBERTa needs `position_offset = pad_token_id + 1` = {config.pad_token_id + 1}; this "
                         f"model has {config.position_offset}.")
    if masked_lm and config.hidden_act != "gelu":
        raise ValueError(f"RoBERTa's masked-LM head applies gelu: `hidden_act` must be 'gelu'; "
                         f"got {config.hidden_act!r}.")
    return config_class(**bert_layout_kwargs(config, pooler=pooler))


_MLM_HEAD = {
    "transform.dense.weight": "lm_head.dense.weight",
    "transform.dense.bias": "lm_head.dense.bias",
    "transform.norm.weight": "lm_head.layer_norm.weight",
    "transform.norm.bias": "lm_head.layer_norm.bias",
    "lm_head.weight": "lm_head.decoder.weight",  # the tied embedding matrix, unless untied
    # the bias the decoder adds; RoBERTa ties it to lm_head.bias, which nothing reads when untied
    # (transformers 5 ties nothing under `tie_word_embeddings=False`)
    "lm_head.bias": "lm_head.decoder.bias",
}
_CLASSIFIER = {"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}
# RoBERTa's classification head = BERT's pooler (dense + tanh over the first token) + the output layer
_POOLING_CLASSIFIER = {
    "model.pooler.dense.weight": "classifier.dense.weight",
    "model.pooler.dense.bias": "classifier.dense.bias",
    "classifier.weight": "classifier.out_proj.weight",
    "classifier.bias": "classifier.out_proj.bias",
}
_QA = {"qa_outputs.weight": "qa_outputs.weight", "qa_outputs.bias": "qa_outputs.bias"}

# (mini class, head keys {mini: hf}, whether the HF backbone has a pooler (None: read it from the model))
_HEADS = {
    "Model": (MiniEncoderModel, {}, None),
    "ForMaskedLM": (MiniEncoderForMaskedLM, _MLM_HEAD, False),
    "ForSequenceClassification": (MiniEncoderForSequenceClassification, _POOLING_CLASSIFIER, False),
    "ForTokenClassification": (MiniEncoderForTokenClassification, _CLASSIFIER, False),
    "ForQuestionAnswering": (MiniEncoderForQuestionAnswering, _QA, False),
    "ForMultipleChoice": (MiniEncoderForMultipleChoice, _CLASSIFIER, True),
}
_HF_CLASSES = {
    "Roberta": (RobertaConfig, {"Model": RobertaModel, "ForMaskedLM": RobertaForMaskedLM,
                                "ForSequenceClassification": RobertaForSequenceClassification,
                                "ForTokenClassification": RobertaForTokenClassification,
                                "ForQuestionAnswering": RobertaForQuestionAnswering,
                                "ForMultipleChoice": RobertaForMultipleChoice}),
    "XLMRoberta": (XLMRobertaConfig, {"Model": XLMRobertaModel, "ForMaskedLM": XLMRobertaForMaskedLM,
                                      "ForSequenceClassification": XLMRobertaForSequenceClassification,
                                      "ForTokenClassification": XLMRobertaForTokenClassification,
                                      "ForQuestionAnswering": XLMRobertaForQuestionAnswering,
                                      "ForMultipleChoice": XLMRobertaForMultipleChoice}),
}


def _split_name(name: str) -> tuple[str, str]:
    """"XLMRobertaForMaskedLM" -> ("XLMRoberta", "ForMaskedLM")."""
    family = "XLMRoberta" if name.startswith("XLMRoberta") else "Roberta"
    return family, name.removeprefix(family)


def _mapping(head_name: str, num_layers: int, backbone_pooler: bool) -> dict:
    mini_prefix, hf_prefix = ("", "") if head_name == "Model" else ("model.", "roberta.")
    return {**bert_backbone_map(num_layers, mini_prefix, hf_prefix, backbone_pooler), **_HEADS[head_name][1]}


def _from_hf(hf_model, **overrides):
    family, head_name = _split_name(type(hf_model).__name__)
    mini_cls, _, backbone_pooler = _HEADS[head_name]
    if backbone_pooler is None:  # RobertaModel may be built with or without its pooler
        backbone_pooler = hf_model.pooler is not None
    if head_name == "ForQuestionAnswering" and hf_model.config.num_labels != 2:
        raise ValueError(f"{type(hf_model).__name__} needs `num_labels=2` (start, end); "
                         f"got {hf_model.config.num_labels}.")
    # the mini sequence classifier keeps RoBERTa's head dense layer as its pooler
    add_pooler = backbone_pooler or head_name == "ForSequenceClassification"
    config = mini_config_from_roberta(hf_model.config, add_pooler=add_pooler,
                                      masked_lm=head_name == "ForMaskedLM", **overrides)
    config._attn_implementation = hf_model.config._attn_implementation
    mini = new_model(mini_cls, config, hf_model.dtype)
    return load_mapped(mini, hf_model.state_dict(), _mapping(head_name, config.num_hidden_layers, backbone_pooler),
                       skip=("lm_head.bias",))  # the MLM head's unread (or tied) second bias


def to_roberta(mini_model, family: str = "Roberta"):
    """The RoBERTa (``family="XLMRoberta"``: XLM-RoBERTa) model equivalent to a MiniEncoder with RoBERTa's position
    numbering. ``convert.to_hf`` calls it for such models."""
    head_name = next(name for name, (cls, _, _) in _HEADS.items() if cls is type(mini_model))
    config_class, classes = _HF_CLASSES[family]
    backbone_pooler = _HEADS[head_name][2]
    if backbone_pooler is None:
        backbone_pooler = mini_model.pooler is not None
    has_pooler = mini_model.base_model.pooler is not None
    config = roberta_config_from_mini(mini_model.config, config_class, pooler=has_pooler,
                                      masked_lm=head_name == "ForMaskedLM")
    config._attn_implementation = mini_model.config._attn_implementation
    state = separate_attention_projections(mini_model)
    hf_state = {hf_key: state[mini_key] for mini_key, hf_key in
                _mapping(head_name, config.num_hidden_layers, backbone_pooler).items()}
    if head_name == "ForMaskedLM":  # both biases, as when tied
        hf_state["lm_head.bias"] = state["lm_head.bias"]
    hf_cls = classes[head_name]
    pooling = {"add_pooling_layer": backbone_pooler} if head_name == "Model" else {}
    return load_mapped(new_model(hf_cls, config, mini_model.dtype, **pooling), hf_state, {k: k for k in hf_state})


FROM_HF = {f"{family}{head}": _from_hf for family in _HF_CLASSES for head in _HEADS}
TO_HF = {}  # the MiniEncoder classes export through convert_bert, which hands RoBERTa-numbered models to to_roberta
