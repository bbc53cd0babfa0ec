"""Shared fixtures: tiny configs (hidden 32, 2 layers, 4 heads, vocab 99), fixed seeds, CPU only."""

import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import modeling_mini  # noqa: E402

TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


def tiny_gpt_config(**overrides) -> modeling_mini.MiniGPTConfig:
    return modeling_mini.MiniGPTConfig(**{**TINY, **overrides})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-data tier: {SHARED_DATA} not found (only present in the project workspace)")
    return SHARED_DATA


def padded_batch(batch=3, length=9, vocab=99, pad=0, left=True, generator_seed=0):
    """Random ids (never pad) with row 0 padded on the left (or right) by 3 and row 1 by 2 on the other side."""
    g = torch.Generator().manual_seed(generator_seed)
    ids = torch.randint(3, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    if left:
        mask[0, :3] = 0
    else:
        mask[0, -3:] = 0
    if batch > 1:
        mask[1, -2:] = 0
    ids = ids.masked_fill(mask == 0, pad)
    return ids, mask
