"""mini-transformers: the three Transformer families, from scratch, as native transformers models.

Importing the package registers every config and model with transformers' Auto classes, so
``AutoModelForCausalLM.from_pretrained(folder)`` works on a saved mini model without ``trust_remote_code``.
Saved folders also carry the model source and an ``auto_map``, so they load with ``trust_remote_code=True``
where this package is not installed.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .activations import ACTIVATIONS, binary_probability
from .configuration_mini import MiniConfig, MiniEncoderConfig, MiniGPTConfig, MiniSeq2SeqConfig
from .modeling_base import MiniPreTrainedModel
from .modeling_encoder import (
    MiniEncoderForMaskedLM,
    MiniEncoderForMultipleChoice,
    MiniEncoderForQuestionAnswering,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
    MiniEncoderPreTrainedModel,
)
from .modeling_gpt import (
    MiniGPTForCausalLM,
    MiniGPTForQuestionAnswering,
    MiniGPTForSequenceClassification,
    MiniGPTForTokenClassification,
    MiniGPTModel,
    MiniGPTPreTrainedModel,
)
from .modeling_seq2seq import (
    MiniSeq2SeqForConditionalGeneration,
    MiniSeq2SeqForQuestionAnswering,
    MiniSeq2SeqForSequenceClassification,
    MiniSeq2SeqModel,
    MiniSeq2SeqPreTrainedModel,
)

__version__ = "0.1.0"

_AUTO = {
    "AutoModel": AutoModel,
    "AutoModelForCausalLM": AutoModelForCausalLM,
    "AutoModelForMaskedLM": AutoModelForMaskedLM,
    "AutoModelForMultipleChoice": AutoModelForMultipleChoice,
    "AutoModelForQuestionAnswering": AutoModelForQuestionAnswering,
    "AutoModelForSeq2SeqLM": AutoModelForSeq2SeqLM,
    "AutoModelForSequenceClassification": AutoModelForSequenceClassification,
    "AutoModelForTokenClassification": AutoModelForTokenClassification,
}


def _register(pretrained_class) -> None:
    config_class = pretrained_class.config_class
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    for auto_name, model_class in pretrained_class.family_auto_classes.items():
        _AUTO[auto_name].register(config_class, model_class, exist_ok=True)


_register(MiniGPTPreTrainedModel)
_register(MiniEncoderPreTrainedModel)
_register(MiniSeq2SeqPreTrainedModel)

__all__ = [
    "ACTIVATIONS",
    "MiniConfig",
    "MiniEncoderConfig",
    "MiniEncoderForMaskedLM",
    "MiniEncoderForMultipleChoice",
    "MiniEncoderForQuestionAnswering",
    "MiniEncoderForSequenceClassification",
    "MiniEncoderForTokenClassification",
    "MiniEncoderModel",
    "MiniGPTConfig",
    "MiniGPTForCausalLM",
    "MiniGPTForQuestionAnswering",
    "MiniGPTForSequenceClassification",
    "MiniGPTForTokenClassification",
    "MiniGPTModel",
    "MiniPreTrainedModel",
    "MiniSeq2SeqConfig",
    "MiniSeq2SeqForConditionalGeneration",
    "MiniSeq2SeqForQuestionAnswering",
    "MiniSeq2SeqForSequenceClassification",
    "MiniSeq2SeqModel",
    "binary_probability",
]
