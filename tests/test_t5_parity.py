"""T5 / T5 v1.1 / mT5 parity: a random T5 (relative attention bias, RMSNorm, no biases, no score scaling; ReLU with a
tied, rescaled output layer, or a gated GELU with an output matrix of its own) converted with the users' converter
computes the same function, and ``to_hf`` exports it back exactly."""

import copy

import pytest
import torch
from conftest import (
    assert_one_training_step_matches,
    assert_same_tensors,
    generate_with_compiled_static_cache,
    perturb_norms_and_biases,
)
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    MT5Config,
    MT5EncoderModel,
    MT5ForConditionalGeneration,
    MT5ForTokenClassification,
    MT5Model,
    T5Config,
    T5EncoderModel,
    T5ForConditionalGeneration,
    T5ForTokenClassification,
    T5Model,
    UMT5Config,
    UMT5EncoderModel,
    UMT5ForConditionalGeneration,
    UMT5ForQuestionAnswering,
    UMT5ForSequenceClassification,
    UMT5ForTokenClassification,
    UMT5Model,
)

from modeling_mini import (
    MiniEncoderConfig,
    MiniEncoderForSequenceClassification,
    MiniEncoderForTokenClassification,
    MiniEncoderModel,
    MiniGPTConfig,
    MiniSeq2SeqConfig,
    MiniSeq2SeqForConditionalGeneration,
)
from modeling_mini.convert import from_hf, to_hf
from modeling_mini.positional import relative_position_buckets

#: T5's layouts: the original (ReLU, tied and rescaled output) and v1.1 / Flan-T5 (gated GELU, its own output matrix)
LAYOUTS = {"t5": dict(feed_forward_proj="relu", tie_word_embeddings=True),
           "t5-v1.1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False)}
SHAPE = dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=6, dropout_rate=0.0,
             relative_attention_num_buckets=8, relative_attention_max_distance=12, decoder_start_token_id=0)


def build(cls=T5ForConditionalGeneration, layout="t5", config_cls=T5Config, **kw):
    """A random T5 (six heads of 8 over 32 features, as T5's ``d_kv`` lets) with every weight perturbed; the v1.1
    layout gets an output matrix of its own, as its checkpoints hold."""
    torch.manual_seed(0)
    model = cls(config_cls(**{**SHAPE, **LAYOUTS[layout], **kw})).eval()
    if layout == "t5-v1.1" and hasattr(model, "lm_head"):
        model.lm_head.weight = torch.nn.Parameter(0.05 * torch.randn(99, 32))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def batch(source_length=20, target_length=18):
    """A source batch padded on the right by 5 in row 0 (longer than the 12-token bucket reach), and targets whose
    row 1 is padded by 4."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 99, (3, source_length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -5:] = 0
    targets = torch.randint(3, 99, (3, target_length), generator=g)
    target_mask = torch.ones_like(targets)
    target_mask[1, -4:] = 0
    return dict(input_ids=ids.masked_fill(mask == 0, 0), attention_mask=mask, decoder_input_ids=targets,
                decoder_attention_mask=target_mask)


def assert_same(hf, mini, inputs):
    with torch.no_grad():
        theirs, ours = hf(**inputs), mini(**inputs)
    key = "logits" if "logits" in theirs else "last_hidden_state"
    real = inputs["decoder_attention_mask"].bool()
    scale = theirs[key][real].abs().max()  # the gated GELU is a formula there and a fused kernel here
    torch.testing.assert_close(ours[key][real], theirs[key][real], atol=1e-6 * max(1.0, scale.item()), rtol=0)
    torch.testing.assert_close(ours.encoder_last_hidden_state[inputs["attention_mask"].bool()],
                               theirs.encoder_last_hidden_state[inputs["attention_mask"].bool()], atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cls", [T5Model, T5ForConditionalGeneration], ids=lambda c: c.__name__)
def test_outputs_match_on_padded_batches(cls, layout, impl):
    """A deeper decoder than encoder too (T5's ``num_decoder_layers``)."""
    hf = build(cls, layout, num_decoder_layers=3)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    config = mini.config
    assert (config.position_embedding_type, config.attention_scaling, config.head_dim) == ("relative", 1.0, 8)
    assert (config.encoder_layers, config.decoder_layers, config._attn_implementation) == (2, 3, impl)
    if cls is T5ForConditionalGeneration:
        assert (config.tie_word_embeddings, config.scale_decoder_output) == ((layout == "t5"),) * 2
    assert_same(hf, mini, batch())


@pytest.mark.parametrize("cls", [MT5Model, MT5ForConditionalGeneration], ids=lambda c: c.__name__)
def test_mt5_converts_and_exports_as_t5(cls):
    """mT5 is T5 v1.1's network (it never rescales its output); it exports as the T5 class of the same head."""
    hf = build(cls, "t5-v1.1", config_cls=MT5Config)
    mini = from_hf(hf)
    assert mini.config.hidden_act == "geglu_tanh" and not mini.config.scale_decoder_output
    assert_same(hf, mini, batch())
    back = to_hf(mini)
    assert type(back).__name__ == cls.__name__.replace("MT5", "T5")
    assert_same(hf, back, batch())


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cls", [T5Model, T5ForConditionalGeneration], ids=lambda c: c.__name__)
def test_round_trip_is_exact(cls, layout):
    hf = build(cls, layout)
    back = to_hf(from_hf(hf))
    assert type(back) is cls
    assert_same_tensors(hf, back)
    if cls is T5ForConditionalGeneration:  # tied exactly when the original is
        assert (back.lm_head.weight is back.shared.weight) == (layout == "t5")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_generation_and_a_training_step_match(layout):
    hf = build(T5ForConditionalGeneration, layout)
    mini = from_hf(hf)
    inputs = batch()
    for search in (dict(do_sample=False), dict(num_beams=3)):
        kwargs = dict(attention_mask=inputs["attention_mask"], max_new_tokens=15, return_dict_in_generate=True,
                      output_scores=True, **search)
        theirs, ours = hf.generate(inputs["input_ids"], **kwargs), mini.generate(inputs["input_ids"], **kwargs)
        assert torch.equal(ours.sequences, theirs.sequences)
        torch.testing.assert_close(torch.stack(ours.scores), torch.stack(theirs.scores), atol=1e-4, rtol=0)
    labels = inputs["decoder_input_ids"].masked_fill(inputs["decoder_attention_mask"] == 0, -100)
    assert_one_training_step_matches(hf, mini, dict(input_ids=inputs["input_ids"],
                                                    attention_mask=inputs["attention_mask"], labels=labels))


def test_the_encoder_only_heads_train_the_pad_row_as_t5_does():
    """T5's token table has no `padding_idx`: its encoder-only heads train the pad token's row where pads are
    attended (no mask). Converted to the encoder family, the row was frozen (BERT's default there)."""
    hf = build(T5ForTokenClassification, "t5-v1.1", num_labels=3)
    ids = batch()["input_ids"]  # row 0 ends in 5 pads (id 0), sent without a mask
    mini = from_hf(hf)
    assert mini.config.freeze_padding_row is False and mini.model.embeddings.embed_tokens.padding_idx is None
    assert_one_training_step_matches(hf, mini, {"input_ids": ids, "labels": ids % 3})


def test_buckets_are_exact_near_and_logarithmic_far():
    """T5's defaults (32 buckets, 128 tokens): an encoder gives each side 16 buckets, 8 of them exact; a decoder gives
    the past all 32, 16 exact; past 128 tokens every distance shares the last bucket. Every distance to +-600 lands in
    transformers' bucket, for both directions and other bucket counts."""
    distance = torch.tensor([0, 1, 7, 8, -1, -7, 200, -200])
    assert relative_position_buckets(distance, True, 32, 128).tolist() == [0, 17, 23, 24, 1, 7, 31, 15]
    back = torch.tensor([0, -1, -15, -16, -32, -127, -1000, 3])  # a decoder: keys after the query never count
    assert relative_position_buckets(back, False, 32, 128).tolist() == [0, 1, 15, 16, 21, 31, 31, 0]
    from transformers.models.t5.modeling_t5 import T5Attention

    every = torch.arange(-600, 601)
    for bidirectional in (True, False):
        for buckets, reach in ((32, 128), (8, 12), (64, 500)):
            assert torch.equal(relative_position_buckets(every, bidirectional, buckets, reach),
                               T5Attention._relative_position_bucket(every, bidirectional, buckets, reach))


def test_the_bias_carries_all_order_and_each_stack_has_its_own():
    """Without its bias a T5 sees its input as a bag of tokens: shuffling the source changes nothing then. With it the
    outputs change; the encoder's bias is bidirectional and the decoder's causal."""
    mini = from_hf(build())
    encoder, decoder = mini.model.encoder, mini.model.decoder
    assert encoder.relative_bias.bidirectional and not decoder.relative_bias.bidirectional
    ids = batch()["input_ids"][1:2]
    shuffled = ids[:, torch.randperm(ids.shape[1], generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        states = [encoder(input_ids=x).last_hidden_state.sort(dim=1).values for x in (ids, shuffled)]
        assert not torch.allclose(*states, atol=1e-3)
        encoder.relative_bias.embed.weight.zero_()
        states = [encoder(input_ids=x).last_hidden_state.sort(dim=1).values for x in (ids, shuffled)]
        torch.testing.assert_close(*states)


def test_cached_decoding_equals_the_full_forward_and_padding_changes_nothing():
    mini = from_hf(build(layout="t5-v1.1"))
    inputs = batch()
    with torch.no_grad():
        full = mini(**inputs).logits
        prefix = {**inputs, "decoder_input_ids": inputs["decoder_input_ids"][:, :10],
                  "decoder_attention_mask": inputs["decoder_attention_mask"][:, :10]}
        cache = mini(**prefix, use_cache=True).cache
        step = mini(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    decoder_input_ids=inputs["decoder_input_ids"][:, 10:11],
                    decoder_attention_mask=inputs["decoder_attention_mask"][:, :11], cache=cache).logits
        torch.testing.assert_close(step[:, 0], full[:, 10], atol=1e-5, rtol=0)
        alone = mini(input_ids=inputs["input_ids"][:1, :15], decoder_input_ids=inputs["decoder_input_ids"][:1]).logits
        torch.testing.assert_close(alone[0], full[0], atol=1e-5, rtol=0)
    # a static cache, its decoding step compiled fullgraph (as transformers does on a GPU), generates the same tokens
    kwargs = dict(attention_mask=inputs["attention_mask"], max_new_tokens=10, do_sample=False)
    assert torch.equal(generate_with_compiled_static_cache(mini, inputs["input_ids"], **kwargs),
                       mini.generate(inputs["input_ids"], **kwargs))


def test_converted_model_saves_reloads_and_compiles(tmp_path):
    hf = build(layout="t5-v1.1")
    from_hf(hf).save_pretrained(tmp_path)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert not reloaded.config.tie_word_embeddings and reloaded.lm_head.weight is not reloaded.get_input_embeddings()
    inputs = batch()
    assert_same(hf, reloaded, inputs)
    compiled = torch.compile(reloaded, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(**inputs).logits, reloaded(**inputs).logits)
    reloaded.set_attn_implementation("flex_attention")
    with pytest.raises(ValueError, match="`position_embedding_type='relative'`.*'eager' or 'sdpa'"):
        reloaded(**inputs)


@pytest.mark.parametrize("cls", [T5ForConditionalGeneration, T5EncoderModel], ids=lambda c: c.__name__)
def test_gradient_checkpointing_gives_the_same_gradients_reentrant_or_not(cls):
    """The trained bias sits in the attention mask, which every layer reads: the blocks take it positionally, so
    either kind of checkpointing recomputes the layers and sends the bias its gradient once."""
    mini = from_hf(build(cls))
    inputs = batch()
    ids, mask, targets = inputs["input_ids"], inputs["attention_mask"], inputs["decoder_input_ids"]
    gradients = []
    for reentrant in (None, True, False):
        model = copy.deepcopy(mini).train()
        if reentrant is not None:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        if cls is T5EncoderModel:
            model(input_ids=ids, attention_mask=mask).last_hidden_state.pow(2).mean().backward()
        else:
            model(input_ids=ids, attention_mask=mask, labels=targets).loss.backward()
        gradients.append({name: param.grad for name, param in model.named_parameters()})
    for checkpointed in gradients[1:]:
        for name, gradient in gradients[0].items():
            torch.testing.assert_close(checkpointed[name], gradient, msg=name)


def test_the_pad_row_trains_as_t5s_start_token():
    """T5's pad token starts every decoder input: its embedding row must train (BART and Marian freeze theirs)."""
    mini = from_hf(build())
    assert not mini.config.freeze_padding_row
    assert mini.model.encoder.embeddings.embed_tokens.padding_idx is None
    assert MiniSeq2SeqForConditionalGeneration(MiniSeq2SeqConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                                                                  num_attention_heads=4)).get_input_embeddings() \
        .padding_idx == 0


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize(("cls", "config_cls", "layout"), [(T5EncoderModel, T5Config, "t5"),
                                                            (MT5EncoderModel, MT5Config, "t5-v1.1")],
                         ids=["T5EncoderModel", "MT5EncoderModel"])
def test_the_encoder_alone_converts_to_a_mini_encoder_and_back(cls, config_cls, layout, impl):
    """T5's encoder alone (sentence-T5, image generators' text encoders) is a MiniEncoderModel with the same bias: the
    same hidden states on a padded batch, a padded text as it is alone, and an exact export (as T5EncoderModel)."""
    hf = build(cls, layout, config_cls=config_cls)
    hf.set_attn_implementation(impl)
    mini = from_hf(hf)
    assert isinstance(mini, MiniEncoderModel) and mini.pooler is None and mini.relative_bias.bidirectional
    assert not {"decoder_start_token_id", "start_with_last_token"} & mini.config.to_dict().keys()  # seq2seq-only
    inputs = batch()
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    with torch.no_grad():
        theirs, ours = hf(input_ids=ids, attention_mask=mask), mini(input_ids=ids, attention_mask=mask)
        torch.testing.assert_close(ours.last_hidden_state[mask.bool()], theirs.last_hidden_state[mask.bool()],
                                   atol=1e-5, rtol=0)
        alone = mini(input_ids=ids[:1, :15]).last_hidden_state[0]
    torch.testing.assert_close(alone, ours.last_hidden_state[0, :15], atol=1e-5, rtol=0)
    back = to_hf(mini)
    assert type(back) is T5EncoderModel
    assert_same_tensors(hf, back)


@pytest.mark.parametrize(("cls", "config_cls", "layout"), [(T5ForTokenClassification, T5Config, "t5"),
                                                            (MT5ForTokenClassification, MT5Config, "t5-v1.1")],
                         ids=["T5ForTokenClassification", "MT5ForTokenClassification"])
def test_the_encoder_tagger_converts_and_back(cls, config_cls, layout):
    """T5's tagger (its encoder alone, then dropout and a linear layer per token) is a
    MiniEncoderForTokenClassification: the same logits and loss on a padded batch, its labels, and an exact export."""
    hf = perturb_norms_and_biases(build(cls, layout, config_cls=config_cls, num_labels=3,
                                        id2label={0: "O", 1: "B-LOC", 2: "I-LOC"}))
    mini = from_hf(hf).eval()
    assert isinstance(mini, MiniEncoderForTokenClassification) and mini.config.id2label[1] == "B-LOC"
    inputs = batch()
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    labels = torch.randint(0, 3, ids.shape).masked_fill(mask == 0, -100)
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask, labels=labels)
        ours = mini(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(ours.logits[mask.bool()], theirs.logits[mask.bool()], atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.loss, theirs.loss, atol=1e-6, rtol=0)
    back = to_hf(mini)
    assert type(back) is T5ForTokenClassification and back.config.id2label[2] == "I-LOC"
    assert_same_tensors(hf, back)
    transformed = MiniEncoderForTokenClassification(mini.config.__class__(**{**mini.config.to_dict(),
                                                                             "head_transform": True}))
    with pytest.raises(ValueError, match="needs `head_transform=False`"):
        to_hf(transformed)


def test_a_converted_t5_encoder_fine_tunes_as_a_classifier(tmp_path):
    """A classification head (mean pooling suits T5, which has no [CLS] token) loads on the converted encoder and
    trains; T5 has no such head on its encoder alone, so that model does not export."""
    from_hf(build(T5EncoderModel)).save_pretrained(tmp_path)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2, classifier_pooling="mean")
    assert isinstance(classifier, MiniEncoderForSequenceClassification)
    inputs = batch()
    out = classifier(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                     labels=torch.tensor([0, 1, 1]))
    out.loss.backward()
    assert classifier.model.relative_bias.embed.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="A T5 encoder exports from a bare MiniEncoderModel"):
        to_hf(classifier)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="`position_embedding_type='relative'`.*MiniEncoderConfig and "
                                         "MiniSeq2SeqConfig option"):
        MiniGPTConfig(position_embedding_type="relative")
    with pytest.raises(ValueError, match="`position_embedding_type='relative'`.*no sliding-window layers"):
        MiniEncoderConfig(position_embedding_type="relative", sliding_window=4)
    with pytest.raises(ValueError, match="`position_embedding_type='relative'`.*`pad_aware_positions=False`"):
        MiniEncoderConfig(position_embedding_type="relative", pad_aware_positions=True, position_offset=1)
    with pytest.raises(ValueError, match="`relative_attention_num_buckets >= 4`"):
        MiniSeq2SeqConfig(position_embedding_type="relative", relative_attention_num_buckets=2)
    for buckets, distance in ((32, 16), (7, 3), (6, 3)):  # a causal stack counts num_buckets / 2 distances exactly
        with pytest.raises(ValueError, match="`relative_attention_max_distance` above half"):
            MiniSeq2SeqConfig(position_embedding_type="relative", relative_attention_num_buckets=buckets,
                              relative_attention_max_distance=distance)
    encoder = from_hf(build(T5EncoderModel))
    with pytest.raises(ValueError, match="`position_ids` given to a model with `position_embedding_type='relative'`"):
        encoder(input_ids=batch()["input_ids"], position_ids=torch.arange(20)[None])
    with pytest.raises(ValueError, match="`position_embedding_type='relative'`.*`position_offset=0`"):
        MiniSeq2SeqConfig(position_embedding_type="relative", position_offset=2)
    with pytest.raises(ValueError, match="`relative_attention_num_buckets` must be an integer"):
        MiniSeq2SeqConfig(relative_attention_num_buckets=0)
    with pytest.raises(ValueError, match="`scale_decoder_output` must be True or False"):
        MiniSeq2SeqConfig(scale_decoder_output="yes")
    with pytest.raises(ValueError, match="`feed_forward_proj='gated-tanh'` has no mini equivalent"):
        from_hf(build(feed_forward_proj="gated-tanh"))
    options = from_hf(build()).config.to_dict()
    for changes, message in [({"norm_type": "layernorm"}, "T5 needs `norm_type='rmsnorm'`"),
                             ({"attention_scaling": None}, "T5 needs `attention_scaling=1.0`"),
                             ({"mlp_bias": True}, "T5 needs `mlp_bias=False`"),
                             ({"attention_dropout": 0.2}, "T5 needs `attention_dropout=0.0`"),
                             ({"embedding_dropout": 0.2}, "T5 drops out its embeddings with its one `dropout_rate`"),
                             ({"hidden_act": "geglu"}, "T5 has no gated feed-forward with `hidden_act='geglu'`"),
                             ({"share_embeddings": False}, "T5 needs `share_embeddings=True`")]:
        with pytest.raises(ValueError, match=message):
            to_hf(MiniSeq2SeqForConditionalGeneration(MiniSeq2SeqConfig(**{**options, **changes})))
    marian_like = dict(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                       sinusoidal_layout="concatenated", decoder_start_token_id=0)
    with pytest.raises(ValueError, match="Marian needs `scale_decoder_output=False`"):
        to_hf(MiniSeq2SeqForConditionalGeneration(MiniSeq2SeqConfig(**marian_like, scale_decoder_output=True)))


# --- UMT5: a relative bias in every self-attention layer -------------------------------------------------------------

UMT5_HEADS = [UMT5ForConditionalGeneration, UMT5Model, UMT5EncoderModel, UMT5ForSequenceClassification,
              UMT5ForQuestionAnswering, UMT5ForTokenClassification]


@pytest.mark.parametrize("cls", UMT5_HEADS, ids=lambda cls: cls.__name__)
def test_umt5_converts_with_a_bias_per_layer_and_back(cls):
    """UMT5 (mT5's network, each self-attention layer with a bias table of its own; eager, as transformers' UMT5
    adds its bias only there): the same outputs on padded batches, a deeper decoder than encoder, one bias per layer,
    and an exact round trip to the same class."""
    labels = 2 if cls is UMT5ForQuestionAnswering else 3
    hf = build(cls, "t5-v1.1", config_cls=UMT5Config, num_decoder_layers=3, num_labels=labels)
    hf.set_attn_implementation("eager")
    mini = from_hf(hf).eval()
    assert mini.config.relative_bias_per_layer
    stacks = [mini.base_model] if cls in (UMT5EncoderModel, UMT5ForTokenClassification) else \
        [mini.get_encoder(), mini.base_model.decoder]
    assert [len(stack.layer_biases) for stack in stacks] == [len(stack.layers) for stack in stacks]
    assert all(stack.relative_bias is None for stack in stacks)
    inputs = batch()
    if cls in (UMT5EncoderModel, UMT5ForTokenClassification, UMT5ForSequenceClassification, UMT5ForQuestionAnswering):
        inputs = {key: inputs[key] for key in ("input_ids", "attention_mask")}
    if cls is UMT5ForSequenceClassification:  # its pooling reads each row's last end-of-text token
        inputs["input_ids"] = torch.cat([inputs["input_ids"][:, :-1], torch.full((3, 1), 1)], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    with torch.no_grad():
        theirs, ours = hf(**inputs), mini(**inputs)
    for key in [k for k in theirs.keys() if k.endswith("logits") or k == "last_hidden_state"]:
        a, b = theirs[key], ours[key]
        mask = inputs.get("decoder_attention_mask", inputs["attention_mask"])
        if a.dim() >= 2 and a.shape[:2] == mask.shape:  # per token: the real ones
            a, b = a[mask.bool()], b[mask.bool()]
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    back = to_hf(mini)
    assert type(back) is cls
    assert_same_tensors(hf, back)


def test_umt5_generates_as_transformers_does_and_sdpa_agrees():
    """Greedy and beam search (cached decoding: each layer's bias for the new position) give UMT5's tokens; our sdpa
    gives eager's logits."""
    hf = build(UMT5ForConditionalGeneration, "t5-v1.1", config_cls=UMT5Config)  # equal depths: transformers' cache
    hf.set_attn_implementation("eager")
    mini = from_hf(hf).eval()
    inputs = batch()
    source = dict(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    for beams in (1, 3):
        settings = dict(max_new_tokens=8, num_beams=beams, do_sample=False)
        assert torch.equal(mini.generate(**source, **settings), hf.generate(**source, **settings))
    with torch.no_grad():
        eager = mini(**inputs).logits
        mini.set_attn_implementation("sdpa")
        torch.testing.assert_close(mini(**inputs).logits, eager, atol=1e-5, rtol=0)


def test_umt5_with_a_deeper_decoder_generates_where_transformers_cannot():
    """transformers' UMT5 sizes its generation cache by the encoder's depth, so `generate` fails with a deeper decoder;
    ours sizes each stack's own, and its greedy tokens are UMT5's own, decoded step by step without a cache."""
    hf = build(UMT5ForConditionalGeneration, "t5-v1.1", config_cls=UMT5Config, num_decoder_layers=3)
    hf.set_attn_implementation("eager")
    mini = from_hf(hf).eval()
    source = batch()["input_ids"][:, :8]
    generated = mini.generate(source, max_new_tokens=5, do_sample=False)
    expected = torch.zeros(3, 1, dtype=torch.long)  # decoder_start_token_id
    with torch.no_grad():
        for _ in range(5):
            logits = hf(input_ids=source, decoder_input_ids=expected, use_cache=False).logits[:, -1]
            expected = torch.cat([expected, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generated, expected)


def test_an_explicit_decoder_start_token_id_of_0_is_kept_beside_another_pad_id():
    """``decoder_start_token_id=0`` with ``pad_token_id=3``: the converted model starts its shifted labels with 0 as
    T5 does (the loss matches), and ``to_hf`` writes 0 back (``or`` once turned the 0 into the pad id 3)."""
    torch.manual_seed(0)
    hf = T5ForConditionalGeneration(T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                                             pad_token_id=3, eos_token_id=1, decoder_start_token_id=0)).eval()
    mini = from_hf(hf).eval()
    ids = torch.randint(4, 99, (2, 7), generator=torch.Generator().manual_seed(0))
    labels = torch.randint(4, 99, (2, 5), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs, ours = hf(input_ids=ids, labels=labels).loss, mini(input_ids=ids, labels=labels).loss
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert mini.config.decoder_start_token_id == 0 and to_hf(mini).config.decoder_start_token_id == 0


def test_float16_overflow_is_clamped_as_transformers_does():
    """T5 checkpoints grow activations past float16's largest value; transformers' T5 clamps the residual stream after
    each sub-layer in float16, and the converted model (``clamp_float16``) does too: finite logits, as HF's, where
    it was all NaN. Other dtypes and families are untouched."""
    hf = build()
    with torch.no_grad():
        for block in (*hf.encoder.block, *hf.decoder.block):
            block.layer[-1].DenseReluDense.wo.weight.mul_(3e4)  # the feed-forward output overflows float16
    mini = from_hf(hf)
    assert mini.config.clamp_float16
    inputs = batch()
    with torch.no_grad():
        theirs = hf.half()(**inputs).logits
        ours = mini.half()(**inputs).logits
    assert torch.isfinite(theirs).all() and torch.isfinite(ours).all()
    real = inputs["decoder_attention_mask"].bool()
    torch.testing.assert_close(ours[real].float(), theirs[real].float(), atol=0.05 * theirs[real].abs().max().item(),
                               rtol=0)
