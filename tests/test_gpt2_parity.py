"""GPT-2 parity: a random GPT2 model converted with the users' converter computes the same function."""

import inspect

import pytest
import torch
from conftest import assert_one_training_step_matches, assert_same_tensors, padded_batch, perturb_norms_and_biases
from transformers import (
    GPT2Config,
    GPT2ForQuestionAnswering,
    GPT2ForSequenceClassification,
    GPT2ForTokenClassification,
    GPT2LMHeadModel,
    GPT2Model,
)

from modeling_mini.convert import from_hf, to_hf


def hf_config(**kw):
    return GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2, **kw)


@pytest.mark.parametrize("cls", [GPT2Model, GPT2LMHeadModel, GPT2ForSequenceClassification, GPT2ForTokenClassification])
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_logits_match_on_padded_batch(cls, impl):
    hf = perturb_norms_and_biases(cls(hf_config(num_labels=3)))  # a fresh GPT-2's biases are 0 and gains 1
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    ids, mask = padded_batch()
    with torch.no_grad():
        ref, ours = hf(ids, attention_mask=mask), mini(ids, attention_mask=mask)
    key = "last_hidden_state" if cls is GPT2Model else "logits"
    real = mask.bool() if ref[key].dim() == 3 and cls is not GPT2ForSequenceClassification else slice(None)
    torch.testing.assert_close(ours[key][real], ref[key][real], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", [GPT2Model, GPT2LMHeadModel, GPT2ForSequenceClassification, GPT2ForTokenClassification])
def test_round_trip_is_exact(cls):
    hf = cls(hf_config()).eval()
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_greedy_generate_matches():
    hf = GPT2LMHeadModel(hf_config()).eval()
    mini = from_hf(hf)
    ids = torch.randint(3, 99, (2, 5))
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
    assert torch.equal(hf.generate(ids, **kwargs), mini.generate(ids, **kwargs))


@pytest.mark.parametrize("cls", [GPT2LMHeadModel, GPT2ForSequenceClassification, GPT2ForTokenClassification,
                                 GPT2ForQuestionAnswering])
def test_token_type_ids_are_vocabulary_embeddings_as_in_gpt2(cls):
    """GPT-2 adds the token table's rows for ``token_type_ids`` to each position's embedding (the ids were ignored:
    logits off by 0.45, and ``generate`` refused them); wrong shapes and ids outside the vocabulary are refused."""
    hf = perturb_norms_and_biases(cls(hf_config(num_labels=3)).eval())
    mini = from_hf(hf)
    ids, mask = padded_batch()
    types = torch.randint(90, 99, ids.shape)
    with torch.no_grad():
        ref, ours = hf(ids, attention_mask=mask, token_type_ids=types), mini(ids, attention_mask=mask,
                                                                             token_type_ids=types)
    real = mask.bool() if cls is not GPT2ForSequenceClassification else slice(None)
    key = "start_logits" if cls is GPT2ForQuestionAnswering else "logits"
    torch.testing.assert_close(ours[key][real], ref[key][real], atol=1e-5, rtol=0)
    if cls is GPT2LMHeadModel:
        kwargs = dict(attention_mask=mask, token_type_ids=types, max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(hf.generate(ids, **kwargs), mini.generate(ids, **kwargs))
    # the Trainer passes a model only the columns its forward names: every head must name token_type_ids
    assert "token_type_ids" in inspect.signature(type(mini).forward).parameters
    with pytest.raises(ValueError, match=r"token_type_ids.*shape"):
        mini(ids, token_type_ids=types[:, :-1])
    with pytest.raises(ValueError, match=r"`token_type_ids` contains 99, outside \[0, vocab_size=99\)"):
        mini(ids, token_type_ids=types.fill_(99))


def test_generation_config_travels_both_ways():
    """Stop tokens and ``max_new_tokens`` (a chat model's defaults) come along, as the other converters' do."""
    hf = GPT2LMHeadModel(hf_config()).eval()
    hf.generation_config.max_new_tokens, hf.generation_config.eos_token_id = 3, [2, 7]
    mini = from_hf(hf)
    assert (mini.generation_config.max_new_tokens, mini.generation_config.eos_token_id) == (3, [2, 7])
    ids = torch.tensor([[5, 6, 9]])
    assert hf.generate(ids, do_sample=False).shape == mini.generate(ids, do_sample=False).shape == (1, 6)
    mini.generation_config.max_new_tokens = 4
    back = to_hf(mini)
    assert (back.generation_config.max_new_tokens, back.generation_config.eos_token_id) == (4, [2, 7])
    assert back.generate(ids, do_sample=False).shape == (1, 7)


def test_loss_matches():
    hf = GPT2LMHeadModel(hf_config()).eval()
    mini = from_hf(hf)
    ids = torch.randint(3, 99, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(mini(ids, labels=ids).loss, hf(ids, labels=ids).loss, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cls", [GPT2LMHeadModel, GPT2ForSequenceClassification])
def test_a_training_step_changes_the_same_weights_by_the_same_amount(cls):
    """Fine-tuning a converted GPT-2 is fine-tuning GPT-2 (the tied LM head and the pad token's row included)."""
    hf = cls(hf_config(num_labels=3, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    ids, mask = padded_batch()
    labels = ids.masked_fill(mask == 0, -100) if cls is GPT2LMHeadModel else torch.tensor([0, 2, 1])
    assert_one_training_step_matches(hf, from_hf(hf), dict(input_ids=ids, attention_mask=mask, labels=labels))


def test_gelu_pytorch_tanh_models_convert_as_gelu_new():
    hf = GPT2LMHeadModel(hf_config(activation_function="gelu_pytorch_tanh")).eval()
    mini = from_hf(hf)
    assert mini.config.hidden_act == "gelu_new"
    ids, mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(mini(ids, attention_mask=mask).logits[mask.bool()],
                                   hf(ids, attention_mask=mask).logits[mask.bool()], atol=1e-5, rtol=0)


def test_an_activation_without_a_mini_equivalent_names_gpt2_s_field_and_the_choices():
    with pytest.raises(ValueError, match=r"GPT-2 `activation_function='quick_gelu'` has no mini equivalent; "
                                         r"`activation_function` must be one of 'relu', .*'gelu_pytorch_tanh'"):
        from_hf(GPT2LMHeadModel(hf_config(activation_function="quick_gelu")))


def test_unsupported_options_raise():
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        from_hf(GPT2LMHeadModel(hf_config(scale_attn_by_inverse_layer_idx=True)))
    mini = from_hf(GPT2LMHeadModel(hf_config()))
    mini.config.position_embedding_type = "sinusoidal"
    with pytest.raises(ValueError, match="position_embedding_type"):
        to_hf(mini)
    mini.config.position_embedding_type = "learned"
    mini.config.activation_dropout = 0.1  # GPT-2 has no dropout inside its MLP
    with pytest.raises(ValueError, match="activation_dropout"):
        to_hf(mini)


def cross_attention_gpt2(impl="sdpa", **kw):
    """A random GPT-2 LM whose blocks also attend to an encoder output; norms and biases perturbed (GPT-2 starts
    them at 1 and 0), so that mapping any of them to the wrong place shows."""
    hf = GPT2LMHeadModel(hf_config(add_cross_attention=True, **kw)).eval()
    hf.set_attn_implementation(impl)
    return perturb_norms_and_biases(hf)


def encoder_output(batch=3, length=7):
    """Encoder states (B, S, 32) and their padding mask, row 0 padded at the end by 2."""
    states = torch.randn(batch, length, 32, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, -2:] = 0
    return states, mask


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_cross_attention_gpt2_converts_exactly(impl):
    """GPT-2's ``add_cross_attention`` (its decoder role in ``EncoderDecoderModel``) maps onto the block's cross-
    attention: same logits with padded target and source, the same training step, an exact round trip."""
    hf = cross_attention_gpt2(impl)
    mini = from_hf(hf)
    assert mini.config.add_cross_attention and mini.model.layers[0].cross_attn is not None
    ids, mask = padded_batch()
    states, source_mask = encoder_output()
    batch = dict(input_ids=ids, attention_mask=mask, encoder_hidden_states=states, encoder_attention_mask=source_mask)
    with torch.no_grad():
        ref, ours = hf(**batch).logits, mini(**batch).logits
    torch.testing.assert_close(ours[mask.bool()], ref[mask.bool()], atol=1e-5, rtol=0)
    back = to_hf(mini)
    assert back.config.add_cross_attention
    assert_same_tensors(hf, back)
    labels = ids.masked_fill(mask == 0, -100)
    hf = cross_attention_gpt2(impl, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    assert_one_training_step_matches(hf, from_hf(hf), {**batch, "labels": labels})


def test_an_embedding_dropout_of_its_own_travels_both_ways():
    """GPT-2's `embd_pdrop` apart from its `resid_pdrop` is our `embedding_dropout`; equal, it is left as None."""
    mini = from_hf(GPT2LMHeadModel(hf_config(embd_pdrop=0.0, resid_pdrop=0.1)))
    assert (mini.config.hidden_dropout, mini.config.embedding_dropout) == (0.1, 0.0)
    assert mini.model.embeddings.dropout.p == 0.0
    assert (to_hf(mini).config.embd_pdrop, to_hf(mini).config.resid_pdrop) == (0.0, 0.1)
    assert from_hf(GPT2LMHeadModel(hf_config(embd_pdrop=0.1, resid_pdrop=0.1))).config.embedding_dropout is None


def test_the_token_classifiers_dropout_travels_both_ways():
    """GPT-2's config has no ``hidden_dropout``: its token classifier drops out with 0.1 when no
    ``classifier_dropout`` is set, whatever ``resid_pdrop`` is, where ours falls back to ``hidden_dropout``. Before,
    a GPT-2 with ``resid_pdrop=0`` trained its converted head without dropout (a seeded training forward 0.22
    apart), and an export of ours with ``hidden_dropout=0`` dropped out with 0.1."""
    torch.manual_seed(0)
    hf = GPT2ForTokenClassification(hf_config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, num_labels=3))
    mini = from_hf(hf)
    assert mini.dropout.p == hf.dropout.p == 0.1
    ids, mask = padded_batch()
    hf.train(), mini.train()
    torch.manual_seed(1)
    expected = hf(ids, attention_mask=mask).logits
    torch.manual_seed(1)
    torch.testing.assert_close(mini(ids, attention_mask=mask).logits, expected, atol=1e-5, rtol=1e-5)
    ours = type(mini)(mini.config.__class__(**{**mini.config.to_dict(), "classifier_dropout": None,
                                               "hidden_dropout": 0.0}))
    assert ours.dropout.p == to_hf(ours).dropout.p == 0.0


@pytest.mark.parametrize(("option", "value"), [("attention_scaling", 0.5), ("attention_softcap", 30.0),
                                               ("final_logit_softcap", 30.0)])
def test_export_refuses_an_attention_scale_or_cap_gpt2_lacks(option, value):
    """GPT-2 scales scores by 1 / sqrt(head_dim) and caps nothing: a model that does otherwise has no GPT-2 form."""
    mini = from_hf(GPT2LMHeadModel(hf_config()))
    setattr(mini.config, option, value)
    with pytest.raises(ValueError, match=f"GPT-2 cannot express `{option}={value}`"):
        to_hf(mini)


def test_an_untied_output_layer_converts_both_ways():
    """GPT-2 with `tie_word_embeddings=False` keeps an output matrix of its own: it converts, and exports, exactly."""
    hf = GPT2LMHeadModel(hf_config(tie_word_embeddings=False)).eval()
    mini = from_hf(hf)
    assert mini.lm_head.weight is not mini.model.embeddings.embed_tokens.weight
    assert_same_tensors(hf, to_hf(mini))
    ids, mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(mini(ids, attention_mask=mask).logits, hf(ids, attention_mask=mask).logits,
                                   atol=1e-5, rtol=0)


_REMOTE_THEN_EXPORT = """
import sys
import torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__  # the checkpoint's own code
from modeling_mini.convert import to_hf  # imported only now
gpt2 = to_hf(model)
ids = torch.tensor([[5, 6, 7, 8]])
with torch.no_grad():  # float precision, as every parity test: GPT-2's Conv1D (addmm) and our Linear round alike
    difference = (gpt2(ids).logits - model(ids).logits).abs().max().item()  # only on some CPUs' kernels
assert difference <= 1e-5, difference
print(type(gpt2).__name__)
"""


def test_a_model_loaded_as_remote_code_exports(tmp_path):
    """Loaded with ``trust_remote_code=True`` before the package was imported, a model is an instance of the
    checkpoint's copy of our class; ``to_hf`` still exports it (it raised a bare StopIteration)."""
    import os
    import subprocess
    import sys

    from_hf(GPT2LMHeadModel(hf_config())).save_pretrained(tmp_path / "gpt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", _REMOTE_THEN_EXPORT, str(tmp_path / "gpt")], capture_output=True,
                            text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "GPT2LMHeadModel"


def test_classifier_with_pad_equal_to_eos_pools_as_transformers():
    """The usual GPT-2 fine-tuning setup: ``pad_token = eos_token``, each text ending in an eos its mask keeps.
    transformers pools the last token that is not the pad id, whatever the mask says; so must a converted classifier
    (before, it pooled the last kept token, the eos: logits off by 0.16)."""
    torch.manual_seed(0)
    hf = GPT2ForSequenceClassification(GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                                  num_labels=3, pad_token_id=2, eos_token_id=2)).eval()
    mini = from_hf(hf)
    ids = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 11, 2, 2]])  # each text ends in eos (the pad id); row 1 padded
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])  # as tokenizer(..., padding=True) marks them
    with torch.no_grad():
        torch.testing.assert_close(mini(input_ids=ids, attention_mask=mask).logits,
                                   hf(input_ids=ids, attention_mask=mask).logits, atol=1e-6, rtol=1e-5)
