"""Layer normalisation: keeps the residual stream at a steady scale so deep stacks train.

* ``layernorm`` (Ba et al. 2016): per token, subtract the mean and divide by the standard deviation over
  the features, then apply a learned gain and bias (``norm_bias=False``: the gain only, as ModernBERT). Each token
  ends with zero mean and unit variance.
* ``rmsnorm`` (Zhang & Sennrich 2019): per token, divide by the root mean square only (no centring, no
  bias). Cheaper; each token ends with unit RMS.

Where the normalisation sits is the ``norm_position`` option, applied in ``blocks.MiniBlock``:
``post`` normalises after each residual sum (original Transformer, BERT); ``pre`` normalises the input of
each sub-layer and leaves the residual path untouched (GPT-2), which trains more stably at depth and needs
one final norm after the last block.

Both are PyTorch's own modules (``nn.LayerNorm``, ``nn.RMSNorm``); ``GainOffsetRMSNorm`` is RMSNorm with its gains
stored as offsets from 1, as Gemma keeps them, and ``HalfWeightRMSNorm`` / ``HalfWeightLayerNorm`` hand a float32
input on in their float16 weights' dtype, as T5's norm does (``clamp_float16``).
"""

import torch
from torch import nn
from torch.nn import functional as F


class GainOffsetRMSNorm(nn.RMSNorm):
    """RMSNorm scaling by ``1 + weight``: the gain is stored as its offset from 1 and starts at 0 (Gemma 1-3).

    The sum is formed in float32, then the result is cast back to the input's dtype. In bfloat16, a gain stored as
    ``1 + w`` keeps only 8 significant bits near 1 and loses most of ``w``; stored as ``w`` it keeps them all, so a
    Gemma checkpoint converts, runs and exports back without rounding its gains.
    """

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.zeros_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normalised = F.rms_norm(x.float(), self.normalized_shape, eps=self.eps)  # unit RMS per token, float32
        return (normalised * (1.0 + self.weight.float())).type_as(x)


def _scale_in_weight_dtype(norm: nn.Module, normalised: torch.Tensor) -> torch.Tensor:
    """``normalised`` (float32, no gain yet) cast to ``norm``'s gain dtype if that is a half-precision one, then scaled
    (and shifted), as transformers' T5 norm does."""
    if norm.weight.dtype in (torch.float16, torch.bfloat16):
        normalised = normalised.to(norm.weight.dtype)
    out = norm.weight * normalised
    return out if getattr(norm, "bias", None) is None else out + norm.bias


class HalfWeightRMSNorm(nn.RMSNorm):
    """RMSNorm whose float16 gain sets its output's dtype, whatever the input's: T5's norm (``clamp_float16``).

    A T5 loaded in float16 keeps its feed-forward output projection in float32 (``_keep_in_fp32_modules``, as
    transformers does), so the residual stream it adds to is float32 from the first block on; each norm normalises
    that stream in float32 and hands the float16 layers after it a float16 input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype:  # the usual case: PyTorch's own kernel
            return super().forward(x)
        return _scale_in_weight_dtype(self, F.rms_norm(x.float(), self.normalized_shape, eps=self.eps))


class HalfWeightLayerNorm(nn.LayerNorm):
    """LayerNorm whose float16 gain sets its output's dtype, whatever the input's: see :class:`HalfWeightRMSNorm`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype:
            return super().forward(x)
        return _scale_in_weight_dtype(self, F.layer_norm(x.float(), self.normalized_shape, eps=self.eps))


def build_norm(config, size: int | None = None) -> nn.Module:
    """A fresh normalisation layer over ``size`` features (``hidden_size`` unless given: attention's ``qk_norm``
    normalises each head, ``head_dim`` wide), of the configured ``norm_type``."""
    size = config.hidden_size if size is None else size
    half_weight = getattr(config, "float32_feed_forward_output", False)  # T5's float16 handling: HalfWeightRMSNorm
    if config.norm_type == "layernorm":
        layer_norm = HalfWeightLayerNorm if half_weight else nn.LayerNorm
        return layer_norm(size, eps=config.layer_norm_eps, bias=config.norm_bias)
    if config.norm_type == "rmsnorm":
        rms_norm = GainOffsetRMSNorm if getattr(config, "norm_gain_offset", False) else nn.RMSNorm
        rms_norm = HalfWeightRMSNorm if half_weight and rms_norm is nn.RMSNorm else rms_norm
        return rms_norm(size, eps=config.layer_norm_eps)
    raise ValueError(f"`norm_type` must be one of 'layernorm', 'rmsnorm'; got {config.norm_type!r}.")
