"""The encoder (BERT-like): a stack of *bidirectional* blocks, pretrained by masked language modelling.

An encoder reads a whole input at once: every token attends to every real token, before and after it
(``is_causal=False``; only padding is masked). It does not generate text; it turns an input into one
contextual vector per token, which task heads then read:

* :class:`MiniEncoderModel`: the backbone, hidden states (B, T, D) and an optional pooled vector (B, D).
* :class:`MiniEncoderForMaskedLM`: pretraining. Some input tokens are replaced by ``[MASK]`` (see
  ``DataCollatorForLanguageModeling``) and the model predicts the originals from both sides' context.
* :class:`MiniEncoderForSequenceClassification`: one label per text (or pair of texts) from the pooled
  first token: binary with one sigmoid logit (spam / not spam), multi-class, multi-label, regression.
* :class:`MiniEncoderForTokenClassification`: one label per token (named entities, BIO tags).
* :class:`MiniEncoderForQuestionAnswering`: extractive QA, the start and end of the answer span.
* :class:`MiniEncoderForMultipleChoice`: scores each (context, choice) pair and picks one.

The blocks, attention, positions and norms are the shared ones (``blocks.py`` ...); this file holds only
what differs: the bidirectional masks, segment ids, the pooler and the heads. With ``sliding_window`` some layers are
*local* (ModernBERT): a token there sees only the tokens within the window on either side.
"""

import inspect

import torch
from torch import nn
from transformers.masking_utils import (
    create_bidirectional_mask,
    create_bidirectional_sliding_window_mask,
    find_packed_sequence_indices,
    packed_sequence_mask_function,
)
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .activations import get_activation, get_pooler_activation
from .attention import MiniAttention
from .blocks import MiniBlock
from .configuration_mini import MiniEncoderConfig
from .modeling_base import (
    MiniEmbeddings,
    MiniPreTrainedModel,
    check_attention_mask,
    check_position_ids,
    check_sequence_input,
    check_token_labels,
    class_id_outside,
    next_positions,
    register_family,
    sequence_classification_loss,
    span_logits,
    span_loss,
)
from .normalization import build_norm
from .positional import (
    biased_mask,
    build_layer_biases,
    build_relative_bias,
    build_rotary,
    layer_mask,
    positions_of_real_tokens,
    rotations_per_layer_type,
)

#: Bidirectional self-attention, and its sliding-window (local) form: transformers' mask builder for each layer type.
#: Each masks padding (and, local, the tokens farther than ``sliding_window``) in the format the backend takes.
MASK_FUNCTIONS = {
    "full_attention": create_bidirectional_mask,
    "sliding_attention": create_bidirectional_sliding_window_mask,
}
#: transformers 5.25's bidirectional masks read ``position_ids`` to keep packed sequences apart; 5.24's took the
#: argument and ignored it, so there the encoder adds that block-diagonal rule itself (:func:`packed_sequences_rule`)
MASKS_READ_POSITIONS = "position_ids" in inspect.signature(create_bidirectional_mask).parameters


def packed_sequences_rule(position_ids: torch.Tensor | None, attention_mask, batch: int) -> dict:
    """``{"and_mask_function": ...}`` keeping the sequences of a padding-free row apart (a query sees only keys of its
    own sequence: position ids restart at 0 where one begins), for a transformers whose masks do not do it; else
    ``{}``. Only without an attention mask, as transformers decides: a padded batch is one sequence per row."""
    if MASKS_READ_POSITIONS or position_ids is None or attention_mask is not None:
        return {}
    sequences = find_packed_sequence_indices(position_ids.expand(batch, -1))  # (B, T) sequence number, or None
    return {} if sequences is None else {"and_mask_function": packed_sequence_mask_function(sequences)}


def _classifier_dropout(config) -> nn.Dropout:
    return nn.Dropout(config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout)


class MiniEncoderPreTrainedModel(MiniPreTrainedModel):
    config_class = MiniEncoderConfig
    _can_record_outputs = {"hidden_states": MiniBlock, "attentions": MiniAttention}


class MiniHeadTransform(nn.Module):
    """BERT's prediction-head transform before the vocabulary projection: dense -> activation -> norm. With
    ``head_transform`` (ModernBERT) every task head has one of its own before its classifier."""

    def __init__(self, config, width: int | None = None):
        super().__init__()
        width = config.hidden_size if width is None else width  # the masked-LM head's: the embeddings' width
        self.dense = nn.Linear(config.hidden_size, width, bias=config.head_bias)
        self.act_fn = get_activation(config.hidden_act)  # for a gated name, its gate's element-wise function
        self.norm = build_norm(config, width)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act_fn(self.dense(hidden_states)))


class MiniPooler(nn.Module):
    """One vector summarising the whole input, for the sentence-level heads (classification, multiple choice).

    BERT's (the default): ``tanh(W h_0 + b)`` over the first token (``[CLS]``). Every token sees the whole input in
    an encoder, so the first one can stand for it; the dense layer is trained by the sentence-level heads.
    ``pooler_activation="relu"`` makes it DistilBERT's ``relu(W h_0 + b)`` (its classifier's ``pre_classifier``).
    ``classifier_pooling="mean"`` averages the real tokens' states instead (padding left out), and ``head_transform``
    (ModernBERT) passes the pooled vector through a :class:`MiniHeadTransform` instead of dense and tanh."""

    def __init__(self, config):
        super().__init__()
        self.mean = config.classifier_pooling == "mean"
        self.transform = MiniHeadTransform(config) if config.head_transform else None
        if self.transform is None:
            self.dense = nn.Linear(config.hidden_size, config.hidden_size)
            self.activation = get_pooler_activation(config.pooler_activation)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, D)."""
        if not self.mean:
            pooled = hidden_states[:, 0]
        elif attention_mask is None:
            pooled = hidden_states.mean(dim=1)
        else:
            real = attention_mask[..., None].to(hidden_states.dtype)  # (B, T, 1): 1 on tokens, 0 on padding
            pooled = (hidden_states * real).sum(dim=1) / real.sum(dim=1)
        if self.transform is not None:
            return self.transform(pooled)
        return self.activation(self.dense(pooled))


class MiniEncoderModel(MiniEncoderPreTrainedModel):
    """The encoder backbone: embeddings (+ segments) -> ``num_hidden_layers`` bidirectional blocks.

    Args:
        config: a :class:`MiniEncoderConfig`.
        add_pooling_layer: build the pooler; ``None`` follows ``config.add_pooler``. Heads that do not
            read it (masked LM, token classification, QA) pass ``False``, as BERT does.
    """

    def __init__(self, config: MiniEncoderConfig, add_pooling_layer: bool | None = None):
        super().__init__(config)
        self.embeddings = MiniEmbeddings(
            config, freeze_padding_row=config.freeze_padding_row, width=config.embedding_size,
            type_vocab_size=config.type_vocab_size,
            frozen_position_row=config.position_offset - 1 if config.pad_aware_positions else None)
        self.rotary = build_rotary(config)
        self.sliding_rotary = build_rotary(config, sliding=True)  # None unless sliding layers have their own base
        self.relative_bias = build_relative_bias(config, bidirectional=True)  # T5's encoder
        self.layer_biases = build_layer_biases(config, True, config.num_hidden_layers)  # UMT5's: one per layer
        # one block per layer, or, with ALBERT's sharing (``num_hidden_groups``), fewer blocks that run in turn
        groups = config.num_hidden_groups or config.num_hidden_layers
        self.layers = nn.ModuleList(
            MiniBlock(config, i, is_causal=False, sliding_window=config.layer_sliding_window(i)) for i in range(groups)
        )
        #: which block each of the ``num_hidden_layers`` layers runs
        self.block_of_layer = [i * groups // config.num_hidden_layers for i in range(config.num_hidden_layers)]
        #: the masks a forward builds: the whole-input one, the sliding-window one, or both (one each, for all layers)
        self.attention_types = sorted({block.attention_type for block in self.layers})
        self.norm = build_norm(config) if config.final_norm else None
        add_pooling_layer = config.add_pooler if add_pooling_layer is None else add_pooling_layer
        self.pooler = MiniPooler(config) if add_pooling_layer else None
        self.gradient_checkpointing = False
        self.post_init()

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Hidden states (B, T, D) of ``input_ids`` (B, T); ``attention_mask`` 1 = token, 0 = padding;
        ``token_type_ids`` (B, T) segment ids in ``[0, type_vocab_size)`` (zeros when omitted)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        kwargs.pop("use_cache", None)  # an encoder keeps no cache (pipelines may still pass the flag)
        inputs = input_ids if input_ids is not None else inputs_embeds
        batch, length = check_sequence_input(input_ids, inputs_embeds, self.embeddings.input_width)
        check_attention_mask(attention_mask, batch, length, implementation=self.config._attn_implementation,
                             query_length=length, num_heads=self.config.num_attention_heads)  # flex refuses a 4D mask
        if token_type_ids is not None:
            self._check_token_type_ids(token_type_ids, batch, length)
        check_position_ids(position_ids, batch, length)
        max_position = None  # known without reading the ids only when made here
        max_position_reached = True  # the bound is an id (arange), not only a bound
        offset = self.config.position_offset
        given_positions = position_ids
        if position_ids is None and self.config.pad_aware_positions and input_ids is not None:
            position_ids = positions_of_real_tokens(input_ids, self.config.pad_token_id, offset)  # (B, T)
            max_position = offset + length - 1  # a bound (no pads), known without reading the ids
            max_position_reached = False
        elif position_ids is None:
            position_ids, max_position = next_positions(0, length, inputs.device, offset)  # (1, T)

        hidden_states = self.embeddings(input_ids, inputs_embeds, position_ids, token_type_ids, max_position,
                                        max_position_reached)
        # padding masks (and the window, for local layers), in the format the attention backend wants (None when
        # nothing is masked). A padding-free batch (sequences joined in one row, no attention mask, given position
        # ids restarting at 0: DataCollatorWithFlattening's) gets a block-diagonal mask from the ids, as BERT's
        if self.relative_bias is None and self.layer_biases is None:
            packed = packed_sequences_rule(given_positions, attention_mask, hidden_states.shape[0])
            masks = {kind: MASK_FUNCTIONS[kind](config=self.config, inputs_embeds=hidden_states,
                                                attention_mask=attention_mask,
                                                position_ids=None if packed else given_positions, **packed)
                     for kind in self.attention_types}
            queries = None  # only a relative bias reads positions
        else:  # T5: the bias needs a mask tensor to sit in, padding or not (and its config has no sliding layers)
            if given_positions is not None:
                raise ValueError("`position_ids` given to a model with `position_embedding_type='relative'` (T5's "
                                 "bias), which reads distances between the tokens of each row as they stand: pass "
                                 "none (for packed sequences, one row per sequence).")
            full = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states,
                                             attention_mask=attention_mask, allow_is_bidirectional_skip=False)
            queries = torch.arange(length, device=inputs.device)[None]  # T5 reads no position ids: 0 .. T - 1
            if self.relative_bias is not None:  # T5: one bias for every layer (UMT5's go in per layer, below)
                full = biased_mask(self, full, queries, full.shape[-1], dtype=hidden_states.dtype)  # (B, H, T, T)
            masks = {"full_attention": full}
        rotations = rotations_per_layer_type(self, position_ids, hidden_states.dtype)  # (cos, sin) per layer type
        for layer, index in enumerate(self.block_of_layer):
            block = self.layers[index]
            mask = layer_mask(self, masks[block.attention_type], layer, queries, length, dtype=hidden_states.dtype)
            # the mask positionally: with T5's relative bias it is trained (gradient checkpointing)
            hidden_states = block(hidden_states, None, mask, position_embeddings=rotations[block.attention_type],
                                  **kwargs)
        if self.norm is not None:
            hidden_states = self.norm(hidden_states)
        pooled = self.pooler(hidden_states, attention_mask) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=hidden_states, pooler_output=pooled)

    def _check_token_type_ids(self, token_type_ids: torch.Tensor, batch: int, length: int) -> None:
        """The shape; the values are checked with the other ids, in the embeddings' one host read (a model without
        a segment table ignores them, as DistilBERT and ModernBERT do)."""
        if tuple(token_type_ids.shape) != (batch, length):
            raise ValueError(f"`token_type_ids` must have shape (batch_size, sequence_length) = ({batch}, {length}); "
                             f"got {tuple(token_type_ids.shape)}.")


class MiniEncoderForMaskedLM(MiniEncoderPreTrainedModel):
    """Masked language modelling: predict the original token at every masked position.

    ``labels`` (B, T) hold the original ids where the input was masked and -100 elsewhere. The output layer
    ``lm_head`` shares its matrix with the token embeddings and has its own per-token bias. The loss is a
    sum over masked tokens divided by their count, or by ``num_items_in_batch`` when the Trainer accumulates
    gradients, so that micro-batches with different numbers of masked tokens add up to the joined batch.
    """

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.embed_tokens.weight"}

    def __init__(self, config: MiniEncoderConfig):
        super().__init__(config)
        self.model = MiniEncoderModel(config, add_pooling_layer=False)
        width = config.embedding_size or config.hidden_size  # a factorised embedding: back down to its width
        self.transform = MiniHeadTransform(config, width)
        self.lm_head = nn.Linear(width, config.vocab_size, bias=True)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        reference = input_ids if input_ids is not None else inputs_embeds
        if labels is not None and reference is not None:  # before the forward, as the GPT's (one early host sync)
            check_sequence_input(input_ids, inputs_embeds)  # the input's own shape first: labels are compared to it
            labels = check_token_labels(labels, reference.shape[:2], num_classes=self.config.vocab_size,
                                        classes_name="vocab_size")
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        hidden_states = outputs.last_hidden_state
        if labels is not None:
            if self.config.sparse_prediction:
                # only masked positions count in the loss: project just those onto the vocabulary
                # (B*T,) -> (N,): the flat indices of the scored positions, found once (a data-dependent size: one
                # host sync, and one graph break under torch.compile, where two boolean indexings took two)
                scored = (labels.flatten() != -100).nonzero().squeeze(-1)
                hidden_states = hidden_states.flatten(0, 1).index_select(0, scored)  # (N, D)
                labels = labels.flatten().index_select(0, scored)  # (N,)
        logits = self.lm_head(self.transform(hidden_states))  # (B, T, V), or (N, V) with sparse_prediction
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                              attentions=outputs.attentions)


class MiniEncoderForSequenceClassification(MiniEncoderPreTrainedModel):
    """Classify a text (or a pair: pass ``token_type_ids``) from the pooled first token.

    ``problem_type`` follows transformers: ``single_label_classification`` (softmax), ``multi_label_classification``
    (a sigmoid per label; with ``num_labels=1`` the binary spam / not-spam head), ``regression``. See
    :func:`modeling_base.sequence_classification_loss`, which also checks the labels' shape and dtype.
    """

    def __init__(self, config: MiniEncoderConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = MiniEncoderModel(config, add_pooling_layer=True)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, num_items_in_batch)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                        attentions=outputs.attentions)


class MiniEncoderForTokenClassification(MiniEncoderPreTrainedModel):
    """A label per token (e.g. BIO entity tags) from each position's hidden state; labels -100 are ignored."""

    def __init__(self, config: MiniEncoderConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = MiniEncoderModel(config, add_pooling_layer=False)
        self.transform = MiniHeadTransform(config) if config.head_transform else None
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> TokenClassifierOutput:
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        hidden_states = outputs.last_hidden_state
        if self.transform is not None:
            hidden_states = self.transform(hidden_states)
        logits = self.classifier(self.dropout(hidden_states))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            labels = check_token_labels(labels, logits.shape[:2], num_classes=self.num_labels)
            loss = self.loss_function(logits, labels, self.config, **kwargs)
        return TokenClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                     attentions=outputs.attentions)


class MiniEncoderForQuestionAnswering(MiniEncoderPreTrainedModel):
    """Extractive question answering: for each token, a score for "the answer starts here" and one for
    "it ends here". Input is ``[CLS] question [SEP] context [SEP]``; the answer is the best valid span.

    ``start_positions`` / ``end_positions`` (B,) are token indices; as in transformers, positions outside
    the input are clamped to ``T`` and ignored by the loss, which is the mean of the start and end losses.
    """

    def __init__(self, config: MiniEncoderConfig):
        super().__init__(config)
        self.model = MiniEncoderModel(config, add_pooling_layer=False)
        # ModernBERT's: a transform and dropout before the span scores (BERT has neither)
        self.transform = MiniHeadTransform(config) if config.head_transform else None
        self.dropout = _classifier_dropout(config) if config.head_transform else None
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        **kwargs,
    ) -> QuestionAnsweringModelOutput:
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        hidden_states = outputs.last_hidden_state
        if self.transform is not None:
            hidden_states = self.dropout(self.transform(hidden_states))
        start_logits, end_logits = span_logits(self.qa_outputs(hidden_states))  # (B, T, 2) -> (B, T) each
        loss = span_loss(self, start_logits, end_logits, start_positions, end_positions, **kwargs)
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                            hidden_states=outputs.hidden_states, attentions=outputs.attentions)


class MiniEncoderForMultipleChoice(MiniEncoderPreTrainedModel):
    """Pick one of ``C`` choices: each (context, choice) pair is encoded on its own, its pooled first token
    gets one score, and a softmax over the ``C`` scores gives the choice. Inputs are (B, C, T); ``labels``
    (B,) the index of the right choice."""

    def __init__(self, config: MiniEncoderConfig):
        super().__init__(config)
        self.model = MiniEncoderModel(config, add_pooling_layer=True)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> MultipleChoiceModelOutput:
        batch, num_choices = self._check_choices(input_ids, attention_mask, token_type_ids, position_ids,
                                                 inputs_embeds)

        def flat(x):  # (B, C, T, ...) -> (B * C, T, ...): every choice is an independent input
            return None if x is None else x.reshape(batch * num_choices, *x.shape[2:])

        outputs = self.model(input_ids=flat(input_ids), attention_mask=flat(attention_mask),
                             token_type_ids=flat(token_type_ids), position_ids=flat(position_ids),
                             inputs_embeds=flat(inputs_embeds), return_dict=True, **kwargs)
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(batch, num_choices)  # (B, C)
        loss = None
        if labels is not None:
            if labels.dtype.is_floating_point or labels.dtype == torch.bool or tuple(labels.shape) != (batch,):
                raise ValueError(f"`labels` must be integer choice indices of shape ({batch},) in [0, {num_choices}); "
                                 f"got shape {tuple(labels.shape)} and dtype {labels.dtype}.")
            labels = labels.to(logits.device).long()  # int32 indices are indices too; the cross-entropy takes long
            if class_id_outside(labels, num_choices) is not None:
                raise ValueError(f"`labels` must be in [0, num_choices={num_choices}) or -100.")
            losses = nn.functional.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="sum")
            loss = losses / (num_items_in_batch if num_items_in_batch is not None else (labels != -100).sum())
        return MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                         attentions=outputs.attentions)

    @staticmethod
    def _check_choices(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds) -> tuple[int, int]:
        """(batch, num_choices), once every input is checked to be per choice, (B, C, T) (embeddings (B, C, T, E); a
        4D mask per choice, (B, C, heads or 1, T or 1, T)): each is flattened to (B * C, T, ...), and a tensor of
        another shape would fail there unnamed, or be cut into rows that mix choices. Shapes only: no device read."""
        if input_ids is not None and input_ids.dim() != 3:
            raise ValueError(f"Multiple choice needs `input_ids` of shape (batch_size, num_choices, sequence_length); "
                             f"got {tuple(input_ids.shape)}.")
        if input_ids is None and inputs_embeds is not None and inputs_embeds.dim() != 4:
            raise ValueError(f"Multiple choice needs `inputs_embeds` of shape (batch_size, num_choices, "
                             f"sequence_length, width); got {tuple(inputs_embeds.shape)}.")
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None:
            raise ValueError("Multiple choice needs `input_ids` of shape (batch_size, num_choices, sequence_length).")
        choices = tuple(reference.shape[:3])  # (B, C, T)
        for name, given in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids),
                            ("position_ids", position_ids)):
            if given is None:
                continue
            per_choice = tuple(given.shape) == choices or (name == "attention_mask" and given.dim() == 5
                                                            and tuple(given.shape[:2]) == choices[:2])
            if not per_choice:
                raise ValueError(f"`{name}` must have one row per choice, shape (batch_size, num_choices, "
                                 f"sequence_length) = {choices}, like the inputs; got {tuple(given.shape)}.")
        return choices[0], choices[1]


register_family(
    MiniEncoderPreTrainedModel,
    {
        "AutoModel": MiniEncoderModel,
        "AutoModelForMaskedLM": MiniEncoderForMaskedLM,
        "AutoModelForSequenceClassification": MiniEncoderForSequenceClassification,
        "AutoModelForTokenClassification": MiniEncoderForTokenClassification,
        "AutoModelForQuestionAnswering": MiniEncoderForQuestionAnswering,
        "AutoModelForMultipleChoice": MiniEncoderForMultipleChoice,
    },
)
