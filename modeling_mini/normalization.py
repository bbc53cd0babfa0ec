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

Both are PyTorch's own modules (``nn.LayerNorm``, ``nn.RMSNorm``).
"""

from torch import nn


def build_norm(config, size: int | None = None) -> nn.Module:
    """A fresh normalisation layer over ``size`` features (``hidden_size`` unless given: attention's ``qk_norm``
    normalises each head, ``head_dim`` wide), of the configured ``norm_type``."""
    size = config.hidden_size if size is None else size
    if config.norm_type == "layernorm":
        return nn.LayerNorm(size, eps=config.layer_norm_eps, bias=config.norm_bias)
    if config.norm_type == "rmsnorm":
        return nn.RMSNorm(size, eps=config.layer_norm_eps)
    raise ValueError(f"`norm_type` must be one of 'layernorm', 'rmsnorm'; got {config.norm_type!r}.")
