"""The benchmarks stay runnable: `make bench`'s script, shortened, produces every family's rows with parity first."""

import json
import subprocess
import sys

from conftest import ROOT


def test_bench_runs_every_family_in_its_own_process_and_reports_ratios(tmp_path):
    out = tmp_path / "rows.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--device", "cpu", "--no-generate",
               "--rounds", "2", "--steps", "1", "--batch-size", "2", "--seq-len", "32", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())
    families = ("gpt", "llama", "encoder", "modernbert", "seq2seq", "t5")
    assert {row["benchmark"].split("-")[0] for row in rows} == set(families)
    for family in families:
        family_rows = [row for row in rows if row["benchmark"].startswith(family)]
        parity = family_rows[0]
        assert "max abs diff" in parity["metric"] and parity["mini"] <= 1e-5, parity
        speed = [row for row in family_rows if "tokens/s" in row["metric"]]
        assert speed and all(row["hf"] > 0 and row["mini"] > 0 and row["ratio"] > 0 for row in speed), speed
        ops = [row for row in family_rows if "compute ops" in row["metric"]]  # the CPU kernel-launch proxy
        assert ops and all(row["hf"] > 20 and row["mini"] > 20 for row in ops), ops
    assert "mini/HF" in result.stdout  # the table is printed once, by the parent
    assert result.stdout.count("mini/HF") == 1
