"""MiniGPTForCausalLM with Llama's options against transformers' LlamaForCausalLM of the same shape and weights.

The GPT family's benchmark (``bench_gpt.py``: parity row, training step, ``generate`` at batch 1 and 8) with a random
``LlamaForCausalLM`` as the reference: rotary positions, RMSNorm, a SwiGLU feed-forward and grouped-query attention,
the modern decoder's options, converted with ``modeling_mini.convert.from_hf``.

    python benchmarks/bench_llama.py                     # CPU, small shape
    python benchmarks/bench_llama.py --device cuda       # D=768, L=12, B=16, T=1024, bf16 autocast
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gpt  # noqa: E402
from common import format_rows  # noqa: E402


def run(args) -> list[dict]:
    """Benchmark rows of MiniGPT against Llama (parity, training, generation)."""
    return bench_gpt.run(args, reference="llama")


def main(argv=None):
    parser = bench_gpt.add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    print(format_rows(run(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
