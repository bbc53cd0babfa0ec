"""Shared building blocks at module level: grouped-query attention, the key/value cache, rotary offsets,
and the attention backends on the masks transformers builds; and what every family shares: embedding checks,
position caches, loading in half precision."""

import pytest
import torch
from conftest import count_host_reads, tiny_gpt_config
from transformers.cache_utils import DynamicCache

from modeling_mini.attention import MiniAttention, repeat_kv
from modeling_mini.blocks import MiniBlock
from modeling_mini.feed_forward import MiniFeedForward
from modeling_mini.positional import RotaryEmbedding


def attention(impl="eager", **overrides) -> MiniAttention:
    config = tiny_gpt_config(attn_implementation=impl, **overrides)
    torch.manual_seed(0)
    return MiniAttention(config, layer_idx=0, is_causal=True).eval()


def test_grouped_query_attention_equals_multi_head_with_repeated_key_value_heads():
    gqa = attention(num_key_value_heads=2)  # 4 query heads, 2 key/value heads: groups of 2
    mha = attention()
    head_dim = gqa.head_dim
    assert gqa.split_sizes == (4 * head_dim, 2 * head_dim, 2 * head_dim)  # the cache holds 2 heads, not 4
    assert gqa.qkv_proj.weight.shape == (8 * head_dim, 32)
    with torch.no_grad():
        mha.o_proj.load_state_dict(gqa.o_proj.state_dict())
        for tensor in ("weight", "bias"):
            q, k, v = getattr(gqa.qkv_proj, tensor).split(gqa.split_sizes)
            # (Hkv * Dh, ...) -> (H * Dh, ...): each key/value head serves the query heads of its group
            k, v = (x.unflatten(0, (2, 1, head_dim)).expand(2, 2, head_dim, *x.shape[1:]).flatten(0, 2) for x in (k, v))
            getattr(mha.qkv_proj, tensor).copy_(torch.cat([q, k, v]))
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        torch.testing.assert_close(gqa(x)[0], mha(x)[0])
    kv = torch.randn(2, 2, 5, 8)
    assert torch.equal(repeat_kv(kv, 2)[:, 1], kv[:, 0]) and torch.equal(repeat_kv(kv, 2)[:, 2], kv[:, 1])


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_block_fed_token_by_token_through_the_cache_equals_one_causal_pass(impl):
    config = tiny_gpt_config(attn_implementation=impl, position_embedding_type="rotary", num_key_value_heads=2)
    torch.manual_seed(0)
    block = MiniBlock(config, layer_idx=0, is_causal=True).eval()
    rotary = RotaryEmbedding(config)
    x = torch.randn(2, 6, 32)
    positions = torch.arange(6)[None]
    with torch.no_grad():
        full = block(x, position_embeddings=rotary(positions, x.dtype))
        cache = DynamicCache(config=config)
        steps = [block(x[:, t : t + 1], position_embeddings=rotary(positions[:, t : t + 1], x.dtype), cache=cache)
                 for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.get_seq_length() == 6


def test_rotary_attention_depends_only_on_relative_positions():
    module = attention(position_embedding_type="rotary")
    rotary = RotaryEmbedding(module.config)
    x = torch.randn(1, 5, 32)
    with torch.no_grad():
        outs = [module(x, position_embeddings=rotary(torch.arange(5)[None] + shift, x.dtype))[0] for shift in (0, 17)]
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("options, fused_kept", [
    ({}, True),  # GPT-2's layout: the attention saves the query, key and value views: all of the product
    ({"position_embedding_type": "rotary"}, False),
    ({"position_embedding_type": "rotary", "partial_rotary_factor": 0.5}, False),
    ({"qk_norm": True, "position_embedding_type": "rotary"}, True),  # the norms save the query and key views
])
def test_training_keeps_the_fused_projection_only_when_all_three_views_are_saved(options, fused_kept):
    """Rotary positions make new query / key tensors. Were the value still a view of the fused (B, T, q + 2 kv)
    output, the attention would save it for backward and keep the whole matrix (a Llama-shaped model's CPU training
    peak was 1.033 of transformers' for that): the value is copied out instead. (Eager attention's matmuls save
    copies of their own, so there the projection goes either way.)"""
    module = attention("sdpa", **options).train()
    storages = {}

    def remember(mod, args, out):
        storages["fused"] = out  # held, so its address is not reused by a later tensor

    module.qkv_proj.register_forward_hook(remember)
    saved = []

    def pack(tensor):
        saved.append(tensor.untyped_storage().data_ptr())
        return tensor

    x = torch.randn(2, 7, 32, requires_grad=True)
    rotary = RotaryEmbedding(module.config) if options else None
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = module(x, position_embeddings=rotary(torch.arange(7)[None], x.dtype) if rotary else None)[0]
    assert (storages["fused"].untyped_storage().data_ptr() in saved) is fused_kept
    output.sum().backward()  # and the gradients still reach the input and the projection
    assert x.grad is not None and module.qkv_proj.weight.grad.abs().sum() > 0


def test_eager_and_sdpa_agree_on_a_boolean_padding_mask():
    x = torch.randn(2, 6, 32)
    allowed = torch.ones(6, 6).tril().bool()[None, None].repeat(2, 1, 1, 1)  # (B, 1, T, S)
    allowed[1, :, :, :2] = False  # row 1: the first two keys are padding
    allowed[1, :, :2, 0] = True  # padded queries keep one key so no row is empty
    outs = {}
    for impl in ("eager", "sdpa"):
        module = attention(impl)
        with torch.no_grad():
            outs[impl], weights = module(x, attention_mask=allowed)
    torch.testing.assert_close(outs["sdpa"], outs["eager"], atol=1e-5, rtol=1e-5)


def test_gelu_new_is_gpt2s_tanh_formula_in_one_fused_op():
    from transformers.activations import NewGELUActivation

    from modeling_mini.activations import get_activation

    x = torch.linspace(-8, 8, 2001, dtype=torch.float64)
    torch.testing.assert_close(get_activation("gelu_new")(x), NewGELUActivation()(x), atol=1e-12, rtol=0)
    x = x.float()
    with torch.profiler.profile() as prof:  # one aten kernel, not the formula's eight
        get_activation("gelu_new")(x)
    ops = {e.name for e in prof.events() if e.name.startswith("aten::")}
    assert ops == {"aten::gelu"}, ops


def test_activation_dropout_drops_hidden_units_in_training_only():
    x = torch.randn(2, 5, 32)
    torch.manual_seed(0)
    ffn = MiniFeedForward(tiny_gpt_config(activation_dropout=0.5))
    plain = MiniFeedForward(tiny_gpt_config(activation_dropout=0.0))
    plain.load_state_dict(ffn.state_dict())
    ffn.eval()
    reference = ffn(x)
    ffn.train()
    assert not torch.allclose(ffn(x), reference)  # hidden units dropped (and the rest scaled up)
    plain.train()
    assert torch.equal(plain(x), reference)  # nothing else in the FFN is random
    with pytest.raises(ValueError, match="activation_dropout"):
        tiny_gpt_config(activation_dropout=1.5)


@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_residual_dropout_acts_in_training_only(norm_position):
    x = torch.randn(2, 5, 32)
    torch.manual_seed(0)
    block = MiniBlock(tiny_gpt_config(hidden_dropout=0.5, norm_position=norm_position), 0, is_causal=True)
    plain = MiniBlock(tiny_gpt_config(hidden_dropout=0.0, norm_position=norm_position), 0, is_causal=True)
    plain.load_state_dict(block.state_dict())
    block.train()
    assert not torch.allclose(block(x), block(x))  # a fresh mask each call
    block.eval()
    assert torch.equal(block(x), plain.eval()(x))


def test_every_embedding_range_check_shares_one_host_read():
    """Token ids, segment ids and learned positions are checked with one read-back per forward, not one each:
    on a GPU every read-back stalls the host until the device has caught up."""
    from modeling_mini import MiniEncoderConfig, MiniEncoderModel, MiniGPTForCausalLM

    ids = torch.randint(3, 99, (2, 6))
    gpt = MiniGPTForCausalLM(tiny_gpt_config(position_embedding_type="learned")).eval()
    encoder_config = MiniEncoderConfig(**{**tiny_gpt_config().to_dict(), "type_vocab_size": 2,
                                          "position_embedding_type": "learned"})
    encoder = MiniEncoderModel(encoder_config).eval()
    with torch.no_grad():
        assert count_host_reads(lambda: gpt(ids)) == 1
        assert count_host_reads(lambda: gpt(ids, use_cache=False)) == 1  # as in training: no packed-sequence check
        assert count_host_reads(lambda: encoder(ids, token_type_ids=torch.ones_like(ids))) == 1
        assert count_host_reads(lambda: encoder(ids)) == 1
        no_segments = MiniEncoderModel(MiniEncoderConfig(**{**encoder_config.to_dict(), "type_vocab_size": 0})).eval()
        assert count_host_reads(lambda: no_segments(ids, token_type_ids=torch.zeros_like(ids))) == 1
        # no segment table (DistilBERT's, ModernBERT's): a pair's segment ids are ignored, as those models ignore them
        # (a BERT tokenizer sends 1s for the second text; before, they were refused and text-pair pipelines failed)
        torch.testing.assert_close(no_segments(ids, token_type_ids=torch.ones_like(ids)).last_hidden_state,
                                   no_segments(ids).last_hidden_state, atol=0, rtol=0)
        # the checks still fire, each naming its own table
        with pytest.raises(ValueError, match="token_type_ids.*2.*type_vocab_size=2"):
            encoder(ids, token_type_ids=torch.full_like(ids, 2))
        with pytest.raises(ValueError, match="position_ids.*64.*max_position_embeddings=64.*truncate"):
            gpt(torch.randint(3, 99, (1, 65)))


@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "rotary"])
def test_position_caches_made_under_inference_mode_still_train(position_embedding_type):
    """Frequencies (and sinusoidal tables) are cached per device on first use; a first use under
    ``torch.inference_mode`` (a pipeline) must not leave an inference tensor behind that a later training step
    cannot save for backward."""
    from modeling_mini import MiniGPTForCausalLM
    from modeling_mini.positional import _FREQUENCIES, _TABLES

    _FREQUENCIES.clear()
    _TABLES.clear()
    model = MiniGPTForCausalLM(tiny_gpt_config(position_embedding_type=position_embedding_type))
    ids = torch.randint(3, 99, (2, 6))
    with torch.inference_mode():
        expected = model.eval()(ids).logits
    cached = [*_FREQUENCIES.values(), *_TABLES.values()]
    assert cached and not any(t.is_inference() for t in cached)
    model.train()(ids, labels=ids).loss.backward()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(ids).logits, expected, atol=0, rtol=0)


def test_sinusoidal_table_lookup_equals_the_formula_bit_for_bit():
    """Positions a caller can bound (a decoder's past + length) are looked up in a cached table; the values are
    exactly those of the formula, at any offset, after the table grows, and in another dtype."""
    from modeling_mini.positional import _TABLES, SinusoidalPositionalEncoding

    _TABLES.clear()
    for layout in ("concatenated", "interleaved"):
        encoding = SinusoidalPositionalEncoding(tiny_gpt_config(sinusoidal_layout=layout))
        for first, length in ((0, 7), (250, 3), (1000, 40), (5, 1)):
            positions = torch.arange(first, first + length)[None]
            for dtype in (torch.float32, torch.bfloat16):
                looked_up = encoding(positions, dtype, max_position=first + length - 1)
                assert torch.equal(looked_up, encoding.encode(positions, dtype)), (layout, first, dtype)
    assert max(table.shape[0] for table in _TABLES.values()) == 2048  # grown to the next power of two
    position = torch.tensor([[17]])
    with torch.profiler.profile() as prof:
        encoding(position, torch.float32, max_position=17)
    assert [e.name for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None] == [
        "aten::embedding"]  # one lookup, not the formula's multiply, sin, cos, cat and cast


@pytest.mark.parametrize("family", ["gpt-sinusoidal", "gpt-rotary", "encoder", "seq2seq"])
def test_from_pretrained_in_half_precision_with_a_device_map(tmp_path, family):
    """``from_pretrained(dir, dtype=torch.bfloat16, device_map="auto")``, the usual way to load for inference:
    every weight and buffer in bfloat16 (position tables and frequencies follow the dtype), logits close to the
    float32 model's, and ``generate`` runs."""
    from conftest import TINY, padded_batch
    from transformers import AutoModel

    import modeling_mini

    if family == "encoder":
        model = modeling_mini.MiniEncoderForMaskedLM(modeling_mini.MiniEncoderConfig(**TINY))
    elif family == "seq2seq":
        config = modeling_mini.MiniSeq2SeqConfig(**TINY, decoder_start_token_id=TINY["bos_token_id"])
        model = modeling_mini.MiniSeq2SeqForConditionalGeneration(config)
    else:
        model = modeling_mini.MiniGPTForCausalLM(tiny_gpt_config(position_embedding_type=family.split("-")[1]))
    model.eval().save_pretrained(tmp_path)
    half = type(model).from_pretrained(tmp_path, dtype=torch.bfloat16, device_map="auto")
    assert {t.dtype for t in [*half.parameters(), *half.buffers()]} == {torch.bfloat16}
    assert AutoModel.from_pretrained(tmp_path, dtype="auto").dtype == torch.float32  # what was saved

    ids, mask = padded_batch(left=False)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if family == "seq2seq":
        inputs |= {"decoder_input_ids": ids, "decoder_attention_mask": mask}
    with torch.no_grad():
        full, reduced = model(**inputs).logits, half(**inputs).logits
    assert reduced.dtype == torch.bfloat16
    torch.testing.assert_close(reduced.float()[mask.bool()], full[mask.bool()], atol=3e-2, rtol=3e-2)
    if family != "encoder":
        new = half.generate(ids[:2, 4:], max_new_tokens=4, do_sample=False, min_new_tokens=4)
        assert new.shape[-1] == (5 if family == "seq2seq" else 9)


def test_value_checks_skip_reading_back_while_a_cuda_graph_is_captured(monkeypatch):
    """A host read during CUDA-graph capture (continuous batching, compile's ``reduce-overhead``) is an error, so the
    id and label checks stand aside then, as they do under ``torch.compile``."""
    from types import SimpleNamespace

    from modeling_mini.modeling_base import _checks_enabled

    on_gpu, on_cpu = SimpleNamespace(is_cuda=True), SimpleNamespace(is_cuda=False)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    assert not _checks_enabled(on_gpu) and _checks_enabled(on_cpu)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    assert _checks_enabled(on_gpu)


@pytest.mark.parametrize("family", ["gpt_neox", "gptj", "phi", "gpt2"])
def test_a_seeded_training_forward_drops_out_as_the_reference_does(family):
    """With dropout on and one seed, a converted model's training-mode logits equal transformers': the same sites drop
    out in the same order. A parallel block (GPT-NeoX, GPT-J, Phi) dropped out its feed-forward output before its
    attention output, which drew the same random numbers for other sites (logits 0.07 apart)."""
    import transformers

    from modeling_mini.convert import from_hf

    rates = dict(attn_implementation="eager", vocab_size=99)
    hf = {
        "gpt_neox": lambda: transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, hidden_dropout=0.11,
            attention_dropout=0.12, **rates)),
        "gptj": lambda: transformers.GPTJForCausalLM(transformers.GPTJConfig(
            n_embd=16, n_layer=2, n_head=2, rotary_dim=4, resid_pdrop=0.11, attn_pdrop=0.12, embd_pdrop=0.13, **rates)),
        "phi": lambda: transformers.PhiForCausalLM(transformers.PhiConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, resid_pdrop=0.11,
            attention_dropout=0.12, embd_pdrop=0.13, **rates)),
        "gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
            n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.11, attn_pdrop=0.12, embd_pdrop=0.13, bos_token_id=0,
            eos_token_id=0, **rates)),
    }[family]()
    mini = from_hf(hf.eval())
    mini.set_attn_implementation("eager")
    ids = torch.randint(3, 90, (2, 7), generator=torch.Generator().manual_seed(0))
    logits = []
    for model in (hf, mini):
        model.train()
        torch.manual_seed(123)
        with torch.no_grad():
            logits.append(model(input_ids=ids).logits)
    torch.testing.assert_close(logits[1], logits[0], atol=1e-6, rtol=0)


def test_eager_attention_without_a_mask_keeps_the_causal_window():
    """Called with no mask, eager attention builds the causal structure itself, window included: a query sees itself
    and the ``sliding_window - 1`` keys before it, the same as with the boolean mask the model would pass."""
    module = attention("eager", sliding_window=3)
    module.sliding_window = 3
    x = torch.randn(1, 6, 32)
    positions = torch.arange(6)
    allowed = (positions[None, :] <= positions[:, None]) & (positions[:, None] - positions[None, :] < 3)  # (T, S)
    with torch.no_grad():
        out, weights = module(x, attention_mask=None)
        masked, _ = module(x, attention_mask=allowed[None, None])
    assert torch.equal(weights[0, :, ~allowed], torch.zeros_like(weights[0, :, ~allowed]))
    assert (weights[0, :, allowed] > 0).all()
    torch.testing.assert_close(out, masked)


@pytest.mark.parametrize("window", [None, 3])
def test_eager_attention_without_a_mask_continues_a_cache_chunk_by_chunk(window):
    """With a cache and no mask, a chunk of queries ends at the last key: scoring 6 tokens as 3 then 3 gives the
    rows of one 6-token call (the second chunk's queries see the first chunk, and not each other's future)."""
    module = attention("eager", **({} if window is None else {"sliding_window": window}))
    module.sliding_window = window  # the block passes its layer's window; the cache keeps window - 1 past keys
    x = torch.randn(1, 6, 32)
    with torch.no_grad():
        whole, _ = module(x, attention_mask=None)
        cache = DynamicCache(config=module.config)
        first, _ = module(x[:, :3], attention_mask=None, cache=cache)
        second, _ = module(x[:, 3:], attention_mask=None, cache=cache)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-6, rtol=1e-6)


def test_float16_clamp_is_transformers_t5s():
    """With ``clamp_float16``, a float16 residual stream holding an inf is clamped to 1000 below float16's largest
    value, as transformers' T5 does; one without an inf passes unchanged (its largest value included); other dtypes
    are never touched."""
    block = MiniBlock(tiny_gpt_config(clamp_float16=True), layer_idx=0, is_causal=True)
    largest = torch.finfo(torch.float16).max
    overflowed = torch.tensor([float("inf"), -float("inf"), 1.0, largest], dtype=torch.float16)
    clamped = block._clamp(overflowed)
    bound = torch.tensor(largest - 1000, dtype=torch.float16).item()  # 64512: the float16 nearest 64504
    assert bound < largest and clamped.tolist() == [bound, -bound, 1.0, bound]
    finite = torch.tensor([largest, -largest, 2.0], dtype=torch.float16)
    assert torch.equal(block._clamp(finite), finite)
    wide = torch.tensor([float("inf"), 1e30])
    assert torch.equal(block._clamp(wide), wide)


@pytest.mark.parametrize("norm_type", ["rmsnorm", "layernorm"])
def test_t5_norms_hand_a_float32_stream_on_in_their_float16_dtype(norm_type):
    """With ``clamp_float16`` a float16 model may hold a float32 residual stream (its feed-forward outputs kept in
    float32); its norms normalise that stream in float32 and return their float16 gain's dtype, as transformers' T5
    norm does (PyTorch's own returned float32, or refused mixed dtypes: LayerNorm), and are PyTorch's own otherwise."""
    from modeling_mini.normalization import build_norm

    norm = build_norm(tiny_gpt_config(clamp_float16=True, norm_type=norm_type))
    with torch.no_grad():
        for parameter in norm.parameters():
            parameter.normal_()
    x = 300 * torch.randn(2, 3, norm.weight.shape[0])
    expected = norm(x)
    half = norm.half()
    assert half(x).dtype == torch.float16 and half(x.half()).dtype == torch.float16
    torch.testing.assert_close(half(x).float(), expected, atol=1e-2, rtol=1e-2)
    plain = build_norm(tiny_gpt_config(norm_type=norm_type))
    assert type(plain) in (torch.nn.RMSNorm, torch.nn.LayerNorm)


def test_residual_output_projections_start_scaled_down_by_depth():
    """GPT-2's initialisation: the projections writing into the residual stream (attention ``o_proj``, the
    feed-forward's ``down_proj``) start with std ``initializer_range / sqrt(2 * layers)``, so the stream's variance
    does not grow with depth; the other matrices keep ``initializer_range``."""
    from modeling_mini import MiniGPTModel

    torch.manual_seed(0)
    config = tiny_gpt_config(hidden_size=256, num_attention_heads=4, num_hidden_layers=4, intermediate_size=1024)
    model = MiniGPTModel(config)
    scaled, plain = config.initializer_range / (2 * 4) ** 0.5, config.initializer_range
    for block in model.layers:
        for weight, std in ((block.self_attn.o_proj.weight, scaled), (block.mlp.down_proj.weight, scaled),
                            (block.self_attn.qkv_proj.weight, plain), (block.mlp.up_proj.weight, plain)):
            assert abs(weight.std().item() / std - 1) < 0.05, (weight.shape, weight.std().item(), std)


def test_each_seq2seq_stack_scales_its_residual_outputs_by_its_own_depth():
    """An encoder-decoder's stacks may differ in depth; each scales its residual output projections by its own
    (``num_hidden_layers`` is the decoder's). Before, a deep encoder over a shallow decoder started 2.8 times too
    wide here (8 blocks, scaled as 1)."""
    from modeling_mini import MiniSeq2SeqConfig, MiniSeq2SeqModel

    torch.manual_seed(0)
    model = MiniSeq2SeqModel(MiniSeq2SeqConfig(vocab_size=99, hidden_size=256, num_attention_heads=4,
                                               intermediate_size=1024, encoder_layers=8, decoder_layers=1))
    for stack, blocks in ((model.encoder, 8), (model.decoder, 1)):
        std = model.config.initializer_range / (2 * blocks) ** 0.5
        for block in stack.layers:
            for weight in (block.self_attn.o_proj.weight, block.mlp.down_proj.weight):
                assert abs(weight.std().item() / std - 1) < 0.05, (blocks, weight.std().item(), std)
