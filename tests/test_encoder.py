"""The encoder family: bidirectional attention, padding, heads, losses, HF integration (pipelines, Trainer,
PEFT, Auto classes, remote code, compile) and bad input."""

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import TINY, count_host_reads, padded_batch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
    pipeline,
)
from transformers.pipelines import SUPPORTED_TASKS

import modeling_mini
from modeling_mini import (
    MiniEncoderConfig,
    MiniEncoderForMaskedLM,
    MiniEncoderForMultipleChoice,
    MiniEncoderForQuestionAnswering,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
)

HEADS = [MiniEncoderModel, MiniEncoderForMaskedLM, MiniEncoderForSequenceClassification,
         MiniEncoderForTokenClassification, MiniEncoderForQuestionAnswering, MiniEncoderForMultipleChoice]


def tiny_encoder_config(**overrides) -> MiniEncoderConfig:
    return MiniEncoderConfig(**{**TINY, "type_vocab_size": 2, **overrides})


def hidden(model, ids, mask=None, **kw):
    with torch.no_grad():
        return model(ids, attention_mask=mask, **kw).last_hidden_state


# --- attention: bidirectional, padding-proof, backend-independent -------------------------------------------------


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "rotary"])
def test_a_token_sees_the_tokens_after_it(impl, position_embedding_type):
    model = MiniEncoderModel(tiny_encoder_config(position_embedding_type=position_embedding_type)).eval()
    model.set_attn_implementation(impl)
    ids, mask = padded_batch(left=False)
    changed = ids.clone()
    changed[2, -1] = 3 if ids[2, -1] != 3 else 4  # the last token of an unpadded row
    before, after = hidden(model, ids, mask), hidden(model, changed, mask)
    assert (before[2, 0] - after[2, 0]).abs().max() > 1e-4  # the first token noticed the last one changing
    torch.testing.assert_close(before[:2], after[:2], atol=0, rtol=0)  # other rows are untouched
    # without padding the backends get no mask at all and must not fall back to causal attention
    before, after = hidden(model, ids[2:]), hidden(model, changed[2:])
    assert (before[0, 0] - after[0, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("left", [False, True])
def test_padding_never_leaks(impl, left):
    model = MiniEncoderModel(tiny_encoder_config()).eval()
    model.set_attn_implementation(impl)
    ids, mask = padded_batch(left=left)
    changed = torch.where(mask.bool(), ids, torch.randint(3, 99, ids.shape))  # new tokens under the padding
    real = mask.bool()
    torch.testing.assert_close(hidden(model, changed, mask)[real], hidden(model, ids, mask)[real], atol=1e-6, rtol=0)
    # and a padded row equals that row alone, unpadded
    alone = hidden(model, ids[1:2, mask[1].bool()])
    torch.testing.assert_close(hidden(model, ids, mask)[1, mask[1].bool()], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_eager_and_sdpa_agree(cls):
    model = cls(tiny_encoder_config(num_labels=3)).eval()
    ids, mask = padded_batch(left=False)
    token_types = (torch.arange(9) >= 5).long().expand(3, 9)
    batch = dict(input_ids=ids, attention_mask=mask, token_type_ids=token_types)
    if cls is MiniEncoderForMultipleChoice:
        batch = {k: v[None] for k, v in batch.items()}
    outputs = {}
    for impl in ("eager", "sdpa"):
        model.set_attn_implementation(impl)
        with torch.no_grad():
            outputs[impl] = model(**batch)
    for key in outputs["eager"].keys():
        torch.testing.assert_close(outputs["sdpa"][key], outputs["eager"][key], atol=1e-5, rtol=0)


def test_hidden_states_and_attentions_are_returned():
    model = MiniEncoderModel(tiny_encoder_config()).eval()
    model.set_attn_implementation("eager")
    ids, mask = padded_batch(left=False)
    out = model(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == TINY["num_hidden_layers"] + 1
    assert out.attentions[0].shape == (3, 4, 9, 9)
    # padded keys get no attention; the weights of every query sum to one
    assert out.attentions[0][1, :, :, -2:].abs().max() < 1e-6
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(3, 4, 9))


def test_segments_and_pooler():
    config = tiny_encoder_config()
    model = MiniEncoderModel(config).eval()
    ids = torch.randint(3, 99, (2, 6))
    same, other = torch.zeros_like(ids), torch.ones_like(ids)
    assert not torch.allclose(hidden(model, ids, token_type_ids=same), hidden(model, ids, token_type_ids=other))
    torch.testing.assert_close(hidden(model, ids), hidden(model, ids, token_type_ids=same))  # omitted = zeros
    out = model(ids)
    torch.testing.assert_close(out.pooler_output, torch.tanh(model.pooler.dense(out.last_hidden_state[:, 0])))
    assert MiniEncoderModel(tiny_encoder_config(add_pooler=False)).pooler is None
    assert MiniEncoderModel(tiny_encoder_config(type_vocab_size=0)).embeddings.token_type_embeddings is None


# --- heads and losses ---------------------------------------------------------------------------------------------


def test_masked_lm_head_is_tied_and_loss_counts_masked_tokens():
    model = MiniEncoderForMaskedLM(tiny_encoder_config()).eval()
    assert model.lm_head.weight is model.model.embeddings.embed_tokens.weight
    ids = torch.randint(3, 99, (2, 8))
    labels = torch.full_like(ids, -100)
    labels[0, 1], labels[1, 3], labels[1, 5] = 7, 8, 9
    out = model(ids, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits.view(-1, 99), labels.view(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    summed = model(ids, labels=labels, num_items_in_batch=torch.tensor(6)).loss
    torch.testing.assert_close(summed, expected * 3 / 6)
    model.resize_token_embeddings(120)
    assert model.lm_head.weight is model.model.embeddings.embed_tokens.weight
    assert model(ids).logits.shape == (2, 8, 120)


def test_sparse_prediction_gives_the_same_loss_and_gradients():
    """``sparse_prediction`` scores only the masked positions: same loss and gradients, (N, V) logits."""
    ids, mask = padded_batch(left=False)
    labels = torch.full_like(ids, -100)
    labels[0, 1], labels[1, 3], labels[2, 5], labels[2, 8] = 7, 8, 9, 10
    results = []
    for sparse in (False, True):
        torch.manual_seed(0)
        model = MiniEncoderForMaskedLM(tiny_encoder_config(sparse_prediction=sparse))
        out = model(ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        results.append((out, {k: p.grad for k, p in model.named_parameters()}))
    (dense, dense_grads), (sparse, sparse_grads) = results
    assert dense.logits.shape == (3, 9, 99) and sparse.logits.shape == (4, 99)
    torch.testing.assert_close(sparse.logits, dense.logits[labels != -100])
    torch.testing.assert_close(sparse.loss, dense.loss)
    for key in dense_grads:
        torch.testing.assert_close(sparse_grads[key], dense_grads[key], msg=key)


def test_sparse_prediction_breaks_a_compiled_graph_once():
    """The scored positions have a data-dependent count: one host sync, one graph break (two boolean indexings made
    two)."""
    ids, mask = padded_batch(left=False)
    labels = torch.full_like(ids, -100)
    labels[:, ::3] = ids[:, ::3]
    model = MiniEncoderForMaskedLM(tiny_encoder_config(sparse_prediction=True))
    torch._dynamo.reset()
    assert torch._dynamo.explain(model)(ids, attention_mask=mask, labels=labels).graph_break_count == 1


def test_binary_sigmoid_head():
    """The spam / not-spam head: one logit, sigmoid + binary cross-entropy."""
    config = tiny_encoder_config(num_labels=1, problem_type="multi_label_classification")
    model = MiniEncoderForSequenceClassification(config).eval()
    ids = torch.randint(3, 99, (4, 6))
    labels = torch.tensor([0.0, 1.0, 1.0, 0.0])
    out = model(ids, labels=labels)
    assert out.logits.shape == (4, 1)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits[:, 0], labels)
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize(
    ("problem_type", "num_labels", "labels", "loss_fn"),
    [
        ("single_label_classification", 3, torch.tensor([0, 2, 1]),
         lambda z, y: torch.nn.functional.cross_entropy(z, y)),
        ("multi_label_classification", 3, torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 1]]),
         lambda z, y: torch.nn.functional.binary_cross_entropy_with_logits(z, y)),
        ("regression", 2, torch.randn(3, 2), lambda z, y: torch.nn.functional.mse_loss(z, y)),
    ],
)
def test_sequence_classification_problem_types(problem_type, num_labels, labels, loss_fn):
    model = MiniEncoderForSequenceClassification(
        tiny_encoder_config(num_labels=num_labels, problem_type=problem_type)).eval()
    ids, mask = padded_batch(left=False)
    out = model(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, loss_fn(out.logits, labels))


@pytest.mark.parametrize(
    ("num_labels", "labels", "problem_type"),
    [(1, torch.tensor([0.5, 3.0, -1.0]), "regression"),
     (3, torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 1, 0]]), "multi_label_classification")],
    ids=["regression", "multi-label"],
)
def test_the_problem_type_inferred_from_labels_is_saved_for_the_pipeline(tmp_path, wordpiece_tokenizer, num_labels,
                                                                          labels, problem_type):
    """As in transformers' heads, the first labelled forward writes the inferred ``problem_type`` into the config
    (here a training step compiled ``fullgraph``: no graph break), so the saved model's text-classification pipeline
    gives a regression's raw score and a multi-label head's sigmoid per label, not a sigmoid / a softmax."""
    tok = wordpiece_tokenizer
    model = MiniEncoderForSequenceClassification(tiny_encoder_config(vocab_size=len(tok), num_labels=num_labels))
    assert model.config.problem_type is None
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    compiled(torch.randint(5, len(tok), (3, 6)), labels=labels).loss.backward()
    torch._dynamo.reset()
    assert model.config.problem_type == problem_type
    model.eval().save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert MiniEncoderForSequenceClassification.from_pretrained(tmp_path).config.problem_type == problem_type
    text = "the cat sat on the mat"
    scores = pipeline("text-classification", model=str(tmp_path), tokenizer=tok, top_k=None)([text])[0]
    with torch.no_grad():
        logits = model(**tok(text, return_tensors="pt")).logits[0]
    expected = logits if problem_type == "regression" else torch.sigmoid(logits)
    by_label = {score["label"]: score["score"] for score in scores}
    assert [by_label[model.config.id2label[i]] for i in range(num_labels)] == pytest.approx(expected.tolist(), abs=1e-6)


def test_token_classification_question_answering_multiple_choice_shapes():
    config = tiny_encoder_config(num_labels=5)
    ids, mask = padded_batch(left=False)
    token = MiniEncoderForTokenClassification(config)(ids, attention_mask=mask, labels=ids % 5)
    assert token.logits.shape == (3, 9, 5) and token.loss.ndim == 0
    qa = MiniEncoderForQuestionAnswering(config)(ids, attention_mask=mask, start_positions=torch.tensor([1, 2, 99]),
                                                 end_positions=torch.tensor([2, 3, 4]))
    assert qa.start_logits.shape == qa.end_logits.shape == (3, 9) and torch.isfinite(qa.loss)
    choice = MiniEncoderForMultipleChoice(config)
    out = choice(ids[None].expand(2, 3, 9), attention_mask=mask[None].expand(2, 3, 9), labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2])))


# --- training: gradient accumulation, Trainer, checkpointing, compile, PEFT ---------------------------------------


def _mlm_rows():
    """Four pre-masked rows with 1, 4, 2 and 6 masked tokens: per-micro-batch means would weight them wrongly."""
    g = torch.Generator().manual_seed(3)
    rows = []
    for count in (1, 4, 2, 6):
        ids = torch.randint(5, 99, (10,), generator=g)
        labels = torch.full_like(ids, -100)
        labels[:count] = ids[:count]
        ids = ids.clone()
        ids[:count] = 4  # the [MASK] id
        rows.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return rows


def _one_sgd_step(tmp_path, batch_size, accumulation):
    torch.manual_seed(0)
    model = MiniEncoderForMaskedLM(tiny_encoder_config())
    args = TrainingArguments(output_dir=str(tmp_path / f"ga{accumulation}"), per_device_train_batch_size=batch_size,
                             gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=1.0, optim="sgd",
                             lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, report_to=[],
                             use_cpu=True, save_strategy="no", logging_strategy="no", seed=0, data_seed=0)
    Trainer(model=model, args=args, train_dataset=_mlm_rows()).train()
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_gradient_accumulation_equals_the_joined_batch(tmp_path):
    joined = _one_sgd_step(tmp_path, batch_size=4, accumulation=1)
    accumulated = _one_sgd_step(tmp_path, batch_size=2, accumulation=2)
    torch.manual_seed(0)
    initial = dict(MiniEncoderForMaskedLM(tiny_encoder_config()).named_parameters())
    moved = max((joined[k] - initial[k]).abs().max().item() for k in joined)
    assert moved > 1e-3  # the step did something
    for key in joined:
        torch.testing.assert_close(accumulated[key], joined[key], atol=1e-6, rtol=1e-5, msg=key)


def test_trainer_pretrains_with_the_mlm_collator(tmp_path, wordpiece_tokenizer):
    tok = wordpiece_tokenizer
    torch.manual_seed(0)
    model = MiniEncoderForMaskedLM(tiny_encoder_config(vocab_size=len(tok), pad_token_id=tok.pad_token_id))
    texts = ["the cat sat on the mat and the dog sat on the log", "free entry win a prize now call to claim"] * 16
    dataset = [tok(text) for text in texts]
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.3, seed=0)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=24, learning_rate=3e-3,
                             logging_steps=4, report_to=[], use_cpu=True, save_strategy="no", seed=0,
                             warmup_steps=0)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[0] > math.log(len(tok)) - 1.5  # starts near chance
    assert losses[-1] < losses[0] - 1.0, losses


def test_gradient_checkpointing_gives_the_same_gradients():
    ids, mask = padded_batch(left=False)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = MiniEncoderForTokenClassification(tiny_encoder_config(num_labels=3)).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        model(ids, attention_mask=mask, labels=ids % 3).loss.backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for key in grads[0]:
        torch.testing.assert_close(grads[1][key], grads[0][key], msg=key)


def test_torch_compile_fullgraph():
    model = MiniEncoderForMaskedLM(tiny_encoder_config()).eval()
    ids, mask = padded_batch(left=False)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)


def test_peft_lora_on_the_classification_head(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    model = MiniEncoderForSequenceClassification(tiny_encoder_config(num_labels=2))
    model.save_pretrained(tmp_path / "base")  # before wrapping: PEFT edits the model in place
    lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["qkv_proj"],
                      modules_to_save=["classifier"])
    peft_model = get_peft_model(model, lora)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any("classifier" in n for n in trainable)
    assert all("lora_" in n or "classifier" in n for n in trainable)
    ids, mask = padded_batch(left=False)
    labels = torch.tensor([0, 1, 1])
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    with torch.no_grad():
        before = peft_model(ids, attention_mask=mask, labels=labels).loss
    for _ in range(3):
        peft_model(ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.eval()
    with torch.no_grad():
        after = peft_model(ids, attention_mask=mask, labels=labels)
    assert after.loss < before
    peft_model.save_pretrained(tmp_path / "adapter")
    base = MiniEncoderForSequenceClassification.from_pretrained(tmp_path / "base")
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids, attention_mask=mask).logits, after.logits)
        merged = reloaded.merge_and_unload()
        torch.testing.assert_close(merged(ids, attention_mask=mask).logits, after.logits, atol=1e-5, rtol=0)


# --- saving, Auto classes, remote code, pipelines -----------------------------------------------------------------


def test_auto_classes_and_auto_map(tmp_path):
    config = tiny_encoder_config(num_labels=2)
    model = MiniEncoderForMaskedLM(config).eval()
    model.save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    expected = {"AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification",
                "AutoModelForTokenClassification", "AutoModelForQuestionAnswering", "AutoModelForMultipleChoice"}
    assert set(auto_map) == expected
    assert all(v.startswith(("modeling_encoder.", "configuration_mini.")) for v in auto_map.values())
    assert type(AutoConfig.from_pretrained(tmp_path)) is MiniEncoderConfig
    ids, mask = padded_batch(left=False)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert type(reloaded) is MiniEncoderForMaskedLM
    with torch.no_grad():  # meta-device loading left nothing uninitialised (sinusoidal positions included)
        torch.testing.assert_close(reloaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)
    for auto, cls in [(AutoModel, MiniEncoderModel),
                      (AutoModelForSequenceClassification, MiniEncoderForSequenceClassification),
                      (AutoModelForTokenClassification, MiniEncoderForTokenClassification),
                      (AutoModelForQuestionAnswering, MiniEncoderForQuestionAnswering),
                      (AutoModelForMultipleChoice, MiniEncoderForMultipleChoice)]:
        loaded = auto.from_pretrained(tmp_path)
        assert type(loaded) is cls
        torch.testing.assert_close(loaded.model.embeddings.embed_tokens.weight if hasattr(loaded, "model") else
                                   loaded.embeddings.embed_tokens.weight, model.model.embeddings.embed_tokens.weight)


_REMOTE = textwrap.dedent("""
    import sys, torch
    sys.modules["modeling_mini"] = None  # the package must not be importable: only the folder's copied code
    from transformers import AutoModelForMaskedLM, AutoModelForQuestionAnswering
    folder = sys.argv[1]
    ids = torch.load(folder + "/ids.pt")
    model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    with torch.no_grad():
        torch.save(model(**ids).logits, folder + "/remote_logits.pt")
    print(type(AutoModelForQuestionAnswering.from_pretrained(folder, trust_remote_code=True)).__name__)
""")


#: ModernBERT's layout: local layers with their own rotary base, no LayerNorm shifts, the first block's attention
#: reading the normalised embeddings, a transform in every head, mean pooling
MODERN = dict(position_embedding_type="rotary", sliding_window=2, sliding_rope_theta=10.0, type_vocab_size=0,
              layer_types=["full_attention", "sliding_attention"], norm_position="pre", norm_bias=False,
              skip_first_attention_norm=True, hidden_act="geglu", head_transform=True, classifier_pooling="mean")


@pytest.mark.parametrize("layout", ["bert", "modernbert"])
def test_remote_code_loads_without_the_package(tmp_path, layout):
    model = MiniEncoderForMaskedLM(tiny_encoder_config(**(MODERN if layout == "modernbert" else {}))).eval()
    model.save_pretrained(tmp_path)
    ids, mask = padded_batch(left=False)
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    torch.save(batch, tmp_path / "ids.pt")
    result = subprocess.run([sys.executable, "-c", _REMOTE, str(tmp_path)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MiniEncoderForQuestionAnswering" in result.stdout
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "remote_logits.pt"), model(**batch).logits)


def test_pipelines(tmp_path, wordpiece_tokenizer):
    tok = wordpiece_tokenizer
    base = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    text = "the cat sat on the mat"

    def saved(cls, name, **config):
        folder = tmp_path / name
        cls(tiny_encoder_config(**base, **config)).eval().save_pretrained(folder)
        tok.save_pretrained(folder)
        return str(folder)

    filled = pipeline("fill-mask", model=saved(MiniEncoderForMaskedLM, "mlm"))(f"the cat {tok.mask_token} on the mat")
    assert len(filled) == 5 and all(0 <= row["score"] <= 1 for row in filled)

    folder = saved(MiniEncoderForSequenceClassification, "binary", num_labels=1,
                   problem_type="multi_label_classification", id2label={0: "spam"}, label2id={"spam": 0})
    classifier = pipeline("text-classification", model=folder)
    score = classifier(text)[0]["score"]
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logit = model(**tok(text, return_tensors="pt")).logits[0, 0]
    assert 0 < score < 1
    assert score == pytest.approx(torch.sigmoid(logit).item(), abs=1e-6)

    tagged = pipeline("token-classification", model=saved(MiniEncoderForTokenClassification, "ner", num_labels=3))(text)
    assert tagged and all(row["entity"].startswith("LABEL_") for row in tagged)

    # transformers 5.24 removed the "question-answering" pipeline (REMOVED_TASKS); do its span decoding with the
    # tokenizer's offsets instead, on the saved model reloaded through the Auto class
    assert "question-answering" not in SUPPORTED_TASKS
    qa = AutoModelForQuestionAnswering.from_pretrained(saved(MiniEncoderForQuestionAnswering, "qa")).eval()
    context = "the cat sat on the mat"
    encoded = tok("where did the cat sit", context, return_offsets_mapping=True, return_tensors="pt")
    offsets = encoded.pop("offset_mapping")[0]
    in_context = torch.tensor([i == 1 for i in encoded.sequence_ids(0)])
    with torch.no_grad():
        out = qa(**encoded)
    start = out.start_logits[0].masked_fill(~in_context, -1e9).argmax()
    end = start + out.end_logits[0, start:].masked_fill(~in_context[start:], -1e9).argmax()
    answer = context[offsets[start, 0]:offsets[end, 1]]
    assert answer and answer in context and bool(in_context[start]) and bool(in_context[end])

    features = pipeline("feature-extraction", model=saved(MiniEncoderModel, "features"))(text)
    assert torch.tensor(features).shape == (1, len(tok(text)["input_ids"]), TINY["hidden_size"])


# --- bad input ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hidden_size": 30}, "num_attention_heads"),
        ({"type_vocab_size": -1}, "type_vocab_size"),
        ({"add_pooler": "yes"}, "add_pooler"),
        ({"sparse_prediction": 1}, "sparse_prediction"),
        ({"hidden_act": "tanh"}, "hidden_act"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"norm_position": "middle"}, "norm_position"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
        ({"problem_type": "ranking"}, "problem_type"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_encoder_config(**overrides)


def test_bad_inputs_raise_clear_errors():
    model = MiniEncoderModel(tiny_encoder_config(position_embedding_type="learned")).eval()
    ids = torch.randint(3, 99, (2, 6))
    with pytest.raises(ValueError, match="token_type_ids.*type_vocab_size=2"):
        model(ids, token_type_ids=torch.full_like(ids, 2))
    with pytest.raises(ValueError, match="token_type_ids.*shape"):
        model(ids, token_type_ids=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="input_ids.*vocab_size=99"):
        model(torch.full_like(ids, 99))
    with pytest.raises(ValueError, match="attention_mask.*shape"):
        model(ids, attention_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.randint(3, 99, (1, 65)))
    no_segments = MiniEncoderModel(tiny_encoder_config(type_vocab_size=0)).eval()
    no_segments(ids, token_type_ids=torch.zeros_like(ids))  # what tokenizers send by default: accepted
    no_segments(ids, token_type_ids=torch.ones_like(ids))  # a pair's second text: ignored, as DistilBERT does


@pytest.mark.parametrize(
    ("problem_type", "num_labels", "labels", "match"),
    [
        ("single_label_classification", 3, torch.tensor([0.0, 1.0]), "dtype"),
        ("single_label_classification", 3, torch.tensor([[0, 1], [1, 2]]), "shape"),
        ("single_label_classification", 3, torch.tensor([0, 3]), r"\[0, 3\)"),
        ("multi_label_classification", 3, torch.tensor([1.0, 0.0]), "shape"),
        ("multi_label_classification", 1, torch.tensor([1.5, 1.0]), r"in \[0, 1\].*got 1.5"),
        ("multi_label_classification", 2, torch.tensor([[0.5, float("nan")], [0.0, 1.0]]), r"in \[0, 1\].*got nan"),
        ("regression", 2, torch.randn(2, 3), "shape"),
    ],
)
def test_classification_labels_must_fit_the_problem_type(problem_type, num_labels, labels, match):
    model = MiniEncoderForSequenceClassification(tiny_encoder_config(num_labels=num_labels, problem_type=problem_type))
    with pytest.raises(ValueError, match=match):
        model(torch.randint(3, 99, (2, 5)), labels=labels)


def test_multi_label_heads_take_soft_targets_and_bool_rows_as_transformers_does():
    """Probabilities as targets (distillation, smoothed multi-hot rows) train as in transformers' binary cross-entropy
    (they were refused as "not 0 or 1"); bool multi-hot rows are multi-label, as transformers' rule says, not class
    ids (they were sent to single-label and refused there)."""
    ids = torch.randint(3, 99, (2, 5))
    soft = torch.tensor([[0.9, 0.1, 0.5], [0.0, 1.0, 0.2]])
    model = MiniEncoderForSequenceClassification(
        tiny_encoder_config(num_labels=3, problem_type="multi_label_classification")).eval()
    out = model(ids, labels=soft)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, soft)
    torch.testing.assert_close(out.loss, expected)
    hot = torch.tensor([[True, False, True], [False, True, False]])
    inferred = MiniEncoderForSequenceClassification(tiny_encoder_config(num_labels=3)).eval()
    loss = inferred(ids, labels=hot).loss
    assert inferred.config.problem_type == "multi_label_classification"
    torch.testing.assert_close(loss, inferred(ids, labels=hot.float()).loss)


def test_head_labels_must_fit():
    ids = torch.randint(3, 99, (2, 5))
    with pytest.raises(ValueError, match="labels.*shape"):
        MiniEncoderForMaskedLM(tiny_encoder_config())(ids, labels=ids[:, :4])
    with pytest.raises(ValueError, match="labels.*dtype"):
        MiniEncoderForTokenClassification(tiny_encoder_config())(ids, labels=ids.float())
    qa = MiniEncoderForQuestionAnswering(tiny_encoder_config())
    with pytest.raises(ValueError, match="start_positions"):
        qa(ids, start_positions=torch.tensor([0.5, 1.0]), end_positions=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="both"):
        qa(ids, start_positions=torch.tensor([0, 1]))
    choice = MiniEncoderForMultipleChoice(tiny_encoder_config())
    with pytest.raises(ValueError, match="num_choices"):
        choice(ids[:, None].expand(2, 3, 5), labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="num_choices, sequence_length"):
        choice(ids)


def test_int32_labels_and_positions_give_the_int64_loss():
    """numpy's default integer is int32 on some platforms: every head takes int32 labels and positions, as the
    sequence classifier does, and gives the loss of the int64 ones (the cross-entropy itself takes only int64)."""
    ids, mask = padded_batch(left=False)
    cases = [
        (MiniEncoderForTokenClassification, {"labels": (ids % 3).masked_fill(mask == 0, -100)}),
        (MiniEncoderForMaskedLM, {"labels": ids.masked_fill(mask == 0, -100)}),
        (MiniEncoderForMultipleChoice, {"labels": torch.tensor([2, 0, -100])}),
        (MiniEncoderForQuestionAnswering, {"start_positions": torch.tensor([1, 2, 99]),
                                           "end_positions": torch.tensor([2, 3, 4])}),
    ]
    for cls, labels in cases:
        model = cls(tiny_encoder_config(num_labels=3)).eval()
        inputs = ids[:, None].expand(3, 3, 9) if cls is MiniEncoderForMultipleChoice else ids  # (B, C, T)
        with torch.no_grad():
            expected = model(inputs, **labels).loss
            assert model(inputs, **{name: value.int() for name, value in labels.items()}).loss == expected, cls


@pytest.mark.parametrize(
    ("cls", "bad", "allowed"),
    [(MiniEncoderForTokenClassification, 3, "num_labels=3"), (MiniEncoderForTokenClassification, -3, "num_labels=3"),
     (MiniEncoderForMaskedLM, 99, "vocab_size=99"), (MiniEncoderForMaskedLM, -1, "vocab_size=99")],
)
def test_per_token_labels_outside_their_range_raise_naming_it(cls, bad, allowed):
    """A token-classification label >= num_labels (a masked-LM label >= vocab_size) or negative other than -100 is a
    ``ValueError`` naming ``labels`` and the range, not the cross-entropy's ``IndexError`` (on a GPU a device-side
    assert). The check costs one host read, beside the input ids' one."""
    model = cls(tiny_encoder_config(num_labels=3)).eval()
    ids = torch.randint(3, 99, (2, 5))
    labels = torch.full_like(ids, -100)
    labels[1, 3] = bad
    with pytest.raises(ValueError, match=rf"`labels` contains {bad}, outside \[0, {allowed}\)"):
        model(ids, labels=labels)
    labels[1, 3] = 2
    with torch.no_grad():
        assert count_host_reads(lambda: model(ids, labels=labels)) == 2  # the ids' range, the labels' range


def test_class_labels_are_range_checked_with_one_host_read():
    """Sequence classification and multiple choice check their labels' range with one read of the smallest and the
    largest id (before: the minimum, the maximum and a boolean index over the labels, three reads)."""
    ids = torch.randint(3, 99, (2, 5))
    classifier = MiniEncoderForSequenceClassification(tiny_encoder_config(num_labels=3)).eval()
    with torch.no_grad():
        assert count_host_reads(lambda: classifier(ids, labels=torch.tensor([2, -100]))) == 2  # ids', labels'
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) or -100"):
        classifier(ids, labels=torch.tensor([3, 0]))
    chooser = MiniEncoderForMultipleChoice(tiny_encoder_config()).eval()
    choices = torch.randint(3, 99, (2, 4, 5))
    with torch.no_grad():
        assert count_host_reads(lambda: chooser(choices, labels=torch.tensor([3, 0]))) == 2
    with pytest.raises(ValueError, match=r"`labels` must be in \[0, num_choices=4\)"):
        chooser(choices, labels=torch.tensor([4, 0]))


def test_a_labelled_training_step_compiles_fullgraph():
    """The label checks skip their host read under ``torch.compile``: int32 labels, no graph break."""
    ids, mask = padded_batch(left=False)
    for cls, labels in ((MiniEncoderForMaskedLM, ids.masked_fill(mask == 0, -100)),
                        (MiniEncoderForTokenClassification, (ids % 3).masked_fill(mask == 0, -100))):
        model = cls(tiny_encoder_config(num_labels=3)).train()
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        compiled(ids, attention_mask=mask, labels=labels.int()).loss.backward()
        assert model.model.embeddings.embed_tokens.weight.grad is not None
    torch._dynamo.reset()


def test_package_exports_the_family():
    for name in ("MiniEncoderConfig", "MiniEncoderModel", "MiniEncoderForMaskedLM", "MiniEncoderForMultipleChoice"):
        assert name in modeling_mini.__all__


def test_an_encoder_offloaded_to_disk_runs_without_token_type_ids(tmp_path):
    """With a device map that offloads to disk, accelerate loads a module's weights in a hook on its forward: the
    segment table's ``weight`` read directly stayed on the meta device. The embeddings are also kept whole (one
    device), as their parts are added together."""
    from transformers import AutoModelForMaskedLM

    model = MiniEncoderForMaskedLM(MiniEncoderConfig(**TINY, position_embedding_type="learned")).eval()
    model.save_pretrained(tmp_path / "saved")
    assert "MiniEmbeddings" in model._no_split_modules
    offloaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "saved", device_map="auto",
                                                     max_memory={"cpu": "20KB", "disk": 10**9},
                                                     offload_folder=str(tmp_path / "offload")).eval()
    ids = torch.randint(3, TINY["vocab_size"], (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(offloaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=0, rtol=0)


@pytest.mark.parametrize("masks_read_positions", [True, False], ids=["transformers-rule", "own-rule"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("options", [{"position_embedding_type": "learned"}, {"position_embedding_type": "rotary"},
                                     {"position_embedding_type": "rotary", "sliding_window": 4,
                                      "layer_types": ["sliding_attention", "full_attention"]}],
                         ids=["learned", "rotary", "local-layers"])
def test_padding_free_batch_equals_each_sequence_alone(options, attn, masks_read_positions, monkeypatch):
    """``DataCollatorWithFlattening`` (sequences joined in one row, position ids restarting at 0, no mask): each
    sequence sees only itself, as transformers' BERT builds the block-diagonal mask from the position ids. Before,
    the mask was built without them, so the joined sequences attended to each other (1.9e-3 from BERT's logits).
    ``own-rule``: the encoder's rule for transformers 5.24, whose masks ignored the position ids (they are then not
    passed to transformers, so the rule is checked alone)."""
    from transformers import DataCollatorWithFlattening

    from modeling_mini import modeling_encoder

    if masks_read_positions and not modeling_encoder.MASKS_READ_POSITIONS:
        pytest.skip("this transformers' bidirectional masks take no position ids (5.24): the encoder's rule applies")
    monkeypatch.setattr(modeling_encoder, "MASKS_READ_POSITIONS", masks_read_positions)
    model = MiniEncoderForMaskedLM(tiny_encoder_config(**options, attn_implementation=attn)).eval()
    ids, mask = padded_batch(left=False)  # rows with 6, 7 and 9 real tokens
    real = [row[keep].tolist() for row, keep in zip(ids, mask.bool(), strict=True)]
    packed = DataCollatorWithFlattening()([{"input_ids": tokens} for tokens in real])  # (1, 22), position ids
    with torch.no_grad():
        joined = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
        alone = torch.cat([model(torch.tensor([tokens])).logits[0] for tokens in real])
    torch.testing.assert_close(joined, alone, atol=1e-5, rtol=1e-5)
