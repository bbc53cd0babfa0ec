"""Run the mini-vs-transformers benchmarks of one family or all of them and print one table.

    python benchmarks/run.py --device cpu                      # `make bench`
    python benchmarks/run.py --device cuda --compile           # GPU sizes, bf16 autocast, torch.compile
    python benchmarks/run.py --family gpt --json rows.json     # one family, rows also saved as JSON

Each family lives in ``benchmarks/bench_<family>.py`` and exposes ``run(args) -> list[dict]`` (rows as in
``common.py``); a family whose module does not exist yet is skipped with a note. With several families, each
runs in a fresh Python process, so that no family's timings depend on what ran before it in the same process
(allocator state, warmed caches). See benchmarks/README.md.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import format_rows  # noqa: E402

FAMILIES = ("gpt", "llama", "encoder", "modernbert", "seq2seq", "t5")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--compile", action="store_true", help="torch.compile both models of each benchmark")
    parser.add_argument("--family", default="all", choices=(*FAMILIES, "all"))
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"), help="attention backend of both models")
    parser.add_argument("--batch-size", type=int, default=None, help="override the family's training batch size")
    parser.add_argument("--seq-len", type=int, default=None, help="override the family's sequence length")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per model (median reported)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed round")
    parser.add_argument("--no-generate", action="store_true", help="skip generation rows (families that have them)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="do not print the table (a child of a multi-family run)")
    return parser.parse_args(argv)


def _without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """``argv`` minus the given ``--name value`` / ``--name=value`` options."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(f"{name}=" for name in names)):
            kept.append(arg)
    return kept


def _run_in_fresh_process(family: str, argv: list[str]) -> list[dict]:
    """One family's rows, measured by a child ``run.py --family <family>``."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "rows.json")
        child = [sys.executable, os.path.abspath(__file__), *_without_options(argv, ("--family", "--json")),
                 "--family", family, "--json", path, "--quiet"]
        subprocess.run(child, check=True)
        if not os.path.exists(path):  # the family's module does not exist yet
            return []
        with open(path) as f:
            return json.load(f)


def main(argv=None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    families = FAMILIES if args.family == "all" else (args.family,)
    rows = []
    for family in families:
        if len(families) > 1:
            rows.extend(_run_in_fresh_process(family, argv))
            continue
        try:
            module = importlib.import_module(f"bench_{family}")
        except ModuleNotFoundError as error:
            if error.name != f"bench_{family}":
                raise
            print(f"[skip] benchmarks/bench_{family}.py does not exist yet", flush=True)
            continue
        start = time.perf_counter()
        family_rows = module.run(args)
        print(f"[done] {family}: {len(family_rows)} rows in {time.perf_counter() - start:.0f} s", flush=True)
        rows.extend(family_rows)
    if rows and not args.quiet:
        print(format_rows(rows))
    if args.json and rows:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
