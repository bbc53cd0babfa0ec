"""`make demo` (interim): build a small GPT, save it, reload it through AutoModelForCausalLM, generate.

Replaced by the pretrain-then-fine-tune demo once the training scripts land.
"""

import tempfile

import torch
from transformers import AutoModelForCausalLM

import modeling_mini


def main() -> None:
    torch.manual_seed(0)
    config = modeling_mini.MiniGPTConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         bos_token_id=0, eos_token_id=0)
    model = modeling_mini.MiniGPTForCausalLM(config)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        reloaded = AutoModelForCausalLM.from_pretrained(folder)
        prompt = torch.tensor([list(b"Hello")])
        out = reloaded.generate(prompt, max_new_tokens=12, do_sample=False)
        print("reloaded:", type(reloaded).__name__, "| generated ids:", out[0].tolist())


if __name__ == "__main__":
    main()
