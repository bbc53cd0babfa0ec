"""Quick correctness checks on a CUDA device (run by ``benchmarks/gpu_check.sh``); one PASS/FAIL line each.

The CPU test suite proves the models; this only checks what differs on a GPU: the CUDA sdpa kernels
(flash / memory-efficient) against the eager reference in float32 and bfloat16, GPT-2 parity, and that
``generate`` (dynamic and static cache, left padding) still agrees with itself. Families not present in
the package are skipped. Exit status 1 if any check failed.
"""

import os
import sys
import traceback

import torch

import modeling_mini

DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")  # "cpu" to smoke-test the script itself
FAILED = []


def check(name: str, fn) -> None:
    try:
        detail = fn()
        print(f"PASS {name}{': ' + detail if detail else ''}", flush=True)
    except Exception as error:  # report and go on: one summary for everything
        FAILED.append(name)
        print(f"FAIL {name}: {type(error).__name__}: {str(error)[:300]}", flush=True)
        traceback.print_exc(limit=3, file=sys.stdout)


def padded(batch=4, length=48, vocab=512, left=True):
    """Random ids with rows padded by 0, 5, 11 and 2 tokens on the left (or the right)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (batch, length), generator=g)
    pad = torch.tensor([0, 5, 11, 2])[:batch, None]  # (B, 1)
    index = torch.arange(length)[None]  # (1, T)
    mask = (index >= pad) if left else (index < length - pad)
    mask = mask.long()
    ids = ids.masked_fill(mask == 0, 0)
    return ids.to(DEVICE), mask.to(DEVICE)


def positions(mask):
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


GPT = dict(
    vocab_size=512,
    hidden_size=256,
    num_hidden_layers=3,
    num_attention_heads=8,
    max_position_embeddings=256,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


def _eager_vs_sdpa(build, inputs, dtype, atol):
    outs = {}
    for impl in ("eager", "sdpa"):
        torch.manual_seed(0)
        model = build(impl).to(DEVICE, dtype).eval()
        with torch.no_grad():
            outs[impl] = model(**inputs).logits.float()
    real = inputs["attention_mask"].bool()
    diff = (outs["sdpa"] - outs["eager"])[real].abs().max().item()
    scale = outs["eager"][real].abs().max().item()
    if not diff <= atol * max(1.0, scale):
        raise AssertionError(f"max |sdpa - eager| = {diff:.3g} (logit scale {scale:.3g}, allowed {atol:g} x scale)")
    return f"max diff {diff:.2e} (logit scale {scale:.2f})"


def gpt_checks():
    from modeling_mini import MiniGPTConfig, MiniGPTForCausalLM

    ids, mask = padded()
    inputs = dict(input_ids=ids, attention_mask=mask, position_ids=positions(mask))
    for name, variant in (
        ("learned", dict(position_embedding_type="learned")),
        ("rotary", dict(position_embedding_type="rotary", num_key_value_heads=2)),
        ("sinusoidal", dict(position_embedding_type="sinusoidal", norm_type="rmsnorm", hidden_act="swiglu")),
        ("sliding-window", dict(position_embedding_type="rotary", sliding_window=16,  # binds: 48 tokens
                                layer_types=["sliding_attention", "full_attention", "sliding_attention"])),
        ("gemma3-like", dict(position_embedding_type="rotary", sliding_window=16, sliding_rope_theta=100.0,
                             layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                             norm_type="rmsnorm", norm_position="sandwich", qk_norm=True, scale_embeddings=True,
                             hidden_act="geglu_tanh")),
        ("neox-like", dict(position_embedding_type="rotary", partial_rotary_factor=0.25, parallel_residual=True)),
        # a float bias folded into the mask: the CUDA kernels take it in the compute dtype
        ("bloom-like (alibi)", dict(position_embedding_type="alibi", embedding_norm=True, hidden_act="gelu_new")),
    ):
        for dtype, atol in ((torch.float32, 1e-4), (torch.bfloat16, 3e-2)):

            def build(impl, variant=variant):
                return MiniGPTForCausalLM(MiniGPTConfig(**GPT, **variant, attn_implementation=impl))

            check(
                f"gpt {name} eager == sdpa ({str(dtype)[6:]})",
                lambda b=build, d=dtype, a=atol: _eager_vs_sdpa(b, inputs, d, a),
            )

    def gpt2_parity():
        from transformers import GPT2Config, GPT2LMHeadModel

        from modeling_mini.convert import from_hf

        torch.manual_seed(0)
        hf = (
            GPT2LMHeadModel(GPT2Config(vocab_size=512, n_embd=256, n_layer=3, n_head=8, n_positions=256))
            .to(DEVICE)
            .eval()
        )
        mini = from_hf(hf).to(DEVICE).eval()
        with torch.no_grad():
            diff = (
                (hf(ids, attention_mask=mask).logits - mini(ids, attention_mask=mask).logits)[mask.bool()].abs().max()
            )
        if not diff <= 1e-4:
            raise AssertionError(f"max diff {diff:.3g}")
        return f"max diff {diff:.2e}"

    check("gpt from_hf(GPT2LMHeadModel) logits (fp32)", gpt2_parity)

    def generation():
        torch.manual_seed(0)
        model = MiniGPTForCausalLM(MiniGPTConfig(**GPT, position_embedding_type="rotary")).to(DEVICE).eval()
        kw = dict(attention_mask=mask, max_new_tokens=16, do_sample=False, pad_token_id=0)
        cached = model.generate(ids, use_cache=True, **kw)
        uncached = model.generate(ids, use_cache=False, **kw)
        static = model.generate(ids, cache_implementation="static", **kw)
        assert torch.equal(cached, uncached), "cached != uncached greedy tokens"
        assert torch.equal(cached, static), "static cache != dynamic cache tokens"
        for row in range(ids.shape[0]):
            alone = model.generate(
                ids[row : row + 1, mask[row].bool()], max_new_tokens=16, do_sample=False, pad_token_id=0
            )
            assert torch.equal(alone[0, -16:], cached[row, -16:]), f"row {row}: batch != alone"
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            out = model.generate(ids, **kw)
        return f"{tuple(cached.shape)} tokens; bf16 autocast generate {tuple(out.shape)}"

    check("gpt generate: cached == uncached == static cache, left padding == alone", generation)

    def continuous_batching():
        # generate_batch: prompts packed in one row, a paged cache; on a GPU it may capture CUDA graphs, where the
        # models' id checks must not sync
        from transformers import ContinuousBatchingConfig, GenerationConfig

        torch.manual_seed(0)
        model = MiniGPTForCausalLM(MiniGPTConfig(**GPT, position_embedding_type="rotary")).to(DEVICE).eval()
        prompts = [ids[row, mask[row].bool()].tolist() for row in range(ids.shape[0])]
        config = GenerationConfig(max_new_tokens=16, do_sample=False, eos_token_id=-1, pad_token_id=0)
        batching = ContinuousBatchingConfig(num_blocks=64, block_size=16, max_batch_tokens=256)
        results = model.generate_batch(inputs=prompts, generation_config=config,
                                       continuous_batching_config=batching, progress_bar=False)
        batched = [result.generated_tokens for result in results.values()]
        for prompt, tokens in zip(prompts, batched, strict=True):
            alone = model.generate(torch.tensor([prompt], device=DEVICE), max_new_tokens=16, do_sample=False,
                                   eos_token_id=-1)
            assert tokens == alone[0, len(prompt):].tolist(), "generate_batch != generate alone"
        return f"{len(prompts)} prompts"

    check("gpt generate_batch (continuous batching) == each prompt alone", continuous_batching)


def encoder_checks():
    if not hasattr(modeling_mini, "MiniEncoderForMaskedLM"):
        print("SKIP encoder: not in the package")
        return
    from modeling_mini import MiniEncoderConfig, MiniEncoderForMaskedLM

    ids, mask = padded(left=False)
    inputs = dict(input_ids=ids, attention_mask=mask)
    modern = dict(position_embedding_type="rotary", sliding_window=8, sliding_rope_theta=100.0,  # binds: 48 tokens
                  layer_types=["full_attention", "sliding_attention", "sliding_attention"], norm_position="pre",
                  norm_bias=False, skip_first_attention_norm=True, hidden_act="geglu", head_transform=True)
    t5_encoder = dict(position_embedding_type="relative", norm_type="rmsnorm", norm_position="pre",
                      attention_bias=False, mlp_bias=False, add_pooler=False)
    for name, variant in (("bert-like", {}), ("modernbert-like", modern), ("t5-encoder-like", t5_encoder)):
        for dtype, atol in ((torch.float32, 1e-4), (torch.bfloat16, 3e-2)):

            def build(impl, variant=variant):
                return MiniEncoderForMaskedLM(
                    MiniEncoderConfig(
                        vocab_size=512,
                        hidden_size=256,
                        num_hidden_layers=3,
                        num_attention_heads=8,
                        intermediate_size=512,
                        hidden_dropout=0.0,
                        attention_dropout=0.0,
                        attn_implementation=impl,
                        **variant,
                    )
                )

            check(
                f"encoder {name} eager == sdpa ({str(dtype)[6:]})",
                lambda b=build, d=dtype, a=atol: _eager_vs_sdpa(b, inputs, d, a),
            )


def seq2seq_checks():
    cls = getattr(modeling_mini, "MiniSeq2SeqForConditionalGeneration", None)
    config_cls = getattr(modeling_mini, "MiniSeq2SeqConfig", None)
    if cls is None or config_cls is None:
        print("SKIP seq2seq: not in the package")
        return
    ids, mask = padded(left=False)
    decoder_ids = ids[:, :20].clone()
    decoder_ids[:, 0] = 1
    inputs = dict(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids)
    size = dict(
        vocab_size=512,
        hidden_size=256,
        num_hidden_layers=3,
        num_attention_heads=8,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )

    t5_like = dict(position_embedding_type="relative", norm_type="rmsnorm", norm_position="pre", attention_bias=False,
                   mlp_bias=False, hidden_act="geglu", scale_embeddings=False)

    def parity(dtype, atol, variant):
        outs = {}
        for impl in ("eager", "sdpa"):
            torch.manual_seed(0)
            model = cls(config_cls(**size, **variant, attn_implementation=impl)).to(DEVICE, dtype).eval()
            with torch.no_grad():
                outs[impl] = model(**inputs).logits.float()
        diff = (outs["sdpa"] - outs["eager"]).abs().max().item()
        scale = outs["eager"].abs().max().item()
        if not diff <= atol * max(1.0, scale):
            raise AssertionError(f"max diff {diff:.3g} (scale {scale:.3g})")
        return f"max diff {diff:.2e}"

    for name, variant in (("", {}), (" t5-like (relative bias)", t5_like)):
        for dtype, atol in ((torch.float32, 1e-4), (torch.bfloat16, 3e-2)):
            check(f"seq2seq{name} eager == sdpa ({str(dtype)[6:]})", lambda d=dtype, a=atol, v=variant: parity(d, a, v))

    def generation():
        torch.manual_seed(0)
        model = cls(config_cls(**size)).to(DEVICE).eval()
        kw = dict(attention_mask=mask, max_new_tokens=12, do_sample=False)
        cached, uncached = model.generate(ids, use_cache=True, **kw), model.generate(ids, use_cache=False, **kw)
        assert torch.equal(cached, uncached), "cached != uncached"
        # on a GPU, a static cache makes generate compile the decoding step (inductor, CUDA graphs)
        static = model.generate(ids, cache_implementation="static", **kw)
        assert torch.equal(cached, static), "static cache != dynamic cache tokens"
        return f"{tuple(cached.shape)} tokens"

    check("seq2seq generate: cached == uncached == static cache", generation)


def flex_checks():
    """Last, as it compiles (flex attention runs through inductor): a slow compile cannot hide the other checks."""
    from modeling_mini import MiniGPTConfig, MiniGPTForCausalLM

    ids, mask = padded()
    inputs = dict(input_ids=ids, attention_mask=mask, position_ids=positions(mask))

    def flex_attention():
        # flex attention's forward and cached decoding (one query a step) against sdpa's; on the CPU torch 2.13's
        # compiled flex kernel cannot decode (a C++ compile error), so only a GPU can check that path
        from torch.nn.attention.flex_attention import flex_attention as _  # noqa: F401  (skips without flex)

        variant = dict(position_embedding_type="rotary", num_key_value_heads=2, sliding_window=16,
                       layer_types=["sliding_attention", "full_attention", "sliding_attention"])
        out = {}
        for impl in ("sdpa", "flex_attention"):
            torch.manual_seed(0)
            model = MiniGPTForCausalLM(MiniGPTConfig(**GPT, **variant, attn_implementation=impl)).to(DEVICE).eval()
            with torch.no_grad():
                logits = model(**inputs).logits.float()
            tokens = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
            out[impl] = (logits, tokens)
        diff = (out["sdpa"][0] - out["flex_attention"][0])[mask.bool()].abs().max().item()
        if not diff <= 1e-4 * max(1.0, out["sdpa"][0][mask.bool()].abs().max().item()):
            raise AssertionError(f"max |flex - sdpa| logits = {diff:.3g}")
        assert torch.equal(out["sdpa"][1], out["flex_attention"][1]), "flex cached decoding != sdpa tokens"
        return f"max diff {diff:.2e}; {tuple(out['sdpa'][1].shape)} tokens equal"

    check("gpt flex_attention forward and cached decoding == sdpa (fp32)", flex_attention)


def main():
    import transformers

    card = torch.cuda.get_device_name() if DEVICE == "cuda" else DEVICE
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {card}")
    for family in (gpt_checks, encoder_checks, seq2seq_checks, flex_checks):
        try:
            family()
        except Exception as error:  # an import error in one family must not hide the others
            FAILED.append(family.__name__)
            print(f"FAIL {family.__name__}: {type(error).__name__}: {error}")
    print(f"correctness: {'all passed' if not FAILED else 'FAILED: ' + ', '.join(FAILED)}")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
