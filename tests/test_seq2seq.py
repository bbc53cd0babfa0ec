"""The encoder-decoder family end to end on tiny CPU configs: generation and the cache (cross-attention keys
computed once, the encoder run once), padding, attention backends and outputs, labels and the loss, the
Trainer (Seq2SeqTrainer with generation, gradient accumulation), learning a toy task, bad input, Auto classes
and remote code."""

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
    count_host_reads,
    generate_with_compiled_static_cache,
)
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSeq2SeqLM,
    GenerationMixin,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)
from transformers.cache_utils import EncoderDecoderCache

import modeling_mini
from modeling_mini import MiniSeq2SeqConfig, MiniSeq2SeqForConditionalGeneration, MiniSeq2SeqModel
from modeling_mini.modeling_seq2seq import shift_tokens_right

PAD, BOS, EOS = TINY["pad_token_id"], TINY["bos_token_id"], TINY["eos_token_id"]


def tiny_config(**overrides) -> MiniSeq2SeqConfig:
    # 3 encoder layers, 2 decoder layers: the depths differ on purpose
    return MiniSeq2SeqConfig(**{**TINY, "encoder_layers": 3, "decoder_start_token_id": BOS, **overrides})


def seq2seq(**overrides) -> MiniSeq2SeqForConditionalGeneration:
    torch.manual_seed(0)
    return MiniSeq2SeqForConditionalGeneration(tiny_config(**overrides)).eval()


def source_batch():
    """Three sources, right-padded (row 0 by 3, row 1 by 1), as a tokenizer pads them."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 99, (3, 8), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0
    mask[1, -1:] = 0
    return ids.masked_fill(mask == 0, PAD), mask


def target_batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 99, (3, 5), generator=g)
    mask = torch.ones_like(ids)
    mask[2, -2:] = 0
    return ids.masked_fill(mask == 0, PAD), mask


# --- the architecture -----------------------------------------------------------------------------------------------


def test_default_config_is_the_original_transformer():
    config = MiniSeq2SeqConfig()
    assert (config.hidden_size, config.encoder_layers, config.decoder_layers, config.num_attention_heads,
            config.intermediate_size) == (512, 6, 6, 8, 2048)
    assert (config.position_embedding_type, config.norm_position, config.hidden_act) == ("sinusoidal", "post", "relu")
    assert config.scale_embeddings and config.share_embeddings and config.tie_word_embeddings
    assert config.hidden_dropout == 0.1 and config.is_encoder_decoder
    assert config.num_hidden_layers == config.decoder_layers  # DynamicCache sizes the decoder's cache from it


def test_stacks_have_their_own_depth_and_the_embeddings_and_head_are_one_matrix():
    model = seq2seq(decoder_layers=2, num_hidden_layers=None)
    assert len(model.model.encoder.layers) == 3 and len(model.model.decoder.layers) == 2
    assert all(not b.self_attn.is_causal and b.cross_attn is None for b in model.model.encoder.layers)
    assert all(b.self_attn.is_causal and b.cross_attn is not None for b in model.model.decoder.layers)
    shared = model.model.encoder.embeddings.embed_tokens.weight
    assert model.model.decoder.embeddings.embed_tokens.weight is shared and model.lm_head.weight is shared
    assert model.get_encoder() is model.model.encoder


def test_separate_embeddings_and_untied_head_stay_separate_after_save_and_reload(tmp_path):
    model = seq2seq(share_embeddings=False, tie_word_embeddings=False, final_logits_bias=True)
    weights = [model.model.encoder.embeddings.embed_tokens.weight, model.model.decoder.embeddings.embed_tokens.weight,
               model.lm_head.weight]
    assert len({id(w) for w in weights}) == 3
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    # one shared matrix with an untied head: two parameters
    model = seq2seq(share_embeddings=True, tie_word_embeddings=False)
    assert model.model.decoder.embeddings.embed_tokens.weight is model.model.encoder.embeddings.embed_tokens.weight
    assert model.lm_head.weight is not model.model.encoder.embeddings.embed_tokens.weight


def test_ties_asked_for_after_the_build_are_made_by_tie_weights():
    """As in transformers' models (BART, and our GPT): set `tie_word_embeddings` / `share_embeddings` on a built
    model's config and `tie_weights()` ties. The ties were fixed at the build, so the head stayed apart."""
    model = seq2seq(share_embeddings=False, tie_word_embeddings=False)
    model.config.tie_word_embeddings = True
    model.tie_weights()
    assert model.lm_head.weight is model.model.decoder.embeddings.embed_tokens.weight
    model.config.share_embeddings = True
    model.tie_weights()
    encoder = model.model.encoder.embeddings.embed_tokens.weight
    assert model.model.decoder.embeddings.embed_tokens.weight is encoder and model.lm_head.weight is encoder


def test_a_model_untied_by_its_config_after_the_build_still_saves(tmp_path):
    """The tensors stay one until the model is rebuilt: save_pretrained must still be told of the tie (it refuses
    shared tensors it is not told of), as BART's tells it whatever its config says."""
    model = seq2seq()
    model.config.tie_word_embeddings = False
    model.config.share_embeddings = False
    model.save_pretrained(tmp_path)
    assert set(model._tied_weights_keys) == {"lm_head.weight"}  # the head's own tie; the tables' is the backbone's
    model._tied_weights_keys = None  # as transformers' own models assign it: an override
    assert model._tied_weights_keys is None


def test_the_decoder_depth_is_one_attribute_under_both_names(tmp_path):
    """``num_hidden_layers`` is ``decoder_layers`` under its generic name. ``from_pretrained(..., decoder_layers=3)``
    sets it after ``__init__``: the saved config used to keep ``num_hidden_layers=2`` and then failed to load."""
    seq2seq().save_pretrained(tmp_path / "two")
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "two", decoder_layers=3).eval()
    assert (len(model.model.decoder.layers), model.config.num_hidden_layers) == (3, 3)
    model.save_pretrained(tmp_path / "three")
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "three").eval()
    config = reloaded.config
    assert (config.decoder_layers, config.num_hidden_layers, len(reloaded.model.decoder.layers)) == (3, 3, 3)
    source, mask = source_batch()
    target, _ = target_batch()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=source, attention_mask=mask, decoder_input_ids=target).logits,
                                   model(input_ids=source, attention_mask=mask, decoder_input_ids=target).logits)
    config = tiny_config()
    config.num_hidden_layers = 4
    assert (config.decoder_layers, config.encoder_layers) == (4, 3)


# --- generation and the cache ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned", "rotary"])
def test_cached_generation_equals_the_uncached_forward(position_embedding_type):
    model = seq2seq(position_embedding_type=position_embedding_type, num_key_value_heads=2)
    source, mask = source_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=7, do_sample=False, return_dict_in_generate=True,
                  output_scores=True)
    cached = model.generate(source, use_cache=True, **kwargs)
    uncached = model.generate(source, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert isinstance(cached.cache, EncoderDecoderCache)
    with torch.no_grad():  # each step's scores are the full forward's logits on the target so far
        full = model(input_ids=source, attention_mask=mask, decoder_input_ids=cached.sequences, use_cache=False).logits
    for step, scores in enumerate(cached.scores):
        torch.testing.assert_close(scores, full[:, step], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned", "rotary"])
def test_static_cache_equals_the_dynamic_cache_compiled_and_without_extra_host_reads(position_embedding_type):
    """A static cache counts its tokens in a device tensor. The decoder's positions must follow it without reading
    it back: the same tokens and scores as the dynamic cache, the decoding step compiled ``fullgraph`` (as
    transformers does on a GPU), and one host read per step, as with the dynamic cache (the id range check)."""
    model = seq2seq(position_embedding_type=position_embedding_type)
    source, mask = source_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=6, min_new_tokens=6, do_sample=False,
                  return_dict_in_generate=True, output_scores=True)
    dynamic = model.generate(source, **kwargs)
    static = model.generate(source, cache_implementation="static", **kwargs)
    assert torch.equal(static.sequences, dynamic.sequences)
    torch.testing.assert_close(torch.stack(static.scores), torch.stack(dynamic.scores), atol=1e-5, rtol=1e-5)
    compiled = generate_with_compiled_static_cache(model, source, **kwargs)
    assert torch.equal(compiled.sequences, dynamic.sequences)

    def reads(cache_implementation):
        return count_host_reads(lambda: model.generate(source, attention_mask=mask, max_new_tokens=6, min_new_tokens=6,
                                                       do_sample=False, cache_implementation=cache_implementation))
    assert reads("static") == reads("dynamic")


def test_assisted_decoding_gives_the_greedy_tokens():
    """A smaller seq2seq drafts tokens, the model checks them in one decoder pass and crops the self-attention
    cache back to the accepted ones (the cross-attention cache stays): the result is greedy decoding's."""
    model = seq2seq()
    torch.manual_seed(1)
    assistant = MiniSeq2SeqForConditionalGeneration(tiny_config(num_hidden_layers=1, encoder_layers=1)).eval()
    source, mask = source_batch()
    for row in range(source.shape[0]):  # assisted generation decodes one sequence at a time
        kwargs = dict(attention_mask=mask[row : row + 1], max_new_tokens=10, do_sample=False)
        greedy = model.generate(source[row : row + 1], **kwargs)
        assert torch.equal(model.generate(source[row : row + 1], assistant_model=assistant, **kwargs), greedy)
        # the decoder's first layer drafts (num_hidden_layers is the decoder's depth)
        assert_early_exit_gives_the_greedy_tokens(model, model.model.decoder.layers, source[row : row + 1], greedy,
                                                  **kwargs)


def test_cross_attention_keys_and_values_are_computed_once_per_generation():
    model = seq2seq()
    source, mask = source_batch()
    calls = {"encoder": 0, "cross_k": 0}
    model.get_encoder().register_forward_hook(lambda *_: calls.__setitem__("encoder", calls["encoder"] + 1))
    model.model.decoder.layers[0].cross_attn.kv_proj.register_forward_hook(
        lambda *_: calls.__setitem__("cross_k", calls["cross_k"] + 1))
    for num_beams in (1, 3):
        calls.update(encoder=0, cross_k=0)
        out = model.generate(source, attention_mask=mask, max_new_tokens=6, min_new_tokens=6, num_beams=num_beams,
                             do_sample=False)
        assert out.shape[1] == 7
        assert calls == {"encoder": 1, "cross_k": 1}, (num_beams, calls)


def test_padded_source_batch_gives_what_each_row_gives_alone():
    model = seq2seq()
    source, mask = source_batch()
    target, _ = target_batch()
    with torch.no_grad():
        batched = model(input_ids=source, attention_mask=mask, decoder_input_ids=target).logits
        generated = model.generate(source, attention_mask=mask, max_new_tokens=6, do_sample=False)
        for row in range(3):
            real = int(mask[row].sum())
            alone = model(input_ids=source[row:row + 1, :real], decoder_input_ids=target[row:row + 1]).logits
            torch.testing.assert_close(batched[row:row + 1], alone, atol=1e-5, rtol=1e-5)
            single = model.generate(source[row:row + 1, :real], max_new_tokens=6, do_sample=False)
            assert torch.equal(generated[row, : single.shape[1]], single[0])


def test_peft_prefix_tuning_trains_and_generates():
    """PEFT's prefix tuning puts virtual keys and values into every decoder layer's self-attention cache: the virtual
    tokens alone train, and cached generation gives the uncached tokens."""
    from peft import PrefixTuningConfig, get_peft_model

    peft_model = get_peft_model(seq2seq(), PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=3))
    source, mask = source_batch()
    target, target_mask = target_batch()
    peft_model.train()
    peft_model(input_ids=source, attention_mask=mask, labels=target.masked_fill(target_mask == 0, -100)).loss.backward()
    trained = [n for n, p in peft_model.named_parameters() if p.grad is not None]
    assert trained and all("prompt_encoder" in n for n in trained)
    peft_model.eval()
    with torch.no_grad():
        cached = peft_model.generate(input_ids=source, attention_mask=mask, max_new_tokens=5, do_sample=False)
        uncached = peft_model.generate(input_ids=source, attention_mask=mask, max_new_tokens=5, do_sample=False,
                                       use_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("overrides", [{}, {"norm_position": "pre", "position_embedding_type": "rotary"}])
def test_eager_and_sdpa_agree_on_padded_batches(overrides):
    model = seq2seq(**overrides)
    source, mask = source_batch()
    target, target_mask = target_batch()
    kwargs = dict(input_ids=source, attention_mask=mask, decoder_input_ids=target, decoder_attention_mask=target_mask)
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        sdpa = model(**kwargs).logits
        model.set_attn_implementation("eager")
        eager = model(**kwargs).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)


def test_output_attentions_returns_encoder_decoder_and_cross_attentions():
    model = seq2seq()
    model.set_attn_implementation("eager")
    source, mask = source_batch()
    target, _ = target_batch()
    out = model(input_ids=source, attention_mask=mask, decoder_input_ids=target, output_attentions=True,
                output_hidden_states=True)
    assert len(out.encoder_attentions) == 3 and len(out.decoder_attentions) == 2 and len(out.cross_attentions) == 2
    assert out.encoder_attentions[0].shape == (3, 4, 8, 8)
    assert out.decoder_attentions[0].shape == (3, 4, 5, 5)
    assert out.cross_attentions[0].shape == (3, 4, 5, 8)
    assert torch.all(out.decoder_attentions[0].triu(1) == 0)  # causal
    assert torch.all(out.cross_attentions[1][0, :, :, -3:] == 0)  # row 0's padded source is never read
    torch.testing.assert_close(out.cross_attentions[0].sum(-1), torch.ones(3, 4, 5))
    assert len(out.encoder_hidden_states) == 4 and len(out.decoder_hidden_states) == 3  # embeddings + each block


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    model = seq2seq()
    model.train()
    source, mask = source_batch()
    target, target_mask = target_batch()
    labels = target.masked_fill(target_mask == 0, -100)
    grads = []
    for checkpointing in (False, True):
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.zero_grad()
        loss = model(input_ids=source, attention_mask=mask, labels=labels).loss
        loss.backward()
        grads.append((loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}))
    torch.testing.assert_close(grads[1][0], grads[0][0])
    for key, grad in grads[0][1].items():
        torch.testing.assert_close(grads[1][1][key], grad, atol=1e-6, rtol=1e-5, msg=key)


def test_torch_compile_fullgraph_runs_the_forward():
    model = seq2seq()
    source, mask = source_batch()
    target, _ = target_batch()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        kwargs = dict(input_ids=source, attention_mask=mask, decoder_input_ids=target, use_cache=False)
        torch.testing.assert_close(compiled(**kwargs).logits, model(**kwargs).logits)


def test_resize_token_embeddings_keeps_the_ties_and_resizes_the_logits_bias():
    model = seq2seq(final_logits_bias=True)
    model.resize_token_embeddings(120, mean_resizing=False)
    shared = model.model.encoder.embeddings.embed_tokens.weight
    assert shared.shape[0] == 120 and model.lm_head.weight is shared
    assert model.model.decoder.embeddings.embed_tokens.weight is shared
    source, _ = source_batch()
    assert model(input_ids=source, decoder_input_ids=torch.full((3, 2), 119)).logits.shape == (3, 2, 120)


@pytest.mark.parametrize("tie_word_embeddings", [True, False])
def test_resizing_separate_tables_resizes_the_decoders_too_and_reloads(tmp_path, tie_word_embeddings):
    """transformers resizes only the input (encoder) table; the decoder's, and an output layer tied to it, follow."""
    model = seq2seq(share_embeddings=False, tie_word_embeddings=tie_word_embeddings)
    model.resize_token_embeddings(120, mean_resizing=False)
    decoder_table = model.model.decoder.embeddings.embed_tokens.weight
    assert decoder_table.shape[0] == model.lm_head.weight.shape[0] == model.config.vocab_size == 120
    assert (model.lm_head.weight is decoder_table) == tie_word_embeddings
    source, _ = source_batch()
    target = torch.full((3, 2), 119)
    with torch.no_grad():
        logits = model(input_ids=source, decoder_input_ids=target).logits
    assert logits.shape == (3, 2, 120)
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()(input_ids=source, decoder_input_ids=target)
    torch.testing.assert_close(reloaded.logits, logits, atol=0, rtol=0)


# --- labels and the loss --------------------------------------------------------------------------------------------


def test_labels_are_shifted_into_decoder_inputs_and_the_loss_is_not_shifted_again():
    model = seq2seq()
    source, mask = source_batch()
    target, target_mask = target_batch()
    labels = target.masked_fill(target_mask == 0, -100)
    decoder_input_ids = torch.cat([torch.full((3, 1), BOS), target[:, :-1]], dim=1)
    with torch.no_grad():
        out = model(input_ids=source, attention_mask=mask, labels=labels)
        explicit = model(input_ids=source, attention_mask=mask, decoder_input_ids=decoder_input_ids).logits
    torch.testing.assert_close(out.logits, explicit)
    reference = F.cross_entropy(explicit.reshape(-1, 99), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, reference)
    total = int((labels != -100).sum())
    with torch.no_grad():  # num_items_in_batch: sums over micro-batches add up to the joined batch's mean
        halves = [model(input_ids=source[r], attention_mask=mask[r], labels=labels[r], num_items_in_batch=total).loss
                  for r in (slice(0, 1), slice(1, 3))]
    torch.testing.assert_close(sum(halves), reference)


def _rows():
    """Four pairs whose targets have 2, 6, 3 and 5 label tokens: per-micro-batch means would weight them wrongly."""
    g = torch.Generator().manual_seed(3)
    rows = []
    for source_len, target_len in ((4, 2), (7, 6), (3, 3), (6, 5)):
        source = torch.randint(3, 99, (7,), generator=g)
        source_mask = (torch.arange(7) < source_len).long()
        labels = torch.randint(3, 99, (6,), generator=g).masked_fill(torch.arange(6) >= target_len, -100)
        rows.append({"input_ids": source.masked_fill(source_mask == 0, PAD), "attention_mask": source_mask,
                     "labels": labels})
    return rows


def _trainer(tmp_path, name, **overrides):
    torch.manual_seed(0)
    model = MiniSeq2SeqForConditionalGeneration(tiny_config())
    args = dict(output_dir=str(tmp_path / name), max_steps=1, per_device_train_batch_size=4,
                gradient_accumulation_steps=1, learning_rate=0.5, optim="sgd", lr_scheduler_type="constant",
                warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0, report_to="none", use_cpu=True,
                save_strategy="no", logging_strategy="no", seed=0, data_seed=0)
    args.update(overrides)
    return model, Seq2SeqTrainingArguments(**args)


def test_gradient_accumulation_equals_one_step_on_the_joined_batch(tmp_path):
    results = {}
    for name, batch_size, accumulation in (("joined", 4, 1), ("accumulated", 2, 2)):
        model, args = _trainer(tmp_path, name, per_device_train_batch_size=batch_size,
                               gradient_accumulation_steps=accumulation)
        Seq2SeqTrainer(model=model, args=args, train_dataset=_rows()).train()
        results[name] = {k: v.detach().clone() for k, v in model.named_parameters()}
    torch.manual_seed(0)
    initial = dict(MiniSeq2SeqForConditionalGeneration(tiny_config()).named_parameters())
    assert max((results["joined"][k] - initial[k]).abs().max().item() for k in initial) > 1e-3
    for key, value in results["joined"].items():
        torch.testing.assert_close(results["accumulated"][key], value, atol=1e-6, rtol=1e-5, msg=key)


def test_seq2seq_trainer_trains_and_evaluates_with_generate(tmp_path):
    from transformers import DataCollatorForSeq2Seq

    model, args = _trainer(tmp_path, "generate", max_steps=4, per_device_train_batch_size=2, optim="adamw_torch",
                           learning_rate=1e-3, predict_with_generate=True, generation_max_length=6,
                           per_device_eval_batch_size=2)

    class Padder:  # a stand-in tokenizer for the collator: right-pads with PAD
        pad_token_id, padding_side = PAD, "right"

        def pad(self, features, return_tensors="pt", **kwargs):
            width = max(len(f["input_ids"]) for f in features)
            ids = torch.full((len(features), width), PAD)
            mask = torch.zeros_like(ids)
            for i, f in enumerate(features):
                ids[i, : len(f["input_ids"])] = torch.as_tensor(f["input_ids"])
                mask[i, : len(f["input_ids"])] = 1
            return {"input_ids": ids, "attention_mask": mask}

    rows = [{"input_ids": r["input_ids"][r["attention_mask"].bool()].tolist(),
             "labels": r["labels"][r["labels"] != -100].tolist()} for r in _rows()]
    collator = DataCollatorForSeq2Seq(Padder(), model=model, label_pad_token_id=-100)
    seen = {}

    def compute_metrics(prediction):
        seen["predictions"] = torch.as_tensor(prediction.predictions)
        return {"rows": float(len(prediction.predictions))}

    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=rows, eval_dataset=rows, data_collator=collator,
                             compute_metrics=compute_metrics)
    before = model.lm_head.weight.detach().clone()
    trainer.train()
    metrics = trainer.evaluate()
    assert not torch.equal(before, model.lm_head.weight)
    assert metrics["eval_rows"] == 4.0 and torch.isfinite(torch.tensor(metrics["eval_loss"]))
    # generated ids: at most generation_max_length, then the trainer's padding to the model's max_length
    assert seen["predictions"].shape[0] == 4 and torch.all(seen["predictions"][:, 6:] == PAD)
    assert torch.all(seen["predictions"][:, 0] == BOS)


# --- learning -------------------------------------------------------------------------------------------------------


def _reverse_task(n: int, g: torch.Generator, vocab: int):
    """Sources of 3-6 symbols; targets are the reversed source then EOS (labels -100 after)."""
    lengths = torch.randint(3, 7, (n,), generator=g)
    source = torch.full((n, 6), PAD)
    labels = torch.full((n, 7), -100)
    for i, length in enumerate(lengths.tolist()):
        symbols = torch.randint(3, vocab, (length,), generator=g)
        source[i, :length] = symbols
        labels[i, :length] = symbols.flip(0)
        labels[i, length] = EOS
    return source, (source != PAD).long(), labels


def test_a_tiny_model_learns_to_reverse_sequences():
    """Reversing needs cross-attention to the right source position: it cannot be learned from the target."""
    vocab = 13
    torch.manual_seed(0)
    config = MiniSeq2SeqConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=128, hidden_dropout=0.0, attention_dropout=0.0, pad_token_id=PAD,
                               eos_token_id=EOS, decoder_start_token_id=BOS, max_position_embeddings=16)
    model = MiniSeq2SeqForConditionalGeneration(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(400):  # typically stops after ~200 steps
        source, mask, labels = _reverse_task(64, g, vocab)
        loss = model(input_ids=source, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    model.eval()
    source, mask, labels = _reverse_task(200, torch.Generator().manual_seed(123), vocab)
    generated = model.generate(source, attention_mask=mask, max_new_tokens=8, do_sample=False)[:, 1:]
    correct = sum(out[: int((lab != -100).sum())].tolist() == lab[lab != -100].tolist()
                  for out, lab in zip(generated, labels, strict=True))
    assert correct / 200 >= 0.95, (correct, loss.item())


# --- bad input ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"hidden_size": 30}, "hidden_size.*num_attention_heads"),
        ({"hidden_act": "tanh"}, "hidden_act.*'relu'"),
        ({"position_embedding_type": "alibi"}, "position_embedding_type.*'sinusoidal'"),
        ({"norm_position": "middle"}, "norm_position.*'pre'.*'post'"),
        ({"encoder_layers": 0}, "encoder_layers.*>= 1"),
        ({"decoder_layers": 0, "num_hidden_layers": None}, "decoder_layers.*>= 1"),
        ({"decoder_layers": 3}, "num_hidden_layers.*decoder_layers"),
        ({"decoder_start_token_id": 99}, "decoder_start_token_id.*vocab_size=99"),
        ({"position_offset": -1}, "position_offset.*>= 0"),
        ({"share_embeddings": "yes"}, "share_embeddings.*True or False"),
        ({"is_encoder_decoder": False}, "is_encoder_decoder"),
        ({"pad_token_id": 99}, "pad_token_id.*vocab_size=99"),
    ],
)
def test_bad_config_raises_naming_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**overrides)


def test_bad_inputs_raise_clear_errors():
    model = seq2seq(position_embedding_type="learned")
    source, mask = source_batch()
    target, _ = target_batch()
    with pytest.raises(ValueError, match=r"input_ids.*vocab_size=99"):
        model(input_ids=torch.full_like(source, 99), decoder_input_ids=target)
    with pytest.raises(ValueError, match=r"input_ids.*vocab_size=99"):  # the decoder's ids are checked too
        model(input_ids=source, decoder_input_ids=torch.full_like(target, -1))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(input_ids=torch.randint(3, 99, (1, TINY["max_position_embeddings"] + 1)), decoder_input_ids=target[:1])
    with pytest.raises(ValueError, match=r"attention_mask.*\(3, 8\)"):
        model(input_ids=source, attention_mask=mask[:, :5], decoder_input_ids=target)
    with pytest.raises(ValueError, match=r"decoder_attention_mask.*\(3, 5\)"):
        model(input_ids=source, decoder_input_ids=target, decoder_attention_mask=torch.ones(3, 4))
    with pytest.raises(ValueError, match="decoder_input_ids.*labels.*input_ids"):
        model(inputs_embeds=torch.zeros(3, 8, 32))  # no ids to shift into the decoder
    with torch.no_grad():  # without decoder inputs, the decoder reads the source shifted right, as BART's
        shifted = shift_tokens_right(source, PAD, BOS)
        torch.testing.assert_close(model(input_ids=source).logits,
                                   model(input_ids=source, decoder_input_ids=shifted).logits)
    with pytest.raises(ValueError, match=r"labels.*shape.*\(3, 5\)"):  # decoder_input_ids with labels of another length
        model(input_ids=source, decoder_input_ids=target, labels=target[:, :4])
    with pytest.raises(ValueError, match="labels.*dtype"):
        model(input_ids=source, labels=target.float())
    no_start = seq2seq(decoder_start_token_id=None)
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        no_start(input_ids=source, labels=target)
    no_start.generation_config.bos_token_id = None
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        no_start.generate(source, max_new_tokens=2)
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        model.get_decoder()(input_ids=target)


def test_malformed_labels_are_refused_by_name_before_they_are_shifted():
    """Labels are checked before they are shifted into the decoder inputs. A row without its batch dimension, a batch
    other than the source's, -1 (not -100) and an id past the vocabulary in the last position (which the shift drops)
    used to fail as an IndexError, a RuntimeError, an error blaming `input_ids` and a cross-entropy IndexError. The
    range costs one host read, as the package's other id checks."""
    model = seq2seq()
    source, mask = source_batch()
    cases = [
        (source[:1], torch.tensor([5, 6, 7, 8]), r"`labels` must have shape \(batch_size=1, target.*; got \(4,\)"),
        (source, torch.tensor([[5, 6, 7]] * 2), r"`labels` must have shape \(batch_size=3, target.*; got \(2, 3\)"),
        (source, torch.tensor([[5, -1, 7]] * 3), r"`labels` contains -1, outside \[0, vocab_size=99\).*-100"),
        (source, torch.tensor([[5, 6, 99]] * 3), r"`labels` contains 99, outside \[0, vocab_size=99\).*-100"),
    ]
    for input_ids, labels, match in cases:
        with pytest.raises(ValueError, match=match):
            model(input_ids=input_ids, labels=labels)
    labels = torch.tensor([[5, 6, -100]] * 3)
    decoder_input_ids = torch.tensor([[BOS, 5, 6]] * 3)
    with torch.no_grad():
        with_labels = count_host_reads(lambda: model(input_ids=source, attention_mask=mask, labels=labels))
        without = count_host_reads(lambda: model(input_ids=source, attention_mask=mask,
                                                 decoder_input_ids=decoder_input_ids))
    assert with_labels == without + 1


# --- Auto classes and remote code -----------------------------------------------------------------------------------


def test_auto_classes_load_a_saved_folder_with_a_full_auto_map(tmp_path):
    model = seq2seq()
    model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is MiniSeq2SeqConfig
    assert type(AutoModelForSeq2SeqLM.from_pretrained(tmp_path)) is MiniSeq2SeqForConditionalGeneration
    assert type(AutoModel.from_pretrained(tmp_path)) is MiniSeq2SeqModel
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_mini.MiniSeq2SeqConfig",
                        "AutoModel": "modeling_seq2seq.MiniSeq2SeqModel",
                        "AutoModelForSeq2SeqLM": "modeling_seq2seq.MiniSeq2SeqForConditionalGeneration",
                        "AutoModelForSequenceClassification": "modeling_seq2seq.MiniSeq2SeqForSequenceClassification",
                        "AutoModelForQuestionAnswering": "modeling_seq2seq.MiniSeq2SeqForQuestionAnswering"}
    assert json.loads((tmp_path / "generation_config.json").read_text())["decoder_start_token_id"] == BOS
    assert issubclass(MiniSeq2SeqForConditionalGeneration, GenerationMixin)
    for name in ("MiniSeq2SeqConfig", "MiniSeq2SeqModel", "MiniSeq2SeqForConditionalGeneration"):
        assert name in modeling_mini.__all__


_REMOTE = textwrap.dedent("""
    import sys
    repo = sys.argv[2]
    sys.path[:] = [p for p in sys.path if p not in ("", ".", repo)]  # the venv may live inside the repo
    for finder in list(sys.meta_path):  # the editable install's finder would still map the name to the repo
        if "editable" in type(finder).__module__.lower() or "editable" in type(finder).__name__.lower():
            sys.meta_path.remove(finder)
    sys.modules["modeling_mini"] = None
    import torch
    torch.set_num_threads(1)
    from transformers import (AutoModel, AutoModelForQuestionAnswering, AutoModelForSeq2SeqLM,
                              AutoModelForSequenceClassification)
    folder = sys.argv[1]
    batch = torch.load(folder + "/batch.pt")
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert model.lm_head.weight is model.model.encoder.embeddings.embed_tokens.weight
    with torch.no_grad():
        torch.save(model(**batch).logits, folder + "/remote_logits.pt")
    generated = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=5,
                               num_beams=2, do_sample=False)
    torch.save(generated, folder + "/remote_generated.pt")
    for auto in (AutoModel, AutoModelForSequenceClassification, AutoModelForQuestionAnswering):
        print(type(auto.from_pretrained(folder, trust_remote_code=True)).__name__)
""")


def test_remote_code_loads_in_a_fresh_process_without_the_package(tmp_path):
    model = seq2seq(final_logits_bias=True)
    with torch.no_grad():
        model.final_logits_bias.bias.normal_()
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    source, mask = source_batch()
    target, _ = target_batch()
    batch = {"input_ids": source, "attention_mask": mask, "decoder_input_ids": target}
    torch.save(batch, folder / "batch.pt")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(modeling_mini.__file__)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", _REMOTE, str(folder), repo], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.split() == ["MiniSeq2SeqModel", "MiniSeq2SeqForSequenceClassification",
                                     "MiniSeq2SeqForQuestionAnswering"]
    with torch.no_grad():
        torch.testing.assert_close(torch.load(folder / "remote_logits.pt"), model(**batch).logits, atol=0, rtol=0)
    expected = model.generate(source, attention_mask=mask, max_new_tokens=5, num_beams=2, do_sample=False)
    assert torch.equal(torch.load(folder / "remote_generated.pt"), expected)


def test_the_4x_past_key_values_name_still_reaches_the_cache():
    model = seq2seq()
    source, mask = source_batch()
    target = torch.randint(3, 50, (source.shape[0], 4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(source, attention_mask=mask, decoder_input_ids=target).logits
        prefix = model(source, attention_mask=mask, decoder_input_ids=target[:, :3], use_cache=True)
        step = model(encoder_outputs=(prefix.encoder_last_hidden_state,), attention_mask=mask,
                     decoder_input_ids=target[:, 3:], past_key_values=prefix.cache, use_cache=True)
    torch.testing.assert_close(step.logits[:, -1], full[:, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("encoder_layers", "decoder_layers"), [(2, 4), (4, 2)])
def test_a_negative_hidden_state_index_counts_from_each_stacks_own_depth(encoder_layers, decoder_layers):
    """``output_hidden_states=[-1]`` asks each stack for its last state. transformers resolves the index with the
    config's ``num_hidden_layers``, the decoder's depth here: an encoder of other depth got none, or another layer."""
    config = {k: v for k, v in TINY.items() if k != "num_hidden_layers"}
    model = MiniSeq2SeqModel(MiniSeq2SeqConfig(**config, encoder_layers=encoder_layers, decoder_layers=decoder_layers,
                                               decoder_start_token_id=TINY["bos_token_id"])).eval()
    ids = torch.randint(3, TINY["vocab_size"], (2, 6))
    with torch.no_grad():
        last = model(input_ids=ids, decoder_input_ids=ids, output_hidden_states=[-1])
        every = model(input_ids=ids, decoder_input_ids=ids, output_hidden_states=True)
    assert torch.equal(last.encoder_hidden_states[-1], every.encoder_hidden_states[-1])
    assert torch.equal(last.decoder_hidden_states[-1], every.decoder_hidden_states[-1])


def test_gradient_checkpointing_returns_no_decoder_cache_in_training():
    """As the GPT's: the recomputed decoder blocks would append to the cache twice, so training with checkpointing
    makes none, even when asked."""
    model = MiniSeq2SeqForConditionalGeneration(MiniSeq2SeqConfig(**TINY, decoder_start_token_id=1)).train()
    model.gradient_checkpointing_enable()
    ids = torch.randint(3, 99, (2, 6))
    assert model(ids, decoder_input_ids=ids[:, :4], use_cache=True).cache is None
    assert model.eval()(ids, decoder_input_ids=ids[:, :4], use_cache=True).cache is not None


@pytest.mark.parametrize("last_token", [False, True])
def test_empty_labels_are_refused_by_name(last_token):
    """Labels of no token: the shift keeps them empty and the decoder names the problem (the mBART shift's gather
    failed with an unnamed RuntimeError, the other gave a batch-size mismatch)."""
    model = MiniSeq2SeqForConditionalGeneration(tiny_config(start_with_last_token=last_token)).eval()
    with pytest.raises(ValueError, match="`decoder_input_ids` must hold at least one row and one token"):
        model(input_ids=torch.randint(3, 99, (2, 5)), labels=torch.empty(2, 0, dtype=torch.long))


def test_a_source_past_barts_position_table_is_named_in_bart_positions():
    """A converted BART's table has 2 rows before its positions (``position_offset=2``, 66 rows for 64 positions):
    a 65-token source is refused naming position 64 and the 64 positions it holds, not the table's row numbers."""
    config = MiniSeq2SeqConfig(**{**TINY, "max_position_embeddings": 18}, position_embedding_type="learned",
                               position_offset=2, decoder_start_token_id=TINY["bos_token_id"])
    model = MiniSeq2SeqForConditionalGeneration(config).eval()
    source = torch.randint(3, 99, (1, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(input_ids=source[:, :16], decoder_input_ids=source[:, :3])  # 16 positions: 0..15, rows 2..17
        with pytest.raises(ValueError, match=r"reach position 16 \(table row 18\), outside the 16 positions"):
            model(input_ids=source, decoder_input_ids=source[:, :3])
