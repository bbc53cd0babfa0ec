"""MiniGPTForCausalLM against transformers' GPT2LMHeadModel of the same shape, weights and attention backend.

A random ``GPT2LMHeadModel`` is built from a config (no download) and converted with
``modeling_mini.convert.from_hf``, so both models hold identical weights; a parity row reports the max
|logits difference| first. Measured alternately in one process (see ``common.alternate``):

* training step: forward with labels, backward, AdamW step; tokens/s and peak memory;
* ``generate``: greedy, with the KV cache, ``max_new_tokens`` forced (``min_new_tokens``), at batch 1 and
  batch 8; new tokens/s.

MFU (CUDA training rows) uses ``6 N + 12 L H Q T`` FLOPs per token (PaLM appendix B; nanoGPT's estimate):
L layers, H heads, Q head width, T sequence length, and N = all parameters **except the position-embedding
table** (the tied token embedding is counted once, since it is also the LM head's matmul). For GPT-2 small
N = 123.65M, so 345K tokens/s on an H100 is 29.8% MFU, as the issue quotes.

    python benchmarks/bench_gpt.py                       # CPU, small shape (seconds)
    python benchmarks/bench_gpt.py --device cuda         # GPT-2 small, B=16, T=1024, bf16 autocast, sdpa
    python benchmarks/bench_gpt.py --device cuda --compile

``run(args)`` returns the rows (dicts, see ``common.py``); ``benchmarks/run.py`` calls it.
"""

import argparse
import os
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    alternate,
    autocast,
    compute_ops_row,
    format_rows,
    info_row,
    max_peak,
    median_rate,
    memory_row,
    mfu,
    owning,
    paired,
    row,
)

from modeling_mini.convert import from_hf  # noqa: E402

SHAPES = {
    # CPU: small enough for `make bench` to take about a minute on an idle 2-core machine, big enough for real matmuls
    "cpu": dict(
        vocab_size=8192,
        n_embd=256,
        n_layer=4,
        n_head=4,
        batch_size=4,
        seq_len=128,
        prompt_len=16,
        new_tokens=24,
        rounds=7,
        steps=1,
        gen_rounds=15,
    ),
    # CUDA: GPT-2 small at the reference batch
    "cuda": dict(
        vocab_size=50257,
        n_embd=768,
        n_layer=12,
        n_head=12,
        batch_size=16,
        seq_len=1024,
        prompt_len=64,
        new_tokens=64,
        rounds=5,
        steps=5,
        gen_rounds=5,  # at least 4, for quartiles; about 0.5 s per call at batch 1
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every bench module understands (``run.py`` defines the same)."""
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (training step)")
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"), help="attention backend of both models")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch size (default per device)")
    parser.add_argument("--seq-len", type=int, default=None, help="training sequence length (default per device)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per model (median reported)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per round")
    parser.add_argument("--no-generate", action="store_true", help="skip the generate rows (training only)")
    return parser


def _shape(args) -> dict:
    shape = dict(SHAPES[args.device])
    for key in ("batch_size", "seq_len", "rounds", "steps"):
        if getattr(args, key, None):
            shape[key] = getattr(args, key)
    if getattr(args, "rounds", None):  # --rounds sets the generate rows' rounds too
        shape["gen_rounds"] = args.rounds
    return shape


def _reference(shape, reference: str):
    """The HF model the mini GPT is compared with: GPT-2, or Llama of the same width and depth (rotary positions,
    RMSNorm, a SwiGLU feed-forward 8/3 as wide as the model, rounded to 64, and half as many key/value heads)."""
    if reference == "llama":
        config = LlamaConfig(
            vocab_size=shape["vocab_size"],
            hidden_size=shape["n_embd"],
            num_hidden_layers=shape["n_layer"],
            num_attention_heads=shape["n_head"],
            num_key_value_heads=shape["n_head"] // 2,
            intermediate_size=64 * round(8 * shape["n_embd"] / 3 / 64),
            max_position_embeddings=max(1024, shape["seq_len"]),
            bos_token_id=0,
            eos_token_id=0,
        )
        return LlamaForCausalLM(config)
    config = GPT2Config(
        vocab_size=shape["vocab_size"],
        n_embd=shape["n_embd"],
        n_layer=shape["n_layer"],
        n_head=shape["n_head"],
        n_positions=max(1024, shape["seq_len"]),
        bos_token_id=0,
        eos_token_id=0,
    )  # no pad_token_id, as GPT-2's: with one and no mask, every HF forward checks the ids for it (a host read)
    return GPT2LMHeadModel(config)


def _models(shape, args, reference: str = "gpt2"):
    torch.manual_seed(0)
    hf = _reference(shape, reference)
    hf.set_attn_implementation(args.attn)
    mini = from_hf(hf)
    mini.set_attn_implementation(args.attn)
    return hf.to(args.device), mini.to(args.device)


def flops_per_token(model, shape) -> float:
    """``6 N + 12 L H Q T`` with N = parameters without the position-embedding table (see the docstring), and
    without the input token table when the output layer has its own matrix (Llama's untied head): a lookup, no
    matrix product; tied, it is the output layer's matrix and counts."""
    embeddings = model.model.embeddings
    lookups = [] if embeddings.embed_positions is None else [*embeddings.embed_positions.parameters()]
    if model.get_output_embeddings().weight is not embeddings.embed_tokens.weight:
        lookups.append(embeddings.embed_tokens.weight)
    n = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in lookups)
    layers, heads = shape["n_layer"], shape["n_head"]
    return 6 * n + 12 * layers * heads * (shape["n_embd"] // heads) * shape["seq_len"]


def _parity(hf, mini, device) -> float:
    ids = torch.randint(1, hf.config.vocab_size, (2, 32), device=device)
    hf.eval()
    mini.eval()
    with torch.no_grad():
        return (hf(ids).logits.float() - mini(ids).logits.float()).abs().max().item()


def _train_step(model, call, optimizer, batch, device, use_autocast):
    def step():
        with autocast(device, use_autocast):
            loss = call(input_ids=batch, labels=batch, use_cache=False).loss  # HF would build a cache by default
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return owning(step, model, optimizer)  # its peak counts this model's weights and optimizer state only


def _generate(model, prompt, new_tokens, device, use_autocast):
    def step():
        with torch.no_grad(), autocast(device, use_autocast):
            model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=0,
            )

    return step


def run(args, reference: str = "gpt2") -> list[dict]:
    """Benchmark rows for the GPT family (parity, training, generation) against GPT-2 (or ``reference="llama"``)."""
    device = args.device
    shape = _shape(args)
    use_autocast = device == "cuda"
    compile_models = getattr(args, "compile", False)
    hf, mini = _models(shape, args, reference)
    family = "gpt" if reference == "gpt2" else reference
    case = (
        f"{device} {args.attn}{' bf16' if use_autocast else ''}{' compiled' if compile_models else ''} "
        f"D={shape['n_embd']} L={shape['n_layer']} V={shape['vocab_size']}"
    )
    rows = [info_row(family, case, "eval logits max abs diff (fp32)", _parity(hf, mini, device))]

    # training: forward + backward + AdamW, B x T tokens per step
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(1, shape["vocab_size"], (shape["batch_size"], shape["seq_len"]), generator=generator)
    batch = batch.to(device)
    steps = {}
    for name, model in (("hf", hf), ("mini", mini)):
        model.train()
        call = torch.compile(model) if compile_models else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
        steps[name] = _train_step(model, call, optimizer, batch, device, use_autocast)
    results = alternate(steps, shape["steps"], shape["rounds"], device, warmup=2)
    tokens = shape["batch_size"] * shape["seq_len"] * shape["steps"]
    speed = {name: median_rate(samples, tokens) for name, samples in results.items()}
    train_case = f"{case} B={shape['batch_size']} T={shape['seq_len']}"
    fpt = flops_per_token(mini, shape)
    rows.append(
        row(
            family,
            train_case,
            "train tokens/s",
            speed["hf"],
            speed["mini"],
            hf_mfu=mfu(speed["hf"], fpt, device),
            mini_mfu=mfu(speed["mini"], fpt, device),
            **paired(results["hf"], results["mini"]),
        )
    )
    peaks = {name: max_peak(samples) for name, samples in results.items()}
    if peaks["hf"] is not None:
        rows.append(memory_row(family, train_case, "train", peaks["hf"], peaks["mini"], device))
    if device == "cpu" and not compile_models:  # kernel-launch proxy, see common.count_compute_ops
        rows.append(compute_ops_row(family, train_case, "train step compute ops", steps))

    # generation with the KV cache (uncompiled: generate's shapes change every step)
    for model in (hf, mini):
        model.eval()
        model.zero_grad(set_to_none=True)
    for batch_size in () if getattr(args, "no_generate", False) else (1, 8):
        prompt = torch.randint(1, shape["vocab_size"], (batch_size, shape["prompt_len"]), generator=generator)
        prompt = prompt.to(device)
        fns = {
            name: _generate(model, prompt, shape["new_tokens"], device, use_autocast)
            for name, model in (("hf", hf), ("mini", mini))
        }
        results = alternate(fns, 1, shape["gen_rounds"], device, warmup=1, memory=False)
        new = batch_size * shape["new_tokens"]
        speed = {name: median_rate(samples, new) for name, samples in results.items()}
        rows.append(
            row(
                family,
                f"{case} prompt={shape['prompt_len']} new={shape['new_tokens']}",
                f"generate B={batch_size} new tokens/s",
                speed["hf"],
                speed["mini"],
                **paired(results["hf"], results["mini"]),
            )
        )
        if device == "cpu" and batch_size == 1:
            rows.append(compute_ops_row(family, f"{case} prompt={shape['prompt_len']} new={shape['new_tokens']}",
                                        "generate B=1 compute ops per new token", fns, per=shape["new_tokens"]))
    return rows


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    print(format_rows(run(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
