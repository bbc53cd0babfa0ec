"""Pictures of the concepts: attention maps, positional encodings, masks, activations, loss curves.

Every function writes one PNG file and returns its path. matplotlib is an optional extra
(``pip install -e ".[viz]"`` in a checkout, or ``pip install matplotlib``), imported only when a picture is
drawn; no model code imports this module.

* :func:`plot_attention`: attention heatmaps of a sentence, per layer and head, from any mini model and its
  tokenizer (self-attention of the GPT and the encoder; encoder, decoder and cross-attention of the
  encoder-decoder). With ``query="viu"`` it shows, for every head, which tokens that word attends to.
* :func:`plot_positional_encoding`: the sinusoidal position matrix and the position similarity it induces.
* :func:`plot_masks`: the causal (decoder) mask and the bidirectional (encoder) one, each with its sliding-window
  form, as the models build them.
* :func:`plot_normalization`: what LayerNorm and RMSNorm do to each token's mean and spread.
* :func:`plot_activations`: ReLU, GELU, SiLU and sigmoid with their derivatives.
* :func:`plot_training_loss`: the loss curve of a Trainer output folder (``trainer_state.json``).

The command line (``mini-visualize`` or ``python -m modeling_mini.visualize``) exposes each of them, plus
``demo``, which trains a tiny GPT and a tiny translator (a minute or two on a CPU) and draws every picture of
``docs/concepts.md``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch

from .activations import binary_probability, get_activation
from .positional import SinusoidalPositionalEncoding

__all__ = [
    "DPI",
    "attention_figure_size",
    "attention_maps",
    "mask_figure_size",
    "plot_activations",
    "plot_attention",
    "plot_masks",
    "plot_normalization",
    "plot_positional_encoding",
    "plot_training_loss",
    "main",
]

DEMO_SENTENCE = "O gato subiu no telhado porque viu um pássaro"
#: Resolution of every PNG: a figure of ``w x h`` inches is ``round(w * DPI) x round(h * DPI)`` pixels.
DPI = 110


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "modeling_mini.visualize draws with matplotlib, which is not installed. "
            "Install it (pip install matplotlib), or the package's optional extra: pip install -e \".[viz]\" in a "
            "checkout"
        ) from error
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # no bbox_inches="tight": constrained layout keeps labels inside, and the pixel size stays predictable
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


# --------------------------------------------------------------------------------------------- attention


def _token_labels(tokenizer, ids: list[int]) -> list[str]:
    """Readable labels: each token decoded on its own (byte-level pieces of one character stay raw)."""
    labels = []
    for token_id, raw in zip(ids, tokenizer.convert_ids_to_tokens(ids), strict=True):
        text = tokenizer.decode([token_id]).strip()
        if not text or "\ufffd" in text:
            text = raw.replace("Ġ", "").replace("▁", "") or raw
        labels.append(text)
    return labels


def attention_figure_size(num_queries: int, num_keys: int, num_rows: int, num_cols: int,
                          query_mode: bool = False) -> tuple[float, float]:
    """Figure size in inches of :func:`plot_attention`: a grid of ``num_rows`` layers x ``num_cols`` heads,
    or (``query_mode``) one row of ``num_keys`` cells per (layer, head) pair, ``num_rows`` pairs."""
    if query_mode:
        return 0.55 * num_keys + 3.0, 0.38 * num_rows + 1.8
    side = max(1.9, 0.32 * max(num_queries, num_keys) + 0.6)
    return side * num_cols + 1.2, side * num_rows + 0.8


def mask_figure_size(num_tokens: int, panels: int = 3) -> tuple[float, float]:
    """Figure size in inches of :func:`plot_masks` for ``num_tokens`` tokens (padding included) and ``panels`` masks."""
    side = 0.42 * num_tokens + 1.5
    return panels * side + 0.5, side + 1.3


def _check_index(name: str, value: int | None, size: int, what: str) -> None:
    if value is not None and not (isinstance(value, int) and 0 <= value < size):
        raise ValueError(f"`{name}` must be in [0, {size}) for this model ({size} {what}); got {value!r}.")


def attention_maps(model, tokenizer, text: str, *, target_text: str | None = None, attention: str | None = None):
    """Run ``model`` on ``text`` and return ``(weights, query_labels, key_labels)``.

    ``weights`` is a tensor (layers, heads, T_query, T_key) of attention probabilities for one sentence.
    ``attention`` picks which attention: ``"self"`` for the GPT and the encoder; ``"encoder"``, ``"decoder"``
    or ``"cross"`` (the default) for an encoder-decoder, which also needs ``target_text`` (the decoder side).

    Raises ``ValueError`` when the model cannot return attention weights (load it with
    ``attn_implementation="eager"``), when the sentence is longer than the model allows, or when
    ``attention`` / ``target_text`` do not fit the model.
    """
    config = model.config
    is_seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    allowed = ("encoder", "decoder", "cross") if is_seq2seq else ("self",)
    attention = attention or allowed[-1]
    if attention not in allowed:
        choices = ", ".join(map(repr, allowed))
        raise ValueError(f"`attention` must be one of {choices} for this model; got {attention!r}.")
    if config._attn_implementation != "eager":
        raise ValueError(
            f"This model uses attn_implementation={config._attn_implementation!r}, which does not return attention "
            "weights. Load it with `from_pretrained(..., attn_implementation=\"eager\")` or call "
            "`model.set_attn_implementation(\"eager\")` first."
        )
    if is_seq2seq and target_text is None and attention != "encoder":
        raise ValueError(
            f"attention={attention!r} of an encoder-decoder model needs `target_text` (the decoder input)."
        )

    limit = config.max_position_embeddings
    source = tokenizer(text, return_tensors="pt")
    source_ids = source["input_ids"][0].tolist()
    if len(source_ids) > limit:
        raise ValueError(
            f"The text is {len(source_ids)} tokens long but the model allows max_position_embeddings={limit}: "
            "use a shorter sentence."
        )
    wanted = ("input_ids", "attention_mask", "token_type_ids")
    inputs = {k: v.to(model.device) for k, v in source.items() if k in wanted}
    target_ids = None
    if is_seq2seq:
        start = config.decoder_start_token_id
        target_ids = [start] + (tokenizer(text_target=target_text)["input_ids"] if target_text is not None else [])
        if len(target_ids) > limit:
            raise ValueError(
                f"The target text is {len(target_ids)} tokens long (with the start token) but the model allows "
                f"max_position_embeddings={limit}: use a shorter target."
            )
        inputs["decoder_input_ids"] = torch.tensor([target_ids], device=model.device)

    with torch.no_grad():
        outputs = model(**inputs, output_attentions=True, use_cache=False)
    field = {"self": "attentions", "encoder": "encoder_attentions", "decoder": "decoder_attentions",
             "cross": "cross_attentions"}[attention]
    layers = getattr(outputs, field, None)
    if not layers or any(weights is None for weights in layers):
        raise ValueError(
            "The model returned no attention weights. Load it with `attn_implementation=\"eager\"` "
            "(or call `model.set_attn_implementation(\"eager\")`)."
        )
    weights = torch.stack([w[0].float().cpu() for w in layers])  # (L, H, Tq, Tk)
    source_labels = _token_labels(tokenizer, source_ids)
    target_labels = _token_labels(tokenizer, target_ids) if target_ids is not None else None
    if attention in ("self", "encoder"):
        return weights, source_labels, source_labels
    if attention == "decoder":
        return weights, target_labels, target_labels
    return weights, target_labels, source_labels  # cross: decoder queries, encoder keys


def plot_attention(
    model,
    tokenizer,
    text: str,
    path,
    *,
    layer: int | None = None,
    head: int | None = None,
    query: str | None = None,
    target_text: str | None = None,
    attention: str | None = None,
    title: str | None = None,
) -> Path:
    """Attention heatmaps of ``text``: one panel per (layer, head), rows = queries, columns = keys.

    ``layer`` / ``head`` restrict the grid to one layer / one head. With ``query`` (a word of the sentence,
    e.g. ``"viu"``), draw instead one row per (layer, head) showing where that token's attention goes.
    For an encoder-decoder pass ``target_text`` and ``attention`` (``"cross"``, ``"decoder"``, ``"encoder"``);
    the model must run with ``attn_implementation="eager"``.
    """
    weights, query_labels, key_labels = attention_maps(
        model, tokenizer, text, target_text=target_text, attention=attention
    )
    num_layers, num_heads = weights.shape[:2]
    _check_index("layer", layer, num_layers, "layers")
    _check_index("head", head, num_heads, "heads")
    layers = [layer] if layer is not None else list(range(num_layers))
    heads = [head] if head is not None else list(range(num_heads))
    kind = attention or ("cross" if getattr(model.config, "is_encoder_decoder", False) else "self")
    plt = _pyplot()

    if query is not None:
        lowered = [label.lower() for label in query_labels]
        if query.lower() not in lowered:
            raise ValueError(f"`query` {query!r} is not one of the tokens of the sentence: {query_labels}.")
        row = lowered.index(query.lower())
        matrix = torch.stack([weights[i, h, row] for i in layers for h in heads])  # (L*H, Tk)
        names = [f"layer {i} head {h}" for i in layers for h in heads]
        figsize = attention_figure_size(1, len(key_labels), len(names), 1, query_mode=True)
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
        image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=float(matrix.max()), aspect="auto")
        ax.set_xticks(range(len(key_labels)), key_labels, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("attended token (key)")
        ax.set_title(title or f"{kind} attention from {query_labels[row]!r}", fontsize=11)
        fig.colorbar(image, ax=ax, label="attention weight", fraction=0.04, pad=0.02)
        return _save(fig, path)

    figsize = attention_figure_size(len(query_labels), len(key_labels), len(layers), len(heads))
    fig, axes = plt.subplots(len(layers), len(heads), figsize=figsize, squeeze=False, constrained_layout=True)
    for r, i in enumerate(layers):
        for c, h in enumerate(heads):
            ax = axes[r][c]
            image = ax.imshow(weights[i, h], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {i}, head {h}", fontsize=9)
            ax.set_xticks(range(len(key_labels)), key_labels if r == len(layers) - 1 else [], rotation=90, fontsize=7)
            ax.set_yticks(range(len(query_labels)), query_labels if c == 0 else [], fontsize=7)
    fig.colorbar(image, ax=axes, label="attention weight", shrink=0.8)
    fig.suptitle(title or f"{kind} attention (rows: queries, columns: keys)", fontsize=11)
    return _save(fig, path)


# ------------------------------------------------------------------------------------- positional encoding


def sinusoidal_matrix(num_positions: int, hidden_size: int, layout: str = "interleaved") -> torch.Tensor:
    """The (num_positions, hidden_size) sinusoidal table, computed by the model's own module."""
    module = SinusoidalPositionalEncoding(SimpleNamespace(hidden_size=hidden_size, sinusoidal_layout=layout))
    return module(torch.arange(num_positions)[None], torch.float64)[0]


def plot_positional_encoding(path, *, num_positions: int = 64, hidden_size: int = 128,
                             layout: str = "interleaved") -> Path:
    """Left: PE[position, feature]. Right: cosine similarity PE[p] . PE[q], which depends only on p - q."""
    if hidden_size % 2 or hidden_size < 2 or num_positions < 1:
        raise ValueError(
            f"`hidden_size` must be even and >= 2 and `num_positions` >= 1; got {hidden_size}, {num_positions}."
        )
    pe = sinusoidal_matrix(num_positions, hidden_size, layout)
    unit = pe / pe.norm(dim=-1, keepdim=True)
    similarity = unit @ unit.T  # (P, P)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    image = left.imshow(pe, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    left.set_xlabel(f"feature (0 .. {hidden_size - 1}; {layout} sin / cos)")
    left.set_ylabel("position")
    left.set_title("sinusoidal encoding PE[position, feature]")
    fig.colorbar(image, ax=left, label="value")
    image = right.imshow(similarity, cmap="magma", aspect="equal")
    right.set_xlabel("position")
    right.set_ylabel("position")
    right.set_title("cosine similarity between positions")
    fig.colorbar(image, ax=right, label="cosine similarity")
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------- masks


def attention_masks(length: int, padding: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(causal, bidirectional) boolean (T, T) masks, True = may attend, built by transformers' masking
    utilities exactly as the GPT (``create_causal_mask``) and the encoder (``create_bidirectional_mask``) do.
    The last ``padding`` tokens are padding."""
    from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

    from .configuration_mini import MiniGPTConfig

    if not (isinstance(length, int) and length >= 1 and isinstance(padding, int) and 0 <= padding < length):
        raise ValueError(f"`length` must be >= 1 and `padding` in [0, length); got length={length}, padding={padding}.")
    config = MiniGPTConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=1)
    config._attn_implementation = "sdpa"  # boolean masks (True = attend); None means "everything allowed"
    embeds = torch.zeros(1, length, 8)
    padding_mask = torch.ones(1, length, dtype=torch.long)
    if padding:
        padding_mask[:, length - padding:] = 0
    causal = create_causal_mask(config=config, inputs_embeds=embeds, attention_mask=padding_mask, cache=None,
                                position_ids=torch.arange(length)[None])
    if causal is None:  # sdpa leaves pure causality to the kernel's is_causal flag
        causal = torch.ones(length, length, dtype=torch.bool).tril()
    bidirectional = create_bidirectional_mask(config=config, inputs_embeds=embeds, attention_mask=padding_mask)
    if bidirectional is None:
        bidirectional = torch.ones(length, length, dtype=torch.bool)
    return causal.reshape(-1, length, length)[0], bidirectional.reshape(-1, length, length)[0]


def sliding_window_mask(length: int, sliding_window: int, padding: int = 0, bidirectional: bool = False):
    """The boolean (T, T) mask of a sliding-window layer: a GPT's (``create_sliding_window_causal_mask``: a token sees
    itself and the ``sliding_window - 1`` tokens before it) or, ``bidirectional``, an encoder's local layer
    (``create_bidirectional_sliding_window_mask``: the tokens at most ``sliding_window`` away on either side). The last
    ``padding`` tokens are padding."""
    from transformers.masking_utils import create_bidirectional_sliding_window_mask, create_sliding_window_causal_mask

    from .configuration_mini import MiniEncoderConfig, MiniGPTConfig

    if not (isinstance(length, int) and length >= 1 and isinstance(padding, int) and 0 <= padding < length):
        raise ValueError(f"`length` must be >= 1 and `padding` in [0, length); got length={length}, padding={padding}.")
    config_class = MiniEncoderConfig if bidirectional else MiniGPTConfig
    config = config_class(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                          sliding_window=sliding_window)
    config._attn_implementation = "eager"  # always a materialised mask: True = attend
    padding_mask = torch.ones(1, length, dtype=torch.long)
    if padding:
        padding_mask[:, length - padding:] = 0
    kwargs = dict(config=config, inputs_embeds=torch.zeros(1, length, 8), attention_mask=padding_mask)
    if bidirectional:
        mask = create_bidirectional_sliding_window_mask(**kwargs)
    else:
        mask = create_sliding_window_causal_mask(**kwargs, cache=None)
    return mask.reshape(-1, length, length)[0] if mask.dtype == torch.bool else mask.reshape(-1, length, length)[0] == 0


def plot_masks(path, *, tokens: list[str] | None = None, padding: int = 0, sliding_window: int | None = 3) -> Path:
    """The causal mask (decoder: a token sees itself and the past), its sliding-window form (only the last
    ``sliding_window`` tokens; ``None`` leaves both windows out), the bidirectional one (encoder) and its local form
    (the tokens at most ``sliding_window // 2`` away on either side: a span as wide as the causal window)."""
    tokens = list(tokens) if tokens else DEMO_SENTENCE.split()
    tokens = tokens + ["<pad>"] * padding
    causal, bidirectional = attention_masks(len(tokens), padding)
    masks = [causal, bidirectional]
    titles = ["causal (GPT, decoder self-attention)", "bidirectional (encoder self-attention)"]
    if sliding_window is not None:
        masks.insert(1, sliding_window_mask(len(tokens), sliding_window, padding))
        titles.insert(1, f"sliding window of {sliding_window} (Mistral)")
        either_side = max(1, sliding_window // 2)
        masks.append(sliding_window_mask(len(tokens), either_side, padding, bidirectional=True))
        titles.append(f"local: {either_side} either side (ModernBERT)")
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#f2f2f2", "#2b6cb0"])
    fig, axes = plt.subplots(1, len(masks), figsize=mask_figure_size(len(tokens), len(masks)), constrained_layout=True)
    for ax, mask, name in zip(axes, masks, titles, strict=True):
        ax.imshow(mask.int(), cmap=cmap, vmin=0, vmax=1)
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
        ax.set_xlabel("key (attended token)")
        ax.set_ylabel("query")
        ax.set_title(name + (f"\nlast {padding} tokens are padding" if padding else ""), fontsize=10)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color="#2b6cb0", label="may attend"), Patch(color="#f2f2f2", label="masked")],
               loc="outside lower center", ncol=2, frameon=False)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------- normalisation


def plot_normalization(path, *, num_tokens: int = 200, hidden_size: int = 64, seed: int = 0) -> Path:
    """Per-token mean and standard deviation of hidden states before and after LayerNorm and RMSNorm.

    The inputs get a random offset and scale per token. LayerNorm maps every token to mean 0, std 1 (one
    point); RMSNorm only fixes the root mean square, so ``mean^2 + std^2 = 1``: the tokens land on the unit
    circle. Both are the model's own layers (``normalization.build_norm``) at initialisation.
    """
    from .normalization import build_norm

    generator = torch.Generator().manual_seed(seed)
    offset = 3 * torch.randn(num_tokens, 1, generator=generator)
    scale = torch.rand(num_tokens, 1, generator=generator) * 3 + 0.2
    hidden = offset + scale * torch.randn(num_tokens, hidden_size, generator=generator)  # (tokens, D)
    series = {"input hidden states": hidden}
    for norm_type in ("layernorm", "rmsnorm"):
        config = SimpleNamespace(norm_type=norm_type, hidden_size=hidden_size, layer_norm_eps=1e-5, norm_bias=True)
        with torch.no_grad():
            series[f"after {'LayerNorm' if norm_type == 'layernorm' else 'RMSNorm'}"] = build_norm(config)(hidden)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    styles = {"input hidden states": dict(color="grey", alpha=0.5, s=12),
              "after LayerNorm": dict(color="#d62728", s=90, marker="x"),
              "after RMSNorm": dict(color="#1f77b4", s=14)}
    for name, values in series.items():
        mean, std = values.mean(-1), values.std(-1, unbiased=False)
        left.scatter(mean, std, label=name, **styles[name])
        if name != "input hidden states":
            right.scatter(mean, std, label=name, **styles[name])
    circle = torch.linspace(0, math.pi, 200)
    right.plot(torch.cos(circle), torch.sin(circle), color="#1f77b4", linewidth=0.8, linestyle="--",
               label="mean² + std² = 1 (unit RMS)")
    right.set_aspect("equal")
    right.set_ylim(0, 1.5)
    for ax, title in ((left, "per token: mean and std of its features"), (right, "after normalisation (zoom)")):
        ax.set_xlabel("mean over features")
        ax.set_ylabel("standard deviation over features")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


# --------------------------------------------------------------------------------------------- activations


def plot_activations(path, *, names: tuple[str, ...] = ("relu", "gelu", "silu", "sigmoid"),
                     x_range: tuple[float, float] = (-4.0, 4.0)) -> Path:
    """Each activation (``activations.ACTIVATIONS`` names, plus ``"sigmoid"``) and its derivative."""
    functions = {}
    for name in names:
        functions[name] = binary_probability if name == "sigmoid" else get_activation(name)
    x = torch.linspace(*x_range, 401, dtype=torch.float64, requires_grad=True)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for name, fn in functions.items():
        y = fn(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        left.plot(x.detach(), y.detach(), label=name, linewidth=2)
        right.plot(x.detach(), grad, label=name, linewidth=2)
    for ax, title in ((left, "activation f(x)"), (right, "derivative f'(x)")):
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.axvline(0, color="grey", linewidth=0.6)
        ax.grid(alpha=0.3)
        ax.set_xlabel("x")
        ax.set_title(title)
        ax.legend()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------- training loss


def read_log_history(output_dir) -> list[dict]:
    """``log_history`` of ``output_dir/trainer_state.json``, or of its latest ``checkpoint-*`` folder."""
    output_dir = Path(output_dir)
    state = output_dir / "trainer_state.json"
    if not state.is_file():
        def step(state_file: Path) -> int:
            suffix = state_file.parent.name.split("-")[-1]
            return int(suffix) if suffix.isdigit() else -1

        checkpoints = sorted(output_dir.glob("checkpoint-*/trainer_state.json"), key=step)
        if not checkpoints:
            raise ValueError(
                f"No trainer_state.json in {output_dir} or its checkpoint-* folders: pass the output_dir of a "
                "Trainer run (it is written at each save and at the end of training)."
            )
        state = checkpoints[-1]
    return json.loads(state.read_text()).get("log_history", [])


def plot_training_loss(output_dir, path, *, title: str | None = None) -> Path:
    """Training loss (and evaluation loss, when logged) against the optimisation step."""
    history = read_log_history(output_dir)
    train = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry and "step" in entry]
    evals = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry and "step" in entry]
    if not train and not evals:
        raise ValueError(f"The log history of {output_dir} holds no 'loss' or 'eval_loss': set logging_steps so the "
                         "Trainer logs the loss.")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss", linewidth=2, marker="." if len(train) < 40 else None)
    if evals:
        ax.plot(*zip(*evals, strict=True), label="evaluation loss", linewidth=2, marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (cross-entropy, nats)")
    ax.set_title(title or f"training loss: {Path(output_dir).name}")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------------------ demo

_DEMO_CORPUS = [
    "o gato subiu no telhado porque viu um pássaro",
    "o cão correu no jardim porque viu um gato",
    "o pássaro voou para o telhado porque viu o gato",
    "a menina subiu na árvore porque viu um pássaro",
    "o menino correu para casa porque viu a chuva",
    "o gato dormiu no sofá porque estava cansado",
    "a menina leu um livro no jardim",
    "o cão dormiu no telhado porque estava calor",
    "o pássaro cantou no jardim porque viu o sol",
    "o menino subiu no telhado porque viu o cão",
]


#: English renderings of :data:`_DEMO_CORPUS`, for the tiny translation model of the cross-attention picture.
_DEMO_TRANSLATIONS = [
    "the cat climbed onto the roof because it saw a bird",
    "the dog ran in the garden because it saw a cat",
    "the bird flew to the roof because it saw the cat",
    "the girl climbed the tree because she saw a bird",
    "the boy ran home because he saw the rain",
    "the cat slept on the sofa because it was tired",
    "the girl read a book in the garden",
    "the dog slept on the roof because it was hot",
    "the bird sang in the garden because it saw the sun",
    "the boy climbed onto the roof because he saw the dog",
]


def word_tokenizer(sentences: list[str]):
    """A word-level tokenizer over ``sentences`` (lower-cased, whitespace split), built in memory."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    words = sorted({word for sentence in sentences for word in sentence.lower().split()})
    vocab = {token: i for i, token in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def train_demo_gpt(output_dir, *, steps: int = 150, seed: int = 0):
    """Train a tiny GPT on :data:`_DEMO_CORPUS` with the HF Trainer; returns ``(model, tokenizer)``.

    Seconds on a CPU; the output folder gets the ``trainer_state.json`` that :func:`plot_training_loss` reads.
    """
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from .configuration_mini import MiniGPTConfig
    from .modeling_gpt import MiniGPTForCausalLM

    torch.manual_seed(seed)
    tokenizer = word_tokenizer(_DEMO_CORPUS)
    config = MiniGPTConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, max_position_embeddings=32, hidden_dropout=0.0,
                           attention_dropout=0.0, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = MiniGPTForCausalLM(config)
    rows = [tokenizer(sentence)["input_ids"] for sentence in _DEMO_CORPUS]
    width = max(map(len, rows))
    data = Dataset.from_dict({
        "input_ids": [r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows],
        "attention_mask": [[1] * len(r) + [0] * (width - len(r)) for r in rows],
        "labels": [r + [-100] * (width - len(r)) for r in rows],
    })
    args = TrainingArguments(output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=len(rows),
                             learning_rate=3e-3, warmup_steps=10, logging_steps=5, save_strategy="no",
                             report_to=[], seed=seed, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    trainer.save_state()
    model.eval()
    model.set_attn_implementation("eager")
    return model, tokenizer


def train_demo_translator(*, steps: int = 200, seed: int = 0):
    """Train a tiny encoder-decoder to translate :data:`_DEMO_CORPUS` into English; returns ``(model, tokenizer)``.

    A plain PyTorch loop of a few seconds: the point is a cross-attention map worth looking at, not a translator.
    """
    from .configuration_mini import MiniSeq2SeqConfig
    from .modeling_seq2seq import MiniSeq2SeqForConditionalGeneration

    torch.manual_seed(seed)
    tokenizer = word_tokenizer(_DEMO_CORPUS + _DEMO_TRANSLATIONS)
    pad, bos, eos = tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id
    config = MiniSeq2SeqConfig(vocab_size=len(tokenizer), hidden_size=64, encoder_layers=2, decoder_layers=2,
                               num_attention_heads=4, intermediate_size=128, max_position_embeddings=32,
                               hidden_dropout=0.0, attention_dropout=0.0, pad_token_id=pad, bos_token_id=bos,
                               eos_token_id=eos, decoder_start_token_id=bos)
    model = MiniSeq2SeqForConditionalGeneration(config)
    batch = tokenizer(_DEMO_CORPUS, padding=True, return_tensors="pt")
    targets = [ids + [eos] for ids in tokenizer(_DEMO_TRANSLATIONS)["input_ids"]]
    width = max(map(len, targets))
    labels = torch.tensor([ids + [-100] * (width - len(ids)) for ids in targets])  # (B, T_target)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.set_attn_implementation("eager")
    return model, tokenizer


def demo(out_dir, *, steps: int = 150) -> list[Path]:
    """Draw every picture of ``docs/concepts.md`` into ``out_dir`` (trains a tiny GPT and a tiny translator)."""
    import tempfile

    out_dir = Path(out_dir)
    written = [
        plot_activations(out_dir / "activations.png"),
        plot_positional_encoding(out_dir / "positional_encoding.png"),
        plot_masks(out_dir / "masks.png", padding=2),
        plot_normalization(out_dir / "normalization.png"),
    ]
    with tempfile.TemporaryDirectory() as run_dir:
        model, tokenizer = train_demo_gpt(run_dir, steps=steps)
        written.append(plot_training_loss(run_dir, out_dir / "training_loss.png", title="training loss: tiny demo GPT"))
    written.append(plot_attention(model, tokenizer, DEMO_SENTENCE, out_dir / "attention_gpt.png",
                                  title="tiny GPT after training: self-attention per layer and head"))
    written.append(plot_attention(model, tokenizer, DEMO_SENTENCE, out_dir / "attention_query_viu.png", query="viu",
                                  title="tiny GPT: where \"viu\" looks (causal: only itself and earlier words)"))
    try:
        translator, tokenizer = train_demo_translator()
    except ImportError:  # an installation without the encoder-decoder family
        return written
    written.append(plot_attention(translator, tokenizer, DEMO_SENTENCE, out_dir / "attention_cross.png", layer=1,
                                  target_text=_DEMO_TRANSLATIONS[0], attention="cross",
                                  title="tiny translator: cross-attention, English (rows) reads Portuguese (columns)"))
    return written


# ------------------------------------------------------------------------------------------------------- CLI


def _load(model_path: str, tokenizer_path: str | None):
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer
    # importing this module ran modeling_mini/__init__.py, which registered the Auto classes

    config = AutoConfig.from_pretrained(model_path)
    auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModel
    model = auto.from_pretrained(model_path, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or model_path)
    return model, tokenizer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mini-visualize", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("attention", help="attention heatmaps of a sentence")
    p.add_argument("model", help="a saved mini model folder (loaded with attn_implementation='eager')")
    p.add_argument("text", help="the sentence (the encoder's source for an encoder-decoder)")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--tokenizer", help="tokenizer folder or name (default: the model folder)")
    p.add_argument("--layer", type=int, help="only this layer")
    p.add_argument("--head", type=int, help="only this head")
    p.add_argument("--query", help="show where this word of the sentence attends, per layer and head")
    p.add_argument("--target-text", help="decoder text of an encoder-decoder model")
    p.add_argument("--attention", choices=("self", "encoder", "decoder", "cross"), help="which attention to draw")

    p = sub.add_parser("positional", help="sinusoidal positional encoding and position similarity")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--positions", type=int, default=64)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layout", choices=("interleaved", "concatenated"), default="interleaved")

    p = sub.add_parser("masks", help="causal and bidirectional masks and their sliding-window forms side by side")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--text", default=DEMO_SENTENCE, help="words to label the axes with")
    p.add_argument("--padding", type=int, default=0, help="number of padding tokens at the end")
    p.add_argument("--sliding-window", type=int, default=3,
                   help="window of the causal sliding mask (half of it either side for the local one); 0: neither")

    p = sub.add_parser("normalization", help="per-token mean / std before and after LayerNorm and RMSNorm")
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("activations", help="ReLU, GELU, SiLU, sigmoid and their derivatives")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--names", nargs="+", default=["relu", "gelu", "silu", "sigmoid"])

    p = sub.add_parser("loss", help="training-loss curve of a Trainer output folder")
    p.add_argument("output_dir", help="folder holding trainer_state.json (or checkpoint-*/trainer_state.json)")
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("demo", help="train a tiny GPT and translator, then draw every concept picture")
    p.add_argument("out_dir", help="folder for the PNG files (e.g. docs/images)")
    p.add_argument("--steps", type=int, default=150)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "attention":
        model, tokenizer = _load(args.model, args.tokenizer)
        written = [plot_attention(model, tokenizer, args.text, args.output, layer=args.layer, head=args.head,
                                  query=args.query, target_text=args.target_text, attention=args.attention)]
    elif args.command == "positional":
        written = [plot_positional_encoding(args.output, num_positions=args.positions, hidden_size=args.hidden_size,
                                            layout=args.layout)]
    elif args.command == "masks":
        written = [plot_masks(args.output, tokens=args.text.split(), padding=args.padding,
                              sliding_window=args.sliding_window or None)]
    elif args.command == "normalization":
        written = [plot_normalization(args.output)]
    elif args.command == "activations":
        written = [plot_activations(args.output, names=tuple(args.names))]
    elif args.command == "loss":
        written = [plot_training_loss(args.output_dir, args.output)]
    else:
        written = demo(args.out_dir, steps=args.steps)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
