"""GPT: a decoder-only Transformer, a stack of *causal* blocks over token + position embeddings.

GPT has no encoder. Every block's self-attention is masked so that position ``t`` only sees positions
``<= t``; trained to predict token ``t + 1`` at every position at once (causal language modelling), the same
network then generates text one token at a time, reusing the keys and values of earlier tokens from a cache.
With ``add_cross_attention`` (off by default, as in GPT-2) the blocks also read ``encoder_hidden_states``: the
GPT then serves as the decoder of transformers' ``EncoderDecoderModel``.

* :class:`MiniGPTModel`: the backbone, returning hidden states (B, T, D).
* :class:`MiniGPTForCausalLM`: + a language-model head tied to the token embeddings; pretraining and
  ``generate``.
* :class:`MiniGPTForSequenceClassification`: classifies a text from its last real token.
* :class:`MiniGPTForTokenClassification`: a label per token (from left context only).
* :class:`MiniGPTForQuestionAnswering`: extractive QA, the start and end of the answer span (from left context only).
"""

import torch
from torch import nn
from transformers import GenerationMixin
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.masking_utils import (
    create_bidirectional_mask,
    create_causal_mask,
    create_sliding_window_causal_mask,
)
from transformers.modeling_outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutputWithPast,
    TokenClassifierOutput,
)
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .attention import MiniAttention
from .blocks import MiniBlock
from .configuration_mini import MiniGPTConfig
from .modeling_base import (
    MiniEmbeddings,
    MiniPreTrainedModel,
    check_attention_mask,
    check_encoder_states,
    check_position_ids,
    check_sequence_input,
    check_token_labels,
    last_token_pool,
    next_positions,
    register_family,
    sequence_classification_loss,
    span_logits,
    span_loss,
)
from .normalization import build_norm
from .positional import (
    allowed_by_mask,
    biased_mask,
    build_relative_bias,
    build_rotary,
    positions_from_attention_mask,
    rotations_per_layer_type,
)

#: Masked (causal) self-attention, and its sliding-window form: transformers' mask builder for each layer type.
#: Each returns what the attention backend takes (a boolean or additive 4D mask, a flex ``BlockMask``, or None when
#: sdpa's own causal flag says it all), sized to the cache: a sliding layer's cache keeps only its window.
MASK_FUNCTIONS = {
    "full_attention": create_causal_mask,
    "sliding_attention": create_sliding_window_causal_mask,
}


class MiniGPTPreTrainedModel(MiniPreTrainedModel):
    config_class = MiniGPTConfig
    _can_record_outputs = {
        "hidden_states": MiniBlock,
        "attentions": OutputRecorder(MiniAttention, index=1, layer_name="self_attn"),
        "cross_attentions": OutputRecorder(MiniAttention, index=1, layer_name="cross_attn"),
    }


class MiniGPTModel(MiniGPTPreTrainedModel):
    """The GPT backbone: embeddings -> ``num_hidden_layers`` causal blocks -> final norm (pre-norm) -> with a narrow
    token table (``token_embedding_size``), ``project_out`` down to its width.

    With ``config.add_cross_attention`` each block also attends to ``encoder_hidden_states`` (B, S, D), masked by
    ``encoder_attention_mask`` (B, S); their keys and values are cached once per generation in an
    ``EncoderDecoderCache``, as in the seq2seq decoder.
    """

    def __init__(self, config: MiniGPTConfig):
        super().__init__(config)
        self.embeddings = MiniEmbeddings(config, freeze_padding_row=config.freeze_padding_row,  # off: as GPT-2
                                         token_width=config.token_embedding_size, token_types_in_vocabulary=True)
        self.rotary = build_rotary(config)
        self.sliding_rotary = build_rotary(config, sliding=True)  # None unless sliding layers have their own base
        self.relative_bias = build_relative_bias(config, bidirectional=False)  # ALiBi (BLOOM); None otherwise
        self.layers = nn.ModuleList(
            MiniBlock(
                config,
                i,
                is_causal=True,
                has_cross_attention=config.add_cross_attention,
                sliding_window=config.layer_sliding_window(i),
            )
            for i in range(config.num_hidden_layers)
        )
        #: the masks a forward builds: the causal one, the sliding-window one, or both (one each, for all layers)
        self.attention_types = sorted({block.attention_type for block in self.layers})
        #: the rotation each layer gets: its layer type's, or none for a NoPE layer (``nope_layers``, SmolLM3)
        nope = set(config.nope_layers or ())
        self.layer_rotations = [None if i in nope else block.attention_type for i, block in enumerate(self.layers)]
        self.norm = build_norm(config) if config.final_norm else None
        # OPT-350M: back down to the narrow token table's width, which the tied head reads
        narrow = config.output_size != config.hidden_size
        self.project_out = nn.Linear(config.hidden_size, config.output_size, bias=False) if narrow else None
        self.gradient_checkpointing = False
        self.post_init()

    @capture_outputs
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")  # 4.x name, as library models
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """Hidden states (B, T, D) for ``input_ids`` (B, T), continuing ``cache`` if given. ``token_type_ids`` (B, T):
        tokens whose embeddings are added to each position's, as GPT-2 and GPT-J take them."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        cross = self.config.add_cross_attention
        if encoder_hidden_states is not None and not cross:
            raise ValueError("`encoder_hidden_states` given, but the model has no cross-attention: build it with "
                             "`add_cross_attention=True`.")
        if cross and encoder_hidden_states is None:
            raise ValueError("This model has `add_cross_attention=True`: pass `encoder_hidden_states` "
                             "(B, S, hidden_size), the encoder output its cross-attention reads.")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False  # the recompute in backward would append to the cache a second time
        made_cache = use_cache and cache is None
        if made_cache:
            cache = DynamicCache(config=self.config)
        if cross and use_cache and isinstance(cache, DynamicCache):  # a slot for the cross-attention keys/values
            cache = EncoderDecoderCache(cache, DynamicCache())  # no config: a cross-attention cache never slides
        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache

        inputs = input_ids if input_ids is not None else inputs_embeds
        batch, length = check_sequence_input(input_ids, inputs_embeds, self.embeddings.input_width)
        # a paged cache (continuous batching, ``generate_batch``) is not a ``Cache`` and has no single length: its
        # caller passes the position ids and a 4D mask, so the past length is never needed then
        past = self_cache.get_seq_length() if isinstance(self_cache, Cache) else 0
        # ``generate`` with a static cache builds the masks itself, one per layer type: {layer type: 4D mask}
        prepared_masks = attention_mask if isinstance(attention_mask, dict) else None
        implementation = self.config._attn_implementation  # flex attention refuses a 4D tensor mask
        if prepared_masks is None:
            # a static cache's 4D mask spans all its slots, a paged cache's the blocks it reads: not `past + length`
            counted = self_cache is None or isinstance(self_cache, Cache) and not self_cache.is_compileable
            keys = past + length if counted else None
            check_attention_mask(attention_mask, batch, keys, implementation=implementation, query_length=length,
                                 num_heads=self.config.num_attention_heads)
        if cross:
            check_encoder_states(encoder_hidden_states, batch, self.config.hidden_size, "encoder_hidden_states")
            source_length = encoder_hidden_states.shape[1]
            check_attention_mask(encoder_attention_mask, batch, source_length, "encoder_attention_mask",
                                 implementation, query_length=length, num_heads=self.config.num_attention_heads)
        max_position = None  # known without reading the ids only when made here
        max_position_reached = True  # the bound is an id (arange), not only a bound
        check_position_ids(position_ids, batch, length)
        given_positions = position_ids
        offset = self.config.position_offset  # OPT's table starts at row 2
        mask_2d = isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2
        if position_ids is None and self.config.pad_aware_positions and mask_2d:
            position_ids = positions_from_attention_mask(attention_mask, length, offset)  # (B, T)
            # a bound (no padding), known without reading the ids; a static cache's tensor count leaves it unknown
            max_position = None if isinstance(past, torch.Tensor) else offset + past + length - 1
            max_position_reached = False
        elif position_ids is None:
            position_ids, max_position = next_positions(past, length, inputs.device, offset)  # (1, T)
        elif offset:
            position_ids = position_ids + offset  # given ids count from 0

        if token_type_ids is not None and tuple(token_type_ids.shape) != (batch, length):
            raise ValueError(f"`token_type_ids` must have shape (batch_size, sequence_length) = ({batch}, {length}); "
                             f"got {tuple(token_type_ids.shape)}.")
        hidden_states = self.embeddings(input_ids, inputs_embeds, position_ids, token_type_ids, max_position,
                                        max_position_reached)
        mask_kwargs = dict(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=attention_mask,
            # Padding-free batches (sequences joined in one row, no attention mask, position ids restarting at 0):
            # transformers finds the sequences from the position ids and makes the mask block-diagonal. It looks only
            # when there is no cache, so a cache this call made (empty: it changes no mask size) is left out; and
            # only at ids the caller passed, since ids made here never restart (looking costs a host sync).
            cache=None if made_cache else self_cache,
            position_ids=given_positions,
        )
        if self.relative_bias is None:
            masks = prepared_masks or {kind: MASK_FUNCTIONS[kind](**mask_kwargs) for kind in self.attention_types}
        else:  # ALiBi: the penalty needs a mask tensor to sit in (its config has no sliding layers)
            full = (prepared_masks or {}).get("full_attention")
            if full is None:  # none given, or generate's sdpa skipped it (no padding): a plain causal mask
                plain = {**mask_kwargs, "attention_mask": None} if prepared_masks is not None else mask_kwargs
                full = create_causal_mask(**plain, allow_is_causal_skip=False)
            positions = self._alibi_positions(full, past, length, inputs.device)
            masks = {"full_attention": biased_mask(self, full, *positions, dtype=hidden_states.dtype)}  # (B, H, T, S)
        cross_mask = None
        if cross:
            cross_mask = create_bidirectional_mask(
                config=self.config,
                inputs_embeds=hidden_states,
                attention_mask=encoder_attention_mask,
                encoder_hidden_states=encoder_hidden_states,
            )
        rotations = rotations_per_layer_type(self, position_ids, hidden_states.dtype)  # (cos, sin) per layer type
        depth = self.config.num_hidden_layers  # all; k while generate(assistant_early_exit=k) drafts with the first k
        for block, rotation in zip(self.layers[:depth], self.layer_rotations[:depth], strict=True):
            hidden_states = block(
                hidden_states,
                encoder_hidden_states,  # positional: gradient checkpointing passes tensors through
                attention_mask=masks[block.attention_type],
                encoder_attention_mask=cross_mask,
                position_embeddings=rotations[rotation] if rotation else None,
                cache=cache,
                **kwargs,
            )
        if self.norm is not None:
            hidden_states = self.norm(hidden_states)
        if self.project_out is not None:
            hidden_states = self.project_out(hidden_states)  # (B, T, D) -> (B, T, token_embedding_size)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, cache=cache if use_cache else None
        )

    @staticmethod
    def _alibi_positions(mask, past, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """ALiBi's (query, key) positions from the 4D causal ``mask`` (B, 1, T, S), however it was made (from a 2D
        mask, by ``generate`` for a static cache, block-diagonal for a padding-free batch, or given): in each query's
        row, each key's rank among the keys that query may see, BLOOM's count, so padding anywhere in a row (as
        right-padded prompts get during ``generate``) moves no distance, and a packed batch's sequences each count
        from their own start. A query's own rank is its row's count (it sees itself last); keys it may not see
        (another sequence's, a static cache's empty slots) are masked anyway. Returns (B, T) and (B, T, S)."""
        if not isinstance(mask, torch.Tensor):  # a flex BlockMask: refused with a clear error by biased_mask
            slots = torch.arange(length, device=device) + past
            return slots[None], torch.arange(length, device=device)[None, None]
        allowed = allowed_by_mask(mask)  # a user's soft (additive, not minimal) entry is a key too
        ranks = allowed[:, 0].cumsum(dim=-1, dtype=torch.int32)  # (B, T, S): 1 for a row's first visible key
        return ranks[:, :, -1], ranks  # (B, T), (B, T, S)


class MiniGPTForCausalLM(MiniGPTPreTrainedModel, GenerationMixin):
    """GPT with a language-model head: logits over the vocabulary for the next token at every position.

    The head shares its matrix with the token embeddings (``tie_word_embeddings``): the same vector
    represents a token going in and scores it coming out. Pass ``labels`` (usually the ``input_ids``, with
    -100 on padding) for the causal-LM loss; the shift by one position happens inside the loss.
    """

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.embed_tokens.weight"}

    def __init__(self, config: MiniGPTConfig):
        super().__init__(config)
        self.model = MiniGPTModel(config)
        self.lm_head = nn.Linear(config.output_size, config.vocab_size, bias=config.lm_head_bias)
        self.post_init()

    @staticmethod
    def _check_prompt_inputs(input_ids, inputs_embeds, kwargs) -> None:
        """``ValueError`` when the 2D ``attention_mask`` or ``position_ids`` given at the first step of ``generate``
        do not fit the prompt (its embeddings, when given, else its ids); position ids may be one row for all."""
        batch = input_ids.shape[0]
        prompt = inputs_embeds.shape[1] if inputs_embeds is not None else input_ids.shape[1]
        for name, rows in (("attention_mask", (batch,)), ("position_ids", (batch, 1))):
            given = kwargs.get(name)
            if isinstance(given, torch.Tensor) and given.dim() == 2 and (given.shape[1] != prompt
                                                                       or given.shape[0] not in rows):
                raise ValueError(f"generate: `{name}` has shape {tuple(given.shape)}, which does not fit the prompt: "
                                 f"(batch_size, prompt_length) = ({batch}, {prompt}) (position ids may also be one "
                                 "row for all). Position ids that the caller did not give are made by generate from "
                                 "`attention_mask`: then the mask is the one to fix.")

    def prepare_inputs_for_generation(self, input_ids, cache=None, inputs_embeds=None, **kwargs):
        """As ``GenerationMixin``'s, but for LongRoPE (Phi-3 128k): once the sequence passes
        ``original_max_position_embeddings`` every position rotates with the long frequencies, and the keys cached
        with the short ones no longer fit. At that one step the cache is dropped and the whole sequence recomputed,
        as transformers' Phi-3 does. ``inputs_embeds`` is named in the signature because ``generate`` looks there to
        see whether a decoder-only model can start from embeddings instead of ids.

        At the first step the 2D ``attention_mask`` and the ``position_ids`` that ``generate`` makes from it are
        checked against the prompt: ``generate`` drops a mask of all ones, so a wrong one reached the forward only as
        position ids of the wrong shape, and its error blamed ``position_ids``, which the caller never gave."""
        scaling = self.config.rotary_scaling or {}
        original = scaling.get("original_max_position_embeddings")
        # from inputs_embeds, input_ids holds only the new tokens: the sequence is the embeddings and those
        length = input_ids.shape[1] + (inputs_embeds.shape[1] if inputs_embeds is not None else 0)
        if cache is None or (isinstance(cache, DynamicCache) and cache.get_seq_length() == 0):
            self._check_prompt_inputs(input_ids, inputs_embeds, kwargs)
        crossing = scaling.get("rope_type") == "longrope" and cache is not None and length > original
        if crossing and cache.get_seq_length() <= original:
            if inputs_embeds is not None:  # the recompute needs the prompt, given here only as embeddings
                raise ValueError(
                    f"LongRoPE recomputes the whole sequence once it passes `original_max_position_embeddings` "
                    f"({original}), and a prompt given as `inputs_embeds` cannot be fed again: generate from "
                    f"`input_ids`, or keep the prompt and the new tokens within {original}."
                )
            cache = None
            kwargs["next_sequence_length"] = None
        return super().prepare_inputs_for_generation(input_ids, cache=cache, inputs_embeds=inputs_embeds, **kwargs)

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")  # 4.x name, as library models
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithCrossAttentions:
        if labels is not None and use_cache is None and cache is None:
            # A loss with no cache given means a training step: nothing continues, so no cache unless asked for (a text
            # scored in chunks passes the cache it carries, and gets it back updated). Under torch.compile
            # each cached key and value would be one more output of the graph, copied out of the fused projection, and
            # backward would get a zero gradient for each (AOTAutograd materialises the unused outputs' gradients).
            use_cache = False
        reference = input_ids if input_ids is not None else inputs_embeds
        if labels is not None and reference is not None:
            check_sequence_input(input_ids, inputs_embeds)  # the input's own shape first: labels are compared to it
            # (B, T): the loss shifts them by one itself. Checked before the forward: the range read (one host
            # sync) then comes right after the input ids' own, while the GPU has little queued, not after the forward
            labels = check_token_labels(labels, reference.shape[:2], num_classes=self.config.vocab_size,
                                        classes_name="vocab_size")
        outputs = self.model(
            return_dict=True,
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            token_type_ids=token_type_ids,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        # generation only needs the last position's logits: skip the (B, T, V) matmul for the rest
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])  # (B, T_kept, V)
        if self.config.final_logit_softcap is not None:  # Gemma 2: no score past the cap
            cap = self.config.final_logit_softcap
            logits = torch.tanh(logits / cap) * cap

        loss = None
        if labels is not None:
            # sum / num_items_in_batch when the Trainer passes it (gradient accumulation), else the mean
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
        )


class MiniGPTForSequenceClassification(MiniGPTPreTrainedModel):
    """Classify a whole text from the hidden state of its last real token (the only one that saw it all).

    ``problem_type`` follows transformers: ``single_label_classification`` (softmax over ``num_labels``),
    ``multi_label_classification`` (a sigmoid per label; with ``num_labels=1`` the binary spam / not-spam
    head), ``regression``. See :func:`modeling_base.sequence_classification_loss`.
    """

    def __init__(self, config: MiniGPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = MiniGPTModel(config)
        self.score = nn.Linear(config.output_size, config.num_labels, bias=False)
        self.post_init()

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")  # 4.x name, as library models
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        if labels is not None and use_cache is None and cache is None:
            use_cache = False  # as in the causal LM: a training step needs no cache
        outputs = self.model(
            return_dict=True,
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            token_type_ids=token_type_ids,
            **kwargs,
        )
        logits = self.score(outputs.last_hidden_state)  # (B, T, num_labels)
        pooled_logits = last_token_pool(logits, input_ids, attention_mask, self.config.pad_token_id)  # (B, L)
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(pooled_logits, labels, self.config, num_items_in_batch)
        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=pooled_logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class MiniGPTForTokenClassification(MiniGPTPreTrainedModel):
    """A label per token (e.g. BIO entity tags) from each position's hidden state; labels -100 are ignored."""

    def __init__(self, config: MiniGPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = MiniGPTModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(config.output_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> TokenClassifierOutput:
        kwargs.pop("use_cache", None)  # nothing to continue: a tagger or a reader keeps no cache
        outputs = self.model(
            return_dict=True,
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            token_type_ids=token_type_ids,
            **kwargs,
        )
        logits = self.score(self.dropout(outputs.last_hidden_state))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            labels = check_token_labels(labels, logits.shape[:2], num_classes=self.num_labels)
            loss = self.loss_function(logits, labels, self.config, **kwargs)
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class MiniGPTForQuestionAnswering(MiniGPTPreTrainedModel):
    """Extractive question answering with a causal model (as ``GPT2ForQuestionAnswering``): for each token, a score
    for "the answer starts here" and one for "it ends here".

    A token's state has read only the tokens before it, so put the question *before* the context: then every
    context token has seen the question. ``start_positions`` / ``end_positions`` (B,) as in the encoder's QA head.
    """

    def __init__(self, config: MiniGPTConfig):
        super().__init__(config)
        self.model = MiniGPTModel(config)
        self.qa_outputs = nn.Linear(config.output_size, 2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> QuestionAnsweringModelOutput:
        kwargs.pop("use_cache", None)  # nothing to continue: a tagger or a reader keeps no cache
        outputs = self.model(
            return_dict=True,
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            token_type_ids=token_type_ids,
            **kwargs,
        )
        start_logits, end_logits = span_logits(self.qa_outputs(outputs.last_hidden_state))  # (B, T, 2) -> (B, T) x 2
        loss = span_loss(self, start_logits, end_logits, start_positions, end_positions, **kwargs)
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                            hidden_states=outputs.hidden_states, attentions=outputs.attentions)


register_family(
    MiniGPTPreTrainedModel,
    {
        "AutoModel": MiniGPTModel,
        "AutoModelForCausalLM": MiniGPTForCausalLM,
        "AutoModelForSequenceClassification": MiniGPTForSequenceClassification,
        "AutoModelForTokenClassification": MiniGPTForTokenClassification,
        "AutoModelForQuestionAnswering": MiniGPTForQuestionAnswering,
    },
)
