"""Llama parity: a random Llama model (rotary positions, RMSNorm, SwiGLU, grouped-query attention, an untied output
layer) converted with the users' converter computes the same function."""

import copy

import pytest
import torch
from conftest import (
    assert_one_training_step_matches,
    assert_same_tensors,
    padded_batch,
    perturb_norms_and_biases,
    windows_passed_to_kernels,
)
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    LlamaForTokenClassification,
    LlamaModel,
)

import modeling_mini
from modeling_mini.convert import from_hf, to_hf

HEADS = [LlamaModel, LlamaForCausalLM, LlamaForSequenceClassification, LlamaForTokenClassification]


def build(cls, **kw):
    """A random Llama with its RMSNorm gains (and biases, where asked for) perturbed, so the map is really tested."""
    config = LlamaConfig(**{"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                            "num_key_value_heads": 2, "intermediate_size": 48, "max_position_embeddings": 64,
                            "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "num_labels": 3, **kw})
    hf = cls(config).eval()
    return perturb_norms_and_biases(hf)


def assert_same_outputs(hf, mini, ids, mask=None):
    """``mini`` gives ``hf``'s hidden states, logits or span scores (max abs diff <= 1e-5), padding positions left
    out."""
    with torch.no_grad():
        ref, ours = hf(ids, attention_mask=mask), mini(ids, attention_mask=mask)
    if "start_logits" in ref:  # a QA head: (B, T, 2), as the other per-token outputs
        theirs, mine = (torch.stack([out.start_logits, out.end_logits], -1) for out in (ref, ours))
    else:
        key = "logits" if "logits" in ref else "last_hidden_state"
        theirs, mine = ref[key], ours[key]
    if theirs.dim() == 3 and mask is not None:  # per token: padding is not compared
        theirs, mine = theirs[mask.bool()], mine[mask.bool()]
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


def assert_same_generation(hf, mini, ids, mask):
    """Greedy and beam search give ``hf``'s tokens and scores."""
    for search in (dict(do_sample=False), dict(num_beams=3)):
        kwargs = dict(attention_mask=mask, max_new_tokens=8, return_dict_in_generate=True, output_scores=True, **search)
        theirs, ours = hf.generate(ids, **kwargs), mini.generate(ids, **kwargs)
        assert torch.equal(ours.sequences, theirs.sequences)
        torch.testing.assert_close(torch.stack(ours.scores), torch.stack(theirs.scores), atol=1e-4, rtol=0)


def assert_generates_and_trains_the_same(hf, length: int = 9):
    """``from_hf(hf)`` (a causal LM) gives ``hf``'s greedy and beam tokens on a left-padded batch and changes the same
    weights by the same amount in one training step; returns it with the batch."""
    mini = from_hf(hf)
    ids, mask = padded_batch(length=length)
    assert_same_generation(hf, mini, ids, mask)
    labels = ids.masked_fill(mask == 0, -100)
    assert_one_training_step_matches(hf, mini, dict(input_ids=ids, attention_mask=mask, labels=labels))
    return mini, ids, mask


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_outputs_match_on_a_left_padded_batch(cls, impl):
    hf = build(cls)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    assert mini.config.position_embedding_type == "rotary" and mini.config.num_key_value_heads == 2
    ids, mask = padded_batch()
    assert_same_outputs(hf, mini, ids, mask)


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("options", [{}, {"attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True}],
                         ids=["llama", "biases-tied"])
def test_round_trip_is_exact(cls, options):
    hf = build(cls, **options)
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_heads_wider_than_hidden_size_over_heads_match(cls):
    """``head_dim`` chosen apart from ``hidden_size / num_attention_heads`` (Mistral NeMo's layout): 4 heads of 16
    over a 32-wide model, so Q, K and V are 64 wide and the output projection maps 64 back to 32."""
    hf = build(cls, head_dim=16)
    mini = from_hf(hf)
    assert mini.config.head_dim == 16 and mini.get_submodule("layers.0.self_attn.o_proj" if cls is LlamaModel else
                                                             "model.layers.0.self_attn.o_proj").in_features == 64
    ids, mask = padded_batch()
    assert_same_outputs(hf, mini, ids, mask)
    back = to_hf(mini)
    assert back.config.head_dim == 16
    assert_same_tensors(hf, back)
    if cls is LlamaForCausalLM:
        kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False)
        assert torch.equal(mini.generate(ids, **kwargs), hf.generate(ids, **kwargs))
        assert torch.equal(mini.generate(ids, cache_implementation="static", **kwargs), hf.generate(ids, **kwargs))


def test_greedy_and_beam_generation_match_with_left_padding():
    hf = build(LlamaForCausalLM, attention_bias=True)
    hf.generation_config.eos_token_id = [2, 7]  # a chat model's stop tokens: they travel with the conversion
    mini = from_hf(hf)
    assert mini.generation_config.eos_token_id == [2, 7] and to_hf(mini).generation_config.eos_token_id == [2, 7]
    ids, mask = padded_batch()
    assert_same_generation(hf, mini, ids, mask)


@pytest.mark.parametrize("cls", [LlamaForCausalLM, LlamaForSequenceClassification])
def test_a_training_step_changes_the_same_weights_by_the_same_amount(cls):
    hf = build(cls)
    ids, mask = padded_batch()
    labels = ids.masked_fill(mask == 0, -100) if cls is LlamaForCausalLM else torch.tensor([0, 2, 1])
    assert_one_training_step_matches(hf, from_hf(hf), dict(input_ids=ids, attention_mask=mask, labels=labels))


LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}


YARN_ROPE = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 32}


@pytest.mark.parametrize(
    "rope",
    [LLAMA3_ROPE, {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}, YARN_ROPE,
     {**YARN_ROPE, "beta_fast": 8.0, "beta_slow": 2.0, "truncate": False},
     {**YARN_ROPE, "mscale": 1.0, "mscale_all_dim": 0.5}, {**YARN_ROPE, "attention_factor": 1.3}],
    ids=["llama3", "linear", "yarn", "yarn-betas-untruncated", "yarn-mscale", "yarn-attention-factor"],
)
def test_scaled_rotary_positions_match(rope):
    """Llama 3.1's, linear and YaRN rotary scaling: the frequencies (and YaRN's attention factor) HF computes, and the
    same outputs and generation."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf = build(LlamaForCausalLM, rope_parameters=dict(rope), max_position_embeddings=128)
    mini = from_hf(hf)
    assert mini.config.rotary_scaling["rope_type"] == rope["rope_type"]
    theirs, their_factor = ROPE_INIT_FUNCTIONS[rope["rope_type"]](hf.config, torch.device("cpu"))
    ours = modeling_mini.positional._frequencies(mini.config.head_dim, mini.config.rope_theta, "cpu", torch.float32,
                                                 mini.config.rotary_scaling)
    assert torch.equal(ours, theirs)
    assert mini.model.rotary.attention_factor == their_factor
    unscaled = modeling_mini.positional._compute_frequencies(mini.config.head_dim, rope["rope_theta"], "cpu",
                                                             torch.float32)
    assert not torch.equal(ours, unscaled)  # the scaling changes the angles at these sizes
    ids, mask = padded_batch()
    with torch.no_grad():
        ref, got = hf(ids, attention_mask=mask).logits, mini(ids, attention_mask=mask).logits
    torch.testing.assert_close(got[mask.bool()], ref[mask.bool()], atol=1e-5, rtol=0)
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(mini.generate(ids, **kwargs), hf.generate(ids, **kwargs))
    back = to_hf(mini)
    assert back.config.rope_parameters["rope_type"] == rope["rope_type"]
    assert_same_tensors(hf, back)


@pytest.mark.parametrize(
    ("scaling", "match"),
    [
        ({"rope_type": "dynamic", "factor": 2.0}, r"rope_type.*'linear', 'llama3', 'yarn'"),
        ({"rope_type": "yarn", "factor": 2.0}, r"rotary_scaling\['original_max_position_embeddings'\].*positive"),
        ({"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 8, "beta_fast": -1},
         r"rotary_scaling\['beta_fast'\].*positive"),
        ({"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 8, "truncate": "no"},
         r"rotary_scaling\['truncate'\].*True or False"),
        ({"rope_type": "linear"}, r"rotary_scaling\['factor'\].*positive"),
        ({"rope_type": "linear", "factor": 2.0, "low_freq_factor": 1.0}, "unknown keys"),
        ({**{k: v for k, v in LLAMA3_ROPE.items() if k != "rope_theta"}, "high_freq_factor": 0.5}, "high_freq_factor"),
        ([2.0], "rotary_scaling.*dict"),
    ],
)
def test_bad_rotary_scaling_raises_naming_the_field(scaling, match):
    with pytest.raises(ValueError, match=match):
        modeling_mini.MiniGPTConfig(position_embedding_type="rotary", rotary_scaling=scaling)


def test_options_llama_cannot_express_raise():
    with pytest.raises(ValueError, match="rope_parameters.*'dynamic'"):
        from_hf(build(LlamaModel, rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 8.0}))
    mini = from_hf(build(LlamaForCausalLM))
    assert mini.config.freeze_padding_row  # Llama's embedding has padding_idx: the pad row never trains
    with pytest.raises(ValueError, match="freeze_padding_row.*True or False"):
        modeling_mini.MiniGPTConfig(freeze_padding_row="yes")
    mini.config.hidden_dropout = 0.1  # Llama has no dropout on the residual stream
    with pytest.raises(ValueError, match="Llama needs `hidden_dropout=0.0`"):
        to_hf(mini)
    mini.config.hidden_dropout, mini.config.hidden_act = 0.0, "gelu"
    with pytest.raises(ValueError, match="gated.*'swiglu'"):
        to_hf(mini)


def build_family(family: str, head: str, **kw):
    """A random Mistral (no sliding window), Qwen2 or Qwen3 model (norms and biases perturbed), the same small shape
    as :func:`build`."""
    import transformers

    options = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 48, "max_position_embeddings": 64, "pad_token_id": 0,
               "num_labels": 3, **({"sliding_window": None} if family == "Mistral" else {}), **kw}
    hf = getattr(transformers, f"{family}{head}")(getattr(transformers, f"{family}Config")(**options)).eval()
    return perturb_norms_and_biases(hf)


@pytest.mark.parametrize("head", ["Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification"])
@pytest.mark.parametrize("family", ["Mistral", "Qwen2", "Qwen3"])
def test_mistral_and_qwen_convert_exactly(family, head):
    """Qwen2 (biases on Q, K, V, not on the output projection), Qwen3 (each head's queries and keys normalised; heads
    128 wide by default, over a 32-wide model here) and Mistral without a window are the Llama network; the Qwens
    export back as themselves, Mistral as the identical Llama. (Sliding windows: tests/test_sliding_window.py.)"""
    hf = build_family(family, head)
    mini = from_hf(hf)
    assert (mini.config.attention_bias, mini.config.attention_output_bias) == ((True, False) if family == "Qwen2"
                                                                               else (False, False))
    assert mini.config.qk_norm is (family == "Qwen3")
    ids, mask = padded_batch()
    assert_same_outputs(hf, mini, ids, mask)
    back = to_hf(mini)
    assert type(back).__name__ == ("Llama" if family == "Mistral" else family) + head
    assert_same_tensors(hf, back)


def test_bias_layouts_they_cannot_express_raise():
    """(Sliding windows convert: tests/test_sliding_window.py.)"""
    with pytest.raises(ValueError, match="qk_norm.*True or False"):
        modeling_mini.MiniGPTConfig(qk_norm=1)
    qwen3 = from_hf(build_family("Qwen3", "ForCausalLM"))
    qwen3.config.mlp_bias = True
    with pytest.raises(ValueError, match="Qwen3.*mlp_bias=False"):
        to_hf(qwen3)
    with pytest.raises(ValueError, match="GPT-2 has no query-key norm"):
        to_hf(modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(
            vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, qk_norm=True,
            position_embedding_type="learned")))
    mini = from_hf(build_family("Qwen2", "ForCausalLM"))
    mini.config.mlp_bias = True
    with pytest.raises(ValueError, match="Qwen2.*mlp_bias=False"):
        to_hf(mini)
    with pytest.raises(ValueError, match="attention_output_bias.*True or False"):
        modeling_mini.MiniGPTConfig(attention_output_bias="no")


@pytest.mark.parametrize("scaling", [{"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 16},
                                     {"rope_type": "linear", "factor": 2.0}], ids=["yarn", "linear"])
def test_partial_rotary_with_a_scaling_phi3_lacks_raises_naming_rotary_scaling(scaling):
    """A partial rotation exports only as Phi-3, which scales with LongRoPE alone (it reads YaRN as LongRoPE)."""
    mini = from_hf(build_phi3("ForCausalLM", rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                              "partial_rotary_factor": 0.5}))
    scaled = modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(**{**mini.config.to_dict(),
                                                                             "rotary_scaling": scaling}))
    with pytest.raises(ValueError, match="Phi3 .*`rotary_scaling` None or of rope_type 'longrope'"):
        to_hf(scaled)


def assert_same_gemma_tensors(hf, back):
    """A Gemma exported back holds ``hf``'s tensors exactly, its norm gains included: we store them as Gemma does."""
    theirs, ours = hf.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys()
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, atol=0, rtol=0)


def build_gemma(head: str, **kw):
    """A random Gemma (one key/value head, heads 16 wide over a 32-wide model), norms and biases perturbed."""
    import transformers

    config = transformers.GemmaConfig(**{
        "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 48, "max_position_embeddings": 64,
        "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1, "num_labels": 3, **kw})
    return perturb_norms_and_biases(getattr(transformers, f"Gemma{head}")(config))


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("head", ["Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification"])
def test_gemma_converts_exactly(head, impl):
    """Gemma: embeddings scaled by sqrt(hidden_size), the tanh GELU's gate, RMSNorm gains stored as offsets from 1
    (``1 + w`` becomes our gain), multi-query attention with wide heads, a tied output layer."""
    hf = build_gemma(head)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    assert (mini.config.scale_embeddings, mini.config.hidden_act, mini.config.head_dim) == (True, "geglu_tanh", 16)
    ids, mask = padded_batch()
    assert_same_outputs(hf, mini, ids, mask)
    back = to_hf(mini)
    assert type(back) is type(hf)
    assert_same_gemma_tensors(hf, back)


@pytest.mark.parametrize("family", ["Gemma", "Gemma2", "Gemma3"])
def test_a_bfloat16_gemma_keeps_its_norm_gains_bit_for_bit(family):
    """Gemma checkpoints live in bfloat16, where a gain stored as ``1 + w`` keeps 8 bits near 1: storing ``w`` as Gemma
    does, the converted model computes Gemma's norm (in float32) and exports back to the same bits."""
    build = {"Gemma": build_gemma, "Gemma2": build_gemma2, "Gemma3": build_gemma3}[family]
    hf = build("ForCausalLM").to(torch.bfloat16).eval()
    with torch.no_grad():
        for name, weight in hf.named_parameters():
            if name.endswith("norm.weight"):
                weight.copy_(torch.linspace(-0.3, 0.3, weight.numel()))  # gains bfloat16 cannot hold as 1 + w
    mini = from_hf(hf).eval()
    assert mini.config.norm_gain_offset
    norm = mini.model.layers[0].mlp_norm
    assert type(norm).__name__ == "GainOffsetRMSNorm" and norm.weight.dtype == torch.bfloat16
    x = torch.randn(2, 3, hf.config.hidden_size, dtype=torch.bfloat16)
    assert torch.equal(norm(x), hf.model.layers[0].post_attention_layernorm(x)
                       if family == "Gemma" else hf.model.layers[0].pre_feedforward_layernorm(x))
    assert_same_gemma_tensors(hf, to_hf(mini))


def test_norm_gain_offset_exports_as_llama_with_the_one_added_and_gemma_without():
    """A model with plain gains exports as Gemma with 1 taken off each, one with offset gains as Llama with 1 added:
    the same outputs either way, and a fresh offset norm starts as the identity gain (0 stored)."""
    torch.manual_seed(0)
    ids, mask = padded_batch()
    llama = modeling_mini.MiniGPTConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, position_embedding_type="rotary",
        norm_type="rmsnorm", hidden_act="swiglu", attention_bias=False, mlp_bias=False, hidden_dropout=0.0,
        attention_dropout=0.0, tie_word_embeddings=False)
    for config, family in ((modeling_mini.MiniGPTConfig(**{**llama.to_dict(), "norm_gain_offset": True}), "Llama"),
                           (modeling_mini.MiniGPTConfig(**{**llama.to_dict(), "scale_embeddings": True,
                                                           "hidden_act": "geglu_tanh"}), "Gemma")):
        mini = modeling_mini.MiniGPTForCausalLM(config).eval()
        gain = mini.model.layers[0].mlp_norm.weight
        assert torch.equal(gain, torch.zeros_like(gain) if config.norm_gain_offset else torch.ones_like(gain))
        with torch.no_grad():
            for name, weight in mini.named_parameters():
                if name.endswith("norm.weight"):
                    weight.add_(torch.randn_like(weight) * 0.1)
        hf = to_hf(mini)
        assert type(hf).__name__ == f"{family}ForCausalLM"
        assert_same_outputs(hf, mini, ids, mask)
        back = from_hf(hf)
        assert back.config.norm_gain_offset == (family == "Gemma")


def test_gemma_generates_and_trains_the_same():
    hf = build_gemma("ForCausalLM")
    mini, _, _ = assert_generates_and_trains_the_same(hf)
    mini.config.mlp_bias = True
    with pytest.raises(ValueError, match="Gemma.*mlp_bias=False"):
        to_hf(mini)


def build_phi3(head: str, **kw):
    """A random Phi-3 (fused ``qkv_proj`` and ``gate_up_proj``), norms perturbed."""
    import transformers

    config = transformers.Phi3Config(**{
        "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 48, "max_position_embeddings": 64, "pad_token_id": 0,
        "bos_token_id": 1, "eos_token_id": 2, "num_labels": 3, **kw})
    return perturb_norms_and_biases(getattr(transformers, f"Phi3{head}")(config))


@pytest.mark.parametrize("window", [None, 4], ids=["full", "sliding-window"])
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("head", ["Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification"])
def test_phi3_converts_and_exports_as_the_llama_network(head, impl, window):
    """Phi-3 is Llama's network with Q, K, V in one matrix (our layout) and gate, up in another: the outputs agree to
    float precision (Phi-3's one gate-up product and our two round differently, about 1e-7), and the export is the
    same network as Llama, or Mistral with the window."""
    hf = build_phi3(head, sliding_window=window)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    assert mini.config.sliding_window == window
    ids, mask = padded_batch()
    assert_same_outputs(hf, mini, ids, mask)
    back = to_hf(mini)
    assert type(back).__name__ == ("Llama" if window is None else "Mistral") + head
    assert_same_tensors(mini, from_hf(back))
    with torch.no_grad():  # the fused matrices, split, are the exported model's
        layer = back.get_submodule(("" if head == "Model" else "model.") + "layers.0")
        phi3 = hf.get_submodule(("" if head == "Model" else "model.") + "layers.0")
        assert torch.equal(torch.cat([layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight,
                                      layer.self_attn.v_proj.weight]), phi3.self_attn.qkv_proj.weight)
        assert torch.equal(torch.cat([layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight]),
                           phi3.mlp.gate_up_proj.weight)


def test_phi3_generates_and_trains_the_same():
    hf = build_phi3("ForCausalLM", sliding_window=4)
    mini = from_hf(hf)
    ids, mask = padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=8, do_sample=False)
    assert torch.equal(mini.generate(ids, **kwargs), hf.generate(ids, **kwargs))
    labels = ids.masked_fill(mask == 0, -100)
    for model in (hf, mini):  # one plain SGD step each; Phi-3's weights, converted again, must be ours
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
    theirs, ours = from_hf(hf).state_dict(), mini.state_dict()
    for name, tensor in ours.items():
        torch.testing.assert_close(tensor, theirs[name], atol=1e-5, rtol=0, msg=name)
    with pytest.raises(ValueError, match=r"residual / embedding dropout \{'resid_pdrop': 0.1\}"):
        from_hf(build_phi3("Model", resid_pdrop=0.1))


LONGROPE = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0, 1.1, 1.2, 1.3],
            "long_factor": [2.0, 3.0, 4.0, 5.0]}


def test_phi3_longrope_switches_frequencies_past_the_original_length_as_transformers_does():
    """LongRoPE (Phi-3 128k, Phi-3.5): a stretch per frequency, the short set while every position is within the
    original length (8 here) and the long set once one passes it, and a sqrt(1 + ln(64/8) / ln 8) attention factor."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf = build_phi3("ForCausalLM", rope_parameters=dict(LONGROPE), original_max_position_embeddings=8)
    mini = from_hf(hf)
    assert mini.config.rotary_scaling["original_max_position_embeddings"] == 8
    ours = modeling_mini.positional._frequencies(8, 10000.0, "cpu", torch.float32, mini.config.rotary_scaling)
    short, factor = ROPE_INIT_FUNCTIONS["longrope"](hf.config, torch.device("cpu"))
    long, _ = ROPE_INIT_FUNCTIONS["longrope"](hf.config, torch.device("cpu"), seq_len=9)
    assert torch.equal(ours[0], short) and torch.equal(ours[1], long)
    assert mini.model.rotary.attention_factor == factor == pytest.approx(2**0.5)
    for length in (6, 12):  # within, then past the original length
        ids = torch.randint(3, 99, (2, length))
        with torch.no_grad():
            torch.testing.assert_close(mini(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)
    ids = torch.randint(3, 99, (2, 5))
    # the prefill uses the short set, the steps past 8 the long one: at the crossing the cache is recomputed; scores,
    # not only tokens (with small random weights the tokens agreed even when the cache kept its short rotations)
    kwargs = dict(max_new_tokens=10, do_sample=False, return_dict_in_generate=True, output_scores=True)
    ours, theirs = mini.generate(ids, **kwargs), hf.generate(ids, **kwargs)
    assert torch.equal(ours.sequences, theirs.sequences)
    torch.testing.assert_close(torch.stack(ours.scores), torch.stack(theirs.scores), atol=1e-5, rtol=0)
    # from inputs_embeds: the same scores while within the original length; past it the prompt (embeddings only)
    # cannot be recomputed, a clear error (transformers' Phi-3 goes on with the short rotations in its cache)
    embeds = mini.get_input_embeddings()(ids)
    within = mini.generate(inputs_embeds=embeds, **{**kwargs, "max_new_tokens": 3})
    torch.testing.assert_close(torch.stack(within.scores), torch.stack(ours.scores[:3]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="LongRoPE recomputes the whole sequence.*generate from `input_ids`"):
        mini.generate(inputs_embeds=embeds, **kwargs)
    back = to_hf(mini)
    assert back.config.rope_parameters["long_factor"] == LONGROPE["long_factor"]
    assert_same_tensors(mini, from_hf(back))
    with pytest.raises(ValueError, match=r"rotary_scaling\['long_factor'\]` needs rotary_dim / 2 = 4 numbers"):
        modeling_mini.MiniGPTConfig(**{**mini.config.to_dict(), "rotary_scaling": {
            **mini.config.rotary_scaling, "long_factor": [1.0, 2.0]}})
    with pytest.raises(ValueError, match=r"rotary_scaling\['short_factor'\]` must be a list of positive numbers"):
        modeling_mini.MiniGPTConfig(position_embedding_type="rotary", rotary_scaling={
            "rope_type": "longrope", "short_factor": 2.0, "long_factor": [1.0], "original_max_position_embeddings": 8})


@pytest.mark.parametrize("rope", [{"rope_type": "default", "rope_theta": 10000.0},
                                  {**LONGROPE, "short_factor": [1.0, 1.1, 1.2], "long_factor": [2.0, 3.0, 4.0]}],
                         ids=["default", "longrope"])
@pytest.mark.parametrize("head", ["Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification"])
def test_phi3_with_partial_rotary_converts_and_exports_as_phi3(head, rope):
    """Phi-4-mini's layout: rotary positions on the first 3/4 of each head only (6 of 8 features here; the rest pass
    through), LongRoPE stretches for those 3 pairs, a tied output layer. Only Phi-3 expresses a partial rotation, so
    the export is Phi-3 again, fused matrices and all."""
    hf = build_phi3(head, rope_parameters={**rope, "partial_rotary_factor": 0.75}, original_max_position_embeddings=8,
                    tie_word_embeddings=True)
    mini = from_hf(hf)
    assert (mini.config.partial_rotary_factor, mini.config.rotary_dim) == (0.75, 6)
    ids = torch.randint(3, 99, (2, 12))
    assert_same_outputs(hf, mini, ids)
    back = to_hf(mini)
    assert type(back) is type(hf)
    if rope["rope_type"] == "longrope":  # the original length matters to LongRoPE only
        assert back.config.original_max_position_embeddings == 8
    assert_same_tensors(hf, back)
    with torch.no_grad():
        torch.testing.assert_close(back(ids)[0], hf(ids)[0], atol=0, rtol=0)
    if head == "ForCausalLM":
        kwargs = dict(max_new_tokens=8, do_sample=False)
        assert torch.equal(mini.generate(ids[:, :5], **kwargs), hf.generate(ids[:, :5], **kwargs))


def test_partial_rotary_options_that_cannot_work_raise():
    for factor, match in ((0.0, r"partial_rotary_factor.*\(0, 1\]"), (1.5, r"partial_rotary_factor.*\(0, 1\]"),
                          (0.375, r"even head_dim \* partial_rotary_factor >= 2; got 3")):
        with pytest.raises(ValueError, match=match):
            modeling_mini.MiniGPTConfig(hidden_size=32, num_attention_heads=4, position_embedding_type="rotary",
                                        partial_rotary_factor=factor)
    mini = from_hf(build_phi3("ForCausalLM", rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                              "partial_rotary_factor": 0.5}))
    mini.config.sliding_window, mini.config.layer_types = 4, ["sliding_attention", "full_attention"]
    with pytest.raises(ValueError, match="Phi3 slides on every layer or on none"):
        to_hf(mini)


def build_gemma2(head: str, **kw):
    """A random Gemma 2: sandwich norms, soft-capped scores (at 0.01) and logits (at 0.3: both caps bite), its own
    attention scale (1 / sqrt(24)), alternating sliding (window 4) and full layers."""
    import transformers

    config = transformers.Gemma2Config(**{
        "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 48, "max_position_embeddings": 64,
        "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1, "num_labels": 3, "sliding_window": 4,
        "query_pre_attn_scalar": 24, "attn_logit_softcapping": 0.01, "final_logit_softcapping": 0.3, **kw})
    return perturb_norms_and_biases(getattr(transformers, f"Gemma2{head}")(config))


@pytest.mark.parametrize("head", ["Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification"])
def test_gemma2_converts_exactly(head):
    hf = build_gemma2(head)
    mini = from_hf(hf)
    config = mini.config
    assert (config.norm_position, config.attention_softcap, config.attention_scaling) == ("sandwich", 0.01, 24**-0.5)
    assert config.layer_types == ["sliding_attention", "full_attention", "sliding_attention"]
    ids, mask = padded_batch(length=12)
    assert_same_outputs(hf, mini, ids, mask)
    uncapped = copy.deepcopy(mini)
    for attention in uncapped.modules():
        if hasattr(attention, "softcap"):
            attention.softcap = None
    uncapped.config.final_logit_softcap = None
    with pytest.raises(AssertionError, match="not close"):  # the caps bite at these sizes
        assert_same_outputs(hf, uncapped, ids, mask)
    back = to_hf(mini)
    assert type(back) is type(hf) and back.config.query_pre_attn_scalar == 24
    assert_same_gemma_tensors(hf, back)


def test_gemma2_generates_and_trains_the_same_and_sdpa_refuses_softcapping():
    hf = build_gemma2("ForCausalLM")
    mini, _, _ = assert_generates_and_trains_the_same(hf, length=12)
    with pytest.raises(ValueError, match="sdpa.*attention_softcap"):
        mini.set_attn_implementation("sdpa")
    capped = modeling_mini.MiniGPTConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                         attention_softcap=50.0)
    assert modeling_mini.MiniGPTForCausalLM(capped).config._attn_implementation == "eager"  # sdpa's default skipped
    with pytest.raises(ValueError, match="sdpa.*attention_softcap"):
        modeling_mini.MiniGPTForCausalLM._from_config(capped, attn_implementation="sdpa")
    with pytest.raises(ValueError, match="attention_softcap.*positive"):
        modeling_mini.MiniGPTConfig(attention_softcap=-1.0)


#: Gemma 3's rotations: a stretched (linear, 4x) base 100 on the full layer, an unstretched base 10 on the sliding ones
GEMMA3_ROPE = {"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 100.0},
               "sliding_attention": {"rope_type": "default", "rope_theta": 10.0}}
GEMMA3_HEADS = {"Model": "Gemma3TextModel", "ForCausalLM": "Gemma3ForCausalLM",
                "ForSequenceClassification": "Gemma3TextForSequenceClassification"}


def build_gemma3(head: str, **kw):
    """A random Gemma 3 (text): Gemma 2's layout without caps, plus query-key norms (gains as offsets from 1) and a
    rotation per layer type; sliding (window 4), full, sliding."""
    import transformers

    config = transformers.Gemma3TextConfig(**{
        "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 48, "max_position_embeddings": 64,
        "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1, "num_labels": 3, "sliding_window": 4,
        "query_pre_attn_scalar": 24, "rope_parameters": copy.deepcopy(GEMMA3_ROPE),
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention"], **kw})
    return perturb_norms_and_biases(getattr(transformers, GEMMA3_HEADS[head])(config))


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("head", list(GEMMA3_HEADS))
def test_gemma3_converts_exactly_with_a_rotation_per_layer_type(head, impl):
    hf = build_gemma3(head)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    config = mini.config
    assert (config.qk_norm, config.norm_position, config.attention_softcap) == (True, "sandwich", None)
    assert (config.rope_theta, config.rotary_scaling, config.sliding_rope_theta) == (
        100.0, {"rope_type": "linear", "factor": 4.0}, 10.0)
    ids, mask = padded_batch(length=12)
    assert_same_outputs(hf, mini, ids, mask)
    one_rotation = copy.deepcopy(mini)
    one_rotation.base_model.sliding_rotary = None  # the sliding layers rotate as the full one
    with pytest.raises(AssertionError, match="not close"):
        assert_same_outputs(hf, one_rotation, ids, mask)
    back = to_hf(mini)
    assert type(back) is type(hf) and back.config.rope_parameters == GEMMA3_ROPE
    assert_same_gemma_tensors(hf, back)


def test_gemma3_generates_and_trains_the_same_and_reloads(tmp_path):
    hf = build_gemma3("ForCausalLM")
    mini = from_hf(hf)
    ids, mask = padded_batch(length=12)
    assert_same_generation(hf, mini, ids, mask)  # 20 positions: past the window
    assert windows_passed_to_kernels(mini, ids) == windows_passed_to_kernels(hf, ids) == [4, None, 4]
    labels = ids.masked_fill(mask == 0, -100)
    assert_one_training_step_matches(hf, mini, dict(input_ids=ids, attention_mask=mask, labels=labels))
    mini.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.sliding_rope_theta == 10.0
    with torch.no_grad():
        assert torch.equal(loaded(ids, attention_mask=mask).logits, mini(ids, attention_mask=mask).logits)


def test_gemma3_variants_convert_and_what_they_cannot_express_raises():
    """One rotation for every layer (sliding_rope_theta None) and no sliding layers convert exactly; stretched sliding
    layers, bidirectional attention (EmbeddingGemma) and heads transformers lacks raise ValueErrors."""
    ids, mask = padded_batch(length=12)
    same = {"rope_type": "default", "rope_theta": 50.0}
    for kw in ({"rope_parameters": {"full_attention": same, "sliding_attention": dict(same)}},
               {"layer_types": ["full_attention"] * 3}):
        hf = build_gemma3("ForCausalLM", **kw)
        mini = from_hf(hf)
        assert mini.config.sliding_rope_theta is None
        assert_same_outputs(hf, mini, ids, mask)
        assert_same_gemma_tensors(hf, to_hf(mini))
    stretched = {**GEMMA3_ROPE, "sliding_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10.0}}
    with pytest.raises(ValueError, match="Gemma3 sliding layers' `rope_parameters`.*sliding_rope_theta"):
        from_hf(build_gemma3("Model", rope_parameters=stretched))
    with pytest.raises(ValueError, match="use_bidirectional_attention=True.*only False"):
        from_hf(build_gemma3("Model", use_bidirectional_attention=True))
    tagger = modeling_mini.MiniGPTForTokenClassification(from_hf(build_gemma3("Model")).config)
    with pytest.raises(ValueError, match="Gemma3 has no TokenClassification head"):
        to_hf(tagger)
    llama_like = from_hf(build_gemma3("Model"))
    llama_like.config.scale_embeddings = llama_like.config.qk_norm = False
    llama_like.config.norm_position, llama_like.config.attention_scaling = "pre", None
    with pytest.raises(ValueError, match="Ministral needs `sliding_rope_theta=None`"):
        to_hf(llama_like)


#: a MiniGPT with Gemma 2's layout (Gemma 3's with ``qk_norm=True``), built on our side
GEMMA_LAYOUT = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    head_dim=16, intermediate_size=48, max_position_embeddings=64, pad_token_id=0,
                    position_embedding_type="rotary", norm_type="rmsnorm", hidden_act="geglu_tanh",
                    attention_bias=False, mlp_bias=False, scale_embeddings=True, norm_position="sandwich",
                    hidden_dropout=0.0, attention_dropout=0.0)


def gemma_layout(family: str, **kw):
    config = modeling_mini.MiniGPTConfig(**GEMMA_LAYOUT, qk_norm=family == "Gemma3", **kw)
    return perturb_norms_and_biases(modeling_mini.MiniGPTForCausalLM(config))


@pytest.mark.parametrize("family", ["Gemma2", "Gemma3"])
def test_gemma_layouts_without_a_window_export_a_model_transformers_runs(family, tmp_path):
    """Every layer full (``sliding_window=None``): transformers' Gemma builds its sliding mask all the same, so the
    export names a window that no layer reads; it computes, generates and reloads as the mini model."""
    mini = gemma_layout(family, attn_implementation="eager")
    hf = to_hf(mini)
    assert type(hf).__name__ == f"{family}ForCausalLM"
    assert hf.config.layer_types == ["full_attention"] * 2
    ids, mask = padded_batch(length=12)
    assert_same_outputs(hf, mini, ids, mask)
    kwargs = dict(attention_mask=mask, max_new_tokens=4, do_sample=False)
    assert torch.equal(hf.generate(ids, **kwargs), mini.generate(ids, **kwargs))
    hf.save_pretrained(tmp_path)
    assert_same_outputs(type(hf).from_pretrained(tmp_path).eval(), mini, ids, mask)


def test_gemma2_layout_on_sdpa_exports_with_eager():
    """transformers runs Gemma 2 eager only; a mini model on its default (sdpa) exports with eager, the same scores."""
    mini = gemma_layout("Gemma2", sliding_window=4, layer_types=["sliding_attention", "full_attention"])
    assert mini.config._attn_implementation == "sdpa"
    hf = to_hf(mini)
    assert type(hf).__name__ == "Gemma2ForCausalLM" and hf.config._attn_implementation == "eager"
    ids, mask = padded_batch(length=12)
    assert_same_outputs(hf, mini, ids, mask)


def test_gemma_export_refuses_an_attention_scale_without_a_whole_length():
    """Gemma keeps its scale as a whole ``query_pre_attn_scalar`` n (scale 1 / sqrt(n)): 0.25 is n = 16, 0.3 none."""
    window = dict(sliding_window=4, attn_implementation="eager")
    assert to_hf(gemma_layout("Gemma2", attention_scaling=0.25, **window)).config.query_pre_attn_scalar == 16
    with pytest.raises(ValueError, match=r"`attention_scaling` = 1 / sqrt\(n\) for a whole n; got 0.3"):
        to_hf(gemma_layout("Gemma2", attention_scaling=0.3, **window))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sliding_rope_theta": 10.0, "position_embedding_type": "rotary"}, "sliding_rope_theta.*sliding_window"),
        ({"sliding_rope_theta": 10.0, "sliding_window": 4}, "sliding_rope_theta.*position_embedding_type='rotary'"),
        ({"sliding_rope_theta": -1.0, "sliding_window": 4, "position_embedding_type": "rotary"},
         "sliding_rope_theta.*positive"),
    ],
)
def test_bad_sliding_rope_theta_raises_naming_the_field(options, match):
    with pytest.raises(ValueError, match=match):
        modeling_mini.MiniGPTConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    **options)


def build_smollm3(head: str, **kw):
    """A random SmolLM3: Llama with no rotary positions in layers 1 and 3 (its NoPE interval 2 here, 4 in the real
    models), norms and biases perturbed."""
    import transformers

    config = transformers.SmolLM3Config(**{
        "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 48, "max_position_embeddings": 64, "pad_token_id": 0,
        "bos_token_id": 1, "eos_token_id": 2, "num_labels": 3, "no_rope_layer_interval": 2, **kw})
    return perturb_norms_and_biases(getattr(transformers, f"SmolLM3{head}")(config))


@pytest.mark.parametrize("window", [False, True], ids=["no-window", "window-on-nope-layers"])
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("head", ["Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification"])
def test_smollm3_converts_exactly_with_layers_without_positions(head, impl, window):
    """SmolLM3's NoPE layers (``nope_layers``); with ``use_sliding_window`` those layers also slide (window 4)."""
    hf = build_smollm3(head, use_sliding_window=window, sliding_window=4)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    assert mini.config.nope_layers == [1, 3]
    assert mini.config.layer_types == ["full_attention", "sliding_attention"] * 2 if window else ["full_attention"] * 4
    ids, mask = padded_batch(length=12)
    assert_same_outputs(hf, mini, ids, mask)
    rotating = copy.deepcopy(mini)
    rotating.base_model.layer_rotations = [block.attention_type for block in rotating.base_model.layers]
    with pytest.raises(AssertionError, match="not close"):  # every layer rotating: not SmolLM3's function
        assert_same_outputs(hf, rotating, ids, mask)
    back = to_hf(mini)
    assert type(back) is type(hf) and back.config.no_rope_layers == [1, 0, 1, 0]
    assert back.config.use_sliding_window is window
    assert_same_tensors(hf, back)


def test_smollm3_generates_trains_compiles_and_reloads(tmp_path):
    hf = build_smollm3("ForCausalLM")
    mini, ids, mask = assert_generates_and_trains_the_same(hf, length=12)
    mini.eval()
    compiled = torch.compile(mini, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, attention_mask=mask).logits, mini(ids, attention_mask=mask).logits)
    mini.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.nope_layers == [1, 3]
    with torch.no_grad():
        assert torch.equal(loaded(ids, attention_mask=mask).logits, mini(ids, attention_mask=mask).logits)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"nope_layers": [2], "position_embedding_type": "rotary"}, r"`nope_layers`.*\[0, num_hidden_layers=2\)"),
        ({"nope_layers": [1, 1], "position_embedding_type": "rotary"}, r"`nope_layers` must be None or distinct"),
        ({"nope_layers": [0]}, r"`nope_layers`.*position_embedding_type='rotary'"),
    ],
)
def test_bad_nope_layers_raise_naming_the_field(options, match):
    with pytest.raises(ValueError, match=match):
        modeling_mini.MiniGPTConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    **options)


#: OLMo 3's rotations: a stretched base 100 on its full layer, base 10 on its sliding ones
OLMO3 = {"sliding_window": 4, "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 2.0,
                                                                      "rope_theta": 100.0},
                                                   "sliding_attention": {"rope_type": "default", "rope_theta": 10.0}}}


def build_olmo(family: str, head: str, **kw):
    """A random OLMo 2 or OLMo 3 (4 layers: OLMo 3 slides on the first three), norms and biases perturbed."""
    import transformers

    options = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 48, "max_position_embeddings": 64, "pad_token_id": 0,
               "bos_token_id": 1, "eos_token_id": 2, "num_labels": 3, **(copy.deepcopy(OLMO3) if family == "Olmo3"
                                                                        else {}), **kw}
    config = getattr(transformers, f"{family}Config")(**options)
    return perturb_norms_and_biases(getattr(transformers, f"{family}{head}")(config))


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("head", ["Model", "ForCausalLM", "ForSequenceClassification"])
@pytest.mark.parametrize("family", ["Olmo2", "Olmo3"])
def test_olmo_converts_exactly_with_output_norms(family, head, impl):
    """OLMo 2: norms on the sub-layers' outputs only (``norm_position="output"``), one query-key norm over all heads
    (``qk_norm_scope="all_heads"``); OLMo 3 also slides on three layers in four, with their own rotary base."""
    hf = build_olmo(family, head)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    config = mini.config
    assert (config.norm_position, config.qk_norm, config.qk_norm_scope) == ("output", True, "all_heads")
    assert config.sliding_rope_theta == (10.0 if family == "Olmo3" else None)
    ids, mask = padded_batch(length=12)
    assert_same_outputs(hf, mini, ids, mask)
    block = mini.base_model.layers[0]
    assert block.self_attn_norm is None and block.mlp_norm is None
    assert block.self_attn.q_norm.weight.shape == (32,) and block.self_attn.k_norm.weight.shape == (16,)
    back = to_hf(mini)
    assert type(back) is type(hf)
    assert_same_tensors(hf, back)


def test_olmo_generates_and_trains_the_same_and_what_it_cannot_express_raises():
    hf = build_olmo("Olmo3", "ForCausalLM")
    mini, _, _ = assert_generates_and_trains_the_same(hf, length=12)
    tagger = modeling_mini.MiniGPTForTokenClassification(mini.config)
    with pytest.raises(ValueError, match="Olmo3 has no TokenClassification head"):
        to_hf(tagger)
    per_head = from_hf(build_olmo("Olmo2", "Model"))
    per_head.config.qk_norm_scope = "head"
    with pytest.raises(ValueError, match="Olmo2 needs `qk_norm_scope='all_heads'`"):
        to_hf(per_head)
    with pytest.raises(ValueError, match="`qk_norm_scope` must be one of 'head', 'all_heads'"):
        modeling_mini.MiniGPTConfig(qk_norm=True, qk_norm_scope="heads")
    with pytest.raises(ValueError, match="`norm_position` must be one of 'pre', 'post', 'sandwich', 'output'"):
        modeling_mini.MiniGPTConfig(norm_position="peri")


def test_what_transformers_reads_is_what_converts():
    """Options transformers 5 keeps in a config but computes otherwise convert as it computes them: Gemma 3 never
    applies `attn_logit_softcapping` (Gemma 2 does), and OLMo 3 / Gemma 3 read YaRN's `truncate` from the top of their
    per-layer-type rope_parameters, where they find none (so they truncate); a model that would need either does not
    export as them. Before, both converted into another function (logits 0.009 and 0.34 apart)."""
    ids, mask = padded_batch()
    gemma3 = build_gemma3("ForCausalLM", attn_logit_softcapping=2.0)
    mini = from_hf(gemma3)
    assert mini.config.attention_softcap is None
    assert_same_outputs(gemma3, mini, ids, mask)
    capped = modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(**{**mini.config.to_dict(),
                                                                             "attention_softcap": 2.0}))
    with pytest.raises(ValueError, match="Gemma3 needs `attention_softcap=None`"):
        to_hf(capped)
    yarn = {"rope_type": "yarn", "rope_theta": 100.0, "factor": 2.0, "original_max_position_embeddings": 8,
            "beta_fast": 16.0, "beta_slow": 2.0, "truncate": False}
    olmo3 = build_olmo("Olmo3", "ForCausalLM", rope_parameters={"full_attention": yarn,
                                                                "sliding_attention": {"rope_type": "default",
                                                                                      "rope_theta": 10.0}})
    mini = from_hf(olmo3)
    assert "truncate" not in mini.config.rotary_scaling
    assert_same_outputs(olmo3, mini, ids, mask)
    untruncated = modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(**{
        **mini.config.to_dict(), "rotary_scaling": {**mini.config.rotary_scaling, "truncate": False}}))
    with pytest.raises(ValueError, match="Olmo3 always truncates.*`rotary_scaling\\['truncate'\\]`"):
        to_hf(untruncated)


@pytest.mark.parametrize("act", ["swish", "gelu_new"])
def test_gate_functions_under_their_other_names_convert(act):
    """transformers' `swish` is its silu and `gelu_new` the tanh GELU of `gelu_pytorch_tanh`: Llama-family gates named
    so convert (they were refused), and export under the usual names."""
    hf = build_family("Qwen2", "ForCausalLM", hidden_act=act)
    mini = from_hf(hf)
    assert mini.config.hidden_act == {"swish": "swiglu", "gelu_new": "geglu_tanh"}[act]
    ids, mask = padded_batch()
    assert_same_outputs(hf, mini, ids, mask)
    assert to_hf(mini).config.hidden_act == {"swish": "silu", "gelu_new": "gelu_pytorch_tanh"}[act]
