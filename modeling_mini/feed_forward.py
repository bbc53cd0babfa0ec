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
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.down_proj.is_residual_output = True  # scaled initialisation, see MiniPreTrainedModel._init_weights

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.gate_proj is None:
            hidden = self.act_fn(self.up_proj(hidden_states))  # (B, T, intermediate)
        else:
            hidden = self.act_fn(self.gate_proj(hidden_states)) * self.up_proj(hidden_states)
        if self.activation_dropout and self.training:
            hidden = nn.functional.dropout(hidden, p=self.activation_dropout, training=True)
        return self.down_proj(hidden)
