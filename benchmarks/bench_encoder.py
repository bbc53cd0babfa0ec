"""MiniEncoderForMaskedLM against transformers' BertForMaskedLM of the same shape and weights.

Both models are built in one process: a random ``BertForMaskedLM`` and ``from_hf`` of it, so they hold the
same weights and run the same attention backend. Each round times the two alternately (so drift in clock
speed or contention hits both) and the median round is reported:

* training step (forward with MLM labels on 15% of the tokens, backward, AdamW) tokens/s and peak memory;
* inference (forward, no grad) tokens/s and peak memory.

An extra training row runs the mini model with ``sparse_prediction=True`` (same weights): its MLM head
projects only the masked 15% of positions onto the vocabulary, as the loss needs, instead of all of them.

The ``ratio`` column is mini / HF for throughput (above 1 = mini faster) and mini / HF for memory
(below 1 = mini smaller). Training MFU uses ``6 N + 12 L D T`` FLOPs per token (N parameters, L layers,
D width, T length: a bidirectional encoder attends over all T keys) against the card's bf16 peak.

    python benchmarks/bench_encoder.py                    # CPU, small shape
    python benchmarks/bench_encoder.py --device cuda      # BERT-base, B=32, T=512, bf16 autocast, sdpa

The sparse row reports no MFU: its head does 15% of the dense head's FLOPs, which the formula would charge in full.
The H100 figures are in ``benchmarks/README.md`` ("Latest").

``run(args, reference="modernbert")`` measures the same rows against ``ModernBertForMaskedLM`` instead (local attention
on two layers in three, GeGLU, no biases: ``bench_modernbert.py``), without the sparse row: ModernBERT has that option
itself.

``run(args)`` returns the rows as dicts (for ``benchmarks/`` drivers); ``main`` prints them.
"""

import argparse
import contextlib
import os
import statistics
import sys

import torch
from transformers import BertConfig, BertForMaskedLM, ModernBertConfig, ModernBertForMaskedLM

from modeling_mini.convert import from_hf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import allocated_peak, compute_ops_row, format_rows, measure, memory_row, owning, paired  # noqa: E402

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}

SHAPES = {
    # CPU: a small BERT that still has real matmuls; CUDA: BERT-base at the reference batch
    "cpu": dict(vocab_size=8192, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                batch_size=8, seq_len=128),
    "cuda": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, batch_size=32, seq_len=512),
}
#: ModernBERT's: a gated feed-forward 1.5x wide, local attention of 64 (CPU) or 128 (CUDA: ModernBERT-base) tokens
MODERNBERT_SHAPES = {
    "cpu": dict(SHAPES["cpu"], intermediate_size=384, local_attention=64),
    "cuda": dict(vocab_size=50368, hidden_size=768, num_hidden_layers=22, num_attention_heads=12,
                 intermediate_size=1152, local_attention=128, batch_size=32, seq_len=512),
}


def _reference_model(reference: str, shape: dict):
    """A random HF masked LM of ``shape``: BERT's, or ModernBERT's."""
    sizes = dict(vocab_size=shape["vocab_size"], hidden_size=shape["hidden_size"],
                 num_hidden_layers=shape["num_hidden_layers"], num_attention_heads=shape["num_attention_heads"],
                 intermediate_size=shape["intermediate_size"], max_position_embeddings=max(512, shape["seq_len"]))
    if reference == "bert":
        return BertForMaskedLM(BertConfig(**sizes))
    return ModernBertForMaskedLM(ModernBertConfig(**sizes, local_attention=shape["local_attention"], pad_token_id=0,
                                                  bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per model (median reported)")
    parser.add_argument("--steps", type=int, default=None, help="steps per round")
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"))
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--no-sparse", action="store_true",
                        help="skip the extra row for the mini model with sparse_prediction=True")
    return parser.parse_args(argv)


def _mlm_batch(shape, device, generator, segments: bool = True):
    ids = torch.randint(5, shape["vocab_size"], (shape["batch_size"], shape["seq_len"]), generator=generator)
    masked = torch.rand(ids.shape, generator=generator) < 0.15
    labels = torch.where(masked, ids, -100)
    ids = ids.masked_fill(masked, 4)
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    if segments:  # BERT's; ModernBERT has none
        batch["token_type_ids"] = torch.zeros_like(ids)
    return {k: v.to(device) for k, v in batch.items()}


class _Runner:
    """One model with its optimizer; ``train(steps)`` / ``infer(steps)`` return (seconds, peak bytes or None)."""

    def __init__(self, model, device, autocast, compile_model):
        self.model = model.to(device)
        self.device = device
        self.autocast = autocast
        self.call = torch.compile(self.model) if compile_model else self.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-5, fused=device == "cuda")

    def _context(self):
        if self.autocast:
            return torch.autocast(self.device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _timed(self, fn, steps):
        """``common.measure``: the seconds, and on CUDA this model's own peak (its resident bytes, marked on ``fn``,
        plus the steps' most above what was allocated before them; the other models on the GPU are not counted)."""
        return measure(fn, steps, self.device)

    def step(self, kind: str, batch):
        """One training step (forward, backward, AdamW) or one inference forward, as a callable."""
        if kind == "infer":
            self.model.eval()
            inputs = {k: v for k, v in batch.items() if k != "labels"}

            def infer():
                with torch.no_grad(), self._context():
                    self.call(**inputs)

            return owning(infer, self.model)  # inference needs the weights alone
        self.model.train()

        def train():
            with self._context():
                loss = self.call(**batch).loss
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

        return owning(train, self.model, self.optimizer)

    def train(self, batch, steps):
        return self._timed(self.step("train", batch), steps)

    def infer(self, batch, steps):
        return self._timed(self.step("infer", batch), steps)


def _mfu(tokens_per_s, params, shape, device):
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    peak = next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)
    if peak is None:
        return None
    flops_per_token = 6 * params + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * shape["seq_len"]
    return tokens_per_s * flops_per_token / peak


def run(args, reference: str = "bert") -> list[dict]:
    """Benchmark rows: one per (measurement), each with the HF and mini figures and their ratio; ``reference``:
    ``"bert"`` or ``"modernbert"``."""
    device = args.device
    shape = dict((SHAPES if reference == "bert" else MODERNBERT_SHAPES)[device])
    for key in ("batch_size", "seq_len"):
        if getattr(args, key, None):
            shape[key] = getattr(args, key)
    rounds = args.rounds or (5 if device == "cuda" else 8)
    steps = args.steps or (10 if device == "cuda" else 2)
    torch.manual_seed(0)
    hf = _reference_model(reference, shape)
    hf.set_attn_implementation(args.attn)
    mini = from_hf(hf)
    params = sum(p.numel() for p in mini.parameters())
    autocast = device == "cuda"
    compile_model = getattr(args, "compile", False)
    runners = {"hf": _Runner(hf, device, autocast, compile_model),
               "mini": _Runner(mini, device, autocast, compile_model)}
    if not getattr(args, "no_sparse", False) and not compile_model and reference == "bert":
        # same weights, but the MLM head scores only the masked 15% (logits (N, V) instead of (B, T, V))
        sparse = from_hf(hf, sparse_prediction=True)
        runners["mini_sparse"] = _Runner(sparse, device, autocast, False)
    batch = _mlm_batch(shape, device, torch.Generator().manual_seed(0), segments=reference == "bert")
    max_diff = _parity(runners["hf"].model, runners["mini"].model, batch)
    tokens = shape["batch_size"] * shape["seq_len"] * steps

    results = {(name, kind): [] for name in runners for kind in ("train", "infer")}
    for kind in ("train", "infer"):
        for runner in runners.values():  # warm-up (and compilation)
            getattr(runner, kind)(batch, 2)
        for index in range(rounds):  # alternate the models within each round, in the other order every other round
            order = list(runners.items())
            for name, runner in order if index % 2 == 0 else reversed(order):
                results[(name, kind)].append(getattr(runner, kind)(batch, steps))

    benchmark = "encoder-mlm" if reference == "bert" else "modernbert-mlm"
    label = (f"{device} {args.attn} {'bf16 ' if autocast else ''}{'compiled ' if compile_model else ''}"
             f"B={shape['batch_size']} T={shape['seq_len']} D={shape['hidden_size']} L={shape['num_hidden_layers']}")
    rows = [dict(benchmark=benchmark, case=label, metric="eval logits max abs diff", hf=0.0, mini=max_diff,
                 ratio=None)]
    for kind in ("train", "infer"):
        speed = {name: tokens / statistics.median(s for s, _ in results[(name, kind)]) for name in runners}
        peaks = {name: max((p for _, p in results[(name, kind)] if p is not None), default=None) for name in runners}
        if device == "cpu":  # measured once, after the timed rounds: see common.allocated_peak
            peaks = {name: allocated_peak(runner.step(kind, batch)) for name, runner in runners.items()}
        # the sparse head changes only training (inference has no labels): report it for training alone
        for name in [n for n in runners if n != "hf" and (kind == "train" or n == "mini")]:
            suffix = " (sparse MLM head)" if name == "mini_sparse" else ""
            rows.append(dict(benchmark=benchmark, case=label, metric=f"{kind} tokens/s{suffix}", hf=speed["hf"],
                             mini=speed[name], **paired(results[("hf", kind)], results[(name, kind)]),
                             hf_mfu=_mfu(speed["hf"], params, shape, device) if kind == "train" else None,
                             mini_mfu=_mfu(speed[name], params, shape, device) if kind == "train" and not suffix
                             else None))
            if peaks["hf"] is not None:
                row = memory_row(benchmark, label, kind, peaks["hf"], peaks[name], device)
                rows.append({**row, "metric": row["metric"] + suffix})
            if device == "cpu" and not compile_model:  # kernel-launch proxy, see common.count_compute_ops
                counted = {"hf": runners["hf"].step(kind, batch), "mini": runners[name].step(kind, batch)}
                rows.append(compute_ops_row(benchmark, label, f"{kind} step compute ops{suffix}", counted))
    return rows


def _parity(hf, mini, batch) -> float:
    """Max |logits difference| of the two models in eval mode on the benchmark batch (weights are shared)."""
    inputs = {k: v[:2] for k, v in batch.items() if k != "labels"}
    hf.eval()
    mini.eval()
    with torch.no_grad():
        return (hf(**inputs).logits.float() - mini(**inputs).logits.float()).abs().max().item()


def main(argv=None):
    print(format_rows(run(parse_args(argv))))


if __name__ == "__main__":
    main()
