"""RoBERTa and XLM-RoBERTa parity: random models of every head, converted with the users' converter, compute the same
function, with left or right padding (RoBERTa numbers positions among the real tokens only)."""

import pytest
import torch
import transformers
from conftest import (
    TINY,
    assert_absolute_positions_both_ways,
    assert_one_training_step_matches,
    assert_same_tensors,
    padded_batch,
    perturb_norms_and_biases,
)

import modeling_mini
from modeling_mini.convert import from_hf, to_hf
from modeling_mini.convert_roberta import to_roberta

HEADS = ["Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
         "ForMultipleChoice"]
PAD = 1  # RoBERTa's <pad>; its position table starts at PAD + 1


def build(family: str, head: str, **kw):
    """A random HF model with its norms and biases perturbed, so the map is really tested."""
    config_class = getattr(transformers, f"{family}Config")
    config = config_class(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=37, max_position_embeddings=66, pad_token_id=PAD, bos_token_id=0,
                          eos_token_id=2, num_labels=2 if head == "ForQuestionAnswering" else 3, **kw)
    hf = getattr(transformers, f"{family}{head}")(config).eval()
    return perturb_norms_and_biases(hf)


def batch(head: str, left: bool) -> dict:
    ids, mask = padded_batch(left=left, pad=PAD)
    ids = ids.masked_fill((ids == PAD) & (mask == 1), 5)  # real tokens never use the pad id
    if head == "ForMultipleChoice":  # (B, C, T): two choices per example
        ids, mask = (x[:, None].expand(-1, 2, -1).contiguous() for x in (ids, mask))
    return dict(input_ids=ids, attention_mask=mask)


@pytest.mark.parametrize("left", [False, True], ids=["right-padded", "left-padded"])
@pytest.mark.parametrize("head", HEADS)
def test_roberta_outputs_match_with_either_padding(head, left):
    hf = build("Roberta", head)
    mini = from_hf(hf)
    assert mini.config.pad_aware_positions and mini.config.position_offset == PAD + 1
    inputs = batch(head, left)
    real = inputs["attention_mask"].bool()
    with torch.no_grad():
        ref, ours = hf(**inputs), mini(**inputs)
    for key in [k for k in ref.keys() if k not in ("loss", "pooler_output")]:
        theirs, mine = ref[key], ours[key]
        if head != "ForMultipleChoice" and theirs.shape[:2] == real.shape:  # per token: padding is not compared
            theirs, mine = theirs[real], mine[real]
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0, msg=key)


@pytest.mark.parametrize("family", ["Roberta", "XLMRoberta"])
@pytest.mark.parametrize("head", HEADS)
def test_round_trip_is_exact(family, head):
    hf = build(family, head)
    back = to_hf(from_hf(hf)) if family == "Roberta" else to_roberta(from_hf(hf), family=family)
    assert type(back) is type(hf)
    assert_same_tensors(hf, back)


@pytest.mark.parametrize("head", ["Model", "ForMaskedLM"])
def test_xlm_roberta_outputs_match(head):
    hf = build("XLMRoberta", head)
    inputs = batch(head, left=True)
    with torch.no_grad():
        ref, ours = hf(**inputs), from_hf(hf)(**inputs)
    key = "last_hidden_state" if head == "Model" else "logits"
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(ours[key][real], ref[key][real], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["Bert", "Roberta"])
def test_gelu_python_converts_as_exact_gelu(family):
    """``hidden_act="gelu_python"`` is transformers' exact GELU written with ``erf``: it converts to ``gelu``, with
    the same logits (the RoBERTa converter accepts it, so the shared config must too)."""
    hf = build(family, "ForMaskedLM", hidden_act="gelu_python")
    mini = from_hf(hf)
    assert mini.config.hidden_act == "gelu"
    inputs = batch("ForMaskedLM", left=False)
    real = inputs["attention_mask"].bool()
    with torch.no_grad():
        torch.testing.assert_close(mini(**inputs).logits[real], hf(**inputs).logits[real], atol=1e-5, rtol=0)


@pytest.mark.parametrize("head", ["ForMaskedLM", "ForSequenceClassification"])
def test_a_training_step_changes_the_same_weights_by_the_same_amount(head):
    hf = build("Roberta", head, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    inputs = batch(head, left=False)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    labels = ids.masked_fill(mask == 0, -100) if head == "ForMaskedLM" else torch.tensor([0, 2, 1])
    assert_one_training_step_matches(hf, from_hf(hf), {**inputs, "labels": labels})


def test_attended_pads_train_the_same_rows_as_roberta():
    """Pads sent without an attention mask are attended: RoBERTa's pad token and pad position rows (`padding_idx`)
    get no gradient. The converted model's position row trained (a gradient of 0.64 where RoBERTa's has none)."""
    hf = build("Roberta", "ForMaskedLM", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ids = batch("ForMaskedLM", left=False)["input_ids"]  # padded with PAD, no mask given
    assert (ids == PAD).any()
    mini = from_hf(hf)
    assert mini.model.embeddings.embed_positions.padding_idx == hf.roberta.embeddings.position_embeddings.padding_idx
    assert_one_training_step_matches(hf, mini, {"input_ids": ids, "labels": ids})


def test_real_token_positions_make_padding_side_irrelevant():
    """``pad_aware_positions``: a text has the same outputs alone, right-padded or left-padded (with plain 0, 1, ...
    numbering a left-padded text's tokens would sit at shifted positions)."""
    config = modeling_mini.MiniEncoderConfig(**{**TINY, "pad_token_id": PAD}, position_embedding_type="learned",
                                             position_offset=PAD + 1, pad_aware_positions=True)
    model = modeling_mini.MiniEncoderModel(config).eval()
    text = torch.randint(3, 99, (1, 6), generator=torch.Generator().manual_seed(4))
    pads = torch.full((1, 3), PAD)
    ones, zeros = torch.ones(1, 6, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        alone = model(text).last_hidden_state
        right = model(torch.cat([text, pads], 1), attention_mask=torch.cat([ones, zeros], 1)).last_hidden_state
        left = model(torch.cat([pads, text], 1), attention_mask=torch.cat([zeros, ones], 1)).last_hidden_state
    torch.testing.assert_close(right[:, :6], alone, atol=1e-6, rtol=0)
    torch.testing.assert_close(left[:, 3:], alone, atol=1e-6, rtol=0)
    positions = modeling_mini.positional.positions_of_real_tokens(torch.tensor([[PAD, 7, 8, PAD, 9]]), PAD, PAD + 1)
    assert positions.tolist() == [[PAD, 2, 3, PAD, 4]]


@pytest.mark.parametrize("family", ["Roberta", "XLMRoberta"])
def test_a_relative_position_type_converts_as_absolute_as_transformers_computes(family):
    """Transformers 5's RoBERTa and XLM-R never read `position_embedding_type`: they add their absolute position table
    whatever it says. The converter does the same, and the exported config computes the same."""
    hf = build(family, "ForSequenceClassification", position_embedding_type="relative_key_query")
    mini = from_hf(hf)
    assert_absolute_positions_both_ways(hf, mini, to_roberta(mini, family=family),
                                        batch("ForSequenceClassification", left=True))


@pytest.mark.parametrize("head", ["Model", "ForSequenceClassification", "ForTokenClassification",
                                  "ForQuestionAnswering", "ForMultipleChoice"])
def test_another_feed_forward_activation_converts_for_the_heads_without_roberta_s_gelu(head):
    """`hidden_act` is the layers' feed-forward function, ours too; only the masked-LM head applies a GELU of its
    own, so every other head converts with any activation we have, and exports back."""
    hf = build("Roberta", head, hidden_act="relu")
    mini = from_hf(hf)
    assert mini.config.hidden_act == "relu"
    inputs = batch(head, left=False)
    with torch.no_grad():
        ref, ours = hf(**inputs), mini(**inputs)
    key = "last_hidden_state" if head == "Model" else "start_logits" if head == "ForQuestionAnswering" else "logits"
    torch.testing.assert_close(ours[key], ref[key], atol=1e-5, rtol=0)
    assert_same_tensors(hf, to_hf(mini))


def test_options_roberta_cannot_express_raise():
    with pytest.raises(ValueError, match="masked-LM head applies gelu.*hidden_act='gelu'.*'relu'"):
        from_hf(build("Roberta", "ForMaskedLM", hidden_act="relu"))
    relu_mlm = from_hf(build("Roberta", "Model", hidden_act="relu"))
    relu_mlm = modeling_mini.MiniEncoderForMaskedLM(relu_mlm.config)
    with pytest.raises(ValueError, match="masked-LM head applies gelu: `hidden_act` must be 'gelu'"):
        to_hf(relu_mlm)
    bert_numbered = modeling_mini.MiniEncoderModel(modeling_mini.MiniEncoderConfig(**TINY))
    with pytest.raises(ValueError, match="pad_aware_positions=True"):
        to_roberta(bert_numbered)
    with pytest.raises(ValueError, match="pad_aware_positions.*position_offset >= 1"):
        modeling_mini.MiniEncoderConfig(**TINY, pad_aware_positions=True)
    with pytest.raises(ValueError, match="position_offset.*>= 0"):
        modeling_mini.MiniEncoderConfig(**TINY, position_offset=-1)
    from modeling_mini.convert_bert import bert_config_from_mini

    roberta_numbered = from_hf(build("Roberta", "Model")).config
    with pytest.raises(ValueError, match="BERT numbers positions"):
        bert_config_from_mini(roberta_numbered)
