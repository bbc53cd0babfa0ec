"""Sliding-window attention (``MiniGPTConfig.sliding_window`` / ``layer_types``): a token of a sliding layer sees only
the last ``sliding_window`` tokens. Parity with Mistral (every layer slides), Ministral, Qwen2 and Qwen3 (some do),
whose caches keep only the window; the window really binds; cached, static-cache and uncached decoding agree."""

import copy

import pytest
import torch
import transformers
from conftest import assert_same_tensors, perturb_norms_and_biases, tiny_gpt_config, windows_passed_to_kernels

from modeling_mini import MiniGPTConfig, MiniGPTForCausalLM
from modeling_mini.convert import from_hf, to_hf

WINDOW = 4
#: family -> the HF config options giving it sliding layers (Ministral: alternating; Qwen2: all but the first; Qwen3:
#: the last)
SLIDING = {
    "Mistral": {"sliding_window": WINDOW},
    "Ministral": {"sliding_window": WINDOW,
                  "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]},
    "Qwen2": {"use_sliding_window": True, "sliding_window": WINDOW, "max_window_layers": 1},
    "Qwen3": {"use_sliding_window": True, "sliding_window": WINDOW, "max_window_layers": 2},
}
HEADS = ["Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification"]


def build(family: str, head: str = "ForCausalLM", **kw):
    """A random 3-layer model of ``family`` with sliding layers, its norms and biases perturbed."""
    options = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
               "num_key_value_heads": 2, "head_dim": 8, "intermediate_size": 48, "max_position_embeddings": 64,
               "pad_token_id": 0, "num_labels": 3, **SLIDING[family], **kw}
    hf = getattr(transformers, f"{family}{head}")(getattr(transformers, f"{family}Config")(**options)).eval()
    return perturb_norms_and_biases(hf)


def long_padded_batch(length: int = 14):
    """Three rows three times the window long, row 0 left-padded by 5 and row 1 by 2."""
    ids = torch.randint(3, 99, (3, length), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    mask[1, :2] = 0
    return ids.masked_fill(mask == 0, 0), mask


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", list(SLIDING))
def test_outputs_match_on_a_left_padded_batch_longer_than_the_window(family, head, impl):
    hf = build(family, head)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    windows = [mini.config.layer_sliding_window(i) for i in range(3)]
    assert windows == {"Mistral": [WINDOW] * 3, "Ministral": [WINDOW, None, WINDOW], "Qwen2": [None, WINDOW, WINDOW],
                       "Qwen3": [None, None, WINDOW]}[family]
    ids, mask = long_padded_batch()
    with torch.no_grad():
        ref, ours = hf(ids, attention_mask=mask), mini(ids, attention_mask=mask)
        config = copy.deepcopy(mini.config)
        config.sliding_window, config.layer_types = None, ["full_attention"] * 3
        unlimited = type(mini)(config).eval()
        unlimited.load_state_dict(mini.state_dict())
        everything = unlimited(ids, attention_mask=mask)
    key = "last_hidden_state" if head == "Model" else "logits"
    theirs, mine, wide = ref[key], ours[key], everything[key]
    if theirs.dim() == 3:  # per token: padding is not compared
        theirs, mine, wide = theirs[mask.bool()], mine[mask.bool()], wide[mask.bool()]
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    assert (wide - theirs).abs().max() > 1e-3  # the window binds at this length: without it the outputs differ


@pytest.mark.parametrize("family", list(SLIDING))
def test_flash_kernels_would_get_the_same_windows(family):
    """What each layer hands its attention function as ``sliding_window`` (flash kernels read it) is transformers'."""
    hf = build(family, "Model")
    ids = torch.randint(3, 99, (1, 10))
    windows = windows_passed_to_kernels(hf, ids)
    assert windows_passed_to_kernels(from_hf(hf), ids) == windows and WINDOW in windows


@pytest.mark.parametrize("family", list(SLIDING))
def test_greedy_and_beam_generation_past_the_window_match(family):
    """Generation runs well past the window, so the sliding layers' caches drop their oldest keys."""
    hf = build(family)
    mini = from_hf(hf)
    ids, mask = long_padded_batch()
    for search in (dict(do_sample=False), dict(num_beams=3)):
        kwargs = dict(attention_mask=mask, max_new_tokens=10, return_dict_in_generate=True, output_scores=True,
                      **search)
        theirs, ours = hf.generate(ids, **kwargs), mini.generate(ids, **kwargs)
        assert torch.equal(ours.sequences, theirs.sequences)
        torch.testing.assert_close(torch.stack(ours.scores), torch.stack(theirs.scores), atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", list(SLIDING))
@pytest.mark.parametrize("head", HEADS)
def test_round_trip_is_exact_and_keeps_the_layer_types(family, head):
    hf = build(family, head)
    back = to_hf(from_hf(hf))
    assert type(back) is type(hf)
    assert back.config.sliding_window == WINDOW
    assert getattr(back.config, "layer_types", None) == getattr(hf.config, "layer_types", None)  # Mistral: none
    assert_same_tensors(hf, back)


def test_a_token_sees_only_the_last_window_of_tokens():
    """One sliding layer: the output at position t depends on tokens t - WINDOW + 1 .. t and on nothing before."""
    model = MiniGPTForCausalLM(tiny_gpt_config(num_hidden_layers=1, sliding_window=WINDOW,
                                               position_embedding_type="rotary")).eval()
    ids = torch.randint(3, 99, (1, 12))
    changed = ids.clone()
    changed[0, 3] = (ids[0, 3] + 1 - 3) % 96 + 3  # another real token at position 3
    for impl in ("eager", "sdpa"):
        model.set_attn_implementation(impl)
        with torch.no_grad():
            diff = (model(ids).logits - model(changed).logits).abs().amax(-1)[0]  # (T,)
        assert (diff[3 : 3 + WINDOW] > 0).all(), impl
        assert (diff[:3] == 0).all() and (diff[3 + WINDOW :] == 0).all(), impl


#: absolute positions; one rotation for all layers; Gemma 3's, the sliding layers with a base of their own; SmolLM3's,
#: a layer without positions
POSITIONS = {"learned": {"position_embedding_type": "learned"}, "rotary": {"position_embedding_type": "rotary"},
             "rotary per layer type": {"position_embedding_type": "rotary", "sliding_rope_theta": 10.0,
                                       "rotary_scaling": {"rope_type": "linear", "factor": 2.0}},
             "rotary but for a NoPE layer": {"position_embedding_type": "rotary", "nope_layers": [1]}}


@pytest.mark.parametrize("positions", list(POSITIONS))
def test_cached_static_and_uncached_decoding_agree_past_the_window(positions):
    from transformers.cache_utils import DynamicCache, DynamicSlidingWindowLayer, StaticCache

    model = MiniGPTForCausalLM(tiny_gpt_config(num_hidden_layers=3, sliding_window=WINDOW,
                                               layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                               **POSITIONS[positions])).eval()
    ids = torch.randint(3, 99, (2, 13))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        for cache in (DynamicCache(config=model.config), StaticCache(config=model.config, max_cache_len=16)):
            prefix = model(ids[:, :6], cache=cache).logits
            steps = [model(ids[:, t : t + 1], cache=cache).logits for t in range(6, 13)]
            torch.testing.assert_close(torch.cat([prefix, *steps], dim=1), full, atol=1e-5, rtol=1e-5)
    assert [type(layer) for layer in model(ids).cache.layers][::2] == [DynamicSlidingWindowLayer] * 2
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    dynamic = model.generate(ids[:, :6], **kwargs)
    assert torch.equal(model.generate(ids[:, :6], cache_implementation="static", **kwargs), dynamic)


def test_cross_attention_keeps_every_encoder_position_in_its_cache_past_the_window():
    """A GPT decoder with cross-attention (``EncoderDecoderModel``'s) and local self-attention: the cross-attention
    cache holds the encoder's keys once, all of them; only the self-attention cache slides. (It used to take the
    config's sliding layers and keep the last ``window - 1`` encoder positions after the first step.)"""
    model = MiniGPTForCausalLM(tiny_gpt_config(num_hidden_layers=2, sliding_window=WINDOW, add_cross_attention=True,
                                               layer_types=["sliding_attention", "full_attention"],
                                               position_embedding_type="rotary")).eval()
    encoder_states = torch.randn(2, 10, 32)
    ids = torch.randint(3, 99, (2, 9))
    with torch.no_grad():
        full = model(ids, encoder_hidden_states=encoder_states, use_cache=False).logits
        prefix = model(ids[:, :3], encoder_hidden_states=encoder_states)
        cache, steps = prefix.cache, [prefix.logits]
        for t in range(3, 9):
            out = model(ids[:, t : t + 1], encoder_hidden_states=encoder_states, cache=cache)
            cache = out.cache
            steps.append(out.logits)
    assert all(layer.keys.shape[-2] == 10 for layer in cache.cross_attention_cache.layers)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", list(POSITIONS))
def test_compiles_without_graph_breaks(positions):
    model = MiniGPTForCausalLM(tiny_gpt_config(sliding_window=WINDOW, layer_types=["full_attention",
                                                                                   "sliding_attention"],
                                               **POSITIONS[positions])).eval()
    ids = torch.randint(3, 99, (2, 10))
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids).logits, model(ids).logits)


def test_saved_model_reloads_with_its_windows(tmp_path):
    model = MiniGPTForCausalLM(tiny_gpt_config(sliding_window=WINDOW, layer_types=["full_attention",
                                                                                   "sliding_attention"])).eval()
    model.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.layer_types == ["full_attention", "sliding_attention"]
    ids = torch.randint(3, 99, (2, 10))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"sliding_window": 0}, r"`sliding_window` must be an integer >= 1"),
        ({"sliding_window": "4"}, r"`sliding_window` must be an integer"),
        ({"sliding_window": 4, "layer_types": ["sliding_attention"]}, r"`layer_types`.*num_hidden_layers=2"),
        ({"layer_types": "full_attention"}, r"`layer_types` must be None or a list"),
        ({"sliding_window": 4, "layer_types": ["sliding_attention", "local"]},
         r"`layer_types\[i\]` must be one of 'full_attention', 'sliding_attention'"),
        ({"layer_types": ["sliding_attention", "full_attention"]}, r"set `sliding_window`"),
    ],
)
def test_bad_window_options_raise_naming_the_field(options, match):
    with pytest.raises(ValueError, match=match):
        tiny_gpt_config(**options)


def test_exports_that_cannot_express_the_windows_raise():
    learned = MiniGPTForCausalLM(tiny_gpt_config(sliding_window=WINDOW, position_embedding_type="learned"))
    with pytest.raises(ValueError, match="GPT-2.*sliding_window=None"):
        to_hf(learned)
    llama_like = from_hf(build("Mistral"))
    llama_like.config.attention_bias = llama_like.config.attention_output_bias = True  # biases everywhere: Llama's
    with pytest.raises(ValueError, match="Mistral needs `attention_bias=False`"):
        to_hf(llama_like)
    gemma_like = from_hf(build("Mistral"))
    gemma_like.config.scale_embeddings = True  # Gemma's layout, which has no sliding window
    with pytest.raises(ValueError, match="Gemma attends to every earlier token"):
        to_hf(gemma_like)
    assert MiniGPTConfig(sliding_window=8).layer_types == ["sliding_attention"] * 12  # None: all slide
    assert MiniGPTConfig().layer_types == ["full_attention"] * 12
    assert MiniGPTConfig(n_layer=2, sliding_window=8).layer_types == ["sliding_attention"] * 2  # GPT-2's name
    assert MiniGPTConfig(n_layer=1, layer_types=["full_attention"]).num_hidden_layers == 1


def test_continuous_batching_gives_each_prompt_its_greedy_tokens():
    """``generate_batch`` (a paged cache, prompts packed in one row) with a sliding and a full layer."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    model = MiniGPTForCausalLM(tiny_gpt_config(
        position_embedding_type="rotary", attn_implementation="eager", initializer_range=0.3, sliding_window=3,
        layer_types=["sliding_attention", "full_attention"])).eval()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 99, (n,), generator=g).tolist() for n in (6, 3, 9)]
    config = GenerationConfig(max_new_tokens=6, do_sample=False, eos_token_id=-1, pad_token_id=0)
    batching = ContinuousBatchingConfig(num_blocks=8, block_size=16, max_batch_tokens=64)
    results = model.generate_batch(inputs=prompts, generation_config=config, continuous_batching_config=batching,
                                   progress_bar=False)
    alone = [model.generate(torch.tensor([p]), max_new_tokens=6, do_sample=False, eos_token_id=-1)[0, len(p):].tolist()
             for p in prompts]
    assert [result.generated_tokens for result in results.values()] == alone
    assert len({tuple(tokens) for tokens in alone}) == 3

