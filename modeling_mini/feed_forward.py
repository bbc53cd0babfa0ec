"""The position-wise feed-forward network (FFN): the same two-layer MLP applied to every token.

Attention mixes information *between* positions; the FFN then transforms each position on its own:
``FFN(x) = W_down(act(W_up x))``, widening to ``intermediate_size`` (usually 4x) and back. Most of a
Transformer's parameters, and much of what it memorises, live here.

Gated variants (``swiglu``, ``geglu``, ``reglu``, ``geglu_tanh``) use a third projection as a gate:
``FFN(x) = W_down(act(W_gate x) * W_up x)``.
"""

import torch
from torch import nn

from .activations import get_activation, is_gated


class MiniFeedForward(nn.Module):
    """``up_proj -> activation (times gate_proj, if gated) -> down_proj``; (B, T, D) -> (B, T, D).

    Dropout on the sub-layer's output is the block's, as for attention; ``activation_dropout`` (BART, Marian, T5,
    ModernBERT) also drops units of the widened hidden layer, in training only."""

    def __init__(self, config):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.gate_proj = (
            nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
            if is_gated(config.hidden_act)
            else None
        )
        self.act_fn = get_activation(config.hidden_act)
        self.activation_dropout = config.activation_dropout
        # T5 (clamp_float16) may keep down_proj in float32 in a float16 model: see InputCastingLinear
        linear = InputCastingLinear if config.float32_feed_forward_output else nn.Linear
        self.down_proj = linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.down_proj.is_residual_output = True  # scaled initialisation, see MiniPreTrainedModel._init_weights

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.gate_proj is None:
            hidden = self.act_fn(self.up_proj(hidden_states))  # (B, T, intermediate)
        else:
            hidden = self.act_fn(self.gate_proj(hidden_states)) * self.up_proj(hidden_states)
        if self.activation_dropout and self.training:
            hidden = nn.functional.dropout(hidden, p=self.activation_dropout, training=True)
        return self.down_proj(hidden)


class InputCastingLinear(nn.Linear):
    """A linear layer that reads its input in its weight's dtype: T5's feed-forward output projection.

    transformers loads T5 in float16 with that projection kept in float32 (``_keep_in_fp32_modules``), where T5's
    large activations are summed; so does a model with ``clamp_float16``. The float16 activations go in as float32,
    and the residual stream the float32 output joins stays float32 (the norms hand float16 on to the next layers:
    ``normalization.HalfWeightRMSNorm``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.is_floating_point():  # not a quantised int8 weight
            x = x.to(self.weight.dtype)  # no copy when the dtypes already agree
        return super().forward(x)
