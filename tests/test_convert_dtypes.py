"""Converting in half precision: the models ``from_hf`` and ``to_hf`` build are the ones transformers' own
``from_pretrained(dtype=...)`` builds, buffers and float32 modules included, not the float32 model cast whole."""

import pytest
import torch
import transformers

from modeling_mini.convert import from_hf, to_hf

ROTARY = {  # the HF classes that compute a float32 table in their constructor, tiny
    "llama": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2)),
    "gpt_neox": lambda: transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
        vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4)),
    "phi": lambda: transformers.PhiForCausalLM(transformers.PhiConfig(
        vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4)),
    "gptj": lambda: transformers.GPTJForCausalLM(transformers.GPTJConfig(
        vocab_size=99, n_embd=32, n_layer=1, n_head=4, rotary_dim=4, n_positions=64)),
    "falcon": lambda: transformers.FalconForCausalLM(transformers.FalconConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, new_decoder_architecture=True,
        num_kv_heads=2)),
    "modernbert": lambda: transformers.ModernBertForMaskedLM(transformers.ModernBertConfig(
        vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        global_attn_every_n_layers=2, local_attention=4, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        cls_token_id=1, sep_token_id=2)),
}


@pytest.mark.parametrize("name", sorted(ROTARY))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_export_keeps_its_float32_tables(tmp_path, name, dtype):
    """The export of a half-precision model holds every buffer as transformers loads it at that dtype. Before, the
    export was built in float32 and cast whole, so its rotary inverse frequencies (GPT-J: its sine table) were in
    half precision: angles off by up to 0.71 at position 2,048 in bfloat16."""
    reference = ROTARY[name]()
    reference.save_pretrained(tmp_path)
    hf = type(reference).from_pretrained(tmp_path, dtype=dtype).eval()
    back = to_hf(from_hf(hf))
    buffers = dict(back.named_buffers())
    assert buffers.keys() == dict(hf.named_buffers()).keys()
    for key, expected in hf.named_buffers():
        assert buffers[key].dtype == expected.dtype, (key, buffers[key].dtype, expected.dtype)
        torch.testing.assert_close(buffers[key], expected, atol=0, rtol=0, msg=key)
    assert {p.dtype for p in back.parameters()} == {dtype}


def test_a_float16_t5_keeps_its_feed_forward_output_in_float32_as_transformers_does(tmp_path):
    """transformers loads T5 in float16 with its feed-forward output ``wo`` in float32 (``_keep_in_fp32_modules``), so
    the residual stream is float32 from the first feed-forward on. The converted model does the same (its
    ``down_proj``; the norms hand float16 on) and gives HF's float16 logits exactly; it loads so from its own folder,
    and its export keeps ``wo`` in float32. Before, everything was float16: logits 0.28 off HF's (of about 3), where
    HF's float16 is 0.004 off float32."""
    from modeling_mini import MiniSeq2SeqForConditionalGeneration

    config = transformers.T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                   decoder_start_token_id=0, dropout_rate=0.0)
    reference = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for block in (*reference.encoder.block, *reference.decoder.block):  # T5-sized feed-forward outputs
            block.layer[-1].DenseReluDense.wo.weight.mul_(3e4)
    reference.save_pretrained(tmp_path / "hf")
    hf = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "hf", dtype=torch.float16).eval()
    assert hf.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32
    mini = from_hf(hf)
    ids = torch.tensor([[5, 6, 7, 8, 9, 1], [5, 6, 7, 1, 0, 0]])
    inputs = dict(input_ids=ids, attention_mask=(ids != 0).long(), decoder_input_ids=torch.tensor([[0, 5, 6, 7]] * 2))
    with torch.no_grad():
        theirs, ours = hf(**inputs).logits, mini(**inputs).logits
        assert (theirs.float() - reference(**inputs).logits).abs().max() < 0.01
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
        mini.save_pretrained(tmp_path / "mini")
        reloaded = MiniSeq2SeqForConditionalGeneration.from_pretrained(tmp_path / "mini", dtype=torch.float16)
        assert {p.dtype for p in reloaded.parameters()} == {torch.float16, torch.float32}
        torch.testing.assert_close(reloaded(**inputs).logits, theirs, atol=0, rtol=0)
        back = to_hf(mini)
        assert {name: p.dtype for name, p in back.named_parameters()} == \
            {name: p.dtype for name, p in hf.named_parameters()}
        torch.testing.assert_close(back(**inputs).logits, theirs, atol=0, rtol=0)
    bfloat16 = MiniSeq2SeqForConditionalGeneration.from_pretrained(tmp_path / "mini", dtype=torch.bfloat16)
    assert {p.dtype for p in bfloat16.parameters()} == {torch.bfloat16}  # kept in float32 in float16 only


@pytest.mark.parametrize("overrides", [{}, {"final_norm": False}, {"norm_type": "rmsnorm", "norm_gain_offset": True},
                                       {"norm_position": "post"}, {"norm_type": "rmsnorm"}])
def test_every_clamp_float16_layout_loads_and_runs_in_float16(tmp_path, overrides):
    """A ``clamp_float16`` model keeps its feed-forward outputs in float32 in float16 only where every reader of the
    residual stream is a norm that hands float16 on; without a final norm, or with Gemma's offset gains, it stays
    float16 throughout. Before, those two layouts failed in float16 (float32 stream into a float16 matmul)."""
    from modeling_mini import MiniGPTConfig, MiniGPTForCausalLM, MiniGPTForSequenceClassification

    config = MiniGPTConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=37, clamp_float16=True, num_labels=2, pad_token_id=0, **overrides)
    ids = torch.tensor([[5, 6, 7, 8]])
    for cls in (MiniGPTForCausalLM, MiniGPTForSequenceClassification):
        model = cls(config).eval()
        model.save_pretrained(tmp_path / cls.__name__)
        half = cls.from_pretrained(tmp_path / cls.__name__, dtype=torch.float16).eval()
        kept = half.model.layers[0].mlp.down_proj.weight.dtype
        assert kept == (torch.float32 if config.float32_feed_forward_output else torch.float16)
        with torch.no_grad():
            torch.testing.assert_close(half(ids).logits.float(), model(ids).logits, atol=2e-3, rtol=2e-3)
    kept_layouts = ({}, {"norm_position": "post"}, {"norm_type": "rmsnorm"})
    assert config.float32_feed_forward_output == (overrides in kept_layouts)
