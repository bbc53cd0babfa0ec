"""Shared helpers for the ``bench_<family>.py`` modules: timing, peak memory, MFU and the result table.

A benchmark compares a mini model with the transformers model of the same shape, weights and attention
backend *in one process*, alternating the two inside every round so that clock boosts, thermal drift or
other processes on the machine hit both alike; the median round is reported.

Rows are plain dicts, so drivers can print, filter or save them as JSON::

    {"benchmark": "gpt", "case": "cpu sdpa B=8 T=128 ...", "metric": "train tokens/s",
     "hf": 1234.5, "mini": 1300.2, "ratio": 1.053, "hf_mfu": None, "mini_mfu": None}

``ratio`` is always mini / HF. For throughput above 1 means mini is faster; for memory below 1 means mini
uses less. A row with ``ratio=None`` is informational (e.g. a parity check's max difference).

Throughput rows also carry ``spread``: the quartiles of the *paired* speed ratios, one per round (HF's time over
mini's time in the same round, measured back to back). On a shared CPU the ratios wander by several percent; a
spread that straddles 1.0 says the row is within noise, one that stays below says mini is really slower. They also
carry ``fastest``, HF's fastest round over mini's: other processes only slow rounds down, never speed them up.
"""

import contextlib
import os
import statistics
import time
from collections.abc import Callable

import torch

#: dense bf16 peak FLOP/s by card name fragment (no sparsity)
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}


def sync(device: str) -> None:
    """Wait for queued GPU work, so wall-clock time covers it."""
    if device == "cuda":
        torch.cuda.synchronize()


def autocast(device: str, enabled: bool):
    """bf16 autocast on the device, or a no-op context."""
    return torch.autocast(device, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def allocated_peak(fn: Callable[[], object]) -> int:
    """CPU peak memory of one call of ``fn``: the most bytes the CPU allocator held during it, above what it held when
    the call began (activations, temporaries, new gradients), from the allocator's events in a ``torch.profiler``
    trace (``profile_memory=True``): each allocation and free, in order, summed.

    PyTorch has no ``max_memory_allocated`` for the CPU, and the process's resident set is a poor stand-in: the C
    allocator keeps freed pages, so it misses what is reused and counts what is not returned. The profiler sees every
    allocation, ``torch.compile``'s buffers included, so this is exact and the same from run to run. A tensor made
    before the call and freed in it is not reported by the CPU allocator (the benchmarks' steps free none). Profiling
    costs time: call it once per model, after the timed rounds.
    """
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    cpu = 0  # the trace's device type for the CPU
    changes = sorted(((e["ts"], e["args"]["Bytes"]) for e in events  # by time; ties keep the trace's order
                      if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type") == cpu),
                     key=lambda change: change[0])
    held = peak = 0
    for _, change in changes:
        held += change
        peak = max(peak, held)
    return peak


def resident_bytes(model=None, optimizer=None) -> int:
    """The bytes one model keeps on its device between steps: its parameters and buffers, any gradients still held,
    and its optimizer's state (AdamW's two moments), each storage counted once."""
    tensors = []
    if model is not None:
        tensors += [*model.parameters(), *model.buffers()]
    if optimizer is not None:
        tensors += [p for group in optimizer.param_groups for p in group["params"]]
        tensors += [t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    tensors += [t.grad for t in tensors if t.grad is not None]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for t in tensors if t.device.type != "meta"}
    return sum(storages.values())


def owning(step: Callable[[], object], model=None, optimizer=None) -> Callable[[], object]:
    """Mark ``step`` with the model (and optimizer) whose resident memory is its own (:func:`measure`)."""
    step.resident = lambda: resident_bytes(model, optimizer)
    return step


def measure(fn: Callable[[], object], steps: int, device: str, memory: bool = True) -> tuple[float, int | None]:
    """Run ``fn`` ``steps`` times; return (seconds, peak bytes or None).

    On CUDA the peak is what this model alone would need: the most bytes allocated during the steps above what was
    allocated before them (``max_memory_allocated`` minus ``memory_allocated``: activations, gradients, temporaries),
    plus the model's own resident bytes, marked by :func:`owning` (weights, optimizer state). Both models of a
    benchmark sit on the GPU together, so ``max_memory_allocated`` alone counts the other model's weights and
    optimizer state in each figure too, which pulls the ratio towards 1. Without a mark, it is that raw figure. On
    the CPU there is none here (:func:`alternate` measures it once, with :func:`allocated_peak`).
    """
    base = 0
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    seconds = time.perf_counter() - start
    if device != "cuda" or not memory:
        return seconds, None
    resident = getattr(fn, "resident", None)
    peak = torch.cuda.max_memory_allocated()
    return seconds, peak if resident is None else peak - base + resident()


def alternate(
    fns: dict[str, Callable[[], object]], steps: int, rounds: int, device: str, warmup: int = 1, memory: bool = True
) -> dict[str, list[tuple[float, int | None]]]:
    """Warm every function up, then time them in turn within each round (order flipped every round).

    Returns ``{name: [(seconds, peak bytes), ...]}`` with one entry per round. On the CPU (with ``memory``) each
    function's peak is measured once after the rounds, by :func:`allocated_peak`, and given to each of its rounds.
    """
    for fn in fns.values():  # warm-up: compilation, allocator growth, lazy initialisation
        for _ in range(warmup):
            fn()
    sync(device)
    results = {name: [] for name in fns}
    names = list(fns)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            results[name].append(measure(fns[name], steps, device, memory))
    if memory and device == "cpu":
        for name, fn in fns.items():
            peak = allocated_peak(fn)
            results[name] = [(seconds, peak) for seconds, _ in results[name]]
    return results


def median_rate(samples: list[tuple[float, int | None]], units_per_call: float) -> float:
    """Units (tokens) per second of the median round."""
    return units_per_call / statistics.median(seconds for seconds, _ in samples)


def paired(hf: list[tuple[float, int | None]], mini: list[tuple[float, int | None]]) -> dict:
    """The speed ratio mini / HF from the rounds in pairs: each round's ``hf seconds / mini seconds``.

    Returns ``ratio`` (their median), ``spread`` (first and third quartiles; None under 4 rounds) and ``fastest``
    (HF's fastest round over mini's). Pairing the two models of the same round cancels drift in the machine's speed
    across rounds, which the ratio of the two median rates does not. ``fastest`` is a second estimate that other
    processes cannot bias: on a shared machine they only ever slow a round down, so each model's fastest round is
    the closest to its own speed.
    """
    ratios = [h / m for (h, _), (m, _) in zip(hf, mini, strict=True) if m > 0]
    spread = None
    if len(ratios) >= 4:
        first, _, third = statistics.quantiles(ratios, n=4)
        spread = (first, third)
    fastest = min(h for h, _ in hf) / min(m for m, _ in mini)
    return dict(ratio=statistics.median(ratios), spread=spread, fastest=fastest)


def max_peak(samples: list[tuple[float, int | None]]) -> int | None:
    peaks = [peak for _, peak in samples if peak is not None]
    return max(peaks) if peaks else None


#: aten ops that only describe a tensor (a view, an allocation): they launch no kernel on a GPU.
_METADATA_OPS = frozenset(
    f"aten::{name}" for name in (
        "view", "_unsafe_view", "_reshape_alias", "as_strided", "transpose", "t", "permute", "expand", "unsqueeze",
        "squeeze", "slice", "select", "split", "split_with_sizes", "narrow", "chunk", "unbind", "detach", "alias",
        "resolve_conj", "resolve_neg", "empty", "empty_like", "empty_strided", "lift_fresh", "result_type",
        "is_nonzero", "size", "stride", "numel", "unflatten", "view_as", "expand_as", "set_", "resize_", "detach_",
    )
)
#: aten ops that may return their input (a view, or dropout in eval mode): a kernel only if one runs inside.
_PASS_THROUGH_OPS = frozenset(
    f"aten::{name}"
    for name in ("reshape", "contiguous", "to", "flatten", "type_as", "_to_copy", "repeat_interleave", "dropout")
)


def _launches_kernel(event) -> bool:
    if event.name in _METADATA_OPS:
        return False
    if event.name in _PASS_THROUGH_OPS:
        return any(_launches_kernel(child) for child in event.cpu_children if child.name.startswith("aten::"))
    return True


def count_compute_ops(fn: Callable[[], object]) -> int:
    """How many tensor operations ``fn`` runs that would each launch a GPU kernel, counted on the CPU.

    From a ``torch.profiler`` trace: the outermost aten op of each call (``aten::linear``, not the ``addmm`` inside
    it), backward ops included, views and allocations left out; ``reshape`` / ``to`` count only when they copy,
    ``dropout`` only when it drops.
    A proxy for the GPU's launch cost, where small steps (batch-1 decoding) are bound by launches rather than
    FLOPs; deterministic, unlike CPU timings.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as trace:
        fn()
    count = 0
    for event in trace.events():
        parent = event.cpu_parent
        outermost = parent is None or not parent.name.startswith("aten::")
        if event.name.startswith("aten::") and outermost and _launches_kernel(event):
            count += 1
    return count


def compute_ops_row(benchmark: str, case: str, metric: str, fns: dict, per: int = 1) -> dict:
    """A row of :func:`count_compute_ops` for ``fns["hf"]`` and ``fns["mini"]``, divided by ``per`` (new tokens)."""
    ops = {name: count_compute_ops(fns[name]) / per for name in ("hf", "mini")}
    return row(benchmark, case, f"{metric} (fewer: better)", ops["hf"], ops["mini"])


def peak_flops(device: str) -> float | None:
    """The card's dense bf16 peak FLOP/s, or None (CPU, unknown card)."""
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def mfu(tokens_per_s: float, flops_per_token: float, device: str) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s (tokens/s * FLOPs per token) over the card's bf16 peak."""
    peak = peak_flops(device)
    return None if peak is None else tokens_per_s * flops_per_token / peak


def row(benchmark: str, case: str, metric: str, hf, mini, **extra) -> dict:
    """One result row; ``ratio`` = mini / HF (None when either side is missing or zero), unless ``extra`` gives
    one (timed rows pass :func:`paired`'s)."""
    ratio = mini / hf if (hf not in (None, 0) and mini is not None) else None
    ratio = extra.pop("ratio", ratio)
    return dict(benchmark=benchmark, case=case, metric=metric, hf=hf, mini=mini, ratio=ratio, **extra)


def memory_row(benchmark: str, case: str, kind: str, hf_bytes: int, mini_bytes: int, device: str) -> dict:
    """A peak-memory row in MiB: ``torch.cuda.max_memory_allocated`` on CUDA (weights and optimizer state included),
    on the CPU the peak above the step's start (:func:`allocated_peak`)."""
    hf, mini = hf_bytes / 2**20, mini_bytes / 2**20
    metric = f"{kind} peak memory MiB" if device == "cuda" else f"{kind} peak MiB above the step's start"
    return row(benchmark, case, metric, hf, mini)


def info_row(benchmark: str, case: str, metric: str, value: float) -> dict:
    """An informational row (no HF counterpart), e.g. the parity max difference."""
    return dict(benchmark=benchmark, case=case, metric=metric, hf=None, mini=value, ratio=None)


def _number(value) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if isinstance(value, float) and (abs(value) < 1e-2 and value != 0):
        return f"{value:.2e}"
    if isinstance(value, float) and abs(value) < 1:
        return f"{value:.3f}"
    return f"{value:,.1f}"


def format_rows(rows: list[dict]) -> str:
    """A fixed-width table: case, metric, HF, mini, mini/HF, its IQR and the fastest rounds' ratio (timed rows),
    and (training rows on GPU) MFU."""
    case_width = max([len(r["case"]) for r in rows] + [4])
    metric_width = max([len(r["metric"]) for r in rows] + [6])
    lines = [
        f"{'case':<{case_width}}  {'metric':<{metric_width}}  {'HF':>12}  {'mini':>12}  {'mini/HF':>8}  "
        f"{'IQR':>11}  {'fastest':>7}  MFU HF / mini"
    ]
    for r in rows:
        ratio = f"{r['ratio']:.3f}" if r.get("ratio") is not None else ""
        spread = "{:.2f}-{:.2f}".format(*r["spread"]) if r.get("spread") else ""
        fastest = f"{r['fastest']:.3f}" if r.get("fastest") is not None else ""
        mfu_text = ""
        if r.get("hf_mfu") is not None or r.get("mini_mfu") is not None:
            mfu_text = " / ".join(f"{m:.1%}" if m is not None else "-" for m in (r.get("hf_mfu"), r.get("mini_mfu")))
        lines.append(
            f"{r['case']:<{case_width}}  {r['metric']:<{metric_width}}  {_number(r['hf']):>12}  "
            f"{_number(r['mini']):>12}  {ratio:>8}  {spread:>11}  {fastest:>7}  {mfu_text}"
        )
    return "\n".join(lines)
