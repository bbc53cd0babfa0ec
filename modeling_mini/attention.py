"""Multi-head scaled dot-product attention: self, masked (causal) and cross attention in one module.

Shape legend used in the comments of this package:

    B  batch size               T  query length (tokens in this forward)
    S  key/value length          (past tokens from the cache + T, or the encoder's length for cross-attention)
    D  hidden_size               H  query heads, Hkv key/value heads, Dh the width of one head
                                 (D / H unless ``head_dim`` says otherwise)

Scaled dot-product attention (Vaswani et al. 2017, eq. 1): each token emits a query ``q``, a key ``k`` and
a value ``v`` (three learned projections of its hidden state). Token ``t``'s output is the average of all
values, weighted by how well its query matches each key:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(Dh) + mask) V

Dividing by ``sqrt(Dh)`` keeps the dot products at unit scale so the softmax does not saturate. The mask
holds the dtype's most negative number (or ``False``) where a query may not look: future tokens in a decoder
(*masked* or *causal* self-attention, so the model cannot read the token it must predict) and padding everywhere.

Multi-head attention runs ``H`` of these in parallel on ``Dh``-wide slices, so different heads can track
different relations, then concatenates them and mixes them with the output projection ``o_proj``.
The three projections are one matrix, ``qkv_proj`` (as GPT-2's ``c_attn``): one matrix product instead of three,
split into Q, K and V right after. Cross-attention cannot fuse Q with K and V (they read different inputs), so
it has ``q_proj`` and a fused ``kv_proj``. With ``num_key_value_heads < num_attention_heads`` (grouped-query
attention) several query heads share one key/value head, shrinking the cache.

:func:`eager_attention_forward` is the readable reference implementation. At run time the module
dispatches through transformers' attention registry (``config._attn_implementation``): ``sdpa`` (PyTorch's
fused kernel, the default), ``eager``, or ``flash_attention_2`` / ``flex_attention`` where installed. All
take the same arguments and return the same shapes, and the tests check they agree.
"""

from collections.abc import Callable

import torch
from torch import nn
from transformers.cache_utils import Cache, EncoderDecoderCache
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .normalization import build_norm
from .positional import apply_rotary_pos_emb


def repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped-query attention: repeat each key/value head for its ``groups`` query heads.

    (B, Hkv, S, Dh) -> (B, Hkv * groups, S, Dh), without copying when ``groups == 1``.
    """
    if groups == 1:
        return states
    batch, kv_heads, length, head_dim = states.shape
    states = states[:, :, None].expand(batch, kv_heads, groups, length, head_dim)  # (B, Hkv, g, S, Dh)
    return states.reshape(batch, kv_heads * groups, length, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: ``softmax(q k^T * scaling + mask) v``, written out step by step.

    Args:
        query: (B, H, T, Dh); key, value: (B, Hkv, S, Dh).
        attention_mask: None, a boolean (B or 1, 1, T, S) mask with True where attending is allowed, or an
            additive float mask holding 0 there and a very negative number elsewhere ((B, H, T, S) with T5's or
            ALiBi's bias folded in).
        softcap: ``None``, or squash the scores to ``softcap * tanh(score / softcap)`` before the mask (Gemma 2).
    Returns:
        ``(output, weights)``: output (B, T, H, Dh) and the attention probabilities (B, H, T, S).
    """
    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)

    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # (B, H, T, S)
    if softcap is not None:  # soft-capping: scores squashed smoothly into (-softcap, softcap)
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    elif module.is_causal and query.shape[2] > 1:
        # no mask given: the causal structure itself (the query block ends at the last key)
        t, s = query.shape[2], key.shape[2]
        allowed = torch.ones(t, s, dtype=torch.bool, device=query.device).tril(diagonal=s - t)
        if getattr(module, "sliding_window", None) is not None:  # and not further back than the window
            allowed = allowed.triu(diagonal=s - t - module.sliding_window + 1)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)

    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value)  # (B, H, T, Dh)
    return output.transpose(1, 2).contiguous(), weights  # (B, T, H, Dh)


class MiniAttention(nn.Module):
    """Multi-head attention with Q, K, V and output projections.

    Self-attention when called without ``key_value_states``; cross-attention (queries from the decoder,
    keys and values from the encoder output) when given them.

    Args:
        config: a :class:`MiniConfig`.
        layer_idx: index of the block, used to find this layer's entry in the key/value cache.
        is_causal: True for decoder self-attention (a token sees only itself and the past); False for
            encoder self-attention and cross-attention. The sdpa backend reads it, so it must be right.
        is_cross_attention: build the module as cross-attention (no rotary positions).
        sliding_window: self-attention that sees only a window: the last ``sliding_window`` tokens (itself included)
            when causal, the tokens at most ``sliding_window`` positions away on either side when bidirectional. The
            mask the model builds already says so; flash-attention kernels read the number instead.
    """

    def __init__(
        self,
        config,
        layer_idx: int,
        is_causal: bool,
        is_cross_attention: bool = False,
        sliding_window: int | None = None,
    ):
        super().__init__()
        if sliding_window is not None and is_cross_attention:
            raise ValueError("`sliding_window` applies to self-attention only.")
        self.config = config
        self.layer_idx = layer_idx
        self.is_causal = is_causal
        self.is_cross_attention = is_cross_attention
        self.sliding_window = sliding_window
        # what flash kernels take: they see ``window - 1`` positions back (and, bidirectional, as many ahead)
        self.kernel_window = sliding_window if is_causal or sliding_window is None else sliding_window + 1
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5 if config.attention_scaling is None else config.attention_scaling
        self.softcap = config.attention_softcap  # Gemma 2's cap on the scores; None: none
        self.attention_dropout = config.attention_dropout

        bias = config.attention_bias
        q_size, kv_size = self.num_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        if is_cross_attention:  # queries from the decoder, keys and values from the encoder output
            self.q_proj = nn.Linear(config.hidden_size, q_size, bias=bias)
            self.kv_proj = nn.Linear(config.hidden_size, 2 * kv_size, bias=bias)
        else:  # Q, K and V stacked row-wise in one matrix: rows [0, q) queries, then keys, then values
            self.qkv_proj = nn.Linear(config.hidden_size, q_size + 2 * kv_size, bias=bias)
        self.split_sizes = (q_size, kv_size, kv_size)
        self.o_proj = nn.Linear(q_size, config.hidden_size, bias=config.attention_output_bias)
        self.o_proj.is_residual_output = True  # scaled initialisation, see MiniPreTrainedModel._init_weights
        # QK-norm: each head's query and key vectors normalised (one gain per head feature, shared by the heads), or,
        # ``qk_norm_scope="all_heads"`` (OLMo 2), all heads' queries (keys) at once, before the split into heads
        self.qk_norm_per_head = config.qk_norm_scope == "head"
        q_width, kv_width = (self.head_dim, self.head_dim) if self.qk_norm_per_head else (q_size, kv_size)
        self.q_norm = build_norm(config, q_width) if config.qk_norm else None
        self.k_norm = build_norm(config, kv_width) if config.qk_norm else None
        # see forward: with rotary positions, training keeps a copy of the values rather than the fused projection
        # (QK-norm saves its inputs, the query and key views, so there the whole projection is needed anyway)
        self.copy_values = (not is_cross_attention and not config.qk_norm
                            and config.position_embedding_type == "rotary")

    def _split_heads(self, projected: torch.Tensor) -> torch.Tensor:
        """(B, L, heads * Dh) -> (B, heads, L, Dh)."""
        return projected.view(*projected.shape[:-1], -1, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_value_states: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``hidden_states`` (B, T, D) to itself or to ``key_value_states`` (B, S, D).

        Returns ``(output (B, T, D), attention weights (B, H, T, S) or None)``; weights come only from
        the eager implementation.
        """
        input_shape = hidden_states.shape[:-1]  # (B, T)
        if self.is_cross_attention:
            query = self.q_proj(hidden_states)
        else:  # (B, T, H * Dh), (B, T, Hkv * Dh), (B, T, Hkv * Dh): views into one matrix product's output
            query, key, value = self.qkv_proj(hidden_states).split(self.split_sizes, dim=-1)
            if self.copy_values and torch.is_grad_enabled() and self.config._attn_implementation != "eager":
                # rotary positions make new query and key tensors, so only the value view would still point into
                # the fused output; the attention saves it for backward, and with it the whole (B, T, q + 2 kv)
                # matrix. A copy of the value alone lets the rest go, as separate q / k / v projections would.
                # (Eager attention's matmuls save copies of their own, so there the projection goes anyway.)
                value = value.contiguous()
        if self.q_norm is not None and not self.qk_norm_per_head:
            query = self.q_norm(query)  # (B, T, H * Dh): all heads at once
        query = self._split_heads(query)  # (B, H, T, Dh)
        if self.q_norm is not None and self.qk_norm_per_head:
            query = self.q_norm(query)

        # Pick the cache this attention writes to: decoder self-attention or cross-attention part.
        layer_cache, reuse_cross = cache, False
        if isinstance(cache, EncoderDecoderCache):
            if self.is_cross_attention:
                layer_cache = cache.cross_attention_cache
                reuse_cross = bool(cache.is_updated.get(self.layer_idx))
            else:
                layer_cache = cache.self_attention_cache
        elif self.is_cross_attention:
            layer_cache = None  # a plain cache belongs to self-attention; never write encoder keys into it

        if reuse_cross:
            # cross-attention keys/values depend only on the encoder output: computed once per generation
            key = layer_cache.layers[self.layer_idx].keys
            value = layer_cache.layers[self.layer_idx].values
        else:
            if self.is_cross_attention:
                key, value = self.kv_proj(key_value_states).split(self.split_sizes[1:], dim=-1)
            if self.k_norm is not None and not self.qk_norm_per_head:
                key = self.k_norm(key)  # (B, S, Hkv * Dh): all heads at once
            key, value = self._split_heads(key), self._split_heads(value)  # (B, Hkv, S, Dh)
            if self.k_norm is not None and self.qk_norm_per_head:
                key = self.k_norm(key)
            if position_embeddings is not None and not self.is_cross_attention:
                query, key = apply_rotary_pos_emb(query, key, *position_embeddings)
            if layer_cache is not None:
                # appends this step's keys/values and returns the whole history (B, Hkv, S_past + T, Dh); a paged
                # cache (continuous batching) also fills in this layer's entries of ``kwargs`` for the attention call
                key, value = layer_cache.update(key, value, self.layer_idx, kwargs=kwargs)
                if self.is_cross_attention:
                    cache.is_updated[self.layer_idx] = True

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            sliding_window=self.kernel_window,
            softcap=self.softcap,
            **kwargs,
        )
        output = output.reshape(*input_shape, -1).contiguous()  # (B, T, H, Dh) -> (B, T, H * Dh), D unless head_dim
        return self.o_proj(output), weights
