"""Encoder-decoder: the original Transformer ("Attention Is All You Need"), for translation and other
sequence-to-sequence tasks.

The **encoder** is a stack of bidirectional blocks: every source token sees every other real source token.
The **decoder** is a stack of causal blocks with a third sub-layer, *cross-attention*, whose queries come from
the target tokens and whose keys and values come from the encoder's output: that is where the decoder reads
the source. Trained with teacher forcing (the decoder gets the target shifted right by one, behind
``decoder_start_token_id``, and predicts it at every position at once), it then generates one token at a
time. The encoder runs once per ``generate`` call; the cross-attention keys/values are computed on the first
step and reused from the ``EncoderDecoderCache`` (see ``attention.MiniAttention``).

* :class:`MiniSeq2SeqModel`: encoder + decoder, returning the decoder's hidden states (B, T, D).
* :class:`MiniSeq2SeqForConditionalGeneration`: + the output layer (tied to the embeddings); training with
  ``labels`` and ``generate``.
* :class:`MiniSeq2SeqForSequenceClassification`, :class:`MiniSeq2SeqForQuestionAnswering`: BART's way of fine-tuning
  an encoder-decoder for understanding tasks. The text goes to *both* stacks (the decoder reads it shifted right,
  as in pretraining); a label comes from the decoder state at the closing end-of-sequence token, the answer span
  from every decoder state. ``zero-shot-classification`` runs on the classifier (BART-large-MNLI's pipeline).
"""

import torch
from torch import nn
from transformers import GenerationMixin
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    Seq2SeqQuestionAnsweringModelOutput,
    Seq2SeqSequenceClassifierOutput,
)
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .attention import MiniAttention
from .blocks import MiniBlock
from .configuration_mini import MiniSeq2SeqConfig
from .modeling_base import (
    MiniEmbeddings,
    MiniLMHeadBias,
    MiniPreTrainedModel,
    check_attention_mask,
    check_encoder_states,
    check_sequence_input,
    check_token_labels,
    last_eos_pool,
    next_positions,
    register_family,
    sequence_classification_loss,
    span_logits,
    span_loss,
)
from .normalization import build_norm
from .positional import biased_mask, build_layer_biases, build_relative_bias, build_rotary, layer_mask


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None,
                       start_with_last_token: bool = False):
    """Teacher forcing: the decoder input is the target moved one step right behind the start token.

    (B, T) -> (B, T), for labels or, with no decoder inputs given, the source (BART's model reads it so); the -100
    of ignored label positions become ``pad_token_id``. ``start_with_last_token``
    (mBART): each row starts with its own last real token (its language code) instead of ``decoder_start_token_id``;
    rows are padded on the right, so that token sits at (number of non-pad tokens - 1).
    """
    if decoder_start_token_id is None and not start_with_last_token:
        raise ValueError(
            "`decoder_start_token_id` must be set in the config to build `decoder_input_ids` (from `labels`, or from "
            "`input_ids` when no decoder inputs are given)."
        )
    if pad_token_id is None:
        raise ValueError("`pad_token_id` must be set in the config to build `decoder_input_ids` (from `labels`, or "
                         "from `input_ids` when no decoder inputs are given).")
    labels = labels.masked_fill(labels == -100, pad_token_id)
    if labels.shape[-1] == 0:  # no token: nothing to shift (the decoder names the empty input)
        return labels
    if start_with_last_token:
        last = (labels != pad_token_id).sum(dim=1, keepdim=True) - 1  # (B, 1): the last real token's index
        start = labels.gather(1, last.clamp(min=0))  # (B, 1)
    else:
        start = labels.new_full((labels.shape[0], 1), decoder_start_token_id)
    return torch.cat([start, labels[:, :-1]], dim=1)


def seq2seq_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Token cross-entropy of ``logits`` (B, T, V) against ``labels`` (B, T), *not* shifted again.

    The decoder input is already the shifted target, so position ``t``'s logits score label ``t``.
    Returns sum / (number of labels != -100), or sum / ``num_items_in_batch`` when the Trainer passes it
    (the count over all accumulated micro-batches: gradient accumulation then equals one big batch).
    """
    losses = nn.functional.cross_entropy(
        logits.float().flatten(0, 1), labels.to(logits.device).flatten(), ignore_index=-100, reduction="sum"
    )
    count = num_items_in_batch if num_items_in_batch is not None else (labels != -100).sum()
    if isinstance(count, torch.Tensor):
        count = count.to(losses.device)
    return losses / count


#: The decoder's names for its ids and embeddings, in errors (:func:`modeling_base.check_sequence_input`).
DECODER_INPUTS = ("decoder_input_ids", "decoder_inputs_embeds")


def refuse_position_ids(kwargs: dict, *names: str) -> None:
    """An encoder-decoder numbers its positions itself (0 .. T - 1 after the cached ones) and takes no position ids:
    given, they would reach the attention layers unread and change nothing, silently."""
    for name in names:
        if kwargs.get(name) is not None:
            raise ValueError(f"`{name}` given to an encoder-decoder, which numbers each stack's positions itself "
                             f"(from 0, after the cached tokens) and takes no position ids: leave it out.")


#: What every head passes on from :class:`MiniSeq2SeqModel`'s output, beside its own scores.
STACK_OUTPUTS = ("decoder_hidden_states", "decoder_attentions", "cross_attentions", "encoder_last_hidden_state",
                 "encoder_hidden_states", "encoder_attentions")


def stack_outputs(outputs: Seq2SeqModelOutput) -> dict:
    """The encoder's and decoder's states and attentions of ``outputs``, as keyword arguments of a head's output."""
    return {name: getattr(outputs, name) for name in STACK_OUTPUTS}


class MiniSeq2SeqPreTrainedModel(MiniPreTrainedModel):
    config_class = MiniSeq2SeqConfig
    main_input_name = "input_ids"

    @property
    def _tied_weights_keys(self) -> dict | None:
        """This module's own ties, ``{target: source}``: those its config asks for now, read at each use (a config
        changed after the build, ``tie_word_embeddings = True`` then ``tie_weights()``, ties, as in transformers'
        models), and those of its architecture whose two tensors are still one (a config untied after the build:
        ``save_pretrained`` refuses shared tensors it is not told of, and saves such a model as BART's saves). A value
        assigned to it (as some transformers models do in ``__init__``) replaces both."""
        if "_tied_weights_override" in self.__dict__:
            return self.__dict__["_tied_weights_override"]
        ties = self.ties_from_config()
        for target, source in self.ties_from_config(every=True).items():
            if target not in ties and self._same_tensor(target, source):
                ties[target] = source
        return ties or None

    @_tied_weights_keys.setter
    def _tied_weights_keys(self, value: dict | None) -> None:
        self.__dict__["_tied_weights_override"] = value

    def _same_tensor(self, first: str, second: str) -> bool:
        try:
            return self.get_parameter(first) is self.get_parameter(second)
        except AttributeError:  # not built yet
            return False

    def ties_from_config(self, every: bool = False) -> dict:
        """The ties this module itself declares, as its config asks for them (``every``: all those its architecture
        can have, whatever the config says). None here; the base model and the generation head override it."""
        return {}

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        """The ties of ``_tied_weights_keys``.

        transformers applies ties only when ``tie_word_embeddings`` is set; here the encoder/decoder sharing
        (``share_embeddings``) and the output tie (``tie_word_embeddings``) are separate options, so the
        mapping already holds the ties the config asks for (and those still shared, which tying leaves as they are).
        """
        if all_submodels:
            return super().get_expanded_tied_weights_keys(all_submodels=True)
        return dict(self._tied_weights_keys or {})

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """Resize as usual; with separate tables (``share_embeddings=False``) the decoder's is resized too, and the
        output layer tied to it follows (transformers resizes only the input table, the encoder's)."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        decoder = self.get_decoder() if hasattr(self, "get_decoder") else None
        if not self.config.share_embeddings and decoder is not None and decoder is not self:
            table = decoder.embeddings.embed_tokens
            if table.weight.shape[0] != embeddings.weight.shape[0]:
                decoder.embeddings.embed_tokens = self._get_resized_embeddings(table, embeddings.weight.shape[0],
                                                                               mean_resizing=mean_resizing)
                self.tie_weights()
        return embeddings

    def shift_right(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (B, T) moved one step right behind the config's start (:func:`shift_tokens_right`): the decoder
        inputs for ``labels``, or for the source itself when no decoder inputs are given."""
        return shift_tokens_right(ids, self.config.pad_token_id, self.config.decoder_start_token_id,
                                  self.config.start_with_last_token)

    def _keep_own_parallel_rules(self, stack: str) -> None:
        """The config's tensor-parallel and FSDP plans name each stack's modules by their path in the seq2seq model
        (``encoder.layers.*...``). A stack, itself a model, keeps only its own rules, relative to itself; the
        seq2seq model puts the prefix back when it gathers its children's plans."""
        prefix = f"{stack}."
        for plan in ("_tp_plan", "_fsdp_plan"):
            rules = getattr(self, plan).items()
            setattr(self, plan, {rule.removeprefix(prefix): how for rule, how in rules if rule.startswith(prefix)})


class MiniSeq2SeqEncoder(MiniSeq2SeqPreTrainedModel):
    """Embeddings -> ``encoder_layers`` bidirectional blocks -> final norm (pre-norm). (B, S) -> (B, S, D)."""

    # a negative `output_hidden_states` index counts from the encoder's own depth (the config's num_hidden_layers is
    # the decoder's)
    _can_record_outputs = {"hidden_states": OutputRecorder(MiniBlock, num_hidden_layers_key="encoder_layers"),
                           "attentions": MiniAttention}

    def __init__(self, config: MiniSeq2SeqConfig):
        super().__init__(config)
        self.embeddings = MiniEmbeddings(config, freeze_padding_row=config.freeze_padding_row)
        self.rotary = build_rotary(config)
        self.relative_bias = build_relative_bias(config, bidirectional=True)
        self.layer_biases = build_layer_biases(config, True, config.encoder_layers)  # UMT5's: one per layer
        self.layers = nn.ModuleList(MiniBlock(config, i, is_causal=False) for i in range(config.encoder_layers))
        for module in self.layers.modules():  # the scaled initialisation counts this stack's blocks, not the decoder's
            if getattr(module, "is_residual_output", False):
                module.residual_depth = config.encoder_layers
        self.norm = build_norm(config) if config.final_norm else None
        self.gradient_checkpointing = False
        self.post_init()
        self._keep_own_parallel_rules("encoder")

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds` (the source sequence).")
        refuse_position_ids(kwargs, "position_ids")
        batch, length = check_sequence_input(input_ids, inputs_embeds, self.embeddings.input_width)
        check_attention_mask(attention_mask, batch, length, implementation=self.config._attn_implementation,
                             query_length=length, num_heads=self.config.num_attention_heads)  # flex refuses a 4D mask
        device = (input_ids if input_ids is not None else inputs_embeds).device
        # (1, S); BART's learned table starts at row 2 (position_offset)
        position_ids, max_position = next_positions(0, length, device, self.config.position_offset)

        hidden_states = self.embeddings(input_ids, inputs_embeds, position_ids, max_position=max_position)
        # T5: the bias needs a mask tensor to sit in, padding or not
        relative = self.relative_bias is not None or self.layer_biases is not None
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask,
                                         allow_is_bidirectional_skip=not relative)
        if self.relative_bias is not None:
            mask = biased_mask(self, mask, position_ids, mask.shape[-1], dtype=hidden_states.dtype)  # (B, H, S, S)
        rotary = self.rotary(position_ids, hidden_states.dtype) if self.rotary is not None else None
        for layer, block in enumerate(self.layers):
            # the mask positionally: with T5's relative bias it is trained (gradient checkpointing)
            hidden_states = block(hidden_states, None,
                                  layer_mask(self, mask, layer, position_ids, length, dtype=hidden_states.dtype),
                                  position_embeddings=rotary, **kwargs)
        if self.norm is not None:
            hidden_states = self.norm(hidden_states)
        return BaseModelOutput(last_hidden_state=hidden_states)


class MiniSeq2SeqDecoder(MiniSeq2SeqPreTrainedModel):
    """Embeddings -> ``decoder_layers`` causal blocks with cross-attention -> final norm. (B, T) -> (B, T, D)."""

    _can_record_outputs = {
        "hidden_states": OutputRecorder(MiniBlock, num_hidden_layers_key="decoder_layers"),
        "attentions": OutputRecorder(MiniAttention, index=1, layer_name="self_attn"),
        "cross_attentions": OutputRecorder(MiniAttention, index=1, layer_name="cross_attn"),
    }

    def __init__(self, config: MiniSeq2SeqConfig):
        super().__init__(config)
        self.embeddings = MiniEmbeddings(config, freeze_padding_row=config.freeze_padding_row,
                                         ids_name="decoder_input_ids")
        self.rotary = build_rotary(config)
        self.relative_bias = build_relative_bias(config, bidirectional=False)  # T5: causal self-attention's
        self.layer_biases = build_layer_biases(config, False, config.decoder_layers)  # UMT5's: one per layer
        self.layers = nn.ModuleList(
            MiniBlock(config, i, is_causal=True, has_cross_attention=True) for i in range(config.decoder_layers)
        )
        self.norm = build_norm(config) if config.final_norm else None
        self.gradient_checkpointing = False
        self.post_init()
        self._keep_own_parallel_rules("decoder")

    @capture_outputs
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")  # 4.x name, as library models
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `decoder_input_ids` or `decoder_inputs_embeds` (the target side).")
        if encoder_hidden_states is None:
            raise ValueError("The decoder needs `encoder_hidden_states` (the encoder's output) for cross-attention.")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False  # the recompute in backward would append to the cache a second time
        if use_cache and cache is None:
            # neither cache slides (the config has no sliding layers), so neither needs the config, whose reading
            # torch.compile before torch 2.13 cannot trace (a deepcopy in transformers' get_text_config)
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())

        refuse_position_ids(kwargs, "position_ids")
        batch, length = check_sequence_input(input_ids, inputs_embeds, self.embeddings.input_width, DECODER_INPUTS)
        check_encoder_states(encoder_hidden_states, batch, self.config.hidden_size, "encoder_hidden_states")
        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        past = self_cache.get_seq_length() if self_cache is not None else 0
        implementation = self.config._attn_implementation  # flex attention refuses a 4D tensor mask
        counted = self_cache is None or not self_cache.is_compileable  # a static cache's 4D mask spans all its slots
        check_attention_mask(attention_mask, batch, past + length if counted else None, "decoder_attention_mask",
                             implementation, query_length=length, num_heads=self.config.num_attention_heads)
        check_attention_mask(encoder_attention_mask, batch, encoder_hidden_states.shape[1], "attention_mask",
                             implementation, query_length=length, num_heads=self.config.num_attention_heads)
        device = (input_ids if input_ids is not None else inputs_embeds).device
        position_ids, max_position = next_positions(past, length, device, self.config.position_offset)  # (1, T)

        hidden_states = self.embeddings(input_ids, inputs_embeds, position_ids, max_position=max_position)
        relative = self.relative_bias is not None or self.layer_biases is not None
        self_mask = create_causal_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask, cache=self_cache,
            allow_is_causal_skip=not relative,
        )
        if self.relative_bias is not None:
            self_mask = biased_mask(self, self_mask, position_ids, self_mask.shape[-1],
                                    dtype=hidden_states.dtype)  # (B, H, T, past + T)
        cross_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )
        rotary = self.rotary(position_ids, hidden_states.dtype) if self.rotary is not None else None
        keys = self_mask.shape[-1] if relative else None  # past + T: what a layer's own bias (UMT5) spans
        depth = self.config.decoder_layers  # all; k while generate(assistant_early_exit=k) drafts with the first k
        for layer, block in enumerate(self.layers[:depth]):
            hidden_states = block(
                hidden_states,
                encoder_hidden_states,  # positional: gradient checkpointing passes tensors through
                # with T5's relative bias, trained; UMT5's: the layer's own, (B, H, T, past + T)
                layer_mask(self, self_mask, layer, position_ids, keys, dtype=hidden_states.dtype),
                encoder_attention_mask=cross_mask,
                position_embeddings=rotary,
                cache=cache,
                **kwargs,
            )
        if self.norm is not None:
            hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, cache=cache if use_cache else None
        )


def _as_encoder_output(encoder_outputs) -> BaseModelOutput:
    if isinstance(encoder_outputs, BaseModelOutput):
        return encoder_outputs
    return BaseModelOutput(
        last_hidden_state=encoder_outputs[0],
        hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
        attentions=encoder_outputs[2] if len(encoder_outputs) > 2 else None,
    )


class MiniSeq2SeqModel(MiniSeq2SeqPreTrainedModel):
    """The encoder and the decoder; returns the decoder's hidden states and the encoder's output.

    With ``share_embeddings`` the two token tables are one matrix (tied through ``_tied_weights_keys``, so
    each module keeps its own name in the checkpoint and saving works).
    """

    def __init__(self, config: MiniSeq2SeqConfig):
        super().__init__(config)
        self.encoder = MiniSeq2SeqEncoder(config)
        self.decoder = MiniSeq2SeqDecoder(config)
        self.post_init()

    def ties_from_config(self, every: bool = False) -> dict:
        """With ``share_embeddings``, the decoder's token table is the encoder's."""
        if not (self.config.share_embeddings or every):
            return {}
        return {"decoder.embeddings.embed_tokens.weight": "encoder.embeddings.embed_tokens.weight"}

    def get_encoder(self, modality=None) -> MiniSeq2SeqEncoder:
        return self.encoder

    def get_decoder(self) -> MiniSeq2SeqDecoder:
        return self.decoder

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embeddings.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embeddings.embed_tokens = value
        if self.config.share_embeddings:
            self.decoder.embeddings.embed_tokens = value

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")  # 4.x name, as library models
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput:
        """Encode the source (unless ``encoder_outputs`` are given, as ``generate`` does) and decode the target.

        Without decoder inputs the decoder reads ``input_ids`` shifted right behind ``decoder_start_token_id``, as
        BART's model does: a denoising autoencoder's reconstruction, and the features the ``feature-extraction``
        pipeline takes from a bare model. The task heads read a text the same way."""
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError(
                    "Pass `decoder_input_ids` (the target shifted right behind `decoder_start_token_id`), `labels` to "
                    "the ForConditionalGeneration head (they are shifted into decoder inputs), or `input_ids`, which "
                    "the decoder then reads shifted right."
                )
            check_sequence_input(input_ids, None)  # (B, T): the shift reads it by rows
            decoder_input_ids = self.shift_right(input_ids)  # (B, T)
        refuse_position_ids(kwargs, "position_ids", "decoder_position_ids")
        decoder_batch, _ = check_sequence_input(decoder_input_ids, decoder_inputs_embeds, names=DECODER_INPUTS)
        decoder_name = "decoder_input_ids" if decoder_input_ids is not None else "decoder_inputs_embeds"
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                return_dict=True,
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
            )
            source = "input_ids" if input_ids is not None else "inputs_embeds"
        else:
            source = "encoder_outputs"
        encoder_outputs = _as_encoder_output(encoder_outputs)
        check_encoder_states(encoder_outputs.last_hidden_state, None, self.config.hidden_size, source)
        if encoder_outputs.last_hidden_state.shape[0] != decoder_batch:
            raise ValueError(f"`{decoder_name}` has {decoder_batch} rows but `{source}` has "
                             f"{encoder_outputs.last_hidden_state.shape[0]}: the decoder reads one source per row, so "
                             f"both need the same batch_size.")
        decoder_outputs = self.decoder(
            return_dict=True,
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )


class MiniSeq2SeqForConditionalGeneration(MiniSeq2SeqPreTrainedModel, GenerationMixin):
    """Encoder-decoder with an output layer: next-token logits for every target position; ``generate``.

    Pass ``labels`` (B, T) with -100 on padding: ``decoder_input_ids`` are made by shifting them right behind
    ``decoder_start_token_id`` (unless given, then of the same length), and the loss compares position ``t``'s
    logits with label ``t`` (no second shift). The output layer reuses the decoder's token embeddings when
    ``tie_word_embeddings`` is set; ``final_logits_bias`` adds a per-token bias (BART / Marian).
    """

    def __init__(self, config: MiniSeq2SeqConfig):
        super().__init__(config)
        self.model = MiniSeq2SeqModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.final_logits_bias = MiniLMHeadBias(config.vocab_size) if config.final_logits_bias else None
        self.post_init()

    def ties_from_config(self, every: bool = False) -> dict:
        """With ``tie_word_embeddings``, the output layer is the decoder's token table (the encoder's when shared: the
        root of the tie chain)."""
        if not (self.config.tie_word_embeddings or every):
            return {}
        source = "encoder" if self.config.share_embeddings else "decoder"
        return {"lm_head.weight": f"model.{source}.embeddings.embed_tokens.weight"}

    def get_encoder(self, modality=None) -> MiniSeq2SeqEncoder:
        return self.model.encoder

    def get_decoder(self) -> MiniSeq2SeqDecoder:
        return self.model.decoder

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        """Resize as usual, and the ``final_logits_bias`` with it (new tokens get a zero bias)."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        if self.final_logits_bias is not None:
            old = self.final_logits_bias.bias
            size = embeddings.weight.shape[0]
            new = old.new_zeros(size)
            new[: min(size, old.shape[0])] = old[:size]
            self.final_logits_bias.bias = new  # a buffer: replaced, not trained
        return embeddings

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Used by ``DataCollatorForSeq2Seq`` to build ``decoder_input_ids`` in the collator."""
        return self.shift_right(labels)

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")  # 4.x name, as library models
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        if labels is not None:
            # checked before the shift reads them, where a malformed tensor fails unnamed (an IndexError, or an
            # out-of-range id blamed on `input_ids`, or one in the last position not seen until the loss)
            target = decoder_input_ids if decoder_input_ids is not None else decoder_inputs_embeds
            # the inputs' own shapes first: the labels are compared to them
            check_sequence_input(decoder_input_ids, decoder_inputs_embeds, names=DECODER_INPUTS)
            check_sequence_input(input_ids, inputs_embeds)
            expected = None
            if target is not None:  # scored position for position against the given decoder inputs
                shape, name = target.shape[:2], "labels (shape of decoder_input_ids)"
            else:  # shifted into the decoder inputs: one row per source, of any length
                source = input_ids if input_ids is not None else inputs_embeds
                if source is None and encoder_outputs is not None:
                    source = encoder_outputs[0]
                rows, length = (labels.shape[0], labels.shape[-1]) if labels.dim() else (1, 1)  # a scalar: refused
                if source is not None:
                    rows = source.shape[0]
                shape, name = (rows, length), "labels"
                expected = f"shape (batch_size={rows}, target_length): one row of target ids per source"
            labels = check_token_labels(labels, shape, name, num_classes=self.config.vocab_size,
                                        classes_name="vocab_size", expected=expected)  # the range: one host read
            if target is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
            use_cache = False  # training: nothing to continue
        outputs = self.model(
            return_dict=True,
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if self.config.scale_decoder_output:  # T5: back to the embeddings' scale for the (tied) output layer
            hidden_states = hidden_states * self.config.hidden_size**-0.5
        # generation only needs the last position's logits: skip the (B, T, V) matmul for the rest
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])  # (B, T_kept, V)
        if self.final_logits_bias is not None:
            logits = self.final_logits_bias(logits)

        loss = seq2seq_loss(logits, labels, num_items_in_batch) if labels is not None else None
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            **stack_outputs(outputs),
        )


class MiniSeq2SeqClassificationHead(nn.Module):
    """BART's sentence-level head over one pooled vector (B, D) -> (B, num_labels): dropout, a dense layer with
    tanh, dropout, then the label scores. (The encoder family's pooler is the same dense-tanh idea.)"""

    def __init__(self, config: MiniSeq2SeqConfig):
        super().__init__()
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(hidden))


class _Seq2SeqReaderMixin:
    """What the two understanding heads share: run the text through both stacks, the decoder reading it shifted right
    behind ``decoder_start_token_id`` (unless ``decoder_input_ids`` are given), without a cache."""

    def get_encoder(self, modality=None) -> MiniSeq2SeqEncoder:
        return self.model.encoder

    def get_decoder(self) -> MiniSeq2SeqDecoder:
        return self.model.decoder

    def _read(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
              inputs_embeds, decoder_inputs_embeds, **kwargs) -> Seq2SeqModelOutput:
        if decoder_input_ids is None and decoder_inputs_embeds is None and input_ids is None:
            raise ValueError(f"{type(self).__name__} builds `decoder_input_ids` from `input_ids`: pass "
                             f"`input_ids`, or `decoder_input_ids` / `decoder_inputs_embeds` yourself.")
        kwargs.pop("use_cache", None)  # nothing to continue: no cache
        # without decoder inputs, the model reads `input_ids` shifted right
        return self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                          decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
                          inputs_embeds=inputs_embeds, decoder_inputs_embeds=decoder_inputs_embeds, use_cache=False,
                          return_dict=True, **kwargs)


class MiniSeq2SeqForSequenceClassification(_Seq2SeqReaderMixin, MiniSeq2SeqPreTrainedModel):
    """Classify a text (or a pair, joined by the tokenizer) with an encoder-decoder, as
    ``BartForSequenceClassification``: the decoder state at each row's last ``eos_token_id``
    (:func:`modeling_base.last_eos_pool`) goes through :class:`MiniSeq2SeqClassificationHead`.

    ``problem_type`` as in the other families' classifiers (:func:`modeling_base.sequence_classification_loss`):
    single-label softmax, multi-label or binary sigmoid (``num_labels=1``: spam / not spam), regression.
    """

    def __init__(self, config: MiniSeq2SeqConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = MiniSeq2SeqModel(config)
        self.classification_head = MiniSeq2SeqClassificationHead(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> Seq2SeqSequenceClassifierOutput:
        target = decoder_input_ids if decoder_input_ids is not None else decoder_inputs_embeds
        if input_ids is not None and target is not None:
            # the head pools the decoder states at the eos positions of `input_ids` (as BART's): one per token
            check_sequence_input(input_ids, None)
            check_sequence_input(decoder_input_ids, decoder_inputs_embeds, names=DECODER_INPUTS)
            target_name = DECODER_INPUTS[0] if decoder_input_ids is not None else DECODER_INPUTS[1]
            if tuple(target.shape[:2]) != tuple(input_ids.shape):
                raise ValueError(f"`{target_name}` must have the shape of `input_ids` (batch_size, sequence_length) = "
                                 f"{tuple(input_ids.shape)}: the classification head reads the decoder state at "
                                 f"the end-of-sequence tokens of `input_ids`, as BART's; got "
                                 f"{tuple(target.shape)}.")
        outputs = self._read(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
                             inputs_embeds, decoder_inputs_embeds, **kwargs)
        pooled = last_eos_pool(outputs.last_hidden_state, input_ids, self.config.eos_token_id)  # (B, D)
        logits = self.classification_head(pooled)  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, num_items_in_batch)
        return Seq2SeqSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            **stack_outputs(outputs),
        )


class MiniSeq2SeqForQuestionAnswering(_Seq2SeqReaderMixin, MiniSeq2SeqPreTrainedModel):
    """Extractive question answering with an encoder-decoder, as ``BartForQuestionAnswering``: a start and an end score
    for every decoder state (the decoder reads ``question + context`` shifted right, so state ``t`` scores token
    ``t``). ``start_positions`` / ``end_positions`` (B,) as in the encoder's QA head."""

    def __init__(self, config: MiniSeq2SeqConfig):
        super().__init__(config)
        self.model = MiniSeq2SeqModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        **kwargs,
    ) -> Seq2SeqQuestionAnsweringModelOutput:
        outputs = self._read(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
                             inputs_embeds, decoder_inputs_embeds, **kwargs)
        start_logits, end_logits = span_logits(self.qa_outputs(outputs.last_hidden_state))  # (B, T, 2) -> (B, T) x 2
        loss = span_loss(self, start_logits, end_logits, start_positions, end_positions, **kwargs)
        return Seq2SeqQuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            **stack_outputs(outputs),
        )


register_family(
    MiniSeq2SeqPreTrainedModel,
    {
        "AutoModel": MiniSeq2SeqModel,
        "AutoModelForSeq2SeqLM": MiniSeq2SeqForConditionalGeneration,
        "AutoModelForSequenceClassification": MiniSeq2SeqForSequenceClassification,
        "AutoModelForQuestionAnswering": MiniSeq2SeqForQuestionAnswering,
    },
)
