"""MiniEncoderForMaskedLM with ModernBERT's layout against transformers' ModernBertForMaskedLM of the same shape and
weights.

The encoder's benchmark (``bench_encoder.py``: parity row, training step, inference, peak memory) with a random
``ModernBertForMaskedLM`` as the reference: rotary positions with a base per layer type, local attention on two
layers in three, a GeGLU feed-forward, LayerNorms without biases; converted with ``modeling_mini.convert.from_hf``.

    python benchmarks/bench_modernbert.py                # CPU, small shape
    python benchmarks/bench_modernbert.py --device cuda  # ModernBERT-base, B=32, T=512, bf16 autocast
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_encoder  # noqa: E402
from common import format_rows  # noqa: E402


def run(args) -> list[dict]:
    """Benchmark rows of MiniEncoder against ModernBERT (parity, training, inference)."""
    return bench_encoder.run(args, reference="modernbert")


def main(argv=None):
    print(format_rows(run(bench_encoder.parse_args(argv))))


if __name__ == "__main__":
    main()
