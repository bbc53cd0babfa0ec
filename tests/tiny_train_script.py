"""A minimal Trainer run of a tiny GPT, launched by tests as a subprocess (1 or 2 processes, killed and resumed).

Stand-in for ``train/pretrain.py`` where a test needs full control of the run: synthetic, learnable data (arithmetic
sequences), every ``TrainingArguments`` option from the command line, final weights saved to ``output_dir``.

    python tests/tiny_train_script.py --output_dir out --max_steps 8 --per_device_train_batch_size 8 --report_to none
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import HfArgumentParser, Trainer, TrainingArguments, default_data_collator, set_seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import modeling_mini  # noqa: E402


@dataclass
class TinyArguments:
    num_sequences: int = field(default=64, metadata={"help": "training sequences"})
    sequence_length: int = field(default=16, metadata={"help": "tokens per sequence"})


def arithmetic_sequences(count: int, length: int, vocab: int = 99) -> Dataset:
    """Rows ``start, start + step, ...`` (mod vocab, ids >= 3): a pattern a tiny model learns in a few steps."""
    g = torch.Generator().manual_seed(1234)
    start = torch.randint(3, vocab, (count, 1), generator=g)
    step = torch.randint(1, 4, (count, 1), generator=g)
    ids = 3 + (start - 3 + step * torch.arange(length)) % (vocab - 3)
    return Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})


def main() -> None:
    tiny, args = HfArgumentParser((TinyArguments, TrainingArguments)).parse_args_into_dataclasses()
    set_seed(args.seed)
    config = modeling_mini.MiniGPTConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                         intermediate_size=37, max_position_embeddings=64, hidden_dropout=0.0,
                                         attention_dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = modeling_mini.MiniGPTForCausalLM(config)
    data = arithmetic_sequences(tiny.num_sequences, tiny.sequence_length)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator)
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model()
    trainer.save_state()


if __name__ == "__main__":
    main()
