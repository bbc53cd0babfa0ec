"""Deployment: ``torch.export`` of every family, ``torch.jit.trace``, ONNX run by ONNX Runtime, and transformers'
ExecuTorch recipes (static cache, exported decoding step) giving the tokens ``generate`` gives."""

import warnings

import pytest
import torch
from conftest import TINY, padded_batch
from transformers.integrations.executorch import Seq2SeqLMExportableModule, TorchExportableModuleForDecoderOnlyLM

import modeling_mini

POSITION_TYPES = ["sinusoidal", "learned", "rotary"]


def families():
    return {
        "gpt": (modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(**TINY)), {"use_cache": False}),
        "encoder": (modeling_mini.MiniEncoderForMaskedLM(modeling_mini.MiniEncoderConfig(**TINY)), {}),
        # ModernBERT's layout: a local layer (2 tokens either side, its own rotary base) beside a full one
        "modern-encoder": (modeling_mini.MiniEncoderForMaskedLM(modeling_mini.MiniEncoderConfig(
            **TINY, position_embedding_type="rotary", sliding_window=2, sliding_rope_theta=10.0,
            layer_types=["full_attention", "sliding_attention"], norm_position="pre", norm_bias=False,
            skip_first_attention_norm=True, hidden_act="geglu")), {}),
        "seq2seq": (
            modeling_mini.MiniSeq2SeqForConditionalGeneration(modeling_mini.MiniSeq2SeqConfig(**TINY)),
            {"decoder_input_ids": torch.randint(3, 99, (3, 5), generator=torch.Generator().manual_seed(1)),
             "use_cache": False},
        ),
    }


@pytest.mark.parametrize("family", ["gpt", "encoder", "modern-encoder", "seq2seq"])
def test_torch_export_with_a_dynamic_length_equals_eager(family):
    """One exported program serves every sequence length (a dynamic dimension), with the eager model's logits."""
    model, extra = families()[family]
    model.eval()
    ids, mask = padded_batch(left=False)
    inputs = dict(input_ids=ids, attention_mask=mask, **extra)
    length = torch.export.Dim("length", min=2, max=TINY["max_position_embeddings"])
    shapes = {"input_ids": {1: length}, "attention_mask": {1: length}} | {name: None for name in extra}
    with torch.no_grad():
        program = torch.export.export(model, (), inputs, dynamic_shapes=shapes, strict=False)
        for cut in (ids.shape[1], 5):
            short = {**inputs, "input_ids": ids[:, :cut], "attention_mask": mask[:, :cut]}
            torch.testing.assert_close(program.module()(**short).logits, model(**short).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["gpt", "encoder", "modern-encoder"])
def test_torch_jit_trace_passes_its_check_and_serves_another_length(family):
    """TorchScript (deprecated in torch, still used by older serving stacks): ``torch.jit.trace`` with its check (it
    traces twice) on the default sinusoidal positions and on rotary ones, then a shorter input. Sinusoidal positions
    failed (a traced length is a tensor, not an int) and rotary ones failed the check (a cached frequency vector
    became a constant in the first trace only)."""
    model, _ = families()[family]
    model.config.use_cache = False  # a traced function returns tensors only, as with GPT-2 or Llama
    model.eval()
    ids, mask = padded_batch(left=False)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # its notes on Python values it records as constants
        traced = torch.jit.trace(model, (ids, mask), strict=False)
        short = (ids[:, :5], mask[:, :5])
        torch.testing.assert_close(traced(*short)["logits"], model(*short).logits, atol=1e-5, rtol=0)


def decode_with_program(program, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Greedy decoding as the ExecuTorch runner drives an exported step: token ``i`` goes in at cache position ``i``.

    (transformers' own ``TorchExportableModuleWithStaticCache.generate`` feeds each generated token one position too
    far, leaving a hole in the cache; it then disagrees with ``generate`` for GPT-2 as well, so it is not used here.)
    """
    step = program.module()
    tokens = prompt[0].tolist()
    for position in range(len(prompt[0]) + new_tokens - 1):
        logits = step(input_ids=torch.tensor([[tokens[position]]]), cache_position=torch.tensor([position]))
        if position >= len(prompt[0]) - 1:
            tokens.append(int(logits[0, -1].argmax()))
    return torch.tensor([tokens])


@pytest.mark.parametrize("position_embedding_type", [*POSITION_TYPES, "rotary-sliding"])
def test_executorch_decoder_export_generates_the_greedy_tokens(position_embedding_type):
    """transformers' ExecuTorch recipe for decoder-only LMs: a static cache and no position ids, one token per call;
    the exported program must follow the cache's (tensor) length, as ``generate`` does. ``rotary-sliding``: a
    sliding-window layer (window 4) and a full one, whose static caches differ; the 14 tokens pass the window."""
    options = dict(position_embedding_type=position_embedding_type)
    if position_embedding_type == "rotary-sliding":
        options = dict(position_embedding_type="rotary", sliding_window=4, initializer_range=0.3,
                       layer_types=["sliding_attention", "full_attention"])
    model = modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(**TINY, **options)).eval()
    prompt = torch.randint(3, 99, (1, 6), generator=torch.Generator().manual_seed(2))
    expected = model.generate(prompt, max_new_tokens=8, do_sample=False, eos_token_id=None)
    model.generation_config.cache_implementation = "static"
    with torch.no_grad():
        program = TorchExportableModuleForDecoderOnlyLM(model, batch_size=1, max_cache_len=32).export(
            input_ids=prompt[:, :1], cache_position=torch.tensor([0])
        )
        assert torch.equal(decode_with_program(program, prompt, new_tokens=8), expected)


def test_executorch_seq2seq_export_generates_the_greedy_tokens():
    """The encoder and the decoding step exported apart (``torch.export``, strict), the decoder with a static self-
    attention cache; the recipe starts decoding from token 0, so the model's start token is 0 here."""
    config = modeling_mini.MiniSeq2SeqConfig(**{**TINY, "eos_token_id": None}, decoder_start_token_id=0)
    model = modeling_mini.MiniSeq2SeqForConditionalGeneration(config).eval()
    source = torch.randint(3, 99, (1, 7), generator=torch.Generator().manual_seed(3))
    recipe = Seq2SeqLMExportableModule(model, batch_size=1, max_hidden_seq_length=16, max_cache_length=32)
    recipe.export()
    exported = recipe.generate(source, max_new_tokens=9)
    expected = model.generate(source, max_new_tokens=8, do_sample=False)
    assert exported == expected[0].tolist()


@pytest.mark.parametrize("family", ["gpt", "encoder", "seq2seq"])
def test_onnx_export_runs_in_onnxruntime_at_another_batch_and_length(family, tmp_path):
    """ONNX through ``torch.onnx.export(dynamo=True)`` (torch.export, then onnxscript's translation), with the batch
    and the length dynamic, run by ONNX Runtime on a batch and a length other than the traced ones: the eager
    logits at every position a mask keeps."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export needs the dev extra's onnx packages")
    pytest.importorskip("onnxscript", reason="ONNX export needs the dev extra's onnx packages")
    model, extra = families()[family]
    model.eval()
    ids, mask = padded_batch(left=False)
    options = {"use_cache": extra["use_cache"]} if "use_cache" in extra else {}
    inputs = dict(input_ids=ids, attention_mask=mask, **{k: v for k, v in extra.items() if k not in options})
    names = list(inputs)

    class Logits(torch.nn.Module):
        """The model with its inputs in one order and the logits as the one output (what a serving graph takes)."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, decoder_input_ids=None):  # named: torch 2.9 failed on *args
            target = {} if decoder_input_ids is None else {"decoder_input_ids": decoder_input_ids}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **target, **options).logits

    # from 2: torch before 2.10 specialises a size of 1 while exporting; the ONNX graph then runs a batch of 1 as well
    batch = torch.export.Dim("batch", min=2, max=8)
    length = torch.export.Dim("length", min=2, max=TINY["max_position_embeddings"])
    target = torch.export.Dim("target", min=2, max=TINY["max_position_embeddings"])
    shapes = {name: {0: batch, 1: target if name == "decoder_input_ids" else length} for name in names}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on shared dimension names and deprecated pytree calls
        onnx_program = torch.onnx.export(Logits(), (), kwargs=inputs, dynamo=True, dynamic_shapes=shapes,
                                         input_names=names, output_names=["logits"], verbose=False)
    onnx_program.save(str(tmp_path / "model.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])

    other_ids, other_mask = padded_batch(batch=2, length=6, left=False, generator_seed=5)
    other = {"input_ids": other_ids, "attention_mask": other_mask}
    if "decoder_input_ids" in names:
        other["decoder_input_ids"] = torch.randint(3, 99, (2, 4), generator=torch.Generator().manual_seed(6))
    for rows in (slice(None), slice(1)):  # the batch of 2, then its first row alone
        feed = {name: tensor[rows] for name, tensor in other.items()}
        (logits,) = session.run(["logits"], {name: tensor.numpy() for name, tensor in feed.items()})
        with torch.no_grad():
            expected = Logits()(**feed)
        kept = slice(None) if family == "seq2seq" else other_mask[rows].bool()  # seq2seq: every target is real
        torch.testing.assert_close(torch.from_numpy(logits)[kept], expected[kept], atol=1e-5, rtol=0)
