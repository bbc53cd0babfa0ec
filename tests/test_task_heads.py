"""The understanding heads beyond the encoder's: extractive question answering on a GPT (as
``GPT2ForQuestionAnswering``) and, BART's way, sequence classification and question answering on an encoder-decoder
(the text goes to both stacks).

Parity with transformers' heads through the converter (every family that has them), pooling at the last end token,
losses and bad input, the pipelines that use them (text classification, zero-shot classification: BART-large-MNLI's;
transformers 5.24 has no question-answering pipeline), the Trainer's gradient accumulation, and the Auto classes."""

import copy

import pytest
import torch
import transformers
from conftest import TINY, assert_same_tensors, padded_batch, perturb_norms_and_biases, tiny_gpt_config
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    Trainer,
    TrainingArguments,
    pipeline,
)

import modeling_mini
from modeling_mini import (
    MiniGPTForQuestionAnswering,
    MiniSeq2SeqConfig,
    MiniSeq2SeqForQuestionAnswering,
    MiniSeq2SeqForSequenceClassification,
)
from modeling_mini.convert import from_hf, to_hf
from modeling_mini.modeling_seq2seq import shift_tokens_right

PAD, BOS, EOS = TINY["pad_token_id"], TINY["bos_token_id"], TINY["eos_token_id"]

# --- parity with transformers' heads, both ways ---------------------------------------------------------------------

_DECODER = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
#: transformers family -> its config, for its ``<Family>ForQuestionAnswering``
GPT_QA = {
    "GPT2": dict(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=1, eos_token_id=2),
    "OPT": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
                max_position_embeddings=64, word_embed_proj_dim=32, pad_token_id=0),
    "Bloom": dict(vocab_size=99, hidden_size=32, n_layer=2, n_head=4),
    "Falcon": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4),
    "GPTNeoX": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    max_position_embeddings=64),
    "GPTJ": dict(vocab_size=99, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=64),
    "Llama": _DECODER,
    "Mistral": _DECODER,
    "Qwen2": _DECODER,
    "Qwen3": {**_DECODER, "head_dim": 8},
    "SmolLM3": _DECODER,
}


def _qa_logits(model, ids, mask):
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
    return torch.stack([out.start_logits, out.end_logits])  # (2, B, T)


@pytest.mark.parametrize("family", sorted(GPT_QA))
def test_decoder_question_answering_heads_convert_both_ways(family):
    torch.manual_seed(0)
    config = getattr(transformers, f"{family}Config")(**GPT_QA[family])
    hf = perturb_norms_and_biases(getattr(transformers, f"{family}ForQuestionAnswering")(config))
    mini = from_hf(hf).eval()
    assert type(mini) is MiniGPTForQuestionAnswering
    ids, mask = padded_batch(left=False)
    real = mask.bool()
    diff = (_qa_logits(hf, ids, mask) - _qa_logits(mini, ids, mask))[:, real].abs().max()
    assert diff <= 1e-5, diff
    assert_same_tensors(hf, to_hf(mini))


_SEQ2SEQ = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=EOS)
_T5 = dict(vocab_size=99, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=3, num_heads=4,
           pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD)
#: transformers prefix -> (config class, its options)
SEQ2SEQ_FAMILIES = {
    "Bart": ("BartConfig", _SEQ2SEQ),
    "MBart": ("MBartConfig", _SEQ2SEQ),
    "T5": ("T5Config", _T5),
    "MT5": ("MT5Config", {**_T5, "feed_forward_proj": "gated-gelu"}),
}


def _texts_with_end_tokens(pair_in_last_row: bool = True):
    """Right-padded rows ending in EOS; row 2 may hold two (a pair of texts): the last one counts. (transformers' BART
    and T5 classifiers need the same number in every row.)"""
    ids, mask = padded_batch(left=False)  # rows 0 and 1 padded on the right by 3 and 2
    lengths = mask.sum(-1)
    ids[torch.arange(3), lengths - 1] = EOS
    if pair_in_last_row:
        ids[2, 3] = EOS
    return ids, mask


@pytest.mark.parametrize("head", ["ForSequenceClassification", "ForQuestionAnswering"])
@pytest.mark.parametrize("family", sorted(SEQ2SEQ_FAMILIES))
def test_encoder_decoder_understanding_heads_convert_both_ways(family, head):
    torch.manual_seed(0)
    config_name, options = SEQ2SEQ_FAMILIES[family]
    labels = {"num_labels": 3} if head == "ForSequenceClassification" else {}
    config = getattr(transformers, config_name)(**options, **labels)
    hf = perturb_norms_and_biases(getattr(transformers, f"{family}{head}")(config))
    mini = from_hf(hf).eval()
    ids, mask = _texts_with_end_tokens(pair_in_last_row=False)
    with torch.no_grad():
        if head == "ForSequenceClassification":
            assert type(mini) is MiniSeq2SeqForSequenceClassification and mini.config.num_labels == 3
            ours, theirs = mini(ids, attention_mask=mask).logits, hf(ids, attention_mask=mask).logits
        else:
            assert type(mini) is MiniSeq2SeqForQuestionAnswering
            ours, theirs = _qa_logits(mini, ids, mask)[:, mask.bool()], _qa_logits(hf, ids, mask)[:, mask.bool()]
    assert (ours - theirs).abs().max() <= 1e-5
    back = to_hf(mini)
    assert type(back).__name__ == f"{family.removeprefix('M') if family == 'MT5' else family}{head}"
    assert_same_tensors(hf, back)


def test_exports_without_a_transformers_head_and_span_heads_of_the_wrong_width_are_refused():
    marian = MiniSeq2SeqConfig(**{**TINY, "decoder_start_token_id": BOS, "sinusoidal_layout": "concatenated"})
    with pytest.raises(ValueError, match="Marian has no ForSequenceClassification head in transformers"):
        to_hf(MiniSeq2SeqForSequenceClassification(marian))
    config_name, options = SEQ2SEQ_FAMILIES["T5"]
    t5 = transformers.T5ForQuestionAnswering(getattr(transformers, config_name)(**options, num_labels=3))
    with pytest.raises(ValueError, match="needs `num_labels=2`"):
        from_hf(t5)
    gemma = transformers.GemmaConfig(**{**_DECODER, "head_dim": 8})
    mini = MiniGPTForQuestionAnswering(from_hf(transformers.GemmaForCausalLM(gemma)).config)
    with pytest.raises(ValueError, match="Gemma has no QuestionAnswering head"):
        to_hf(mini)


# --- the encoder-decoder classifier: pooling, decoder inputs, losses ------------------------------------------------


def tiny_seq2seq_config(**overrides) -> MiniSeq2SeqConfig:
    return MiniSeq2SeqConfig(**{**TINY, "decoder_start_token_id": BOS, **overrides})


def classifier(**overrides) -> MiniSeq2SeqForSequenceClassification:
    torch.manual_seed(0)
    return MiniSeq2SeqForSequenceClassification(tiny_seq2seq_config(**overrides)).eval()


def test_the_classifier_reads_the_decoder_state_at_each_rows_last_end_token():
    model = classifier(num_labels=3)
    ids, mask = _texts_with_end_tokens()
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        decoder_inputs = shift_tokens_right(ids, PAD, BOS)  # the text again, behind the start token
        hidden = model.model(ids, attention_mask=mask, decoder_input_ids=decoder_inputs).last_hidden_state
        last_end = mask.sum(-1) - 1  # every row's last real token is its (last) EOS
        expected = model.classification_head(hidden[torch.arange(3), last_end])
        torch.testing.assert_close(logits, expected, atol=0, rtol=0)
        # the same decoder inputs passed explicitly; other tokens after a row's last EOS (padding) change nothing
        torch.testing.assert_close(model(ids, attention_mask=mask, decoder_input_ids=decoder_inputs).logits, logits)
        other = ids.clone()
        other[0, -3:] = 7
        torch.testing.assert_close(model(other, attention_mask=mask).logits, logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("num_labels", "problem_type", "labels", "loss"),
    [
        (1, "multi_label_classification", torch.tensor([1.0, 0.0, 1.0]),
         lambda z, y: torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], y)),
        (3, None, torch.tensor([2, 0, 1]), torch.nn.functional.cross_entropy),
        (1, None, torch.tensor([0.5, -1.0, 2.0]), lambda z, y: torch.nn.functional.mse_loss(z[:, 0], y)),
    ],
    ids=["binary-sigmoid", "multi-class", "regression"],
)
def test_the_classifier_losses_follow_problem_type(num_labels, problem_type, labels, loss):
    model = classifier(num_labels=num_labels, problem_type=problem_type)
    ids, mask = _texts_with_end_tokens()
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, loss(out.logits, labels))


def test_single_label_ids_as_a_column_or_as_int32_give_the_same_loss():
    """transformers reads (B, 1) class ids too (``labels.view(-1)``), and numpy may hand over int32 ids."""
    import modeling_mini

    ids, mask = _texts_with_end_tokens()
    labels = torch.tensor([2, 0, 1])
    for cls in (modeling_mini.MiniGPTForSequenceClassification, modeling_mini.MiniEncoderForSequenceClassification,
                MiniSeq2SeqForSequenceClassification):
        extra = {"decoder_start_token_id": BOS} if cls is MiniSeq2SeqForSequenceClassification else {}
        torch.manual_seed(0)
        model = cls(cls.config_class(**TINY, num_labels=3, **extra)).eval()
        with torch.no_grad():
            losses = [model(ids, attention_mask=mask, labels=y).loss for y in (labels, labels[:, None], labels.int())]
        assert losses[0] == losses[1] == losses[2]


def test_bad_inputs_to_the_encoder_decoder_heads_raise_clear_errors():
    model = classifier(num_labels=3)
    ids, mask = _texts_with_end_tokens()
    no_end = ids.clone()
    no_end[1][no_end[1] == EOS] = 5
    with pytest.raises(ValueError, match=r"Every row of `input_ids` must contain the end-of-sequence token"):
        model(no_end, attention_mask=mask)
    with pytest.raises(ValueError, match="pass `input_ids`"):
        model(inputs_embeds=torch.zeros(3, 9, 32), decoder_input_ids=ids)
    with pytest.raises(ValueError, match="builds `decoder_input_ids` from `input_ids`"):
        model(inputs_embeds=torch.zeros(3, 9, 32))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        model(ids, attention_mask=mask, labels=torch.tensor([0, 1, 3]))
    reader = MiniSeq2SeqForQuestionAnswering(tiny_seq2seq_config())
    with pytest.raises(ValueError, match="Pass both `start_positions` and `end_positions`"):
        reader(ids, attention_mask=mask, start_positions=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"`end_positions` must hold one integer token index per example"):
        reader(ids, attention_mask=mask, start_positions=torch.tensor([0, 1, 2]), end_positions=torch.tensor([1.0]))


def test_question_answering_losses_average_start_and_end_and_ignore_positions_outside():
    torch.manual_seed(0)
    ids, mask = _texts_with_end_tokens()
    starts, ends = torch.tensor([1, 2, 99]), torch.tensor([2, 4, 3])  # row 2's start is outside: ignored there
    for model in (MiniGPTForQuestionAnswering(tiny_gpt_config()).eval(),
                  MiniSeq2SeqForQuestionAnswering(tiny_seq2seq_config()).eval()):
        with torch.no_grad():
            out = model(ids, attention_mask=mask, start_positions=starts, end_positions=ends)
        ignore = ids.shape[1]
        start = torch.nn.functional.cross_entropy(out.start_logits, starts.clamp(0, ignore), ignore_index=ignore)
        end = torch.nn.functional.cross_entropy(out.end_logits, ends.clamp(0, ignore), ignore_index=ignore)
        torch.testing.assert_close(out.loss, (start + end) / 2)
        with torch.no_grad():  # a bfloat16 model: the loss in float32, as every other head's
            half = model.to(torch.bfloat16)(ids, attention_mask=mask, start_positions=starts, end_positions=ends)
        assert half.loss.dtype == torch.float32 and half.start_logits.dtype == torch.bfloat16


# --- pipelines ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bart_tokenizer(bpe_tokenizer):
    """The BPE tokenizer with BART's templates, ``<s> A </s>`` and ``<s> A </s> </s> B </s>``: every text ends in
    the end token the classifier reads."""
    from tokenizers import processors

    tok = copy.deepcopy(bpe_tokenizer)
    specials = [(t, tok.convert_tokens_to_ids(t)) for t in ("<s>", "</s>")]
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=specials)
    return tok


def _bart(cls, tok, **options):
    torch.manual_seed(0)
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               decoder_start_token_id=tok.eos_token_id)
    config = transformers.BartConfig(**{**_SEQ2SEQ, "vocab_size": len(tok), **ids, **options})
    return perturb_norms_and_biases(cls(config))


def test_zero_shot_classification_scores_as_the_converted_bart_mnli_does(tmp_path, bart_tokenizer):
    """The user flow for `facebook/bart-large-mnli`: convert, save with the tokenizer, and the zero-shot pipeline
    (premise / hypothesis pairs, the entailment logit per candidate label) gives BART's labels and scores."""
    labels = {0: "contradiction", 1: "neutral", 2: "entailment"}
    hf = _bart(transformers.BartForSequenceClassification, bart_tokenizer, num_labels=3, id2label=labels,
               label2id={v: k for k, v in labels.items()})
    from_hf(hf).save_pretrained(tmp_path)
    bart_tokenizer.save_pretrained(tmp_path)
    ours = pipeline("zero-shot-classification", model=str(tmp_path))
    theirs = pipeline("zero-shot-classification", model=hf, tokenizer=bart_tokenizer)
    text, candidates = "the cat sat on the mat", ["animals", "cooking", "sport"]
    for multi_label in (False, True):
        a, b = ours(text, candidates, multi_label=multi_label), theirs(text, candidates, multi_label=multi_label)
        assert a["labels"] == b["labels"]
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-6)


def test_text_classification_pipeline_gives_a_sigmoid_score_for_a_single_logit_encoder_decoder(tmp_path,
                                                                                                 bart_tokenizer):
    tok = bart_tokenizer
    config = tiny_seq2seq_config(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                 eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id,
                                 num_labels=1, problem_type="multi_label_classification", id2label={0: "spam"})
    torch.manual_seed(0)
    model = MiniSeq2SeqForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    text = "win a free prize now"
    result = pipeline("text-classification", model=str(tmp_path))(text)
    with torch.no_grad():
        logit = model(**tok(text, return_tensors="pt")).logits[0, 0]
    assert result == [{"label": "spam", "score": pytest.approx(torch.sigmoid(logit).item(), abs=1e-6)}]


def _best_span(out, in_context: torch.Tensor) -> tuple[int, int]:
    """The highest-scoring start in the context, then the best end at or after it (the pipeline's decoding)."""
    start = int(out.start_logits[0].masked_fill(~in_context, -1e9).argmax())
    return start, start + int(out.end_logits[0, start:].masked_fill(~in_context[start:], -1e9).argmax())


@pytest.mark.parametrize("reference", ["GPT2ForQuestionAnswering", "BartForQuestionAnswering"])
def test_a_converted_reader_reloads_and_extracts_the_references_answer(tmp_path, bart_tokenizer, reference):
    """transformers 5.24 removed the question-answering pipeline: decode the span with the tokenizer's offsets, on
    the converted model saved and reloaded through ``AutoModelForQuestionAnswering``, as on the reference."""
    tok = bart_tokenizer
    if reference.startswith("GPT2"):
        config = transformers.GPT2Config(**{**GPT_QA["GPT2"], "vocab_size": len(tok)})
        torch.manual_seed(0)
        hf = perturb_norms_and_biases(transformers.GPT2ForQuestionAnswering(config))
    else:
        hf = _bart(transformers.BartForQuestionAnswering, tok)
    from_hf(hf).save_pretrained(tmp_path)
    loaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path).eval()
    assert type(loaded).__name__ == ("MiniGPTForQuestionAnswering" if reference.startswith("GPT2")
                                     else "MiniSeq2SeqForQuestionAnswering")
    context = "the cat sat on the mat and the dog ran to the park"
    encoded = tok("where did the cat sit?", context, return_offsets_mapping=True, return_tensors="pt")
    offsets = encoded.pop("offset_mapping")[0]
    in_context = torch.tensor([i == 1 for i in encoded.sequence_ids(0)])
    with torch.no_grad():
        ours, theirs = loaded(**encoded), hf(**encoded)
    torch.testing.assert_close(ours.start_logits, theirs.start_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.end_logits, theirs.end_logits, atol=1e-5, rtol=0)
    start, end = _best_span(ours, in_context)
    assert (start, end) == _best_span(theirs, in_context)
    assert context[offsets[start, 0]:offsets[end, 1]] in context


# --- Trainer and Auto classes ---------------------------------------------------------------------------------------


def _rows():
    """Four texts of 3, 8, 4 and 6 tokens, each closed by EOS, with labels 0, 2, 1, 2."""
    g = torch.Generator().manual_seed(4)
    rows = []
    for real, label in zip((3, 8, 4, 6), (0, 2, 1, 2), strict=True):
        ids = torch.randint(3, 99, (8,), generator=g)
        ids[real - 1] = EOS
        mask = (torch.arange(8) < real).long()
        rows.append({"input_ids": ids.masked_fill(mask == 0, PAD), "attention_mask": mask,
                     "labels": torch.tensor(label)})
    return rows


def _one_step(tmp_path, batch_size, accumulation):
    model = classifier(num_labels=3).train()
    args = TrainingArguments(output_dir=str(tmp_path / f"run-{accumulation}"), max_steps=1,
                             per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
                             learning_rate=0.5, optim="sgd", lr_scheduler_type="constant", warmup_steps=0,
                             weight_decay=0.0, max_grad_norm=0.0, report_to="none", use_cpu=True, save_strategy="no",
                             logging_strategy="no", seed=0, data_seed=0)
    Trainer(model=model, args=args, train_dataset=_rows()).train()
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_gradient_accumulation_equals_one_step_on_the_joined_batch(tmp_path):
    joined, accumulated = _one_step(tmp_path, 4, 1), _one_step(tmp_path, 2, 2)
    initial = dict(classifier(num_labels=3).named_parameters())
    assert max((joined[k] - initial[k]).abs().max().item() for k in joined) > 1e-3  # the step did something
    for key in joined:
        torch.testing.assert_close(accumulated[key], joined[key], atol=1e-6, rtol=1e-5, msg=key)


def _token_rows():
    """Four texts of 2, 9, 4 and 6 real tokens in 9, tagged ``id % 3``, pads -100: micro-batches that score unequal
    numbers of tokens, which a mean per micro-batch would weigh wrongly."""
    g = torch.Generator().manual_seed(5)
    rows = []
    for real in (2, 9, 4, 6):
        ids = torch.randint(3, 99, (9,), generator=g)
        mask = (torch.arange(9) < real).long()
        rows.append({"input_ids": ids.masked_fill(mask == 0, PAD), "attention_mask": mask,
                     "labels": (ids % 3).masked_fill(mask == 0, -100)})
    return rows


def _choice_rows():
    """Four questions of 3 choices of 8 tokens, answers 0, -100 (not scored), 1, 2: the micro-batches score 1 and 2."""
    g = torch.Generator().manual_seed(6)
    return [{"input_ids": torch.randint(3, 99, (3, 8), generator=g), "labels": torch.tensor(label)}
            for label in (0, -100, 1, 2)]


ACCUMULATED_HEADS = {  # head -> (its model with 3 labels, its rows)
    "encoder-token": (lambda: modeling_mini.MiniEncoderForTokenClassification(
        modeling_mini.MiniEncoderConfig(**TINY, num_labels=3)), _token_rows),
    "gpt-token": (lambda: modeling_mini.MiniGPTForTokenClassification(tiny_gpt_config(num_labels=3)), _token_rows),
    "encoder-choice": (lambda: modeling_mini.MiniEncoderForMultipleChoice(modeling_mini.MiniEncoderConfig(**TINY)),
                       _choice_rows),
}


@pytest.mark.parametrize("head", ACCUMULATED_HEADS)
def test_gradient_accumulation_of_token_and_choice_heads_equals_the_joined_batch(tmp_path, head):
    """Their losses divide by the labelled items of the whole batch (the Trainer's ``num_items_in_batch``): two
    micro-batches of 2 step as one batch of 4 would, though the micro-batches score different numbers of items."""
    build, rows = ACCUMULATED_HEADS[head]
    steps = {}
    for batch_size, accumulation in ((4, 1), (2, 2)):
        torch.manual_seed(0)
        model = build().train()
        args = TrainingArguments(output_dir=str(tmp_path / f"run-{accumulation}"), max_steps=1,
                                 per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
                                 learning_rate=0.5, optim="sgd", lr_scheduler_type="constant", warmup_steps=0,
                                 weight_decay=0.0, max_grad_norm=0.0, report_to="none", use_cpu=True,
                                 save_strategy="no", logging_strategy="no", seed=0, data_seed=0)
        Trainer(model=model, args=args, train_dataset=rows()).train()
        steps[accumulation] = {k: v.detach().clone() for k, v in model.named_parameters()}
    torch.manual_seed(0)
    initial = dict(build().named_parameters())
    assert max((steps[1][k] - initial[k]).abs().max().item() for k in initial) > 1e-3  # the step did something
    for key in initial:
        torch.testing.assert_close(steps[2][key], steps[1][key], atol=1e-6, rtol=1e-5, msg=key)


@pytest.mark.parametrize(
    ("auto", "cls", "config"),
    [(AutoModelForSequenceClassification, MiniSeq2SeqForSequenceClassification, tiny_seq2seq_config(num_labels=3)),
     (AutoModelForQuestionAnswering, MiniSeq2SeqForQuestionAnswering, tiny_seq2seq_config()),
     (AutoModelForQuestionAnswering, MiniGPTForQuestionAnswering, tiny_gpt_config())],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_saved_heads_reload_through_their_auto_class_with_shared_tables_kept(tmp_path, auto, cls, config):
    torch.manual_seed(0)
    model = cls(config).eval()
    model.save_pretrained(tmp_path)
    loaded = auto.from_pretrained(tmp_path).eval()
    assert type(loaded) is cls
    if config.model_type == "mini_seq2seq":  # one token table for both stacks, still one after loading
        tables = (loaded.model.encoder.embeddings.embed_tokens, loaded.model.decoder.embeddings.embed_tokens)
        assert tables[0].weight is tables[1].weight
    ids, mask = _texts_with_end_tokens()
    with torch.no_grad():
        expected, got = model(ids, attention_mask=mask), loaded(ids, attention_mask=mask)
    for name in ("logits", "start_logits", "end_logits"):
        if name in expected:
            torch.testing.assert_close(got[name], expected[name], atol=0, rtol=0)


# --- every head: return_dict=False ----------------------------------------------------------------------------------


def _every_head():
    import modeling_mini

    for family in (modeling_mini.MiniGPTPreTrainedModel, modeling_mini.MiniEncoderPreTrainedModel,
                   modeling_mini.MiniSeq2SeqPreTrainedModel):
        yield from family.family_auto_classes.values()


@pytest.mark.parametrize("cls", list(_every_head()), ids=lambda cls: cls.__name__)
def test_return_dict_false_gives_the_outputs_fields_as_a_tuple(cls):
    """As library heads do (``can_return_tuple``): the non-None fields of the output, in order, whether asked for
    by argument or by ``config.return_dict=False``. (With the config's flag, transformers' own Llama breaks: its
    backbone then returns a tuple to the head. Ours ask their backbone for a dict, as BERT's do.)"""
    extra = {"decoder_start_token_id": BOS} if cls.config_class.model_type == "mini_seq2seq" else {}
    torch.manual_seed(0)
    model = cls(cls.config_class(**TINY, **extra)).eval()
    ids, mask = _texts_with_end_tokens()
    inputs = {"input_ids": ids, "attention_mask": mask}
    if cls.__name__.endswith("MultipleChoice"):
        inputs = {key: value[:, None].expand(-1, 2, -1) for key, value in inputs.items()}
    if cls.__name__ in ("MiniSeq2SeqModel", "MiniSeq2SeqForConditionalGeneration"):
        inputs["decoder_input_ids"] = ids
    with torch.no_grad():
        as_dict, as_tuple = model(**inputs), model(**inputs, return_dict=False)
        model(**inputs, use_cache=False)  # pipelines pass it to every head; a tagger once raised a TypeError
    model.config.return_dict = False
    with torch.no_grad():
        by_config = model(**inputs)
    for tuple_output in (as_tuple, by_config):
        assert isinstance(tuple_output, tuple) and len(tuple_output) == len(as_dict.to_tuple())
        for got, expected in zip(tuple_output, as_dict.to_tuple(), strict=True):
            if isinstance(expected, torch.Tensor):
                torch.testing.assert_close(got, expected, atol=0, rtol=0)


# --- PEFT's default target modules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, task_type", [
    ("MiniGPTForCausalLM", "CAUSAL_LM"), ("MiniEncoderForSequenceClassification", "SEQ_CLS"),
    ("MiniSeq2SeqForConditionalGeneration", "SEQ_2_SEQ_LM"),
])
def test_peft_adapters_need_no_target_modules(cls, task_type):
    """As for library models, ``LoraConfig(task_type=...)`` alone adapts the attention projections (self-attention's
    fused ``qkv_proj``; the decoder's cross-attention ``q_proj`` / ``kv_proj`` too), and (IA)^3 also scales the
    feed-forward output: ``modeling_base.register_peft_defaults`` gave PEFT its tables' entries for our model types."""
    from peft import IA3Config, LoraConfig, get_peft_model

    import modeling_mini

    cls = getattr(modeling_mini, cls)
    extra = {"decoder_start_token_id": BOS} if cls.config_class.model_type == "mini_seq2seq" else {}
    config = cls.config_class(**TINY, **extra)
    adapted = get_peft_model(cls(config), LoraConfig(task_type=task_type, r=2)).base_model.model
    wrapped = {name.rsplit(".", 1)[-1] for name, module in adapted.named_modules() if hasattr(module, "lora_A")}
    seq2seq = cls.config_class.model_type == "mini_seq2seq"
    assert wrapped == ({"qkv_proj", "q_proj", "kv_proj"} if seq2seq else {"qkv_proj"}), wrapped
    ia3 = get_peft_model(cls(config), IA3Config(task_type=task_type)).base_model.model
    scaled = {name.rsplit(".", 1)[-1] for name, module in ia3.named_modules() if hasattr(module, "ia3_l")}
    assert {"qkv_proj", "down_proj"} <= scaled, scaled
