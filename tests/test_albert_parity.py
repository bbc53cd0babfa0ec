"""ALBERT -> MiniEncoder (a factorised embedding, blocks shared across the layers: ``num_hidden_groups``) and back."""

import pytest
import torch
from conftest import assert_absolute_positions_both_ways, assert_same_tensors, perturb_norms_and_biases
from transformers import (
    AlbertConfig,
    AlbertForMaskedLM,
    AlbertForMultipleChoice,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertModel,
    AutoModelForMaskedLM,
)

from modeling_mini import MiniEncoderConfig, MiniEncoderForMaskedLM, MiniEncoderModel
from modeling_mini.convert import from_hf, to_hf

SHAPE = dict(vocab_size=99, embedding_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=37, max_position_embeddings=64, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0)
HEADS = [AlbertModel, AlbertForMaskedLM, AlbertForSequenceClassification, AlbertForTokenClassification,
         AlbertForQuestionAnswering, AlbertForMultipleChoice]


def build(cls, **kw):
    torch.manual_seed(0)
    labels = 2 if cls is AlbertForQuestionAnswering else 3
    return perturb_norms_and_biases(cls(AlbertConfig(**{**SHAPE, "num_labels": labels, **kw})))


def inputs(choices: bool = False) -> dict:
    """A padded batch with both segments (rows of 10, 6 and 3 real tokens); (B, 2, T) for multiple choice."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 99, (3, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    segments = torch.zeros_like(ids)
    segments[:, 5:] = 1
    batch = dict(input_ids=ids, attention_mask=mask, token_type_ids=segments)
    return {k: v[:, None].expand(-1, 2, -1).contiguous() for k, v in batch.items()} if choices else batch


@pytest.mark.parametrize("groups", [1, 2], ids=["one-shared-block", "two-groups"])
@pytest.mark.parametrize("cls", HEADS, ids=lambda cls: cls.__name__)
def test_every_albert_head_converts_with_the_same_outputs_and_back(cls, groups):
    """Each head, with ALBERT's one shared block or two groups of layers: the same outputs on a padded batch with
    segments, and an exact round trip."""
    hf = build(cls, num_hidden_groups=groups)
    mini = from_hf(hf).eval()
    assert len(mini.base_model.layers) == groups and mini.config.embedding_size == 8
    assert mini.base_model.block_of_layer == [i * groups // 4 for i in range(4)]
    batch = inputs(choices=cls is AlbertForMultipleChoice)
    with torch.no_grad():
        theirs, ours = hf(**batch), mini(**batch)
    real = batch["attention_mask"].bool()
    for key in [k for k in theirs.keys() if k.endswith("logits") or k == "last_hidden_state"]:
        a, b = theirs[key], ours[key]
        if a.shape[:2] == real.shape:  # per token: compare the real ones
            a, b = a[real], b[real]
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    back = to_hf(mini)
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_the_shared_block_runs_once_per_layer():
    """One block's weights, ``num_hidden_layers`` layers of compute: every layer's hidden states are ALBERT's, the
    parameter count is ALBERT's, and a training step's gradient reaches the shared block from every layer."""
    hf = build(AlbertForMaskedLM)
    mini = from_hf(hf).eval()
    batch = inputs()
    with torch.no_grad():
        theirs = hf(**batch, output_hidden_states=True).hidden_states
        ours = mini(**batch, output_hidden_states=True).hidden_states
    assert len(ours) == len(theirs) == 5  # the embeddings, then 4 layers
    real = batch["attention_mask"].bool()
    for a, b in zip(theirs, ours, strict=True):
        torch.testing.assert_close(b[real], a[real], atol=1e-5, rtol=0)
    assert sum(p.numel() for p in mini.parameters()) == sum(p.numel() for p in hf.parameters())
    labels = batch["input_ids"].masked_fill(~real, -100)
    hf.train()
    mini.train()
    hf(**batch, labels=labels).loss.backward()
    mini(**batch, labels=labels).loss.backward()
    theirs = hf.albert.encoder.albert_layer_groups[0].albert_layers[0].ffn.weight.grad
    torch.testing.assert_close(mini.model.layers[0].mlp.up_proj.weight.grad, theirs, atol=1e-6, rtol=1e-5)


def test_a_shared_block_model_saves_and_loads(tmp_path):
    config = MiniEncoderConfig(vocab_size=99, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                               intermediate_size=37, embedding_size=8, num_hidden_groups=1)
    model = MiniEncoderForMaskedLM(config).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert loaded.config.num_hidden_groups == 1 and len(loaded.model.layers) == 1
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_a_relative_position_type_converts_as_absolute_as_transformers_computes():
    """Transformers 5's ALBERT never reads `position_embedding_type`: it adds its absolute position table whatever it
    says. The converter does the same, and the exported config computes the same."""
    hf = build(AlbertForMaskedLM, position_embedding_type="relative_key_query")
    mini = from_hf(hf).eval()
    batch = inputs()
    assert_absolute_positions_both_ways(hf, mini, to_hf(mini).eval(), batch, real=batch["attention_mask"].bool())


def test_bad_options_raise():
    with pytest.raises(ValueError, match="ALBERT `hidden_act='quick_gelu'` has no mini equivalent"):
        from_hf(build(AlbertModel, hidden_act="quick_gelu"))
    with pytest.raises(ValueError, match="inner_group_num"):
        from_hf(build(AlbertModel, inner_group_num=2))
    with pytest.raises(ValueError, match="embedding_size != hidden_size"):
        from_hf(build(AlbertModel, embedding_size=32))
    base = dict(vocab_size=99, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37)
    with pytest.raises(ValueError, match=r"`num_hidden_groups` \(5\) must be at most `num_hidden_layers` \(4\)"):
        MiniEncoderConfig(**base, num_hidden_groups=5)
    with pytest.raises(ValueError, match="`num_hidden_groups` must be an integer >= 1"):
        MiniEncoderConfig(**base, num_hidden_groups=0)
    with pytest.raises(ValueError, match="needs `sliding_window=None`"):
        MiniEncoderConfig(**base, num_hidden_groups=2, sliding_window=4)
    with pytest.raises(ValueError, match="ALBERT maps a narrower embedding"):  # shared blocks export only as ALBERT
        to_hf(MiniEncoderModel(MiniEncoderConfig(**base, num_hidden_groups=1), add_pooling_layer=False))


def test_gradient_checkpointing_recomputes_the_shared_block_per_layer():
    """With checkpointing each layer's call of the shared block is recomputed in backward: the same gradients."""
    hf = build(AlbertForMaskedLM)
    grads = []
    for checkpointing in (False, True):
        mini = from_hf(hf).train()
        if checkpointing:
            mini.gradient_checkpointing_enable()
        batch = inputs()
        mini(**batch, labels=batch["input_ids"]).loss.backward()
        grads.append({name: p.grad for name, p in mini.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5, msg=name)
