"""One property test per Transformer concept (docs/concepts.md links each section to its test here).

Each test states a property the concept promises and checks it on a tiny model, so it fails if the code
stops implementing the concept: a causal mask that leaks, attention rows that are not distributions, a
norm placed on the wrong side of the residual, and so on.
"""

import math

import pytest
import torch
from conftest import TINY, padded_batch, tiny_gpt_config
from torch import nn

import modeling_mini
from modeling_mini import MiniGPTForCausalLM, MiniGPTForSequenceClassification, MiniGPTModel, binary_probability
from modeling_mini.activations import get_activation
from modeling_mini.attention import MiniAttention
from modeling_mini.blocks import MiniBlock
from modeling_mini.feed_forward import MiniFeedForward
from modeling_mini.normalization import build_norm
from modeling_mini.positional import SinusoidalPositionalEncoding

ENCODER = modeling_mini.MiniEncoderModel
SEQ2SEQ = modeling_mini.MiniSeq2SeqForConditionalGeneration


def gpt(**overrides):
    return MiniGPTModel(tiny_gpt_config(**overrides)).eval()


def encoder(**overrides):
    return ENCODER(modeling_mini.MiniEncoderConfig(**{**TINY, **overrides})).eval()


def random_ids(batch=2, length=8, seed=0):
    return torch.randint(3, TINY["vocab_size"], (batch, length), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ activations


def test_activations_match_their_definitions():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    torch.testing.assert_close(get_activation("relu")(x), x.clamp(min=0))
    normal_cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    torch.testing.assert_close(get_activation("gelu")(x), x * normal_cdf)
    torch.testing.assert_close(get_activation("silu")(x), x * torch.sigmoid(x))
    # GPT-2's default: GELU's tanh approximation
    tanh_gelu = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(get_activation("gelu_new")(x), tanh_gelu)
    # the non-linearity is what keeps stacked layers from collapsing into one linear map
    for name in ("relu", "gelu", "gelu_new", "silu"):
        f = get_activation(name)
        assert not torch.allclose(f(x[:50] + x[50:-1]), f(x[:50]) + f(x[50:-1])), name


def test_binary_score_is_a_probability():
    config = tiny_gpt_config(num_labels=1, problem_type="multi_label_classification")
    model = MiniGPTForSequenceClassification(config).eval()
    with torch.no_grad():
        nn.init.normal_(model.score.weight, std=0.5)  # spread the logits over both signs
        ids, mask = padded_batch(batch=3)
        out = model(ids, attention_mask=mask, labels=torch.tensor([1.0, 0.0, 1.0]))
    score = binary_probability(out.logits)
    assert out.logits.shape == (3, 1)
    assert bool(((score > 0) & (score < 1)).all())
    torch.testing.assert_close(score, 1 / (1 + torch.exp(-out.logits)))
    # trained with binary cross-entropy on that sigmoid
    p, y = score.double(), torch.tensor([[1.0], [0.0], [1.0]], dtype=torch.float64)
    expected = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    torch.testing.assert_close(out.loss.double(), expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------- all positions at once


def test_one_forward_computes_every_position_at_once():
    """Training reads all T positions in one pass; it equals T sequential steps with a key/value cache."""
    model = MiniGPTForCausalLM(tiny_gpt_config()).eval()
    ids = random_ids(batch=1, length=6)
    with torch.no_grad():
        parallel = model(ids, use_cache=False).logits  # (1, T, V) from one call
        cache, steps = None, []
        for t in range(ids.shape[1]):
            out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
            cache = out.cache
            steps.append(out.logits)
    assert parallel.shape == (1, 6, TINY["vocab_size"])
    torch.testing.assert_close(torch.cat(steps, dim=1), parallel, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------------- FFN


def test_feed_forward_acts_on_each_position_independently():
    ffn = MiniFeedForward(tiny_gpt_config()).eval()
    x = torch.randn(2, 7, TINY["hidden_size"])
    with torch.no_grad():
        full = ffn(x)
        one_at_a_time = torch.cat([ffn(x[:, t : t + 1]) for t in range(7)], dim=1)
        permutation = torch.randperm(7)
        permuted = ffn(x[:, permutation])
    torch.testing.assert_close(full, one_at_a_time)
    torch.testing.assert_close(permuted, full[:, permutation])


# ------------------------------------------------------------------------------------ positional encoding


def test_sinusoidal_encoding_is_bounded_and_shifts_by_rotation():
    config = tiny_gpt_config(hidden_size=16, num_attention_heads=4)
    positions = torch.arange(50)[None]
    pe = SinusoidalPositionalEncoding(config)(positions, torch.float64)[0]  # (50, 16), interleaved sin/cos
    assert pe.abs().max() <= 1.0
    torch.testing.assert_close(pe.norm(dim=-1), torch.full((50,), math.sqrt(8), dtype=torch.float64))
    # PE[p + k] = R_k PE[p], where R_k rotates each (sin, cos) pair by k * frequency, whatever p is.
    frequencies = 1.0 / 10000 ** (torch.arange(0, 16, 2, dtype=torch.float64) / 16)
    for k in (1, 5, 17):
        cos, sin = torch.cos(k * frequencies), torch.sin(k * frequencies)
        pairs = pe[:-k].view(-1, 8, 2)  # (P, D/2, [sin, cos])
        sines, cosines = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((sines * cos + cosines * sin, cosines * cos - sines * sin), dim=-1)
        torch.testing.assert_close(rotated.flatten(-2), pe[k:])
    # hence the similarity of two positions depends only on their distance
    gram = pe @ pe.T
    torch.testing.assert_close(torch.diagonal(gram, 3), torch.full((47,), float(gram[0, 3]), dtype=torch.float64))


@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned", "rotary"])
def test_positions_make_word_order_matter(position_embedding_type):
    model = gpt(position_embedding_type=position_embedding_type, initializer_range=0.2)
    ids = random_ids(batch=1, length=6)
    swapped = ids[:, [1, 0, 2, 3, 4, 5]]
    with torch.no_grad():
        last = model(ids).last_hidden_state[:, -1]
        last_swapped = model(swapped).last_hidden_state[:, -1]
    assert (last - last_swapped).abs().max() > 1e-3


def test_without_positions_a_causal_layer_reads_its_past_as_a_set():
    # one layer: with more, earlier positions' states depend on their own (reordered) prefixes
    model = gpt(position_embedding_type="none", num_hidden_layers=1, initializer_range=0.2)
    ids = random_ids(batch=1, length=6)
    shuffled = ids[:, [3, 0, 4, 1, 2, 5]]  # the same past tokens in another order, same last token
    with torch.no_grad():
        last = model(ids).last_hidden_state[:, -1]
        last_shuffled = model(shuffled).last_hidden_state[:, -1]
        moved = model(ids[:, [3, 0, 4, 1, 5, 2]]).last_hidden_state[:, -1]  # another token last
    torch.testing.assert_close(last_shuffled, last, atol=1e-5, rtol=1e-5)
    assert (moved - last).abs().max() > 1e-2


def test_without_positions_an_encoder_is_permutation_equivariant():
    ids = random_ids(batch=1, length=7)
    permutation = torch.tensor([4, 2, 6, 0, 1, 5, 3])
    with torch.no_grad():
        plain = encoder(position_embedding_type="none")
        torch.testing.assert_close(plain(ids[:, permutation]).last_hidden_state,
                                   plain(ids).last_hidden_state[:, permutation], atol=1e-5, rtol=1e-5)
        ordered = encoder(position_embedding_type="sinusoidal")
        moved = ordered(ids[:, permutation]).last_hidden_state - ordered(ids).last_hidden_state[:, permutation]
    assert moved.abs().max() > 1e-4


# ------------------------------------------------------------------------------------------- self-attention


def test_attention_weights_are_distributions_over_allowed_positions():
    model = gpt(attn_implementation="eager")
    ids, mask = padded_batch(batch=3, length=9, left=True)
    with torch.no_grad():
        attentions = model(ids, attention_mask=mask, output_attentions=True).attentions
    length = ids.shape[1]
    allowed = torch.ones(length, length).tril().bool()[None] & mask.bool()[:, None, :]  # (B, T, S): past, not padding
    real_queries = mask.bool()
    assert len(attentions) == TINY["num_hidden_layers"]
    for weights in attentions:  # (B, H, T, S)
        assert weights.shape == (3, TINY["num_attention_heads"], length, length)
        assert bool((weights >= 0).all())
        rows = weights.sum(-1)[real_queries.unsqueeze(1).expand_as(weights.sum(-1))]
        torch.testing.assert_close(rows, torch.ones_like(rows))
        forbidden = (~allowed)[:, None] & real_queries[:, None, :, None]
        assert float(weights[forbidden.expand_as(weights)].abs().max()) == 0.0


def test_multi_head_attention_is_the_concatenation_of_single_heads():
    config = tiny_gpt_config(attn_implementation="eager")
    attention = MiniAttention(config, layer_idx=0, is_causal=True).eval()
    x = torch.randn(2, 5, config.hidden_size)
    with torch.no_grad():
        output, _ = attention(x)
        dh, d = config.head_dim, config.hidden_size
        weight, bias = attention.qkv_proj.weight, attention.qkv_proj.bias  # rows: all of Q, then K, then V
        heads = []
        for h in range(config.num_attention_heads):
            q_rows, k_rows, v_rows = (slice(part * d + h * dh, part * d + (h + 1) * dh) for part in range(3))
            q = x @ weight[q_rows].T + bias[q_rows]  # this head's slice of each projection
            k = x @ weight[k_rows].T + bias[k_rows]
            v = x @ weight[v_rows].T + bias[v_rows]
            scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
            scores = scores.masked_fill(~torch.ones(5, 5).tril().bool(), float("-inf"))
            heads.append(scores.softmax(-1) @ v)  # (B, T, Dh)
        expected = attention.o_proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(output, expected, atol=1e-6, rtol=1e-5)


def test_causal_output_ignores_later_tokens():
    model = gpt()
    ids = random_ids(batch=1, length=8)
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1 - 3) % (TINY["vocab_size"] - 3) + 3
    with torch.no_grad():
        before, after = model(ids).last_hidden_state, model(changed).last_hidden_state
    torch.testing.assert_close(after[:, :5], before[:, :5], atol=0, rtol=0)
    assert (after[:, 5:] - before[:, 5:]).abs().max() > 1e-4


def test_encoder_output_sees_later_tokens():
    model = encoder()
    ids = random_ids(batch=1, length=8)
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1 - 3) % (TINY["vocab_size"] - 3) + 3
    with torch.no_grad():
        before, after = model(ids).last_hidden_state, model(changed).last_hidden_state
    assert (after[:, :5] - before[:, :5]).abs().amax(dim=-1).min() > 1e-5  # every earlier position moved


def test_heads_of_a_trained_model_differ():
    """Random init starts every head near uniform attention; training makes each head attend its own way."""
    torch.manual_seed(0)
    model = MiniGPTForCausalLM(tiny_gpt_config(attn_implementation="eager"))
    half = random_ids(batch=16, length=6)
    ids = torch.cat([half, half], dim=1)  # toy task: the second half repeats the first

    def closest_heads() -> float:
        """Smallest total-variation distance between two heads of one layer, averaged over queries."""
        with torch.no_grad():
            attentions = model.eval()(ids, output_attentions=True).attentions
        distances = []
        for weights in attentions:  # (B, H, T, S)
            heads = weights.shape[1]
            for i in range(heads):
                for j in range(i + 1, heads):
                    distances.append(0.5 * (weights[:, i] - weights[:, j]).abs().sum(-1).mean().item())
        return min(distances)

    assert closest_heads() < 0.02
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    first = None
    for _ in range(40):
        loss = model(ids, labels=ids).loss
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    assert closest_heads() > 0.05


# ------------------------------------------------------------------------------------------- forward pass


def test_forward_pass_is_embeddings_then_blocks_then_norm_then_head():
    model = MiniGPTForCausalLM(tiny_gpt_config()).eval()
    ids = random_ids(batch=2, length=6)
    with torch.no_grad():
        backbone = model.model
        positions = torch.arange(6)[None]
        hidden = backbone.embeddings.embed_tokens(ids) + backbone.embeddings.embed_positions(positions, torch.float32)
        for block in backbone.layers:
            hidden = block(hidden)  # no mask: causal attention from is_causal
        logits = model.lm_head(backbone.norm(hidden))  # (B, T, V)
        expected = model(ids).logits
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("norm_type", ["layernorm", "rmsnorm"])
def test_normalised_activations_have_unit_scale_per_token(norm_type):
    model = gpt(norm_type=norm_type)
    captured = []
    norm = model.layers[1].self_attn_norm  # at init: gain 1, bias 0
    handle = norm.register_forward_hook(lambda module, args, output: captured.append((args[0], output)))
    with torch.no_grad():
        model(random_ids(batch=2, length=6))
    handle.remove()
    (before, after), = captured
    assert before.std(-1).sub(1).abs().max() > 0.1  # the residual stream is not unit-scale by itself
    if norm_type == "layernorm":
        torch.testing.assert_close(after.mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)
        torch.testing.assert_close(after.var(-1, unbiased=False), torch.ones(2, 6), atol=1e-3, rtol=0)
    else:
        torch.testing.assert_close(after.pow(2).mean(-1).sqrt(), torch.ones(2, 6), atol=1e-3, rtol=0)
        assert after.mean(-1).abs().max() > 1e-3  # RMSNorm does not centre


# ------------------------------------------------------------------------------------------------- blocks


@pytest.mark.parametrize("norm_position", ["pre", "post", "sandwich", "output"])
def test_block_residual_and_norm_placement(norm_position):
    """With its sub-layers silenced, a pre-, sandwich- or output-norm block is the identity (the residual path is
    untouched: a norm of the sub-layer's zero output adds zero); a post-norm block normalises after each residual sum,
    so it returns norm(norm(x))."""
    config = tiny_gpt_config(norm_position=norm_position)
    block = MiniBlock(config, layer_idx=0, is_causal=True).eval()
    with torch.no_grad():
        for projection in (block.self_attn.o_proj, block.mlp.down_proj):
            projection.weight.zero_()
            projection.bias.zero_()
        x = 3.0 + 2.0 * torch.randn(2, 5, config.hidden_size)
        y = block(x)
        if norm_position != "post":
            torch.testing.assert_close(y, x)
        else:
            norm = build_norm(config)
            torch.testing.assert_close(y, norm(norm(x)))
            torch.testing.assert_close(y.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)


@pytest.mark.parametrize("shared", [False, True], ids=["two-norms", "one-norm"])
def test_parallel_block_feeds_both_sub_layers_the_same_input(shared):
    """``parallel_residual`` (GPT-NeoX): ``x + attn(norm1(x)) + mlp(norm2(x))``; with ``parallel_shared_norm`` (Phi)
    ``norm2`` is ``norm1``. The feed-forward reads the block's input, not the attention's output; the sequential
    pre-norm block computes something else."""
    config = tiny_gpt_config(parallel_residual=True, parallel_shared_norm=shared, hidden_dropout=0.0)
    block = MiniBlock(config, layer_idx=0, is_causal=True).eval()
    assert (block.mlp_norm is None) == shared
    x = torch.randn(2, 5, config.hidden_size)
    with torch.no_grad():
        attn = block.self_attn(block.self_attn_norm(x))[0]
        expected = x + attn + block.mlp((block.self_attn_norm if shared else block.mlp_norm)(x))
        torch.testing.assert_close(block(x), expected)
        sequential = MiniBlock(tiny_gpt_config(hidden_dropout=0.0), layer_idx=0, is_causal=True).eval()
        sequential.load_state_dict(block.state_dict(), strict=not shared)  # one norm: the second stays fresh
        assert not torch.allclose(sequential(x), expected, atol=1e-4)


# -------------------------------------------------------------------------------- pretraining / fine-tuning


def test_fine_tuning_starts_from_the_pretrained_backbone(tmp_path):
    pretrained = MiniGPTForCausalLM(tiny_gpt_config())
    pretrained.save_pretrained(tmp_path)
    classifier = MiniGPTForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    reference = pretrained.model.state_dict()
    for key, value in classifier.model.state_dict().items():
        assert torch.equal(value, reference[key]), key  # the whole body is reused
    assert not hasattr(pretrained, "score") and classifier.score.weight.shape == (2, TINY["hidden_size"])  # new head


# ------------------------------------------------------------------------------------- encoder vs decoder


def test_gpt_is_a_stack_of_causal_blocks_without_cross_attention():
    model = MiniGPTForCausalLM(tiny_gpt_config()).eval()
    assert all(block.self_attn.is_causal and block.cross_attn is None for block in model.model.layers)
    ids = random_ids(batch=1, length=4)
    with torch.no_grad():
        next_token = model(ids).logits[0, -1].argmax()
        generated = model.generate(ids, max_new_tokens=1, do_sample=False)
    assert generated[0, -1] == next_token  # generation = repeated next-token prediction


def test_cross_attention_reads_the_encoder_output():
    config = modeling_mini.MiniSeq2SeqConfig(**{**TINY, "decoder_start_token_id": 1})
    model = SEQ2SEQ(config).eval()
    source = random_ids(batch=1, length=7)
    other_source = random_ids(batch=1, length=7, seed=1)
    target = random_ids(batch=1, length=5, seed=2)
    with torch.no_grad():
        logits = model(input_ids=source, decoder_input_ids=target).logits
        other = model(input_ids=other_source, decoder_input_ids=target).logits
        again = model(input_ids=source, decoder_input_ids=target).logits
    torch.testing.assert_close(again, logits)
    assert (other - logits).abs().amax(dim=-1).min() > 1e-5  # every target position depends on the source
    blocks = model.model.decoder.layers
    assert all(block.cross_attn is not None and not block.cross_attn.is_causal for block in blocks)


# ------------------------------------------------------------------------------------ the concept guide


def test_concepts_doc_quotes_the_code_and_names_real_tests():
    """docs/concepts.md: every quoted `file:first-last` block matches the code, every picture exists, and
    every test it names exists here (so the guide cannot drift from the code silently)."""
    import re

    from conftest import ROOT

    doc = (ROOT / "docs" / "concepts.md").read_text()
    blocks = re.findall(r"```python\n# ([\w/.]+):(\d+)-(\d+)\n(.*?)\n```", doc, flags=re.S)
    assert len(blocks) >= 14
    for path, first, last, quoted in blocks:
        lines = (ROOT / path).read_text().splitlines()[int(first) - 1 : int(last)]
        assert quoted.splitlines() == lines, (f"{path}:{first}-{last} no longer matches the quote in docs/concepts.md; "
                                              "if the code only moved, run python docs/update_quotes.py")
    for image in re.findall(r"!\[[^\]]*\]\((images/[\w.]+)\)", doc):
        assert (ROOT / "docs" / image).is_file(), image
    here = (ROOT / "tests" / "test_concepts.py").read_text()
    named = set(re.findall(r"test_concepts\.py::(\w+)", doc)) | set(re.findall(r"`(test_\w+)`", doc))
    assert len(named) >= 14
    for name in named:
        assert f"def {name}(" in here, name
