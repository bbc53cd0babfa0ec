"""ModernBERT parity: a random ModernBERT (rotary positions with a base per layer type, local attention on two layers
in three, GeGLU, pre-norm LayerNorms without biases, no norm before the first attention) converted with the users'
converter computes the same function, trains the same, and exports back exactly."""

import copy

import pytest
import torch
import transformers
from conftest import (
    TINY,
    assert_one_training_step_matches,
    assert_same_tensors,
    perturb_norms_and_biases,
    windows_passed_to_kernels,
)

from modeling_mini import (
    MiniEncoderConfig,
    MiniEncoderForMaskedLM,
    MiniEncoderForSequenceClassification,
    MiniEncoderModel,
    MiniGPTConfig,
    MiniGPTForCausalLM,
)
from modeling_mini.convert import from_hf, to_hf

WINDOW = 2  # ModernBERT's local_attention=4: a local layer's token sees 2 positions either side
HEADS = ["ModernBertModel", "ModernBertForMaskedLM"]
TASK_HEADS = ["ModernBertForSequenceClassification", "ModernBertForTokenClassification",
              "ModernBertForQuestionAnswering", "ModernBertForMultipleChoice"]
ROPE = {"full_attention": {"rope_type": "default", "rope_theta": 160.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10.0}}


def build(head: str = "ModernBertForMaskedLM", biases: bool = False, **kw):
    """A random 4-layer ModernBERT (global, local, local, global), its norms and biases perturbed; weights 10x the
    usual spread, so that attention is far from uniform and the windows and rotations show in the outputs."""
    config = transformers.ModernBertConfig(**{
        "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
        "intermediate_size": 48, "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1,
        "eos_token_id": 2, "cls_token_id": 1, "sep_token_id": 2, "local_attention": 2 * WINDOW,
        "global_attn_every_n_layers": 3, "rope_parameters": copy.deepcopy(ROPE), "norm_bias": biases,
        "attention_bias": biases, "mlp_bias": biases, "classifier_bias": biases, "initializer_range": 0.2, **kw})
    return perturb_norms_and_biases(getattr(transformers, head)(config))


def padded_batch(length: int = 14):
    """Three rows several windows long, row 0 left-padded by 5 and row 1 right-padded by 3."""
    ids = torch.randint(3, 99, (3, length), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    mask[1, -3:] = 0
    return ids.masked_fill(mask == 0, 0), mask


def outputs(model, ids, mask) -> torch.Tensor:
    """Logits or hidden states at the real positions."""
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
    return (out.logits if "logits" in out else out.last_hidden_state)[mask.bool()]


@pytest.mark.parametrize("biases", [False, True], ids=["no-biases", "biases"])
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("head", HEADS)
def test_outputs_match_on_a_padded_batch_longer_than_the_window(head, impl, biases):
    hf = build(head, biases)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    config = mini.config
    assert config.layer_types == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    assert (config.sliding_window, config.rope_theta, config.sliding_rope_theta) == (WINDOW, 160.0, 10.0)
    assert (config.hidden_act, config.norm_bias, config.skip_first_attention_norm) == ("geglu", biases, True)
    ids, mask = padded_batch()
    theirs = outputs(hf, ids, mask)
    # about 1e-7: ModernBERT's feed-forward is one matrix product, split in two; ours is two products
    torch.testing.assert_close(outputs(mini, ids, mask), theirs, atol=1e-5, rtol=0)
    backbone = mini.base_model
    unlimited, one_rotation = copy.deepcopy(mini), copy.deepcopy(mini)
    unlimited.config.sliding_window, unlimited.config.layer_types = None, ["full_attention"] * 4
    unlimited.config.sliding_rope_theta = None  # the base of sliding layers, which it no longer has
    unlimited = type(mini)(unlimited.config).eval()
    unlimited.load_state_dict(mini.state_dict())
    one_rotation.base_model.sliding_rotary = None
    for changed in (unlimited, one_rotation):  # the window binds, and the local layers' own base matters
        assert (outputs(changed, ids, mask) - theirs).abs().max() > 1e-4
    assert backbone.layers[0].self_attn_norm is None and backbone.layers[1].self_attn_norm is not None


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("biases", [False, True], ids=["no-biases", "biases"])
@pytest.mark.parametrize("head", TASK_HEADS)
def test_every_task_head_matches_and_round_trips(head, biases, pooling):
    """The task heads: a transform of their own (``head_transform``) after first-token or mean pooling
    (``classifier_pooling``) for the sentence-level ones. Multiple choice gets right-padded choices: ModernBERT's picks
    the first real token where its sequence classifier (and ours, in both) takes position 0."""
    hf = build(head, biases, classifier_pooling=pooling, num_labels=3 if head.endswith("SequenceClassification") else 2)
    mini = from_hf(hf)
    assert (mini.config.head_transform, mini.config.classifier_pooling) == (True, pooling)
    ids, mask = padded_batch()
    if head.endswith("MultipleChoice"):
        mask[0], ids[0] = 1, torch.randint(3, 99, (14,))  # rows 1 and 2: right-padded or not padded
        ids, mask = (torch.stack([x[1:], x[1:].flip(0)], dim=1) for x in (ids, mask))  # (2, 2 choices, T)
    with torch.no_grad():
        theirs, ours = hf(ids, attention_mask=mask), mini(ids, attention_mask=mask)
    names = ["start_logits", "end_logits"] if head.endswith("QuestionAnswering") else ["logits"]
    for name in names:
        real = mask.bool() if theirs[name].shape == mask.shape or theirs[name].dim() == 3 else slice(None)
        torch.testing.assert_close(ours[name][real], theirs[name][real], atol=1e-5, rtol=0)
    assert_same_tensors(hf, to_hf(mini))


def test_flash_kernels_would_get_modernberts_windows():
    """Flash kernels see ``window - 1`` positions either side: a local layer passes ``sliding_window + 1``, as
    ModernBERT does (a full layer None)."""
    hf = build("ModernBertModel")
    ids = torch.randint(3, 99, (1, 10))
    assert windows_passed_to_kernels(from_hf(hf), ids) == windows_passed_to_kernels(hf, ids) == [None, 3, 3, None]


@pytest.mark.parametrize("head", HEADS)
def test_round_trip_is_exact(head):
    hf = build(head, biases=head == "ModernBertModel")
    back = to_hf(from_hf(hf))
    assert type(back) is type(hf)
    assert back.config.layer_types == hf.config.layer_types and back.config.local_attention == 2 * WINDOW
    assert back.config.rope_parameters == hf.config.rope_parameters
    assert_same_tensors(hf, back)


def test_sparse_prediction_and_a_training_step_match():
    """The masked-LM loss and logits over the masked positions only (``sparse_prediction``), and one SGD step."""
    hf = build(sparse_prediction=True)
    mini = from_hf(hf)
    assert mini.config.sparse_prediction
    ids, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 6:9] = ids[:, 6:9]
    with torch.no_grad():
        theirs, ours = hf(ids, attention_mask=mask, labels=labels), mini(ids, attention_mask=mask, labels=labels)
    assert ours.logits.shape == theirs.logits.shape == (9, 99)
    torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.loss, theirs.loss, atol=1e-6, rtol=0)
    dense = build()
    assert_one_training_step_matches(dense, from_hf(dense), dict(input_ids=ids, attention_mask=mask, labels=labels))


def test_a_token_of_a_local_layer_sees_only_tokens_within_the_window():
    """One local layer: the output at position t depends on tokens t - WINDOW .. t + WINDOW and on nothing else."""
    config = MiniEncoderConfig(**{**TINY, "num_hidden_layers": 1}, position_embedding_type="rotary",
                               sliding_window=WINDOW)
    model = MiniEncoderModel(config).eval()
    ids = torch.randint(3, 99, (1, 12))
    changed = ids.clone()
    changed[0, 6] = (ids[0, 6] + 1 - 3) % 96 + 3
    for impl in ("eager", "sdpa"):
        model.set_attn_implementation(impl)
        with torch.no_grad():
            diff = (model(ids).last_hidden_state - model(changed).last_hidden_state).abs().amax(-1)[0]  # (T,)
        assert (diff[6 - WINDOW : 6 + WINDOW + 1] > 0).all(), impl
        assert (diff[: 6 - WINDOW] == 0).all() and (diff[6 + WINDOW + 1 :] == 0).all(), impl


def test_saved_model_reloads_compiles_and_fills_masks(tmp_path):
    mini = from_hf(build())
    mini.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert (loaded.config.layer_types, loaded.config.sliding_rope_theta) == (mini.config.layer_types, 10.0)
    ids, mask = padded_batch()
    assert torch.equal(outputs(loaded, ids, mask), outputs(mini, ids, mask))
    compiled = torch.compile(loaded, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids, attention_mask=mask).logits[mask.bool()], outputs(mini, ids, mask))


@pytest.mark.parametrize(("hidden", "classifier", "ours"), [
    ("swish", "swish", "swiglu"), ("gelu_python", "gelu_python", "geglu"), ("swish", "silu", "swiglu"),
    ("gelu_pytorch_tanh", "gelu_new", "geglu_tanh"),
])
def test_transformers_other_names_for_an_activation_convert(hidden, classifier, ours):
    """'swish' is transformers' name for silu and 'gelu_python' exact GELU written with erf: ModernBERT with them (in
    the feed-forward's gate and the heads) converts as with 'silu' / 'gelu', with the same outputs, and exports."""
    hf = build(hidden_activation=hidden, classifier_activation=classifier)
    mini = from_hf(hf)
    assert mini.config.hidden_act == ours
    ids, mask = padded_batch()
    theirs = outputs(hf, ids, mask)
    torch.testing.assert_close(outputs(mini, ids, mask), theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(outputs(to_hf(mini), ids, mask), theirs, atol=1e-5, rtol=0)


def test_what_modernbert_or_its_neighbours_cannot_express_raises():
    with pytest.raises(ValueError, match=r"`hidden_activation='quick_gelu'` has no mini gated equivalent.*'swish'"):
        from_hf(build(hidden_activation="quick_gelu", classifier_activation="quick_gelu"))
    with pytest.raises(ValueError, match="ModernBertForQuestionAnswering needs `num_labels=2`"):
        from_hf(build("ModernBertForQuestionAnswering", num_labels=3))
    with pytest.raises(ValueError, match="embedding_dropout.*only 0.0"):
        from_hf(build(embedding_dropout=0.1))
    with pytest.raises(ValueError, match="classifier_activation"):
        from_hf(build(classifier_activation="silu"))
    stretched = {**ROPE, "sliding_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10.0}}
    with pytest.raises(ValueError, match="ModernBERT sliding layers' `rope_parameters`"):
        from_hf(build(rope_parameters=stretched))
    bert_style = from_hf(build()).config
    bert_style.head_transform = False
    with pytest.raises(ValueError, match="SequenceClassification head transforms.*head_transform=True"):
        to_hf(MiniEncoderForSequenceClassification(bert_style))
    with pytest.raises(ValueError, match="BERT needs `head_transform=False`"):
        to_hf(MiniEncoderForSequenceClassification(MiniEncoderConfig(**TINY, position_embedding_type="learned",
                                                                     head_transform=True)))
    with pytest.raises(ValueError, match="classifier_pooling"):
        MiniEncoderConfig(**TINY, classifier_pooling="max")
    residual_dropout = from_hf(build())
    residual_dropout.config.hidden_dropout = 0.1
    with pytest.raises(ValueError, match="ModernBERT needs `hidden_dropout=0.0`"):
        to_hf(residual_dropout)
    local_bert = MiniEncoderForMaskedLM(MiniEncoderConfig(**TINY, position_embedding_type="learned", sliding_window=2))
    with pytest.raises(ValueError, match="BERT attends to the whole input.*sliding_window=None"):
        to_hf(local_bert)
    no_shift = MiniGPTForCausalLM(MiniGPTConfig(**TINY, position_embedding_type="learned", norm_bias=False))
    with pytest.raises(ValueError, match="GPT-2 needs `norm_bias=True`"):
        to_hf(no_shift)
    with pytest.raises(ValueError, match="skip_first_attention_norm=True.*'pre' or 'sandwich'"):
        MiniEncoderConfig(**TINY, skip_first_attention_norm=True, norm_position="post")
    with pytest.raises(ValueError, match="`norm_bias` must be True or False"):
        MiniEncoderConfig(**TINY, norm_bias="no")


def test_the_converted_masked_lm_fine_tunes_as_a_classifier(tmp_path):
    """The usual route: save the converted masked LM, load it as a mini sequence classifier (the backbone's weights, a
    new ModernBERT-style pooler and head), and train it."""
    mini = from_hf(build())
    mini.save_pretrained(tmp_path)
    classifier = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert isinstance(classifier, MiniEncoderForSequenceClassification) and classifier.config.head_transform
    backbone = classifier.model.state_dict()
    for key, tensor in mini.model.state_dict().items():
        assert torch.equal(backbone[key], tensor), key
    ids, mask = padded_batch()
    labels = torch.tensor([0, 1, 1])
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=1e-2)
    classifier.train()
    losses = []
    for _ in range(5):
        loss = classifier(ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("head_transform", [False, True])
def test_mean_pooling_leaves_padding_out(head_transform):
    """``classifier_pooling="mean"``: a text padded on the right scores as it does alone (BERT's or ModernBERT's
    pooler)."""
    model = MiniEncoderForSequenceClassification(MiniEncoderConfig(
        **TINY, position_embedding_type="rotary", classifier_pooling="mean", head_transform=head_transform)).eval()
    ids = torch.randint(3, 99, (1, 7))
    padded, mask = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1), torch.tensor([[1] * 7 + [0] * 3])
    with torch.no_grad():
        alone, with_padding = model(ids).logits, model(padded, attention_mask=mask).logits
    torch.testing.assert_close(with_padding, alone, atol=1e-6, rtol=0)
