"""The GPT family end to end on tiny CPU configs: Auto classes and remote code, generation and the cache,
attention backends, training integrations (Trainer, checkpointing, compile, PEFT, pipelines), the heads'
losses and pooling, and the errors bad input gets."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    TINY,
    assert_early_exit_gives_the_greedy_tokens,
    assert_padding_free_batch_equals_the_padded_batch,
    count_host_reads,
    generate_with_compiled_static_cache,
    padded_batch,
    tiny_gpt_config,
)
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    Trainer,
    TrainingArguments,
    pipeline,
)

import modeling_mini
from modeling_mini import (
    MiniGPTConfig,
    MiniGPTForCausalLM,
    MiniGPTForQuestionAnswering,
    MiniGPTForSequenceClassification,
    MiniGPTForTokenClassification,
    MiniGPTModel,
)

GPT_AUTO = {
    "AutoModel": (AutoModel, MiniGPTModel),
    "AutoModelForCausalLM": (AutoModelForCausalLM, MiniGPTForCausalLM),
    "AutoModelForSequenceClassification": (AutoModelForSequenceClassification, MiniGPTForSequenceClassification),
    "AutoModelForTokenClassification": (AutoModelForTokenClassification, MiniGPTForTokenClassification),
    "AutoModelForQuestionAnswering": (AutoModelForQuestionAnswering, MiniGPTForQuestionAnswering),
}


def lm(**overrides) -> MiniGPTForCausalLM:
    torch.manual_seed(0)
    return MiniGPTForCausalLM(tiny_gpt_config(**overrides)).eval()


def left_padded_batch():
    """``padded_batch`` with every row's padding moved to the left (rows padded by 3, 2 and 0)."""
    ids, mask = padded_batch(left=True)
    order = torch.argsort(mask, dim=1, stable=True)  # pads (0) first, real tokens (1) after, in order
    return ids.gather(1, order), mask.gather(1, order)


def mask_positions(mask: torch.Tensor) -> torch.Tensor:
    """Per-row positions that skip left padding: what ``generate`` passes for a left-padded batch."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


# --- Auto classes, saving, remote code ------------------------------------------------------------------------------


def test_import_registers_every_auto_class_and_a_saved_folder_loads_through_each(tmp_path):
    model = lm()
    model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is MiniGPTConfig
    ids, mask = padded_batch(left=False)
    with torch.no_grad():
        hidden = model.model(ids, attention_mask=mask).last_hidden_state
        logits = model(ids, attention_mask=mask).logits
    for auto, cls in GPT_AUTO.values():
        loaded = auto.from_pretrained(tmp_path).eval()  # AutoModel / heads from a saved ForCausalLM
        assert type(loaded) is cls
        backbone = loaded if cls is MiniGPTModel else loaded.model
        with torch.no_grad():
            torch.testing.assert_close(backbone(ids, attention_mask=mask).last_hidden_state, hidden, atol=0, rtol=0)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids, attention_mask=mask).logits, logits, atol=0, rtol=0)


def test_saved_config_has_an_auto_map_for_every_auto_class(tmp_path):
    MiniGPTForSequenceClassification(tiny_gpt_config(num_labels=2)).save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    expected = {name: f"modeling_gpt.{cls.__name__}" for name, (_, cls) in GPT_AUTO.items()}
    assert auto_map == {**expected, "AutoConfig": "configuration_mini.MiniGPTConfig"}
    copied = {p.name for p in tmp_path.glob("*.py")}
    assert {"modeling_gpt.py", "configuration_mini.py", "attention.py", "blocks.py", "positional.py"} <= copied
    assert not list(tmp_path.glob("*.bin")) and (tmp_path / "model.safetensors").exists()


_REMOTE = textwrap.dedent("""
    import sys
    repo = sys.argv[2]
    sys.path[:] = [p for p in sys.path if p not in ("", ".", repo)]  # the venv may live inside the repo
    for finder in list(sys.meta_path):  # the editable install's finder would still map the name to the repo
        if "editable" in type(finder).__module__.lower() or "editable" in type(finder).__name__.lower():
            sys.meta_path.remove(finder)
    sys.modules["modeling_mini"] = None
    try:
        import modeling_mini  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("modeling_mini is importable: the test would prove nothing")
    import torch
    torch.set_num_threads(1)  # as in the parent (conftest): the same reduction order, bit-identical logits
    from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForQuestionAnswering,
                              AutoModelForSequenceClassification)
    folder = sys.argv[1]
    batch = torch.load(folder + "/batch.pt")
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert model.lm_head.weight is model.model.embeddings.embed_tokens.weight
    with torch.no_grad():
        torch.save(model(**batch).logits, folder + "/remote_logits.pt")
    generated = model.generate(batch["input_ids"][1:2, :6], max_new_tokens=5, do_sample=False, pad_token_id=0)
    torch.save(generated, folder + "/remote_generated.pt")
    for auto in (AutoModel, AutoModelForSequenceClassification, AutoModelForQuestionAnswering):
        print(type(auto.from_pretrained(folder, trust_remote_code=True)).__name__)
""")


def test_remote_code_loads_in_a_fresh_process_without_the_package(tmp_path):
    model = lm(position_embedding_type="rotary")
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    ids, mask = padded_batch(left=False)
    torch.save({"input_ids": ids, "attention_mask": mask}, folder / "batch.pt")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(modeling_mini.__file__)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", _REMOTE, str(folder), repo], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.split() == ["MiniGPTModel", "MiniGPTForSequenceClassification", "MiniGPTForQuestionAnswering"]
    with torch.no_grad():
        torch.testing.assert_close(torch.load(folder / "remote_logits.pt"), model(ids, attention_mask=mask).logits,
                                   atol=0, rtol=0)
    expected = model.generate(ids[1:2, :6], max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert torch.equal(torch.load(folder / "remote_generated.pt"), expected)


# --- generation and the cache ---------------------------------------------------------------------------------------

POSITION_TYPES = ["sinusoidal", "learned", "rotary", "none"]


@pytest.mark.parametrize("position_embedding_type", POSITION_TYPES)
def test_cached_generation_equals_the_uncached_forward(position_embedding_type):
    model = lm(position_embedding_type=position_embedding_type, num_key_value_heads=2)
    ids = torch.randint(3, 99, (2, 5))
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0, return_dict_in_generate=True, output_scores=True)
    cached = model.generate(ids, use_cache=True, **kwargs)
    uncached = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(torch.stack(cached.scores), torch.stack(uncached.scores), atol=1e-5, rtol=1e-5)
    # and each step's scores are the full forward's last-position logits on the sequence so far
    with torch.no_grad():
        full = model(cached.sequences, use_cache=False).logits  # (B, T0 + new, V)
    for step, scores in enumerate(cached.scores):
        torch.testing.assert_close(scores, full[:, ids.shape[1] - 1 + step], atol=1e-5, rtol=1e-5)


def test_incremental_forward_with_a_cache_equals_one_forward():
    model = lm(position_embedding_type="rotary")
    ids, mask = padded_batch(left=True)
    positions = mask_positions(mask)
    with torch.no_grad():
        full = model(ids, attention_mask=mask, position_ids=positions).logits
        first = model(ids[:, :6], attention_mask=mask[:, :6], position_ids=positions[:, :6], use_cache=True)
        rest = model(ids[:, 6:], attention_mask=mask, position_ids=positions[:, 6:], cache=first.cache)
    real = mask.bool()
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1)[real], full[real], atol=1e-5, rtol=1e-5)
    assert rest.cache.get_seq_length() == ids.shape[1]


@pytest.mark.parametrize("position_embedding_type", POSITION_TYPES)
def test_left_padded_batch_generates_what_each_row_generates_alone(position_embedding_type):
    model = lm(position_embedding_type=position_embedding_type)
    ids, mask = left_padded_batch()
    assert (mask[:, 0] == 0).sum() == 2 and (mask[:, -1] == 1).all()
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    batch = model.generate(ids, attention_mask=mask, **kwargs)
    for row in range(ids.shape[0]):
        alone = model.generate(ids[row : row + 1, mask[row].bool()], **kwargs)
        assert torch.equal(batch[row, -6:], alone[0, -6:]), row


def test_greedy_sampling_and_beam_search():
    model = lm()
    ids = torch.randint(3, 99, (2, 4))
    greedy = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():  # greedy = argmax of the forward at every step
        logits = model(greedy).logits
    assert torch.equal(greedy[:, 4:], logits[:, 3:-1].argmax(-1))

    def sample(seed):
        torch.manual_seed(seed)
        return model.generate(ids, max_new_tokens=6, do_sample=True, top_k=0, temperature=1.5, pad_token_id=0)

    assert torch.equal(sample(1), sample(1))  # seeded sampling is reproducible...
    assert not all(torch.equal(sample(1), sample(seed)) for seed in (2, 3, 4))  # ... and actually samples

    beams = model.generate(ids, max_new_tokens=6, num_beams=3, num_return_sequences=3, do_sample=False,
                           pad_token_id=0, output_scores=True, return_dict_in_generate=True, length_penalty=0.0)
    assert beams.sequences.shape == (6, 10)
    with torch.no_grad():  # the returned score is the sequence's log-probability; the best beam beats greedy
        logp = model(beams.sequences).logits[:, 3:-1].log_softmax(-1)
        seq_logp = logp.gather(-1, beams.sequences[:, 4:, None]).squeeze(-1).sum(-1)
        greedy_logp = model(greedy).logits[:, 3:-1].log_softmax(-1).gather(-1, greedy[:, 4:, None]).squeeze(-1).sum(-1)
    torch.testing.assert_close(beams.sequences_scores, seq_logp, atol=1e-4, rtol=1e-4)
    assert (seq_logp.view(2, 3)[:, 0] >= greedy_logp - 1e-5).all()


@pytest.mark.parametrize("position_embedding_type", ["learned", "rotary"])
def test_static_cache_equals_the_dynamic_cache(position_embedding_type):
    model = lm(position_embedding_type=position_embedding_type)
    ids, mask = left_padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0, output_scores=True,
                  return_dict_in_generate=True)
    dynamic = model.generate(ids, **kwargs)
    static = model.generate(ids, cache_implementation="static", **kwargs)
    assert torch.equal(static.sequences, dynamic.sequences)
    torch.testing.assert_close(torch.stack(static.scores), torch.stack(dynamic.scores), atol=1e-5, rtol=1e-5)
    # the decoding step compiled fullgraph, as transformers does on a GPU
    assert torch.equal(generate_with_compiled_static_cache(model, ids, **kwargs).sequences, dynamic.sequences)


@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned", "rotary"])
def test_forward_with_a_static_cache_and_no_position_ids_follows_the_cache(position_embedding_type):
    """Called directly (not by ``generate``, which passes position ids), the model makes positions from the cache
    length; a static cache keeps that length in a device tensor, which must not be read back."""
    from transformers.cache_utils import StaticCache

    model = lm(position_embedding_type=position_embedding_type)
    ids = torch.randint(3, 99, (2, 9))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        cache = StaticCache(config=model.config, max_cache_len=16)
        prefix = model(ids[:, :5], cache=cache).logits
        steps = [model(ids[:, t : t + 1], cache=cache).logits for t in range(5, 9)]
        assert count_host_reads(lambda: model(ids[:, :1], cache=cache)) == 1  # the id range check only
    torch.testing.assert_close(torch.cat([prefix, *steps], dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned", "rotary"])
def test_continuous_batching_gives_each_prompt_its_greedy_tokens(position_embedding_type, attn):
    """``generate_batch`` (transformers' continuous batching, what ``transformers serve`` runs) packs prompts of
    different lengths into one row with a paged cache and its own 4D mask, prefill and decoding steps mixed: each
    prompt must get exactly the tokens that plain greedy ``generate`` gives it alone."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    model = lm(position_embedding_type=position_embedding_type, attn_implementation=attn, initializer_range=0.3)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 99, (n,), generator=g).tolist() for n in (6, 3, 9)]
    config = GenerationConfig(max_new_tokens=6, do_sample=False, eos_token_id=-1, pad_token_id=0)
    batching = ContinuousBatchingConfig(num_blocks=8, block_size=16, max_batch_tokens=64)  # small: fast on the CPU
    results = model.generate_batch(inputs=prompts, generation_config=config, continuous_batching_config=batching,
                                   progress_bar=False)
    batched = [result.generated_tokens for result in results.values()]
    alone = [model.generate(torch.tensor([p]), max_new_tokens=6, do_sample=False, eos_token_id=-1)[0, len(p):].tolist()
             for p in prompts]
    assert batched == alone
    assert len({tuple(tokens) for tokens in alone}) == 3  # the prompts do not all decode alike


@pytest.mark.parametrize("options", [{"position_embedding_type": "learned"}, {"position_embedding_type": "rotary"},
                                     {"position_embedding_type": "rotary", "sliding_window": 4}],
                         ids=["learned", "rotary", "sliding-window"])
def test_assisted_and_prompt_lookup_decoding_give_the_greedy_tokens(options):
    """Speculative decoding verifies several drafted tokens in one forward, then crops the rejected ones from the
    cache: the result must be exactly greedy decoding, which needs a cache that crops (a sliding layer's too) and
    positions that follow."""
    model = lm(**options, initializer_range=0.3)
    torch.manual_seed(1)
    assistant = MiniGPTForCausalLM(tiny_gpt_config(**options, initializer_range=0.3, num_hidden_layers=1)).eval()
    ids = torch.randint(3, 99, (1, 6), generator=torch.Generator().manual_seed(2))
    ids = torch.cat([ids, ids[:, :3]], dim=1)  # a repeat, so that prompt lookup finds candidates
    kwargs = dict(max_new_tokens=12, do_sample=False, pad_token_id=0)
    greedy = model.generate(ids, **kwargs)
    assert torch.equal(model.generate(ids, assistant_model=assistant, **kwargs), greedy)
    assert torch.equal(model.generate(ids, prompt_lookup_num_tokens=3, **kwargs), greedy)
    assert_early_exit_gives_the_greedy_tokens(model, model.model.layers, ids, greedy, **kwargs)


@pytest.mark.parametrize("options", [{}, {"position_embedding_type": "learned", "token_embedding_size": 16}],
                         ids=["default", "narrow-token-table"])
def test_generate_from_inputs_embeds_gives_the_tokens_of_the_ids(options):
    """``generate(inputs_embeds=...)`` (a soft prompt, or embeddings edited by hand): transformers looks for
    ``inputs_embeds`` in ``prepare_inputs_for_generation``'s signature before it lets a decoder-only model start from
    embeddings. From the ids' own embeddings, it must give the new tokens the ids give, with and without a mask."""
    model = lm(**options, initializer_range=0.3)
    ids = torch.randint(3, 99, (2, 6), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    embeds = model.get_input_embeddings()(ids)  # (B, T, token table width)
    expected = model.generate(ids, attention_mask=mask, **kwargs)[:, ids.shape[1]:]
    assert torch.equal(model.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs), expected)
    assert torch.equal(model.generate(inputs_embeds=embeds, **kwargs), expected)


def test_a_loss_makes_no_cache_unless_asked():
    """With labels (training, scoring) the causal LM and the classifier keep no cache by default: nothing continues
    from it, and under ``torch.compile`` every cached key and value would be another output of the graph, with a zero
    gradient materialised for it in backward. ``use_cache=True`` still keeps one."""
    model = lm().train()
    ids = torch.randint(3, 99, (2, 6))
    assert model(ids).cache is not None  # no loss: the config's use_cache, as in transformers
    assert model(ids, labels=ids).cache is None
    assert model(ids, labels=ids, use_cache=True).cache is not None
    classifier = MiniGPTForSequenceClassification(tiny_gpt_config(num_labels=2, pad_token_id=0)).train()
    assert classifier(ids, labels=torch.tensor([0, 1])).cache is None


def test_a_text_scored_in_chunks_carries_its_cache():
    """Scoring a long text chunk by chunk with labels, the cache carried along (as transformers' GPT-2 and Llama
    allow): a cache passed in comes back updated, so each chunk's logits are the whole text's at those positions."""
    model = lm(initializer_range=0.3).eval()
    ids = torch.randint(3, 99, (1, 12), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        whole = model(ids).logits
        cache, chunks = None, []
        for start in range(0, 12, 4):
            chunk = ids[:, start:start + 4]
            out = model(chunk, cache=cache, labels=chunk, use_cache=True if cache is None else None)
            assert out.cache is not None and out.cache.get_seq_length() == start + 4
            cache = out.cache
            chunks.append(out.logits)
    torch.testing.assert_close(torch.cat(chunks, 1), whole, atol=1e-5, rtol=0)


# --- attention backends, outputs, compile ---------------------------------------------------------------------------

BACKEND_CONFIGS = [
    dict(position_embedding_type="sinusoidal"),
    dict(position_embedding_type="learned"),
    dict(position_embedding_type="rotary", num_key_value_heads=2),
    dict(position_embedding_type="none", num_key_value_heads=1),
    dict(norm_position="post", norm_type="rmsnorm", hidden_act="swiglu"),
    dict(norm_type="rmsnorm", hidden_act="geglu", attention_bias=False, mlp_bias=False),
    dict(norm_position="output", norm_type="rmsnorm", position_embedding_type="rotary", qk_norm=True,
         qk_norm_scope="all_heads"),
    dict(position_embedding_type="rotary", partial_rotary_factor=0.5, parallel_residual=True),
    dict(position_embedding_type="rotary", parallel_residual=True, parallel_shared_norm=True, lm_head_bias=True),
]


@pytest.mark.parametrize("overrides", BACKEND_CONFIGS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("left", [True, False], ids=["left", "right"])
def test_eager_and_sdpa_agree_on_a_padded_batch(overrides, left):
    """The backends agree at every real position. ``left`` pads row 0 before its tokens, where only the padding mask
    hides them (and row 1 after); ``right`` pads both rows after, which the causal structure hides as well: it checks
    the backends on a ragged mask, not the padding mask itself."""
    ids, mask = padded_batch(left=left)
    positions = mask_positions(mask)
    outputs = {}
    for impl in ("eager", "sdpa"):
        torch.manual_seed(0)
        model = MiniGPTForCausalLM(tiny_gpt_config(**overrides, attn_implementation=impl)).eval()
        assert model.config._attn_implementation == impl
        with torch.no_grad():
            outputs[impl] = model(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    torch.testing.assert_close(outputs["sdpa"][real], outputs["eager"][real], atol=1e-5, rtol=1e-5)


def test_attentions_and_hidden_states_are_returned():
    model = lm(attn_implementation="eager")
    ids, mask = padded_batch(left=True)
    with torch.no_grad():
        out = model(ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    batch, length = ids.shape
    assert len(out.hidden_states) == TINY["num_hidden_layers"] + 1
    assert all(h.shape == (batch, length, TINY["hidden_size"]) for h in out.hidden_states)
    torch.testing.assert_close(out.hidden_states[0], model.model.embeddings(ids, None, torch.arange(length)[None]))
    allowed = torch.ones(length, length).tril().bool()[None] & mask.bool()[:, None, :]  # (B, T, S)
    assert len(out.attentions) == TINY["num_hidden_layers"]
    for weights in out.attentions:
        assert weights.shape == (batch, TINY["num_attention_heads"], length, length)
        real_queries = mask.bool()[:, None, :, None].expand_as(weights)
        kept = weights.masked_fill(~allowed[:, None], 0)
        torch.testing.assert_close(kept.sum(-1)[real_queries[..., 0]], torch.ones(int(real_queries[..., 0].sum())))
        assert weights.masked_select(~allowed[:, None] & real_queries).abs().max() == 0


def test_torch_compile_fullgraph_runs_the_forward():
    model = lm(position_embedding_type="rotary")
    ids, mask = padded_batch(left=False)
    compiled = torch.compile(model, backend="eager", fullgraph=True)  # fullgraph: raises on any graph break
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)
    train = lm(position_embedding_type="learned").train()
    compiled = torch.compile(train, backend="eager", fullgraph=True)
    compiled(ids, attention_mask=mask, labels=ids).loss.backward()
    assert train.lm_head.weight.grad is not None


def test_an_input_past_the_learned_position_table_is_refused_under_torch_compile():
    """Under ``torch.compile`` no id is read back, but a length past the table is known from the shapes: the same
    ValueError as in eager mode. Before, the lookup failed inside the graph (an IndexError; inductor: 'index out of
    bounds')."""
    from modeling_mini import (
        MiniEncoderConfig,
        MiniEncoderForMaskedLM,
        MiniSeq2SeqConfig,
        MiniSeq2SeqForConditionalGeneration,
    )

    tiny = dict(vocab_size=99, hidden_size=16, num_attention_heads=2, position_embedding_type="learned",
                max_position_embeddings=8)
    seq2seq = MiniSeq2SeqForConditionalGeneration(MiniSeq2SeqConfig(
        **tiny, encoder_layers=1, decoder_layers=1, pad_token_id=0, decoder_start_token_id=2)).eval()
    models = {
        "gpt": lm(**{**tiny, "num_hidden_layers": 1}),
        "encoder": MiniEncoderForMaskedLM(MiniEncoderConfig(**tiny, num_hidden_layers=1)).eval(),
        "seq2seq source": seq2seq,
        "seq2seq target": seq2seq,
    }
    ids = torch.randint(3, 99, (1, 9))
    for name, model in models.items():
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="eager")
        kwargs = {"decoder_input_ids": ids[:, :4]} if name == "seq2seq source" else {}
        if name == "seq2seq target":
            kwargs = {"input_ids": ids[:, :4], "decoder_input_ids": ids}
        with torch.no_grad(), pytest.raises(ValueError, match=r"`position_ids` contains 8.*max_position_embeddings=8"):
            compiled(**({"input_ids": ids} | kwargs))
        with torch.no_grad():  # the whole table fits
            compiled(**({"input_ids": ids[:, :8]} | {k: v[:, :8] for k, v in kwargs.items()}))


@pytest.mark.slow
def test_torch_compile_inductor_matches_eager():
    torch._dynamo.reset()
    model = lm(position_embedding_type="learned")
    ids, mask = padded_batch(left=False)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits,
                                   atol=1e-5, rtol=1e-5)


# --- training integrations ------------------------------------------------------------------------------------------


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    ids, mask = padded_batch(left=False)
    labels = ids.masked_fill(mask == 0, -100)
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = MiniGPTForCausalLM(tiny_gpt_config(hidden_dropout=0.1)).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert all(block.gradient_checkpointing for block in model.model.layers)
        torch.manual_seed(1)  # same dropout masks: checkpointing replays the RNG state
        loss = model(ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        results.append((loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0])
    for key, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][key], grad, msg=key)


def test_gradient_checkpointing_returns_no_cache_in_training():
    """A checkpointed block is run again in backward, which would append to a cache twice: training with
    checkpointing makes no cache even when asked (labels alone already turn it off, so ask without them)."""
    model = MiniGPTForCausalLM(tiny_gpt_config()).train()
    model.gradient_checkpointing_enable()
    ids, _ = padded_batch()
    assert model(ids, use_cache=True).cache is None
    assert model.eval()(ids, use_cache=True).cache is not None  # in eval mode it caches as usual


def test_resize_token_embeddings_keeps_the_tied_head(tmp_path):
    model = lm()
    model.resize_token_embeddings(120)
    embed = model.model.embeddings.embed_tokens
    assert model.lm_head.weight is embed.weight and embed.weight.shape == (120, TINY["hidden_size"])
    assert model.config.vocab_size == 120
    ids = torch.tensor([[3, 110, 119]])  # ids the old vocabulary did not have
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, 3, 120)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.lm_head.weight is reloaded.model.embeddings.embed_tokens.weight
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, logits, atol=0, rtol=0)


def test_text_generation_pipeline(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    model = lm(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
               eos_token_id=tok.eos_token_id)
    prompt = "the cat sat"
    out = pipeline("text-generation", model=model, tokenizer=tok)(prompt, max_new_tokens=5, do_sample=False)
    text = out[0]["generated_text"]
    assert text.startswith(prompt) and len(text) > len(prompt)
    expected = model.generate(**tok(prompt, return_tensors="pt"), max_new_tokens=5, do_sample=False)
    assert text == tok.decode(expected[0], skip_special_tokens=True)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    from_dir = pipeline("text-generation", model=str(tmp_path))(prompt, max_new_tokens=5, do_sample=False)
    assert from_dir[0]["generated_text"] == text


def test_peft_lora_on_the_token_table_trains_and_still_checks_ids():
    """PEFT's LoRA ``Embedding`` wraps the token table without a ``num_embeddings`` of its own: the id check read it
    and every forward failed with an AttributeError."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(lm(), LoraConfig(r=2, target_modules=["embed_tokens", "qkv_proj"], lora_dropout=0.0))
    ids, mask = padded_batch(left=False)
    loss = peft_model(ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
    loss.backward()
    assert any("embed_tokens.lora" in n and p.grad is not None for n, p in peft_model.named_parameters())
    with pytest.raises(ValueError, match="input_ids"):
        peft_model(ids.masked_fill(mask == 0, TINY["vocab_size"]), attention_mask=mask)


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_peft_virtual_tokens_train_and_generate(method):
    """PEFT's prompt tuning (virtual token embeddings before the input) and prefix tuning (virtual keys and values in
    every layer's cache) train the virtual tokens alone and generate, a left-padded batch as each row alone, with the
    cache as without it."""
    from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model

    config = (PromptTuningConfig if method == "prompt" else PrefixTuningConfig)(task_type="CAUSAL_LM",
                                                                             num_virtual_tokens=3)
    peft_model = get_peft_model(lm(position_embedding_type="rotary"), config)
    ids = torch.randint(3, 99, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 1]])  # left-padded
    ids = ids.masked_fill(mask == 0, 0)
    loss = peft_model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
    loss.backward()
    trained = [n for n, p in peft_model.named_parameters() if p.grad is not None]
    assert trained and all("prompt_encoder" in n for n in trained)
    peft_model.eval()
    settings = dict(max_new_tokens=4, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        batch = peft_model.generate(input_ids=ids, attention_mask=mask, **settings)
        assert torch.equal(batch, peft_model.generate(input_ids=ids, attention_mask=mask, use_cache=False, **settings))
        for row in range(2):
            real = mask[row].bool()
            alone = peft_model.generate(input_ids=ids[row:row + 1, real], **settings)
            assert torch.equal(batch[row, -4:], alone[0, -4:])


def test_peft_lora_trains_saves_reloads_and_merges(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    model = lm()
    model.save_pretrained(tmp_path / "base")  # before wrapping: PEFT edits the model in place
    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8,
                                                  target_modules=["qkv_proj", "o_proj"], lora_dropout=0.0))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    layers = TINY["num_hidden_layers"]
    assert sum("qkv_proj" in n for n in trainable) == sum("o_proj" in n for n in trainable) == 2 * layers  # A and B
    ids, mask = padded_batch(left=False)
    labels = ids.masked_fill(mask == 0, -100)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    frozen = peft_model.base_model.model.lm_head.weight.detach().clone()
    with torch.no_grad():
        before = peft_model(ids, attention_mask=mask, labels=labels).loss
    peft_model.train()
    for _ in range(4):
        peft_model(ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.eval()
    with torch.no_grad():
        after = peft_model(ids, attention_mask=mask, labels=labels)
    assert after.loss < before
    assert torch.equal(peft_model.base_model.model.lm_head.weight, frozen)
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids, attention_mask=mask).logits, after.logits, atol=0, rtol=0)
        merged = reloaded.merge_and_unload()
        assert type(merged) is MiniGPTForCausalLM
        torch.testing.assert_close(merged(ids, attention_mask=mask).logits, after.logits, atol=1e-5, rtol=0)
    assert merged.generate(ids[1:2, :4], max_new_tokens=3, pad_token_id=0).shape == (1, 7)


def test_an_adapter_added_through_transformers_saves_alone_and_loads_back(tmp_path):
    """transformers' own PEFT integration (`add_adapter` / `load_adapter`): the adapter folder holds what GPT-2's
    holds, no copy of the model's source (transformers copied it, as for any remote-code model), and the adapter
    loads back onto the base model with the adapted logits."""
    from peft import LoraConfig

    model = lm()
    model.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=["qkv_proj"], init_lora_weights=False))
    ids, mask = padded_batch(left=False)
    with torch.no_grad():
        adapted = model(ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path / "adapter")
    files = sorted(path.name for path in (tmp_path / "adapter").iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors", "generation_config.json"], files
    (tmp_path / "both").mkdir()
    (tmp_path / "both" / "notes.py").write_text("# the user's own file\n")
    model.save_pretrained(tmp_path / "both")
    assert (tmp_path / "both" / "notes.py").is_file()  # only what the save added goes
    lm().save_pretrained(tmp_path / "model")  # a folder that holds a model keeps its sources, all of them: an older
    (tmp_path / "model" / "feed_forward.py").unlink()  # version's save may lack a module the save writes over it
    model.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "modeling_gpt.py").is_file() and (tmp_path / "model" / "feed_forward.py").is_file()
    base = lm()
    base.load_adapter(str(tmp_path / "adapter"))
    with torch.no_grad():
        torch.testing.assert_close(base.eval()(ids, attention_mask=mask).logits, adapted, atol=0, rtol=0)


# --- Trainer: gradient accumulation equals the joined batch ---------------------------------------------------------


def _causal_rows():
    """Four rows with 2, 7, 3 and 5 label tokens: per-micro-batch means would weight them wrongly."""
    g = torch.Generator().manual_seed(3)
    rows = []
    for real in (3, 8, 4, 6):  # label tokens after the one-position shift: real - 1
        ids = torch.randint(3, 99, (8,), generator=g)
        mask = (torch.arange(8) < real).long()
        ids = ids.masked_fill(mask == 0, 0)
        rows.append({"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)})
    return rows


def _classification_rows():
    g = torch.Generator().manual_seed(4)
    rows = []
    for real, label in zip((3, 8, 4, 6), (0, 2, 1, 2), strict=True):
        ids = torch.randint(3, 99, (8,), generator=g)
        mask = (torch.arange(8) < real).long()
        rows.append({"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask, "labels": torch.tensor(label)})
    return rows


def _one_trainer_step(tmp_path, cls, rows, batch_size, accumulation, optim):
    torch.manual_seed(0)
    model = cls(tiny_gpt_config(num_labels=3))
    args = TrainingArguments(output_dir=str(tmp_path / f"{cls.__name__}-{accumulation}"), max_steps=1,
                             per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
                             learning_rate=0.5 if optim == "sgd" else 1e-2, optim=optim, lr_scheduler_type="constant",
                             warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0, report_to="none", use_cpu=True,
                             save_strategy="no", logging_strategy="no", seed=0, data_seed=0)
    Trainer(model=model, args=args, train_dataset=rows).train()
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_trainer_label_smoothing_shifts_the_labels_of_the_causal_lm(tmp_path):
    """With ``label_smoothing_factor`` the Trainer computes the loss itself and shifts the labels only for classes it
    knows as causal LMs: ours was scored on predicting its own input token (the unshifted loss)."""
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_pt_utils import LabelSmoother

    torch.manual_seed(0)
    model = MiniGPTForCausalLM(tiny_gpt_config())
    ids = torch.randint(3, model.config.vocab_size, (4, 12))
    args = TrainingArguments(str(tmp_path), label_smoothing_factor=0.1, report_to="none", use_cpu=True)
    trainer = Trainer(model=model, args=args)
    loss = trainer.compute_loss(model, {"input_ids": ids, "labels": ids.clone()})
    outputs = model(input_ids=ids)
    smoother = LabelSmoother(epsilon=0.1)
    torch.testing.assert_close(loss, smoother(outputs, ids, shift_labels=True))
    assert not torch.allclose(loss, smoother(outputs, ids))


@pytest.mark.parametrize(
    ("cls", "rows", "optim"),
    [(MiniGPTForCausalLM, _causal_rows, "sgd"), (MiniGPTForSequenceClassification, _classification_rows, "sgd"),
     (MiniGPTForCausalLM, _causal_rows, "adamw_torch")],
    ids=["causal-lm-sgd", "seq-cls-sgd", "causal-lm-adamw"],
)
def test_gradient_accumulation_equals_one_step_on_the_joined_batch(tmp_path, cls, rows, optim):
    joined = _one_trainer_step(tmp_path, cls, rows(), batch_size=4, accumulation=1, optim=optim)
    accumulated = _one_trainer_step(tmp_path, cls, rows(), batch_size=2, accumulation=2, optim=optim)
    torch.manual_seed(0)
    initial = dict(cls(tiny_gpt_config(num_labels=3)).named_parameters())
    assert max((joined[k] - initial[k]).abs().max().item() for k in joined) > 1e-3  # the step did something
    # Adam divides each gradient by its own magnitude: where one is ~1e-8, float noise of the summation order moves
    # that weight by ~1e-6 (lr 1e-2). A wrongly weighted micro-batch moves most weights by ~lr.
    atol = 1e-5 if optim.startswith("adam") else 1e-6
    for key in joined:
        torch.testing.assert_close(accumulated[key], joined[key], atol=atol, rtol=1e-5, msg=key)


def test_causal_lm_loss_counts_tokens_across_micro_batches():
    """The loss with ``num_items_in_batch`` is a sum over tokens / the count over all micro-batches."""
    model = lm()
    rows = _causal_rows()
    ids = torch.stack([r["input_ids"] for r in rows])
    labels = torch.stack([r["labels"] for r in rows])
    with torch.no_grad():
        logits = model(ids).logits
        reference = F.cross_entropy(logits[:, :-1].reshape(-1, 99), labels[:, 1:].reshape(-1), ignore_index=-100)
        total = int((labels[:, 1:] != -100).sum())
        halves = [model(ids[i:i + 2], labels=labels[i:i + 2], num_items_in_batch=total).loss for i in (0, 2)]
    torch.testing.assert_close(model(ids, labels=labels).loss, reference)
    torch.testing.assert_close(sum(halves), reference)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])  # flex_attention: tests/test_flex_attention.py
@pytest.mark.parametrize("position_embedding_type", [*POSITION_TYPES, "alibi"])
def test_padding_free_batch_equals_the_padded_batch(position_embedding_type, attn):
    """``DataCollatorWithFlattening`` (sequences joined in one row, position ids restarting at 0, no mask): each
    sequence sees only itself, at its own positions. The default ``use_cache=True`` must not switch that off. ALiBi
    numbered every packed sequence but the last from the last one's start (logits off by 0.67)."""
    assert_padding_free_batch_equals_the_padded_batch(lm(position_embedding_type=position_embedding_type,
                                                         attn_implementation=attn))


# --- heads: classification losses and pooling -----------------------------------------------------------------------

def test_pad_aware_positions_near_the_end_of_the_table_are_read_not_bounded():
    """OPT's positions come from the mask, so a padded batch longer than the table can still fit it. Before, a bound
    counting the padding (offset + length - 1) raised an error naming an id no row had."""
    model = lm(position_embedding_type="learned", position_offset=2, pad_aware_positions=True,
               max_position_embeddings=12)
    ids = torch.randint(3, 99, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    mask[1, :3] = 0  # 10 and 9 real tokens, left-padded: positions 2..11 and 2..10 fit the 12 rows
    ids = ids.masked_fill(mask == 0, 0)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, attention_mask=mask).logits[0, 2:], model(ids[:1, 2:]).logits[0],
                                   atol=1e-5, rtol=1e-5)
        # 11 real tokens: position 10, table row 12, one past the 10 positions the 12 rows hold after the offset
        with pytest.raises(ValueError, match=r"`position_ids` reach position 10 \(table row 12\), outside the 10 "):
            model(ids, attention_mask=torch.ones_like(ids).index_fill(1, torch.tensor([0]), 0))


def test_classifier_continuing_from_a_cache_pools_with_the_whole_mask():
    """Continuing from a cache, the mask covers the past too (the backbone asks for (B, past + T)); pooling reads
    its last T columns. Before, it raised a raw size-mismatch error."""
    model = MiniGPTForSequenceClassification(tiny_gpt_config(num_labels=3, position_embedding_type="rotary")).eval()
    ids, mask = padded_batch(left=True)
    with torch.no_grad():
        whole = model(ids, attention_mask=mask).logits
        first = model(ids[:, :5], attention_mask=mask[:, :5], use_cache=True)
        rest = model(ids[:, 5:], attention_mask=mask, cache=first.cache, use_cache=True).logits
    torch.testing.assert_close(rest, whole, atol=1e-5, rtol=1e-5)


def test_classifier_without_a_pad_token_refuses_an_unmasked_batch():
    """With no pad token and no mask, the last position is each row's last token only without padding: several rows
    are a ValueError, as in transformers (before, padded rows were silently pooled at a pad). One row, or a mask,
    still works."""
    model = MiniGPTForSequenceClassification(tiny_gpt_config(num_labels=3, pad_token_id=None)).eval()
    ids, mask = padded_batch(left=False)
    with torch.no_grad(), pytest.raises(ValueError, match="needs `pad_token_id`"):
        model(ids)
    with torch.no_grad():
        alone = model(ids[:1, mask[0].bool()]).logits
        torch.testing.assert_close(model(ids, attention_mask=mask).logits[:1], alone, atol=1e-5, rtol=1e-5)



def _seq_logits_and_loss(num_labels, labels, problem_type=None):
    torch.manual_seed(0)
    model = MiniGPTForSequenceClassification(tiny_gpt_config(num_labels=num_labels, problem_type=problem_type)).eval()
    ids, mask = padded_batch(left=False)
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels)
    return out.logits, out.loss


def test_binary_single_sigmoid_logit_head():
    labels = torch.tensor([1, 0, 1])  # integer labels (B,), as a dataset gives them
    logits, loss = _seq_logits_and_loss(1, labels, "multi_label_classification")
    assert logits.shape == (3, 1)
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits[:, 0], labels.float()))
    probability = modeling_mini.binary_probability(logits)
    assert ((probability > 0) & (probability < 1)).all()


@pytest.mark.parametrize(
    ("problem_type", "num_labels", "labels", "reference"),
    [
        ("single_label_classification", 3, torch.tensor([0, 2, 1]), lambda lo, la: F.cross_entropy(lo, la)),
        # -100 is ignored: the mean is over the 2 real labels
        ("single_label_classification", 3, torch.tensor([0, -100, 1]), lambda lo, la: F.cross_entropy(lo, la)),
        (None, 3, torch.tensor([0, 2, 1]), lambda lo, la: F.cross_entropy(lo, la)),
        ("multi_label_classification", 3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]),
         lambda lo, la: F.binary_cross_entropy_with_logits(lo, la)),
        ("regression", 1, torch.tensor([0.5, -1.0, 2.0]), lambda lo, la: F.mse_loss(lo[:, 0], la)),
        ("regression", 2, torch.randn(3, 2), lambda lo, la: F.mse_loss(lo, la)),
    ],
)
def test_sequence_classification_losses_equal_the_torch_formulas(problem_type, num_labels, labels, reference):
    logits, loss = _seq_logits_and_loss(num_labels, labels, problem_type)
    assert logits.shape == (3, num_labels)
    torch.testing.assert_close(loss, reference(logits, labels))


@pytest.mark.parametrize("left", [True, False], ids=["left", "right"])
def test_sequence_classification_pools_the_last_real_token(left):
    torch.manual_seed(0)
    model = MiniGPTForSequenceClassification(tiny_gpt_config(num_labels=3)).eval()
    ids, mask = padded_batch(left=left)
    with torch.no_grad():
        batch = model(ids, attention_mask=mask, position_ids=mask_positions(mask)).logits
        alone = torch.cat([model(ids[i : i + 1, mask[i].bool()]).logits for i in range(ids.shape[0])])
        by_pad_id = model(ids, position_ids=mask_positions(mask)).logits  # no mask: found from pad_token_id
        # what "last real token" means, computed apart from the pooling code: the score of each row's final state
        last = torch.cat([model.score(model.model(ids[i : i + 1, mask[i].bool()]).last_hidden_state[:, -1])
                          for i in range(ids.shape[0])])
    torch.testing.assert_close(alone, last, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)
    if not left:
        torch.testing.assert_close(by_pad_id, alone, atol=1e-5, rtol=1e-5)


def test_token_classification_loss_and_shapes():
    torch.manual_seed(0)
    model = MiniGPTForTokenClassification(tiny_gpt_config(num_labels=5)).eval()
    ids, mask = padded_batch(left=False)
    labels = (ids % 5).masked_fill(mask == 0, -100)
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (3, 9, 5)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits.reshape(-1, 5), labels.reshape(-1)))


# --- bad input ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"hidden_size": 30}, "hidden_size.*num_attention_heads"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"hidden_act": "tanh"}, "hidden_act.*'relu'.*'swiglu'"),
        ({"position_embedding_type": "xpos"}, "position_embedding_type.*'sinusoidal'.*'rotary'"),
        ({"norm_type": "batchnorm"}, "norm_type.*'layernorm'.*'rmsnorm'"),
        ({"norm_position": "middle"}, "norm_position.*'pre'.*'post'"),
        ({"hidden_size": 0}, "hidden_size.*>= 1"),
        ({"num_hidden_layers": -1}, "num_hidden_layers.*>= 1"),
        ({"vocab_size": 0}, "vocab_size.*>= 1"),
        ({"intermediate_size": 0}, "intermediate_size.*>= 1"),
        ({"max_position_embeddings": 0}, "max_position_embeddings.*>= 1"),
        ({"hidden_dropout": 1.5}, "hidden_dropout"),
        ({"pad_token_id": 99}, "pad_token_id.*vocab_size=99"),
        ({"head_dim": 0}, "head_dim.*>= 1"),
        ({"head_dim": 7, "position_embedding_type": "rotary"}, r"even head_dim \* partial_rotary_factor >= 2; got 7"),
    ],
)
def test_bad_config_raises_naming_the_field_and_allowed_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_gpt_config(**overrides)


def test_head_dim_set_apart_from_the_hidden_size():
    """``head_dim`` frees the head width from ``hidden_size / heads`` (30 is not divisible by 4 heads); GPT-2, whose
    heads always split the hidden state, cannot express it."""
    from modeling_mini.convert import to_hf

    model = MiniGPTForCausalLM(tiny_gpt_config(hidden_size=30, head_dim=6, position_embedding_type="learned")).eval()
    assert model.model.layers[0].self_attn.qkv_proj.out_features == 3 * 4 * 6
    ids = torch.randint(3, 99, (2, 7))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        cache = model(ids[:, :4]).cache
        step = model(ids[:, 4:], cache=cache).logits
    torch.testing.assert_close(step, full[:, 4:], atol=1e-5, rtol=1e-5)
    assert tiny_gpt_config().head_dim == 8  # the default: hidden_size / num_attention_heads
    with pytest.raises(ValueError, match=r"GPT-2 needs `head_dim = hidden_size / num_attention_heads` = 7.5"):
        to_hf(model)


def test_bad_inputs_raise_clear_errors():
    model = lm(position_embedding_type="learned")
    ids = torch.randint(3, 99, (2, 6))
    with pytest.raises(ValueError, match=r"input_ids.*99.*vocab_size=99"):
        model(torch.full_like(ids, 99))
    with pytest.raises(ValueError, match=r"input_ids.*-1.*vocab_size=99"):
        model(torch.full_like(ids, -1))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.randint(3, 99, (1, TINY["max_position_embeddings"] + 1)))
    with pytest.raises(ValueError, match=r"attention_mask.*\(2, 6\)"):
        model(ids, attention_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, attention_mask=torch.ones(6))
    with pytest.raises(ValueError, match="input_ids.*inputs_embeds"):
        model()
    with pytest.raises(ValueError, match="labels.*shape"):
        model(ids, labels=ids[:, :4])
    with pytest.raises(ValueError, match="labels.*dtype"):
        model(ids, labels=ids.float())
    tagger = MiniGPTForTokenClassification(tiny_gpt_config(num_labels=3))
    with pytest.raises(ValueError, match="labels.*shape"):
        tagger(ids, labels=ids[:, :4] % 3)
    with pytest.raises(ValueError, match="labels.*dtype"):
        tagger(ids, labels=(ids % 3).float())
    rotary = lm(position_embedding_type="rotary")
    assert rotary(torch.randint(3, 99, (1, TINY["max_position_embeddings"] + 8))).logits.shape[1] == 72


def test_int32_labels_give_the_int64_loss_and_labels_outside_their_range_raise():
    """As the encoder's heads: int32 labels and positions are ids too, and a causal-LM label >= vocab_size (a
    token-classification label >= num_labels) or negative other than -100 is a ``ValueError`` naming the range."""
    ids = torch.randint(3, 99, (2, 6))
    reader = MiniGPTForQuestionAnswering(tiny_gpt_config()).eval()
    positions = {"start_positions": torch.tensor([1, 2]), "end_positions": torch.tensor([3, 4])}
    with torch.no_grad():
        int32 = reader(ids, **{name: value.int() for name, value in positions.items()}).loss
        assert int32 == reader(ids, **positions).loss
    tagger = MiniGPTForTokenClassification(tiny_gpt_config(num_labels=3)).eval()
    for model, labels, allowed in ((lm(position_embedding_type="learned"), ids, "vocab_size=99"),
                                   (tagger, ids % 3, "num_labels=3")):
        with torch.no_grad():
            assert model(ids, labels=labels.int()).loss == model(ids, labels=labels).loss
        for bad in (int(allowed.split("=")[1]), -2):
            with pytest.raises(ValueError, match=rf"`labels` contains {bad}, outside \[0, {allowed}\)"):
                model(ids, labels=labels.masked_fill(labels == labels[0, 1], bad))


@pytest.mark.parametrize(
    ("problem_type", "num_labels", "labels", "match"),
    [
        ("single_label_classification", 3, torch.tensor([0.0, 1.0]), "dtype"),
        ("single_label_classification", 3, torch.tensor([[0, 1], [1, 2]]), "shape"),
        ("single_label_classification", 3, torch.tensor([0, 3]), r"\[0, 3\)"),
        ("multi_label_classification", 3, torch.tensor([1.0, 0.0]), "shape"),
        ("multi_label_classification", 1, torch.tensor([2, 1]), r"in \[0, 1\]"),
        ("regression", 2, torch.randn(2, 3), "shape"),
    ],
)
def test_classification_labels_must_fit_the_problem_type(problem_type, num_labels, labels, match):
    model = MiniGPTForSequenceClassification(tiny_gpt_config(num_labels=num_labels, problem_type=problem_type))
    with pytest.raises(ValueError, match=match):
        model(torch.randint(3, 99, (2, 5)), labels=labels)


def test_package_exports_the_family():
    for name in ("MiniGPTConfig", "MiniGPTModel", "MiniGPTForCausalLM", "MiniGPTForSequenceClassification",
                 "MiniGPTForTokenClassification"):
        assert name in modeling_mini.__all__ and hasattr(modeling_mini, name)
    assert issubclass(MiniGPTForCausalLM, __import__("transformers").GenerationMixin)


def test_the_4x_past_key_values_name_still_reaches_the_cache():
    """transformers 5 renamed the cache kwarg to ``cache``; like library models, ``past_key_values=`` still
    works (with a deprecation warning) instead of landing silently in ``**kwargs``."""
    model = lm()
    ids = torch.randint(3, TINY["vocab_size"], (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids).logits
        prefix = model(ids[:, :5], use_cache=True)
        step = model(ids[:, 5:], past_key_values=prefix.cache, use_cache=True)
    assert step.cache.get_seq_length() == 6
    torch.testing.assert_close(step.logits[:, -1], full[:, -1], atol=1e-5, rtol=1e-5)
