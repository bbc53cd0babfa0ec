"""The residual Transformer block, shared by the encoder, the GPT decoder and the seq2seq decoder.

A block is two (or three) sub-layers, each wrapped in a residual connection and a normalisation:

    self-attention   -> every token gathers information from the tokens it may see
    cross-attention  -> (a decoder with an encoder: seq2seq, or a GPT with ``add_cross_attention``) each target
                        token reads the encoder's output
    feed-forward     -> every token is transformed on its own

The residual connection ``x + sublayer(x)`` gives gradients a straight path through a deep stack; the block
only has to learn a *change* to the residual stream. ``norm_position`` chooses where the norm sits:

    post-norm (original Transformer, BERT):  x = norm(x + dropout(sublayer(x)))
    pre-norm  (GPT-2, most modern models):   x = x + dropout(sublayer(norm(x)))
    sandwich  (Gemma 2):                     x = x + dropout(norm_out(sublayer(norm(x))))
    output    (OLMo 2):                      x = x + dropout(norm_out(sublayer(x)))

``parallel_residual`` (GPT-NeoX, Pythia) runs the attention and the feed-forward side by side on the same input,
each behind its own pre-norm, instead of one after the other:

    parallel:  x = x + dropout(attn(norm1(x))) + dropout(mlp(norm2(x)))     (norm2 is norm1 with
               ``parallel_shared_norm``: Phi, GPT-J)

What makes a block an *encoder* block or a *decoder* block is only ``is_causal`` (may a token see the
tokens after it?) and whether it has cross-attention: the families differ by flags, not by code.
"""

from collections.abc import Callable

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention import MiniAttention
from .feed_forward import MiniFeedForward
from .normalization import build_norm


class MiniBlock(GradientCheckpointingLayer):
    """Self-attention, optional cross-attention and feed-forward, each a residual sub-layer.

    Args:
        config: a :class:`MiniConfig`.
        layer_idx: position of the block in its stack (its slot in the cache).
        is_causal: masked self-attention (decoders) or bidirectional (encoders).
        has_cross_attention: add attention over the encoder output (seq2seq decoder).
        sliding_window: limit the self-attention to a window (a sliding layer): the last ``sliding_window`` tokens
            in a causal block, the tokens at most ``sliding_window`` positions away in a bidirectional one.
    """

    def __init__(
        self,
        config,
        layer_idx: int,
        is_causal: bool,
        has_cross_attention: bool = False,
        sliding_window: int | None = None,
    ):
        super().__init__()
        position = config.norm_position
        self.pre_norm = position != "post"  # not post-norm: the residual path itself is never normalised
        input_norms = position in ("pre", "sandwich", "post")  # "post": the norm after the residual sum
        output_norms = position in ("sandwich", "output")  # a norm on each sub-layer's output
        #: which of the model's masks this block's self-attention takes (transformers' layer-type names)
        self.attention_type = "full_attention" if sliding_window is None else "sliding_attention"
        self.self_attn = MiniAttention(config, layer_idx, is_causal=is_causal, sliding_window=sliding_window)
        # ``skip_first_attention_norm`` (ModernBERT): the first block reads the embeddings, normalised already
        skip_norm = config.skip_first_attention_norm and layer_idx == 0
        self.self_attn_norm = build_norm(config) if input_norms and not skip_norm else None
        self.self_attn_out_norm = build_norm(config) if output_norms else None
        self.cross_attn = (
            MiniAttention(config, layer_idx, is_causal=False, is_cross_attention=True) if has_cross_attention else None
        )
        self.cross_attn_norm = build_norm(config) if has_cross_attention and input_norms else None
        self.cross_attn_out_norm = build_norm(config) if has_cross_attention and output_norms else None
        self.mlp = MiniFeedForward(config)
        shared = config.parallel_shared_norm  # a parallel block whose two sub-layers read one norm's output
        self.mlp_norm = build_norm(config) if input_norms and not shared else None
        self.mlp_out_norm = build_norm(config) if output_norms else None
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.parallel = config.parallel_residual
        self.clamp_float16 = config.clamp_float16

    def _residual(self, x: torch.Tensor, norm: nn.Module | None, sublayer: Callable[[torch.Tensor], torch.Tensor],
                  out_norm: nn.Module | None = None):
        """One residual sub-layer, pre-, post-, sandwich- or output-norm (see the module docstring); ``norm`` None:
        no norm before the sub-layer."""
        if not self.pre_norm:
            return norm(self._clamp(x + self._dropout(sublayer(x))))
        out = sublayer(norm(x) if norm is not None else x)
        if out_norm is not None:
            out = out_norm(out)
        return self._clamp(x + self._dropout(out))

    def _clamp(self, x: torch.Tensor) -> torch.Tensor:
        """With ``clamp_float16`` (T5), a float16 residual stream is clamped to just inside the float16 range, 1000
        below its largest value once any entry overflowed, as transformers' T5 does; other dtypes pass untouched."""
        if not (self.clamp_float16 and x.dtype == torch.float16):
            return x
        largest = torch.finfo(torch.float16).max
        bound = torch.where(torch.isinf(x).any(), largest - 1000, largest)  # on the device: no host read
        return torch.clamp(x, min=-bound, max=bound)

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        # Dropout is the identity in eval mode: skip the module call, which is pure overhead when decoding one token
        # per step (three per block per step).
        return self.dropout(x) if self.training else x

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        encoder_attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """(B, T, D) -> (B, T, D). Tensors that need gradients are positional (gradient checkpointing): the encoder
        output, and the attention mask, which holds T5's trained relative bias."""
        if self.parallel:  # both sub-layers read the block's input; summed in GPT-NeoX's order: mlp + attn + x
            norm = self.self_attn_norm
            normed = norm(hidden_states) if norm is not None else hidden_states
            # the attention output drops out before the feed-forward runs, as in GPT-NeoX, GPT-J and Phi: the same
            # random numbers then fall on the same sites, so a seeded training step matches theirs
            attn = self._dropout(self.self_attn(normed, attention_mask=attention_mask,
                                                position_embeddings=position_embeddings, cache=cache, **kwargs)[0])
            mlp_input = normed if self.mlp_norm is None else self.mlp_norm(hidden_states)  # one norm or two
            return self._dropout(self.mlp(mlp_input)) + attn + hidden_states
        hidden_states = self._residual(
            hidden_states,
            self.self_attn_norm,
            lambda x: self.self_attn(
                x, attention_mask=attention_mask, position_embeddings=position_embeddings, cache=cache, **kwargs
            )[0],
            self.self_attn_out_norm,
        )
        if self.cross_attn is not None:
            hidden_states = self._residual(
                hidden_states,
                self.cross_attn_norm,
                lambda x: self.cross_attn(
                    x, attention_mask=encoder_attention_mask, key_value_states=encoder_hidden_states, cache=cache,
                    **kwargs,
                )[0],
                self.cross_attn_out_norm,
            )
        return self._residual(hidden_states, self.mlp_norm, self.mlp, self.mlp_out_norm)
