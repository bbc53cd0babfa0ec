"""Where a training step's peak GPU memory goes, mini against transformers: the allocations alive at each peak.

    python benchmarks/gpu_memory.py --family gpt --compile    # GPT-2 small, B=16 T=1024, bf16, torch.compile
    python benchmarks/gpu_memory.py --family encoder          # BERT-base MLM, B=32 T=512, bf16
    python benchmarks/gpu_memory.py --device cpu --family gpt --compile   # CPU shapes: the peaks only

The benchmarks report ``torch.cuda.max_memory_allocated`` per model; this says what makes the difference. Each model
(the pair the family's benchmark builds, same weights) runs two warm-up steps, then one step under the caching
allocator's history recorder (``torch.cuda.memory._record_memory_history``). :func:`live_at_peak` replays the recorded
allocations and frees to find the moment of the peak and what was alive then; the table groups those blocks by the
innermost frame in model or library code (where the tensor was made), largest first, with mini's and HF's bytes side
by side. Memory alive before the step (weights, optimizer state, the other model) is counted once, as "before".

``--device cpu`` needs no GPU and gives each model's exact peak on the CPU (:func:`cpu_peak`: the bytes the step's
allocations reached above its start, from the allocator's events in a profiler trace, as the benchmarks' CPU rows
now are). It has no places, but it is how the cost of the training graph's extra outputs under
``torch.compile`` showed up: the key / value cache a GPT built beside its loss (see ``benchmarks/README.md``).
"""

import argparse
import os
import sys
from collections import defaultdict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

#: frames from these files are plumbing (the allocator, autograd, this script): the table names the first other one
_PLUMBING = ("torch/cuda/memory.py", "torch/autograd/", "torch/_tensor.py", "torch/utils/_contextlib.py",
             "torch/nn/modules/module.py", "gpu_memory.py", "torch/_dynamo/eval_frame.py", "torch/amp/")


def where(frames: list[dict]) -> str:
    """``file:line (function)`` of the innermost frame that is not plumbing (see ``_PLUMBING``), or ``"?"``."""
    for frame in frames:
        name = frame.get("filename", "")
        if name and not any(part in name for part in _PLUMBING) and not name.startswith("<"):
            tail = "/".join(name.split("/")[-2:])
            return f"{tail}:{frame.get('line', '?')} ({frame.get('name', '?')})"
    return "?"


def live_at_peak(trace: list[dict], before: int = 0) -> tuple[int, dict[int, tuple[int, str]]]:
    """Replay one device's allocator trace; return (peak bytes, {address: (bytes, where)} alive at the peak).

    ``trace`` is ``torch.cuda.memory._snapshot()["device_traces"][device]``: events with ``action``, ``addr``,
    ``size`` (the bytes asked for) and ``frames``. ``alloc`` adds a block and ``free_requested`` removes it, when the
    allocator's counters move (``free_completed`` only follows once the streams are done with it; segment events
    reserve, they do not allocate). A block freed that was allocated before recording began leaves ``before``.
    ``before`` is the memory already asked for when recording began (``requested_bytes.all.current``).
    """
    live: dict[int, tuple[int, str]] = {}
    total = peak = before
    at_peak = dict(live)
    for event in trace:
        action = event.get("action")
        if action == "alloc":
            live[event["addr"]] = (event["size"], where(event.get("frames", [])))
            total += event["size"]
            if total > peak:
                peak, at_peak = total, dict(live)
        elif action == "free_requested":
            total -= live.pop(event["addr"])[0] if event["addr"] in live else event["size"]
    return peak, at_peak


def by_place(blocks: dict[int, tuple[int, str]]) -> dict[str, tuple[int, int]]:
    """{where: (bytes, number of blocks)} of the blocks alive at a peak."""
    places: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for size, place in blocks.values():
        places[place][0] += size
        places[place][1] += 1
    return {place: (size, count) for place, (size, count) in places.items()}


def record_step(step, device_index: int = 0) -> tuple[int, int, dict[int, tuple[int, str]], int]:
    """Run ``step`` (two warm-up calls, then one recorded); return (bytes asked for before, their peak, blocks at
    the peak, ``max_memory_allocated`` of the step). The allocator rounds each block up (512 bytes, more for a large
    block it does not split): the benchmark's figure is the last, the replay's are the bytes asked for."""
    for _ in range(2):
        step()
    torch.cuda.synchronize()
    before = torch.cuda.memory_stats()["requested_bytes.all.current"]
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
    try:
        step()
        torch.cuda.synchronize()
        trace = torch.cuda.memory._snapshot()["device_traces"][device_index]
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    peak, blocks = live_at_peak(trace, before)
    return before, peak, blocks, torch.cuda.max_memory_allocated()


def cpu_peak(step) -> int:
    """CPU: run ``step`` twice to warm up, then once under the profiler; return its peak above its start
    (``common.allocated_peak``: every allocation, ``torch.compile``'s buffers included, so this is exact where the
    resident set is not)."""
    from common import allocated_peak

    for _ in range(2):
        step()
    return allocated_peak(step)


def _steps(family: str, compile_models: bool, device: str = "cuda"):
    """{"hf": step, "mini": step}: the training step of the family's benchmark, on the device's shape (the GPU's:
    GPT-2 small, BERT-base, Marian-base), bf16 autocast. ``device="cpu"`` builds the CPU shapes (tested)."""
    args = argparse.Namespace(device=device, attn="sdpa", batch_size=None, seq_len=None, rounds=None, steps=None)
    generator = torch.Generator().manual_seed(0)
    steps = {}
    if family == "gpt":
        import bench_gpt

        shape = bench_gpt._shape(args)
        hf, mini = bench_gpt._models(shape, args)
        batch = torch.randint(1, shape["vocab_size"], (shape["batch_size"], shape["seq_len"]), generator=generator)
        for name, model in (("hf", hf), ("mini", mini)):
            model.train()
            call = torch.compile(model) if compile_models else model
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
            steps[name] = bench_gpt._train_step(model, call, optimizer, batch.to(device), device, True)
    elif family == "encoder":
        import bench_encoder

        from modeling_mini.convert import from_hf

        shape = dict(bench_encoder.SHAPES[device])
        torch.manual_seed(0)
        hf = bench_encoder._reference_model("bert", shape)
        hf.set_attn_implementation("sdpa")
        mini = from_hf(hf)
        mini.set_attn_implementation("sdpa")
        batch = bench_encoder._mlm_batch(shape, device, generator)
        for name, model in (("hf", hf), ("mini", mini)):
            steps[name] = bench_encoder._Runner(model, device, True, compile_models).step("train", batch)
    elif family == "seq2seq":
        import bench_seq2seq

        shape = bench_seq2seq._shape(args)
        hf, mini = bench_seq2seq._models(shape, args)
        source = torch.randint(3, shape["vocab_size"], (shape["batch_size"], shape["seq_len"]), generator=generator)
        labels = torch.randint(3, shape["vocab_size"], (shape["batch_size"], shape["seq_len"]), generator=generator)
        for name, model in (("hf", hf), ("mini", mini)):
            model.train()
            call = torch.compile(model) if compile_models else model
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
            steps[name] = bench_seq2seq._train_step(call, optimizer, source.to(device), labels.to(device), device,
                                                    True, model)
    else:
        raise ValueError(f"family must be one of 'gpt', 'encoder', 'seq2seq'; got {family!r}.")
    return steps


def report(results: dict[str, tuple], rows: int = 25) -> str:
    """The table: the peaks and "before" per model (``results[name]`` as :func:`record_step` returns it, the last
    item optional), then the places holding the most memory at the peaks."""
    mib = 2**20
    lines = [f"{'':<60} {'HF MiB':>10} {'mini MiB':>10} {'mini-HF':>9}"]
    hf, mini = results["hf"], results["mini"]
    if len(hf) > 3:
        lines.append(f"{'max_memory_allocated of the recorded step (the benchmark)':<60} {hf[3] / mib:>10.1f} "
                     f"{mini[3] / mib:>10.1f} {(mini[3] - hf[3]) / mib:>+9.1f}")
    lines.append(f"{'peak of the bytes asked for (replayed)':<60} {hf[1] / mib:>10.1f} {mini[1] / mib:>10.1f}"
                 f" {(mini[1] - hf[1]) / mib:>+9.1f}")
    lines.append(f"{'asked for before the step (weights, optimizer state, both models)':<60} {hf[0] / mib:>10.1f} "
                 f"{mini[0] / mib:>10.1f}")
    places = {name: by_place(result[2]) for name, result in results.items()}
    keys = sorted(set(places["hf"]) | set(places["mini"]),
                  key=lambda k: -max(places["hf"].get(k, (0, 0))[0], places["mini"].get(k, (0, 0))[0]))
    lines.append("alive at the peak, by where it was allocated (blocks):")
    for key in keys[:rows]:
        (h, hn), (m, mn) = places["hf"].get(key, (0, 0)), places["mini"].get(key, (0, 0))
        lines.append(f"  {key[:58]:<58} {h / mib:>10.1f} {m / mib:>10.1f} {(m - h) / mib:>+9.1f}  ({hn} / {mn})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="gpt", choices=("gpt", "encoder", "seq2seq"))
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--rows", type=int, default=25, help="places to list")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: each model's exact peak only")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        steps = _steps(args.family, args.compile, device="cpu")
        peaks = {name: cpu_peak(steps[name]) / 2**20 for name in ("hf", "mini")}
        print(f"{args.family}{' compiled' if args.compile else ''}, CPU shape, one training step after two warm-up "
              f"steps: peak above the step's start HF {peaks['hf']:.1f} MiB, mini {peaks['mini']:.1f} MiB, ratio "
              f"{peaks['mini'] / peaks['hf']:.3f}")
        return peaks
    if not torch.cuda.is_available():
        raise SystemExit("gpu_memory.py records the CUDA caching allocator: it needs a GPU.")
    steps = _steps(args.family, args.compile)
    results = {}
    for name in ("hf", "mini"):
        results[name] = record_step(steps[name])
    print(f"{args.family}{' compiled' if args.compile else ''}, one training step after two warm-up steps")
    print(report(results, args.rows))


if __name__ == "__main__":
    main()
