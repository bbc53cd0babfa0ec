"""Positional encodings: how a Transformer learns the order of its tokens.

Attention compares every position with every other at once; by itself it treats the input as a *set*
(shuffle the tokens and the outputs shuffle the same way). Order has to be injected:

* :class:`SinusoidalPositionalEncoding` (the default, "Attention Is All You Need" §3.5): a fixed vector
  per position, ``PE[p, 2i] = sin(p / 10000^(2i/d))`` and ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``, added to
  the token embeddings (``sinusoidal_layout="concatenated"``, Marian's: all the sines, then all the cosines).
  Each pair of features is a clock at its own frequency, so ``PE[p + k]`` is a rotation of ``PE[p]`` and
  relative offsets are easy for attention to read. Nothing is learned and no length limit exists.
* :class:`LearnedPositionalEmbedding` (GPT-2, BERT): a trained table of ``max_position_embeddings``
  vectors, added the same way; it cannot go past the table.
* :class:`RotaryEmbedding` (RoPE, Su et al. 2021): nothing is added to the embeddings; instead each
  query and key is rotated by an angle proportional to its position (:func:`apply_rotary_pos_emb`), so
  the dot product ``q_m . k_n`` depends only on the offset ``m - n``.
* :class:`RelativePositionBias` (T5, Raffel et al. 2020): nothing is added or rotated; each attention score
  ``q_m . k_n`` gets a trained bias, one per head and per *bucket* of the distance ``n - m``: exact for short
  distances, logarithmically coarser for long ones, one shared bucket past ``max_distance``.
* :class:`AlibiBias` (ALiBi, Press et al. 2021; BLOOM): nothing learned either; each head subtracts its own fixed slope
  times the distance from the score, so attention fades with distance, steeply in some heads, slowly in others, and
  extends to any length.

The sinusoidal and rotary tables are computed from ``position_ids`` (the frequencies, tables and slopes they reuse
sit in module-level caches, outside the modules): no module holds them as a parameter or buffer, so loading a model
on the ``meta`` device (transformers 5 ``from_pretrained``) cannot leave them uninitialised, and left-padded batches
get per-row positions for free.
"""

import math

import torch
from torch import nn


def _compute_frequencies(dim: int, base: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``1 / base^(2i/dim)`` for ``i = 0 .. dim/2 - 1``: one angular frequency per pair of features."""
    return 1.0 / (base ** (torch.arange(0, dim, 2, device=device, dtype=dtype) / dim))


_FREQUENCIES: dict[tuple, torch.Tensor] = {}
_TABLES: dict[tuple, torch.Tensor] = {}  # sinusoidal rows by (dim, layout, device, dtype)
_MAX_TABLE_ROWS = 16384  # past this, positions are computed on the fly rather than kept (16384 x D floats)


def traced() -> bool:
    """Is this call being recorded into a graph (``torch.compile``, ``torch.jit.trace``)? Then tables and frequencies
    are computed in the graph, not read from a cache (a cached tensor would be a constant that the first call made,
    and ``jit.trace``'s check, which traces twice, would see two different graphs), sizes are not Python ints, and
    no value is read back to the host (``modeling_base._checks_enabled``)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _keep(cache: dict, key: tuple, make) -> torch.Tensor:
    """``make()``, stored in ``cache`` under ``key``: a plain Python cache, not a buffer (see the module docstring).
    Made outside inference mode, so that a later training step can use it with autograd; a meta tensor (shapes
    only) is not kept."""
    with torch.inference_mode(False):
        tensor = make()
    if tensor.device.type != "meta":
        cache[key] = tensor
    return tensor


def _frequencies(dim: int, base: float, device: torch.device, dtype: torch.dtype, scaling: dict | None = None):
    """The frequencies of :func:`_compute_frequencies` (stretched by a rotary ``scaling``, if given), kept per (dim,
    base, device, dtype, scaling) after the first call.

    A cached decoding step then computes its position's angles with one kernel instead of six (at batch 1 on a
    GPU, kernel launches are the cost). A plain Python cache, not a buffer (see the module docstring); inside
    ``torch.compile`` the vector is recomputed and folded into the graph.
    """
    def make():
        frequencies = _compute_frequencies(dim, base, device, dtype)
        return frequencies if scaling is None else scaled_rotary_frequencies(frequencies, scaling, base)

    if traced():
        return make()
    # (LongRoPE's lists as tuples: a key must hash)
    options = None if scaling is None else tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                                        for k, v in scaling.items()))
    key = (dim, base, torch.device(device), dtype, options)
    if key in _FREQUENCIES:
        return _FREQUENCIES[key]
    return _keep(_FREQUENCIES, key, make)


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sine/cosine position vectors, added to the token embeddings (no parameters)."""

    def __init__(self, config, width: int | None = None):
        super().__init__()
        self.dim = config.hidden_size if width is None else width
        self.interleaved = config.sinusoidal_layout == "interleaved"

    def forward(self, position_ids: torch.LongTensor, dtype: torch.dtype, max_position: int | None = None):
        """Position vectors (B, T, D) for ``position_ids`` (B, T).

        ``max_position`` is a bound on the ids that the caller knows without reading them (it made them from the
        cache length). With it, the rows come from a table made once per device and dtype, one lookup kernel
        instead of five, with the same values: a decoding step adds one position at a time.
        """
        if max_position is None or traced() or max_position >= _MAX_TABLE_ROWS:
            return self.encode(position_ids, dtype)
        return nn.functional.embedding(position_ids, self._table(max_position + 1, position_ids.device, dtype))

    def encode(self, position_ids: torch.LongTensor, dtype: torch.dtype) -> torch.Tensor:
        # float64 where the device has it: p * freq loses digits in float32 for long sequences
        device = position_ids.device
        work_dtype = torch.float32 if device.type == "mps" else torch.float64
        angles = position_ids[..., None] * _frequencies(self.dim, 10000.0, device, work_dtype)  # (B, T, D/2)
        if self.interleaved:
            pe = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (B, T, D/2, 2) -> (B, T, D)
        else:
            pe = torch.cat((angles.sin(), angles.cos()), dim=-1)  # (B, T, D): all sines, then all cosines
        return pe.to(dtype)

    def _table(self, rows: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``encode`` of positions ``0 .. n - 1`` (n, D), n a power of two >= ``rows``; kept like the frequencies."""
        key = (self.dim, self.interleaved, torch.device(device), dtype)
        table = _TABLES.get(key)
        if table is not None and table.shape[0] >= rows:
            return table
        size = max(256, 1 << (rows - 1).bit_length())
        return _keep(_TABLES, key, lambda: self.encode(torch.arange(size, device=device), dtype))


class LearnedPositionalEmbedding(nn.Embedding):
    """A trained vector per position ``0 .. max_position_embeddings - 1``, added to the token embeddings."""

    def __init__(self, config, width: int | None = None, padding_idx: int | None = None):
        super().__init__(config.max_position_embeddings, config.hidden_size if width is None else width, padding_idx)

    def forward(self, position_ids: torch.LongTensor, dtype: torch.dtype | None = None, max_position=None):
        return super().forward(position_ids)


def scaled_rotary_frequencies(frequencies: torch.Tensor, scaling: dict, base: float) -> torch.Tensor:
    """Rotary frequencies stretched so that a model reads past the length it was trained on (``rotary_scaling``).

    * ``linear`` (position interpolation, Chen et al. 2023): every frequency divided by ``factor``, so ``factor``
      times more positions fit in the angles seen in training.
    * ``llama3`` (Llama 3.1): only the slow frequencies, whose wavelength is long compared with the original
      context, are divided by ``factor``; the fast ones, which encode short distances, are kept; wavelengths in
      between blend the two linearly.
    * ``yarn`` (Peng et al. 2023): the same idea, with the blend placed by how many full turns a frequency makes
      over the original context: at least ``beta_fast`` (32) turns, kept; at most ``beta_slow`` (1), divided.
      YaRN also scales the rotation itself (:func:`rotary_attention_factor`).
    * ``longrope`` (Phi-3): each frequency divided by its own stretch, searched for at training; two sets, for
      inputs within the original length (``short_factor``) and past it (``long_factor``). Returns both, (2, Dh/2):
      :class:`RotaryEmbedding` picks one per forward.
    """
    if scaling["rope_type"] == "longrope":
        base_powers = _base_powers(frequencies, base)
        return torch.stack([1.0 / (torch.tensor(scaling[key], dtype=frequencies.dtype, device=frequencies.device)
                                   * base_powers) for key in ("short_factor", "long_factor")])
    factor = float(scaling["factor"])
    if scaling["rope_type"] == "linear":
        return frequencies / factor
    context = float(scaling["original_max_position_embeddings"])
    if scaling["rope_type"] == "yarn":
        return _yarn_frequencies(frequencies, factor, context, base, scaling)
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    wavelength = 2 * math.pi / frequencies
    # 0 for wavelengths past context / low (slow: divide), 1 below context / high (fast: keep), linear in between
    keep = ((context / wavelength - low) / (high - low)).clamp(0.0, 1.0)
    return (1 - keep) * frequencies / factor + keep * frequencies


def _base_powers(frequencies: torch.Tensor, base: float) -> torch.Tensor:
    """``base^(2i/dim)``, the inverse of each frequency, computed as :func:`_compute_frequencies` does before it
    divides: a scaling that divides it again rounds as transformers does."""
    dim = 2 * frequencies.shape[0]
    return base ** (torch.arange(0, dim, 2, device=frequencies.device, dtype=frequencies.dtype) / dim)


def _yarn_frequencies(frequencies: torch.Tensor, factor: float, context: float, base: float, scaling: dict):
    """YaRN's blend. Pair ``i`` turns ``context * base^(-2i/dim) / 2pi`` times over the context, so it makes ``n``
    turns at ``i(n) = dim * log(context / (2 pi n)) / (2 log base)``; pairs below ``i(beta_fast)`` keep their
    frequency, pairs above ``i(beta_slow)`` are divided by ``factor``, and the weight ramps linearly in between."""
    dim = 2 * frequencies.shape[0]

    def pair_turning(turns: float) -> float:
        return dim * math.log(context / (turns * 2 * math.pi)) / (2 * math.log(base))

    first, last = pair_turning(scaling.get("beta_fast", 32)), pair_turning(scaling.get("beta_slow", 1))
    if scaling.get("truncate", True):
        first, last = math.floor(first), math.ceil(last)
    first, last = max(first, 0), min(last, dim - 1)
    if first == last:
        last += 0.001  # a one-pair ramp would divide by zero
    pairs = torch.arange(dim // 2, dtype=torch.float32).to(frequencies.device)
    keep = 1 - ((pairs - first) / (last - first)).clamp(0.0, 1.0)  # (Dh/2,): 1 keeps, 0 divides
    return 1.0 / (factor * _base_powers(frequencies, base)) * (1 - keep) + frequencies * keep


def rotary_attention_factor(scaling: dict | None, max_position_embeddings: int) -> float:
    """YaRN's and LongRoPE's multiplier on ``cos`` and ``sin`` (1 otherwise), which sharpens attention back to what it
    was over the original context; ``attention_factor`` sets it directly. YaRN: ``0.1 ln(factor) + 1``, or the ratio
    of two such terms with DeepSeek's ``mscale`` / ``mscale_all_dim``. LongRoPE: ``sqrt(1 + ln(factor) /
    ln(original length))``, ``factor`` defaulting to ``max_position_embeddings / original length``."""
    if scaling is None or scaling["rope_type"] not in ("yarn", "longrope"):
        return 1.0
    if scaling.get("attention_factor") is not None:
        return float(scaling["attention_factor"])
    if scaling["rope_type"] == "longrope":
        original = scaling["original_max_position_embeddings"]
        factor = scaling.get("factor") or max_position_embeddings / original
        return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))

    def sharpening(mscale: float = 1.0) -> float:
        return 1.0 if scaling["factor"] <= 1 else 0.1 * mscale * math.log(scaling["factor"]) + 1.0

    if scaling.get("mscale") and scaling.get("mscale_all_dim"):
        return float(sharpening(scaling["mscale"]) / sharpening(scaling["mscale_all_dim"]))
    return sharpening()


class RotaryEmbedding(nn.Module):
    """Computes the rotation ``(cos, sin)`` for each position; attention applies it to queries and keys."""

    def __init__(self, config, sliding: bool = False):
        super().__init__()
        self.rotary_dim = config.rotary_dim  # head_dim, or the part of it that rotates (partial_rotary_factor)
        # a sliding-window layer's own rotation (``sliding_rope_theta``, Gemma 3): its base, never stretched
        self.base = float(config.sliding_rope_theta if sliding else config.rope_theta)
        self.scaling = None if sliding else config.rotary_scaling
        self.attention_factor = rotary_attention_factor(self.scaling, config.max_position_embeddings)

    def forward(self, position_ids: torch.LongTensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = _frequencies(self.rotary_dim, self.base, position_ids.device, torch.float32, self.scaling)
        if freqs.dim() == 2:  # LongRoPE: the long set once any position passes the original length; no host read
            past_original = position_ids.max() + 1 > self.scaling["original_max_position_embeddings"]
            freqs = torch.where(past_original, freqs[1], freqs[0])
        angles = position_ids[..., None] * freqs  # (B, T, R/2), R = rotary_dim; float32 (the ids promote)
        angles = torch.cat((angles, angles), dim=-1)  # (B, T, R): the two halves share an angle
        cos, sin = angles.cos(), angles.sin()
        if self.attention_factor != 1.0:  # YaRN: q.k grows by its square
            cos, sin = cos * self.attention_factor, sin * self.attention_factor
        return cos.to(dtype), sin.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension: a 90-degree turn of each pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotate queries and keys ``(B, H, T, Dh)`` by their positions' angles (``cos``/``sin``: ``(B, T, R)``, R the
    rotated width: ``Dh``, or its first part with ``partial_rotary_factor``, the rest passing through)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, R): the same rotation for every head
    rotated = cos.shape[-1]
    if rotated == q.shape[-1]:
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    (q_rot, q_pass), (k_rot, k_pass) = (x.split([rotated, x.shape[-1] - rotated], dim=-1) for x in (q, k))
    return (torch.cat([q_rot * cos + rotate_half(q_rot) * sin, q_pass], dim=-1),
            torch.cat([k_rot * cos + rotate_half(k_rot) * sin, k_pass], dim=-1))


def positions_of_real_tokens(input_ids: torch.LongTensor, pad_token_id: int, offset: int) -> torch.LongTensor:
    """RoBERTa's position ids (B, T): real tokens are numbered ``offset, offset + 1, ...`` in order, skipping pads,
    and every pad token gets ``offset - 1`` (the table row RoBERTa keeps for padding).

    A text then has the same positions however much padding sits before it, so left and right padding give the
    same outputs. No Python loop: a running count of real tokens along the sequence.
    """
    real = input_ids.ne(pad_token_id)  # (B, T)
    return real.cumsum(dim=-1) * real + (offset - 1)  # count of real tokens so far, zeroed on pads


def positions_from_attention_mask(attention_mask: torch.Tensor, length: int, offset: int) -> torch.LongTensor:
    """OPT's position ids (B, T) for the last ``length`` columns of a 2D ``attention_mask`` (B, past + T): the kept
    tokens are numbered ``offset, offset + 1, ...`` in order, skipping masked ones, and every masked token gets
    ``offset - 1``.

    The decoder's counterpart of :func:`positions_of_real_tokens`, read from the mask because a causal LM's pad token
    is often a real token too (its end-of-text). A left-padded prompt then has the positions it has alone.
    """
    kept = attention_mask.long()  # (B, past + T)
    return (kept.cumsum(dim=-1) * kept + (offset - 1))[:, -length:]


def relative_position_buckets(distance: torch.Tensor, bidirectional: bool, num_buckets: int,
                              max_distance: int) -> torch.LongTensor:
    """T5's bucket (``0 .. num_buckets - 1``) for each ``distance = key position - query position``.

    Bidirectional (an encoder): half the buckets for keys after the query, half for the rest. Causal (a decoder):
    keys after the query never count (they are masked), so every bucket serves the past. Within a direction, the
    first half of its buckets holds the distances ``0, 1, ...`` one each; the other half covers the distances up to
    ``max_distance`` on a log scale, and every distance beyond falls in the last bucket. Nearby order is exact, far
    order coarse, and the model reads any length.
    """
    if bidirectional:
        num_buckets //= 2
        offset = (distance > 0).long() * num_buckets  # keys after the query: the upper half
        distance = distance.abs()
    else:
        offset = 0
        distance = (-distance).clamp(min=0)  # how far back the key is
    exact = num_buckets // 2
    # log(distance / exact) / log(max_distance / exact) of the way through the log-spaced buckets; clamp(min=1) keeps
    # log finite where the exact buckets are used anyway
    fraction = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (fraction * (num_buckets - exact)).long()).clamp(max=num_buckets - 1)
    return offset + torch.where(distance < exact, distance, far)


class RelativePositionBias(nn.Module):
    """T5's relative attention bias: a learned number per head and distance bucket, added to the attention scores.

    One module per stack: every layer adds the same bias (T5 trains it in the first layer and shares it). The
    encoder's is bidirectional; the decoder's self-attention is causal; cross-attention gets none.
    """

    def __init__(self, config, bidirectional: bool):
        super().__init__()
        self.bidirectional = bidirectional
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.embed = nn.Embedding(self.num_buckets, config.num_attention_heads)

    def forward(self, query_positions: torch.LongTensor, key_length: int) -> torch.Tensor:
        """The bias (1, H, T, S) for queries at ``query_positions`` (1, T) and keys at positions ``0 .. S - 1``."""
        keys = torch.arange(key_length, device=query_positions.device)
        distance = keys[None, :] - query_positions[0, :, None]  # (T, S)
        buckets = relative_position_buckets(distance, self.bidirectional, self.num_buckets, self.max_distance)
        return self.embed(buckets).permute(2, 0, 1).unsqueeze(0)  # (T, S, H) -> (1, H, T, S)


_SLOPES: dict[tuple, torch.Tensor] = {}  # ALiBi slopes by (heads, device)


def alibi_slopes(num_heads: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """ALiBi's slope per head (H,), float32: for a power of two ``n``, ``2^(-8/n), 2^(-16/n), ...`` (a geometric
    sequence from ``2^(-8/n)``, 1/2 for 8 heads, down to 1/256); otherwise the largest power of two's sequence, then
    every other slope of the next power's, so the slopes still spread over the same range."""
    power = 2 ** math.floor(math.log2(num_heads))
    steps = torch.arange(1, power + 1, device=device)
    odd_steps = torch.arange(1, 1 + 2 * (num_heads - power), 2, device=device)
    slopes = torch.pow(torch.tensor(2 ** (-8 / power), device=device), steps)
    return torch.cat([slopes, torch.pow(torch.tensor(2 ** (-4 / power), device=device), odd_steps)])


class AlibiBias(nn.Module):
    """ALiBi: ``-slope_h * (query position - key position)`` added to head ``h``'s scores (causal: keys after the query
    are masked anyway). Positions count the tokens the attention mask keeps, as BLOOM's do, so padding anywhere in a row
    leaves the distances between its real tokens alone. No weights: the slopes are computed, and kept in a plain cache
    per device (see the module docstring on meta-device loading)."""

    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads

    def forward(self, query_positions: torch.LongTensor, key_positions: torch.LongTensor) -> torch.Tensor:
        """The bias (B, H, T, S) for queries at ``query_positions`` (B or 1, T) and keys at ``key_positions``: (B or
        1, S), or (B or 1, T, S), each query's own numbering of the keys (a packed batch's sequences each count from
        their start)."""
        device = query_positions.device
        if traced():
            slopes = alibi_slopes(self.num_heads, device)
        else:
            key = (self.num_heads, torch.device(device))
            slopes = _SLOPES[key] if key in _SLOPES else _keep(_SLOPES, key, lambda: alibi_slopes(*key))
        if key_positions.dim() == 2:
            key_positions = key_positions[:, None, :]  # (B, 1, S): the same numbering for every query
        distance = key_positions - query_positions[:, :, None]  # (B, T, S): <= 0 for the past
        return slopes[None, :, None, None] * distance[:, None].to(slopes.dtype)  # (B, H, T, S)


def allowed_by_mask(mask: torch.Tensor) -> torch.Tensor:
    """Where a 4D attention ``mask`` lets a query attend (a boolean tensor of its shape): a boolean mask as it is; an
    additive one wherever its entry is above its dtype's minimum (so -inf, too, is masked). A soft entry (a user's
    -2.0) still allows attending, only less: ALiBi must count that key among a query's keys."""
    return mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min


def add_attention_bias(mask: torch.Tensor, bias: torch.Tensor, open_dead_rows: bool = False) -> torch.Tensor:
    """One additive mask (B, H, T, S) for eager and sdpa attention: where ``mask`` (B, 1, T, S) allows attending
    (:func:`allowed_by_mask`), ``bias`` (1, H, T, S), plus the mask's own value if it is additive (0 from
    transformers' builders; a user's soft -2.0 is kept, as transformers' T5 adds its mask to the bias); the dtype's
    minimum elsewhere. With ``open_dead_rows``, 0 on the rows of queries that may attend to nothing."""
    allowed = allowed_by_mask(mask)
    low = torch.finfo(bias.dtype).min
    if mask.dtype != torch.bool:  # additive: keep its soft values (clamped: a float16 sum may overflow to -inf)
        bias = (bias + mask.to(bias.dtype)).clamp(min=low)
    biased = bias.masked_fill(~allowed, low)
    if not open_dead_rows:
        return biased
    # sdpa: a query that may attend to nothing (a left pad) attends to everything instead, as transformers' own sdpa
    # masks do. A row of minima made CUDA's bfloat16 sdpa kernels return NaN there, and the NaN of a pad's state then
    # reached every real token through the next layer's values (0 * NaN). Eager keeps the minima: its softmax spreads
    # such a row evenly, as transformers' eager BLOOM does.
    attends_nowhere = ~allowed.any(dim=-1, keepdim=True)  # (B, 1, T, 1)
    return biased.masked_fill(attends_nowhere, 0.0)


def build_relative_bias(config, bidirectional: bool) -> RelativePositionBias | AlibiBias | None:
    """A stack's attention bias: T5's when ``position_embedding_type == "relative"``, ALiBi's when ``"alibi"``, else
    None; None too with ``relative_bias_per_layer`` (UMT5), where each layer has its own: :func:`build_layer_biases`."""
    if config.position_embedding_type == "relative":
        per_layer = getattr(config, "relative_bias_per_layer", False)
        return None if per_layer else RelativePositionBias(config, bidirectional)
    return AlibiBias(config) if config.position_embedding_type == "alibi" else None


def build_layer_biases(config, bidirectional: bool, depth: int) -> nn.ModuleList | None:
    """UMT5's ``depth`` relative biases, one per layer (``relative_bias_per_layer``), or None."""
    if config.position_embedding_type != "relative" or not getattr(config, "relative_bias_per_layer", False):
        return None
    return nn.ModuleList(RelativePositionBias(config, bidirectional) for _ in range(depth))


def biased_mask(stack, mask, *positions: torch.LongTensor | int, dtype: torch.dtype | None = None,
                bias: nn.Module | None = None) -> torch.Tensor:
    """``mask`` (built without sdpa's skips, so a 4D tensor) with ``stack.relative_bias(*positions)`` (T5's, ALiBi's)
    where it allows attending: one (B, H, T, S) additive mask, the bias shared by every layer (or, given ``bias``,
    that module's: one layer's, UMT5). Eager and sdpa take it;
    flash kernels take no bias and flex attention would need it as a score function, so they are refused. ``dtype``:
    the hidden states' (ALiBi's bias is computed in float32): CUDA's sdpa kernels gave NaN everywhere for a float32
    mask beside bfloat16 or float16 queries."""
    implementation = stack.config._attn_implementation
    if implementation not in ("eager", "sdpa"):
        raise ValueError(f"`position_embedding_type={stack.config.position_embedding_type!r}` adds a bias to the "
                         f"attention scores: it needs `attn_implementation` 'eager' or 'sdpa'; got {implementation!r}.")
    bias = (stack.relative_bias if bias is None else bias)(*positions)
    bias = bias if dtype is None else bias.to(dtype)
    return add_attention_bias(mask, bias, open_dead_rows=implementation == "sdpa")


def layer_mask(stack, mask: torch.Tensor, layer: int, *positions: torch.LongTensor | int,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """The mask layer ``layer`` of ``stack`` reads: ``mask`` as the stack built it (with T5's one bias in it, or no
    bias), or, with UMT5's bias per layer (``stack.layer_biases``), ``mask`` with that layer's bias
    (:func:`biased_mask`), made when the layer runs."""
    if stack.layer_biases is None:
        return mask
    return biased_mask(stack, mask, *positions, dtype=dtype, bias=stack.layer_biases[layer])


def build_absolute_positions(config, width: int | None = None, frozen_row: int | None = None) -> nn.Module | None:
    """The module that *adds* position vectors to embeddings (``width`` wide: ``hidden_size`` unless given), or
    ``None`` for rotary / no positions. ``frozen_row``: a learned table's row that starts at zero and never trains
    (the one RoBERTa's pads read)."""
    if config.position_embedding_type == "sinusoidal":
        return SinusoidalPositionalEncoding(config, width)
    if config.position_embedding_type == "learned":
        return LearnedPositionalEmbedding(config, width, frozen_row)
    return None


def rotations_per_layer_type(model, position_ids: torch.LongTensor, dtype: torch.dtype) -> dict:
    """``{layer type: (cos, sin) or None}`` for the layer types of ``model`` (a GPT or encoder backbone, holding
    ``rotary``, ``sliding_rotary`` and ``attention_types``): one rotation for all, or the sliding layers' own."""
    rotary = model.rotary(position_ids, dtype) if model.rotary is not None else None
    rotations = dict.fromkeys(model.attention_types, rotary)
    if model.sliding_rotary is not None:
        rotations["sliding_attention"] = model.sliding_rotary(position_ids, dtype)
    return rotations


def build_rotary(config, sliding: bool = False) -> RotaryEmbedding | None:
    """The rotary module when ``position_embedding_type == "rotary"``, else ``None``. ``sliding``: the one of the
    sliding-window layers when they have a base of their own (``sliding_rope_theta``), else ``None``."""
    if config.position_embedding_type != "rotary":
        return None
    if not sliding:
        return RotaryEmbedding(config)
    has_own_base = getattr(config, "sliding_rope_theta", None) is not None  # a MiniGPTConfig option
    return RotaryEmbedding(config, sliding=True) if has_own_base else None
