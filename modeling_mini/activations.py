"""Activation functions: the non-linearities between linear layers.

Without a non-linearity a stack of linear layers collapses into one linear map. The feed-forward network
(`feed_forward.py`) applies one of these element-wise between its two projections:

* ``relu``: ``max(0, x)``, the original Transformer's choice. Cheap; its gradient is 0 for ``x < 0``.
* ``gelu``: ``x * Phi(x)`` with the exact normal CDF, as in BERT; a smooth ReLU that lets small
  negative values through.
* ``gelu_new``: the tanh approximation of GELU that GPT-2 uses,
  ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``. It runs as PyTorch's fused kernel
  (``F.gelu(approximate="tanh")``, transformers' ``gelu_pytorch_tanh``): the same function in one pass over
  the (B, T, intermediate) tensor, where the formula written out with tensor ops takes about eight
  passes forward, more backward, and keeps their intermediates for the backward pass.
* ``silu`` (swish): ``x * sigmoid(x)``; Marian's default.
* gated variants ``swiglu`` / ``geglu`` / ``reglu`` / ``geglu_tanh``: ``act(x W_gate) * (x W_up)``, where a
  second projection decides, per feature, how much of the activated signal passes (Llama uses SwiGLU, Gemma the
  tanh GELU's gate, ``geglu_tanh``).

The **sigmoid** ``1 / (1 + exp(-x))`` squashes a single logit into (0, 1). The sequence-classification
heads use it for binary outputs (spam / not spam): one logit, ``problem_type="multi_label_classification"``
and ``num_labels=1``, trained with binary cross-entropy; :func:`binary_probability` turns the logit into the
probability of the positive class.

The encoder's **pooler** (``modeling_encoder.MiniPooler``) squashes its summary vector with ``tanh`` (BERT), ``relu``
(DistilBERT's classification head) or ``gelu`` (ELECTRA's): :data:`POOLER_ACTIVATIONS`.

The functions themselves come from ``transformers.activations.ACT2FN``: the package names them, it does not
re-implement them.
"""

import torch
from torch import nn
from transformers.activations import ACT2FN

#: Allowed ``hidden_act`` values -> (name of the element-wise function in ``ACT2FN``, is it gated?).
ACTIVATIONS: dict[str, tuple[str, bool]] = {
    "relu": ("relu", False),
    "gelu": ("gelu", False),
    "gelu_new": ("gelu_pytorch_tanh", False),
    "silu": ("silu", False),
    "swiglu": ("silu", True),
    "geglu": ("gelu", True),
    "reglu": ("relu", True),
    "geglu_tanh": ("gelu_pytorch_tanh", True),
}


#: Allowed ``pooler_activation`` values (the encoder pooler's function after its dense layer) -> the name in ``ACT2FN``.
POOLER_ACTIVATIONS: dict[str, str] = {"tanh": "tanh", "relu": "relu", "gelu": "gelu"}

#: Other names transformers' configs use for the functions above; the converters read HF configs through it.
#: (``gelu_python`` is exact GELU written out with ``erf``, the same function as ``gelu``.)
HF_ALIASES: dict[str, str] = {"swish": "silu", "gelu_pytorch_tanh": "gelu_new", "gelu_python": "gelu"}


def get_activation(name: str) -> nn.Module:
    """The element-wise activation module for ``hidden_act=name`` (for gated names, the gate's function)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"`hidden_act` must be one of {', '.join(map(repr, ACTIVATIONS))}; got {name!r}.")
    return ACT2FN[ACTIVATIONS[name][0]]


def get_pooler_activation(name: str) -> nn.Module:
    """The module for ``pooler_activation=name`` (the encoder pooler's function after its dense layer)."""
    if name not in POOLER_ACTIVATIONS:
        allowed = ", ".join(map(repr, POOLER_ACTIVATIONS))
        raise ValueError(f"`pooler_activation` must be one of {allowed}; got {name!r}.")
    return ACT2FN[POOLER_ACTIVATIONS[name]]


def is_gated(name: str) -> bool:
    """Whether ``hidden_act=name`` is a gated linear unit (needs a gate projection)."""
    return ACTIVATIONS[name][1]


def binary_probability(logits: torch.Tensor) -> torch.Tensor:
    """Probability of the positive class from a single-logit binary head: ``sigmoid(logit)``, in (0, 1)."""
    return torch.sigmoid(logits)
