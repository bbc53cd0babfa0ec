"""MiniSeq2SeqForConditionalGeneration converted from transformers' T5ForConditionalGeneration (Flan-T5's layout:
relative attention bias, pre-norm RMSNorm, gated GELU, an output matrix of its own) against that model: the rows of
``bench_seq2seq.py`` (parity, training step, greedy and beam generation at batch 1 and 8), named ``t5``.

    python benchmarks/bench_t5.py                   # CPU, small shape
    python benchmarks/bench_t5.py --device cuda     # flan-t5-base's shape (d 768, 12 + 12 layers), bf16 autocast
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_seq2seq  # noqa: E402
from common import format_rows  # noqa: E402


def run(args) -> list[dict]:
    return bench_seq2seq.run(args, reference="t5")


def main(argv=None):
    parser = bench_seq2seq.add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    print(format_rows(run(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
