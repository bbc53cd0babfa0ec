"""MiniSeq2SeqForConditionalGeneration against transformers' MarianMTModel (or, ``bench_t5.py``,
T5ForConditionalGeneration) of the same shape, weights and backend.

A random ``MarianMTModel`` (the closest HF relative of the original Transformer: sinusoidal positions,
post-norm) is built from a config (no download) and converted with ``modeling_mini.convert.from_hf``, so both
models hold identical weights; a parity row reports the max |logits difference| first. The T5 case is Flan-T5's
layout: relative attention bias, pre-norm RMSNorm, a gated GELU and an output matrix of its own. Measured alternately
in one process (see ``common.alternate``):

* training step: forward with labels (source B x T, target B x T), backward, AdamW step; target tokens/s and
  peak memory;
* ``generate`` with the cache, ``max_new_tokens`` forced (``min_new_tokens``): greedy and beam search (4 beams),
  at batch 1 and batch 8; new tokens/s (per returned sequence).

    python benchmarks/bench_seq2seq.py                   # CPU, small shape
    python benchmarks/bench_seq2seq.py --device cuda     # Marian base shape (d 512, 6 + 6 layers), bf16 autocast

``run(args)`` returns the rows (dicts, see ``common.py``); ``benchmarks/run.py`` calls it.
"""

import argparse
import os
import sys

import torch
from transformers import MarianConfig, MarianMTModel, T5Config, T5ForConditionalGeneration

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
    owning,
    paired,
    row,
)

from modeling_mini.convert import from_hf  # noqa: E402

SHAPES = {
    "cpu": dict(vocab_size=8192, d_model=256, layers=3, heads=4, ffn=1024, batch_size=4, seq_len=64,
                source_len=24, new_tokens=16, rounds=9, steps=1, gen_rounds=15),
    # the original Transformer base / Helsinki-NLP opus-mt shape
    "cuda": dict(vocab_size=58101, d_model=512, layers=6, heads=8, ffn=2048, batch_size=32, seq_len=256,
                 source_len=64, new_tokens=64, rounds=5, steps=5, gen_rounds=5),
}


#: Flan-T5's layout: CPU-sized, and flan-t5-base's shape on the GPU
T5_SHAPES = {
    "cpu": dict(SHAPES["cpu"], heads=4, d_kv=64),
    "cuda": dict(SHAPES["cuda"], vocab_size=32128, d_model=768, layers=12, heads=12, d_kv=64, ffn=2048),
}


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (training step)")
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"), help="attention backend of both models")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch size (default per device)")
    parser.add_argument("--seq-len", type=int, default=None, help="training source/target length")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per model (median reported)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per round")
    parser.add_argument("--no-generate", action="store_true", help="skip the generate rows (training only)")
    return parser


def _shape(args, reference: str = "marian") -> dict:
    shape = dict((SHAPES if reference == "marian" else T5_SHAPES)[args.device])
    for key in ("batch_size", "seq_len", "rounds", "steps"):
        if getattr(args, key, None):
            shape[key] = getattr(args, key)
    if getattr(args, "rounds", None):  # --rounds sets the generate rows' rounds too
        shape["gen_rounds"] = args.rounds
    return shape


def _models(shape, args, reference: str = "marian"):
    torch.manual_seed(0)
    if reference == "t5":
        hf = T5ForConditionalGeneration(T5Config(
            vocab_size=shape["vocab_size"], d_model=shape["d_model"], d_kv=shape["d_kv"], d_ff=shape["ffn"],
            num_layers=shape["layers"], num_heads=shape["heads"], feed_forward_proj="gated-gelu",
            tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
        with torch.no_grad():  # an output matrix of its own, as Flan-T5's checkpoints hold
            hf.lm_head.weight = torch.nn.Parameter(hf.shared.weight * shape["d_model"] ** -0.5)
        hf.set_attn_implementation(args.attn)
        mini = from_hf(hf)
        mini.set_attn_implementation(args.attn)
        return hf.to(args.device), mini.to(args.device)
    config = MarianConfig(vocab_size=shape["vocab_size"], d_model=shape["d_model"], encoder_layers=shape["layers"],
                          decoder_layers=shape["layers"], encoder_attention_heads=shape["heads"],
                          decoder_attention_heads=shape["heads"], encoder_ffn_dim=shape["ffn"],
                          decoder_ffn_dim=shape["ffn"], max_position_embeddings=max(512, shape["seq_len"]),
                          activation_function="swish", scale_embedding=True, pad_token_id=0, eos_token_id=2,
                          decoder_start_token_id=0, forced_eos_token_id=None)
    hf = MarianMTModel(config)
    hf.set_attn_implementation(args.attn)
    mini = from_hf(hf)
    mini.set_attn_implementation(args.attn)
    return hf.to(args.device), mini.to(args.device)


def _parity(hf, mini, device) -> float:
    source = torch.randint(3, hf.config.vocab_size, (2, 20), device=device)
    target = torch.randint(3, hf.config.vocab_size, (2, 12), device=device)
    hf.eval()
    mini.eval()
    with torch.no_grad():
        theirs = hf(input_ids=source, decoder_input_ids=target).logits.float()
        return (theirs - mini(input_ids=source, decoder_input_ids=target).logits.float()).abs().max().item()


def _train_step(call, optimizer, source, labels, device, use_autocast, model=None):
    def step():
        with autocast(device, use_autocast):
            loss = call(input_ids=source, labels=labels, use_cache=False).loss  # HF T5 would build a cache
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return owning(step, model, optimizer)  # its peak counts this model's weights and optimizer state only


def _generate(model, source, new_tokens, num_beams, device, use_autocast):
    def step():
        with torch.no_grad(), autocast(device, use_autocast):
            model.generate(source, attention_mask=torch.ones_like(source), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, num_beams=num_beams, do_sample=False, use_cache=True)

    return step


def run(args, reference: str = "marian") -> list[dict]:
    """Benchmark rows for the encoder-decoder family (parity, training, generation) against ``reference``
    (``"marian"``, or ``"t5"``: the rows are then named ``t5``)."""
    device = args.device
    shape = _shape(args, reference)
    use_autocast = device == "cuda"
    compile_models = getattr(args, "compile", False)
    hf, mini = _models(shape, args, reference)
    family = "seq2seq" if reference == "marian" else "t5"
    name = "Marian" if reference == "marian" else "T5 (Flan layout)"
    case = (f"{device} {args.attn}{' bf16' if use_autocast else ''}{' compiled' if compile_models else ''} "
            f"vs {name} D={shape['d_model']} L={shape['layers']}+{shape['layers']} V={shape['vocab_size']}")
    rows = [info_row(family, case, "eval logits max abs diff (fp32)", _parity(hf, mini, device))]

    generator = torch.Generator().manual_seed(0)
    source = torch.randint(3, shape["vocab_size"], (shape["batch_size"], shape["seq_len"]), generator=generator)
    labels = torch.randint(3, shape["vocab_size"], (shape["batch_size"], shape["seq_len"]), generator=generator)
    source, labels = source.to(device), labels.to(device)
    steps = {}
    for name, model in (("hf", hf), ("mini", mini)):
        model.train()
        call = torch.compile(model) if compile_models else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
        steps[name] = _train_step(call, optimizer, source, labels, device, use_autocast, model)
    results = alternate(steps, shape["steps"], shape["rounds"], device, warmup=2)
    tokens = shape["batch_size"] * shape["seq_len"] * shape["steps"]
    speed = {name: median_rate(samples, tokens) for name, samples in results.items()}
    train_case = f"{case} B={shape['batch_size']} T={shape['seq_len']}"
    rows.append(row(family, train_case, "train target tokens/s", speed["hf"], speed["mini"],
                    **paired(results["hf"], results["mini"])))
    peaks = {name: max_peak(samples) for name, samples in results.items()}
    if peaks["hf"] is not None:
        rows.append(memory_row(family, train_case, "train", peaks["hf"], peaks["mini"], device))
    if device == "cpu" and not compile_models:  # kernel-launch proxy, see common.count_compute_ops
        rows.append(compute_ops_row(family, train_case, "train step compute ops", steps))

    for model in (hf, mini):
        model.eval()
        model.zero_grad(set_to_none=True)
    for num_beams in () if getattr(args, "no_generate", False) else (1, 4):
        for batch_size in (1, 8):
            prompt = torch.randint(3, shape["vocab_size"], (batch_size, shape["source_len"]), generator=generator)
            prompt = prompt.to(device)
            fns = {name: _generate(model, prompt, shape["new_tokens"], num_beams, device, use_autocast)
                   for name, model in (("hf", hf), ("mini", mini))}
            results = alternate(fns, 1, shape["gen_rounds"], device, warmup=1, memory=False)
            new = batch_size * shape["new_tokens"]
            speed = {name: median_rate(samples, new) for name, samples in results.items()}
            kind = "greedy" if num_beams == 1 else f"beam {num_beams}"
            rows.append(row(family, f"{case} source={shape['source_len']} new={shape['new_tokens']}",
                            f"generate {kind} B={batch_size} new tokens/s", speed["hf"], speed["mini"],
                            **paired(results["hf"], results["mini"])))
            if device == "cpu" and batch_size == 1:
                generate_case = f"{case} source={shape['source_len']} new={shape['new_tokens']}"
                rows.append(compute_ops_row(family, generate_case, f"generate {kind} B=1 compute ops per new token",
                                            fns, per=shape["new_tokens"]))
    return rows


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    print(format_rows(run(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
