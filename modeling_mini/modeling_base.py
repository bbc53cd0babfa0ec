"""What every family shares: the HF plumbing base class, the embedding layer, input checks and losses.

* :class:`MiniPreTrainedModel`: the one place that plugs the models into transformers (attention
  backends, gradient checkpointing, weight initialisation, device-map splitting).
* :class:`MiniEmbeddings`: token embeddings (+ segment embeddings) + absolute positions, scaled,
  normalised and dropped out as the config says.
* :func:`check_id_ranges`, :func:`check_attention_mask`, :func:`check_token_labels`: clear ``ValueError`` s instead
  of index errors or device-side asserts.
* :func:`sequence_classification_loss`, :func:`last_token_pool`, :func:`last_eos_pool`: the classification heads'
  shared logic, following transformers' ``problem_type`` conventions.
* :func:`span_logits`, :func:`span_loss`: the extractive question-answering heads' shared logic.
"""

import inspect
import json
import math
import os
import sys
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_utils import _add_variant
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

from .configuration_mini import PROBLEM_TYPES
from .hub import superseded_weights
from .normalization import GainOffsetRMSNorm, build_norm
from .positional import LearnedPositionalEmbedding, build_absolute_positions, traced

#: The folder of this package's modules, the files a saved model carries for ``trust_remote_code``.
PACKAGE_DIR = Path(__file__).resolve().parent


def defining_class(cls: type) -> type:
    """The first class in ``cls``'s MRO that is defined in this package: ``cls`` itself, or the model class under
    a wrapper that a library made on the fly (FSDP2 turns ``MiniGPTForCausalLM`` into ``FSDPMiniGPTForCausalLM``)."""
    for candidate in cls.__mro__:
        module = sys.modules.get(candidate.__module__)
        if module is not None and Path(getattr(module, "__file__", "") or "").resolve().parent == PACKAGE_DIR:
            return candidate
    return cls


class MiniPreTrainedModel(PreTrainedModel):
    """Base class of every mini model: HF integration only, no layers of its own.

    Family base classes set ``config_class``. Weights start as GPT-2 does: normal(0, initializer_range)
    for projections and embeddings, with the output projections of each residual sub-layer scaled by
    ``1 / sqrt(2 * num_layers)``, ``num_layers`` the blocks of their stack, so the residual stream's variance does not
    grow with depth.
    """

    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MiniBlock", "MiniEmbeddings"]  # device maps keep each whole: its parts are added together
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    #: Auto class name -> model class, for every head of the family; filled by :func:`register_family`.
    family_auto_classes: dict[str, type] = {}

    def __init__(self, config, *args, **kwargs):
        """transformers' ``__init__``, after checking ``config`` again: an option set after the config was built
        (``config.hidden_act = "foo"``) raises its ``ValueError`` here, not a ``KeyError`` deep in a layer."""
        config.validate_architecture()
        super().__init__(config, *args, **kwargs)
        if config.float32_feed_forward_output:
            # T5's float16 handling, as transformers' T5 declares it: `from_pretrained(dtype=torch.float16)` keeps each
            # feed-forward output projection in float32, where T5 checkpoints' large activations are formed
            self._keep_in_fp32_modules = ["mlp.down_proj"]

    def _sdpa_can_dispatch(self, is_init_check: bool = False) -> bool:
        """PyTorch's sdpa kernel cannot soft-cap attention scores: a model with ``attention_softcap`` then runs eager
        by default (as transformers' Gemma 2), and asking it for sdpa is a ``ValueError`` at build time."""
        if getattr(self.config, "attention_softcap", None) is not None:
            raise ValueError("PyTorch's sdpa kernel cannot apply `attention_softcap`: use attn_implementation='eager' "
                             "or 'flex_attention'.")
        return super()._sdpa_can_dispatch(is_init_check)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as usual, with an ``auto_map`` entry for *every* Auto class of the family.

        transformers records only the saved class; listing all of them lets a folder saved from, say, the
        causal-LM head load as ``AutoModel`` or ``AutoModelForSequenceClassification`` with
        ``trust_remote_code=True``. ``push_to_hub`` and ``Trainer.save_model`` go through here too.

        A model wrapped by FSDP2 (``fully_shard``) is an instance of a class made on the fly, ``FSDP<Name>``,
        defined in torch: transformers would copy torch's FSDP source files instead of ours and record the
        wrapper in ``auto_map``. :meth:`_repair_wrapped_save` puts this package's files and names back.

        A ``config.converted_from`` that is a local path (an older version of ``convert.from_hf`` saved them) is left
        out of the saved config: it is published with it. ``push_to_hub=True`` with ``private=True`` for an existing
        public repository is refused before anything is written (:func:`hub.create_repo`).

        A save into a folder that holds an earlier save in the other layout (one ``model.safetensors`` and
        sharded ``model-*-of-*.safetensors`` + ``model.safetensors.index.json``) deletes the earlier weights
        (:func:`hub.superseded_weights`): transformers removes only old shards, and a stale ``model.safetensors``
        beside new shards is what ``from_pretrained`` (and the Hub, once published) would load.
        """
        from .hub import create_repo, is_hub_id_shaped

        source = getattr(self.config, "converted_from", None)
        if source is not None and not is_hub_id_shaped(str(source)):  # a local path, from a version that saved them
            del self.config.converted_from  # the config is published: the path could name a home or a project
            self.converted_from_folder = str(source)  # still there for this session's card (hub.default_card)
        family = {
            auto: f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"
            for auto, cls in self.family_auto_classes.items()
        }
        config_cls = type(self.config)
        family["AutoConfig"] = f"{config_cls.__module__.rsplit('.', 1)[-1]}.{config_cls.__name__}"
        self.config.auto_map = {**family, **(getattr(self.config, "auto_map", None) or {})}
        bound = inspect.signature(PreTrainedModel.save_pretrained).bind_partial(self, save_directory, *args, **kwargs)
        options = {**bound.arguments, **bound.arguments.get("kwargs", {})}
        saving_rank = getattr(self, "should_save_on_this_rank", bool)(options.get("is_main_process", True))
        if options.get("push_to_hub") and options.get("private") and saving_rank:
            # transformers creates the repository and uploads on its own path, past push_to_hub's check: checked
            # here first, on the rank that pushes, for the repository transformers names (the folder's last part)
            from huggingface_hub import HfApi

            name = options.get("repo_id") or os.fspath(save_directory).split(os.path.sep)[-1]
            if name:  # an empty one (a folder ending in a separator): transformers' own error follows
                create_repo(HfApi(token=options.get("token")), name, True)
        # Only the process that writes the weights cleans up; an adapter or distributed checkpoint has other files.
        adapter = getattr(self, "_hf_peft_config_loaded", False)
        prune = not options.get("distributed_checkpoint") and not adapter and saving_rank
        folder = Path(save_directory)
        # an adapter (transformers' `add_adapter`) is saved alone and loads onto its base model, whose folder has the
        # code: transformers copies a remote-code model's source files anyway (an adapter of GPT-2's has none). The
        # ones this save adds go, before an upload too; into a folder that holds a model, the sources stay
        if adapter and saving_rank and not (folder / CONFIG_NAME).is_file():
            self._adapter_folder = (folder, {path.name for path in folder.glob("*.py")})
        index = Path(save_directory) / _add_variant(SAFE_WEIGHTS_INDEX_NAME, options.get("variant"))
        # The old index goes before the save, so an index found after it is this save's: the save was sharded.
        old_index = index.read_bytes() if prune and index.is_file() else None
        if old_index is not None:
            index.unlink()
        try:
            try:
                result = super().save_pretrained(save_directory, *args, **kwargs)
            except BaseException:
                if old_index is not None and not index.exists():
                    index.write_bytes(old_index)
                raise
            if prune and folder.is_dir():  # a file: transformers logged it and saved nothing
                self._remove_superseded_weights(folder, index, options.get("variant"))
            wrapped = type(self).__module__.startswith("torch.")  # a class made on the fly by torch (FSDP2)
            if wrapped and self.is_remote_code() and kwargs.get("is_main_process", True):
                self._repair_wrapped_save(save_directory, family)
            self._drop_adapter_sources(folder)
        finally:
            self.__dict__.pop("_adapter_folder", None)
        return result

    def _drop_adapter_sources(self, folder: Path) -> None:
        """Delete the source files an adapter save into ``folder`` added (see :meth:`save_pretrained`)."""
        saving, before = self.__dict__.get("_adapter_folder", (None, ()))
        if saving is None or not folder.is_dir() or not folder.samefile(saving):
            return
        for name in {path.name for path in PACKAGE_DIR.glob("*.py")} - set(before):
            (folder / name).unlink(missing_ok=True)

    @staticmethod
    def _remove_superseded_weights(folder: Path, index: Path, variant: str | None) -> None:
        """Delete the weight files in ``folder`` that the save just made supersedes: it wrote ``index`` and the
        shards it lists if it was sharded, else the one weights file."""
        if index.is_file():
            shards = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()
            written = [index.name, *set(shards)]
        else:
            written = [_add_variant(SAFE_WEIGHTS_NAME, variant)]  # transformers' name: model.fp16.safetensors
        for name in superseded_weights([p.name for p in folder.iterdir() if p.is_file()], written):
            (folder / name).unlink()

    def _repair_wrapped_save(self, save_directory, family: dict[str, str]) -> None:
        """Replace the wrapper's source files by this package's, and its ``auto_map`` entry by the real class."""
        from transformers.dynamic_module_utils import custom_object_save, get_relative_import_files

        folder = Path(save_directory)
        wrapper_file = sys.modules[type(self).__module__].__file__
        for path in [wrapper_file, *get_relative_import_files(wrapper_file)]:
            if Path(path).parent != PACKAGE_DIR:
                (folder / Path(path).name).unlink(missing_ok=True)
        custom_object_save(defining_class(type(self)), folder)
        self.config.auto_map = {**self.config.auto_map, **family}
        if (folder / "config.json").is_file():  # not written for a PEFT adapter save
            self.config.save_pretrained(folder)

    def get_input_embeddings(self) -> nn.Module:
        """The token table: ``embeddings.embed_tokens`` on a backbone; heads ask their backbone (``self.model``)."""
        if "embeddings" in self._modules:
            return self.embeddings.embed_tokens
        return super().get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        if "embeddings" in self._modules:
            self.embeddings.embed_tokens = value
        else:
            super().set_input_embeddings(value)

    def push_to_hub(self, repo_id: str, *, token=None, private=None, revision=None, **kwargs):
        """``PreTrainedModel.push_to_hub``, ending with this package's model card (see :func:`hub.push_default_card`)
        instead of transformers' generic template, or with the card the target already had.

        transformers uploads main's card, or its template when main has none, whatever the target. So the card of
        the target branch (``revision``, default main; a missing branch reads as main, from which it is made) is
        read first. A card someone wrote is kept: main's is what transformers re-uploads, another branch's is put
        back after the push. Without one (no card, or transformers' template), ours goes on main before the push,
        so that transformers re-uploads it, and on another branch after the push. With ``create_pr`` the target
        branch stays untouched: the card goes into the pull request (a second commit to its ``refs/pr/N``).
        ``repo_id`` may leave out the namespace: the card calls use the full id that ``create_repo`` returns.
        ``private=True`` for an existing public repository is refused before anything is uploaded (transformers
        uploads publicly: :func:`hub.create_repo`).
        """
        from huggingface_hub import HfApi

        from .hub import create_repo, is_generic_card, push_default_card, read_card

        # -> "user/name"; private=True cannot make an existing public repository private: refused
        repo_id = create_repo(HfApi(token=token), repo_id, private)
        create_pr = kwargs.get("create_pr", False)
        card = read_card(repo_id, revision=revision, token=token)
        own = None if card is None or is_generic_card(card) else card
        on_main = revision in (None, "main") and not create_pr
        if on_main and own is None:
            push_default_card(self, repo_id, token=token, overwrite=True)
        result = super().push_to_hub(repo_id, token=token, private=private, revision=revision, **kwargs)
        target = getattr(result, "pr_revision", None) if create_pr else revision
        if not on_main and target:
            push_default_card(self, repo_id, token=token, revision=target, overwrite=True, card=own,
                              load_revision=revision)  # a pull request's card loads from the branch it merges into
        return result

    def _upload_modified_files(self, working_dir, repo_id: str, *args, **kwargs):
        """transformers' upload of a saved folder (``push_to_hub``, ``save_pretrained(push_to_hub=True)``), then the
        deletion of the repository's files that the folder supersedes or lacks, as :func:`hub.publish_folder` deletes
        them (:func:`hub.stale_files`: the old ``model.safetensors`` after a push with ``max_shard_size``, old shards
        after a single-file push, another family's code and generation config), in a second commit to the same branch
        or pull request. transformers only adds files, and ``from_pretrained`` prefers a stale ``model.safetensors``
        to new shards. The card, hand-added files and a tokenizer (pushed on its own) stay.

        A folder whose README is transformers' generic template (``save_pretrained(push_to_hub=True)`` writes it
        when the repository has no card) gets this package's card instead, as :meth:`push_to_hub` gives."""
        from huggingface_hub import CommitOperationDelete, HfApi

        from .hub import default_card, is_generic_card, stale_files

        self._drop_adapter_sources(Path(working_dir))  # save_pretrained(push_to_hub=True) uploads inside the save
        readme = Path(working_dir) / "README.md"
        if readme.is_file() and is_generic_card(readme.read_text(encoding="utf-8")):
            default_card(self, working_dir, repo_id, token=kwargs.get("token"))
        result = super()._upload_modified_files(working_dir, repo_id, *args, **kwargs)
        if getattr(result, "oid", None) is None:  # nothing was committed: nothing to compare with
            return result
        options = inspect.signature(super()._upload_modified_files).bind(working_dir, repo_id, *args, **kwargs)
        options.apply_defaults()
        options = options.arguments
        api = HfApi(token=options["token"])
        folder = [path.name for path in Path(working_dir).iterdir() if path.is_file()]
        stale = stale_files(api.list_repo_files(repo_id, revision=result.oid), folder)
        if stale:
            api.create_commit(repo_id, operations=[CommitOperationDelete(path_in_repo=name) for name in stale],
                              commit_message="Delete files this push supersedes (mini-transformers)",
                              revision=getattr(result, "pr_revision", None) or options["revision"],
                              parent_commit=result.oid)
        return result

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # Linear / Embedding: normal(0, initializer_range); norms: ones / zeros
        if isinstance(module, nn.Linear) and getattr(module, "is_residual_output", False):
            # Output projections of residual sub-layers (attention o_proj, FFN down_proj) are scaled down.
            # Done per Linear: transformers skips custom modules that own no parameters directly.
            # the depth of the module's stack: a seq2seq encoder's blocks say theirs (num_hidden_layers: the decoder's)
            blocks = getattr(module, "residual_depth", None) or getattr(self.config, "num_hidden_layers", 1)
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range / math.sqrt(2 * blocks))
        elif isinstance(module, MiniLMHeadBias):
            init.zeros_(module.bias)
        elif isinstance(module, GainOffsetRMSNorm):  # a gain of 1 is stored as 0 (transformers sets norms to ones)
            init.zeros_(module.weight)


class MiniLMHeadBias(nn.Module):
    """A fixed per-token bias added to the output logits: BART's and Marian's ``final_logits_bias``.

    Saved with the weights but not trained: transformers keeps it as a buffer, so a converted BART or Marian
    checkpoint fine-tunes here exactly as it does there (zeros for BART; Marian checkpoints carry values
    from the original Marian NMT training). A trainable output bias is ``lm_head.bias`` (BERT's MLM head).
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        self.register_buffer("bias", torch.zeros(vocab_size))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.bias


class MiniEmbeddings(nn.Module):
    """Turns token ids into the first hidden states: ``dropout(norm(scale * tok + seg + pos))``, then, with a
    factorised embedding (``width``: the encoder's ``embedding_size``, ELECTRA), ``project`` up to ``hidden_size``.
    With a narrower token table alone (``token_width``: the GPT's ``token_embedding_size``, OPT-350M), ``tok`` is
    each lookup projected up by ``project_tokens`` (no bias), and the positions are ``hidden_size`` wide.

    ``embed_tokens`` is the token table (tied to the LM head); ``token_type_embeddings`` exists when the
    encoder passes its config's ``type_vocab_size > 0`` (BERT's sentence A / B: the GPT and seq2seq configs have
    no such field, and a stray one builds no table); ``embed_positions`` is the absolute position
    encoding, or ``None`` for rotary / no positions; ``norm`` exists when ``embedding_norm`` is set.

    ``token_types_in_vocabulary`` (the GPT): there is no segment table, and ``token_type_ids`` are tokens of the
    vocabulary whose embeddings are added to each position's, as GPT-2 and GPT-J do (a segment is marked by a token
    such as ``<|question|>``).

    ``freeze_padding_row``: the pad token's row starts at zero and its lookups pass no gradient, as in BERT,
    BART and Marian, whose pad tokens only ever sit where attention masks them out. GPT leaves it trainable, as
    GPT-2 does: a causal LM's pad token is usually its end-of-text token, which it must learn.
    ``frozen_position_row``: the same for a row of a learned position table, the one pads read (RoBERTa's).
    """

    def __init__(self, config, freeze_padding_row: bool = True, width: int | None = None,
                 token_width: int | None = None, token_types_in_vocabulary: bool = False, type_vocab_size: int = 0,
                 ids_name: str = "input_ids", frozen_position_row: int | None = None):
        super().__init__()
        self.config = config
        self.token_types_in_vocabulary = token_types_in_vocabulary
        padding_idx = config.pad_token_id if freeze_padding_row else None
        width = width or config.hidden_size  # the tables' width
        token_width = token_width or width  # the token table's
        self.embed_tokens = nn.Embedding(config.vocab_size, token_width, padding_idx)
        self.project_tokens = nn.Linear(token_width, width, bias=False) if token_width != width else None
        self.ids_name = ids_name  # how an error names the ids: a seq2seq decoder's are `decoder_input_ids`
        self.token_type_embeddings = nn.Embedding(type_vocab_size, width) if type_vocab_size else None
        self.embed_positions = build_absolute_positions(config, width, frozen_position_row)
        self.embed_scale = math.sqrt(width) if config.scale_embeddings else 1.0
        self.norm = build_norm(config, width) if config.embedding_norm else None
        dropout = config.embedding_dropout
        self.dropout = nn.Dropout(config.hidden_dropout if dropout is None else dropout)
        self.project = nn.Linear(width, config.hidden_size) if width != config.hidden_size else None

    @property
    def input_width(self) -> int:
        """The width of ``inputs_embeds``, which stand for the token lookups: the token table's."""
        return self.embed_tokens.weight.shape[1]

    @property
    def vocabulary_size(self) -> int:
        """The token table's rows, read from its weight: a wrapper put in the table's place (PEFT's LoRA
        ``Embedding``) has no ``num_embeddings`` of its own, but passes on the table's ``weight``."""
        return self.embed_tokens.weight.shape[0]

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        inputs_embeds: torch.Tensor | None,
        position_ids: torch.LongTensor,
        token_type_ids: torch.LongTensor | None = None,
        max_position: int | None = None,
        max_position_reached: bool = True,
    ) -> torch.Tensor:
        """(B, T) ids -> (B, T, D) hidden states. ``max_position``: a bound on the position ids, when the caller knows
        it without reading the tensor (it made the ids from the cache length); the learned-position check then needs
        no device read and sinusoidal positions come from a table. ``max_position_reached``: the bound is an id of the
        tensor (ids made by ``arange``), not only a bound (ids made from a padding mask, which count real tokens)."""
        token_types, positions = self.token_type_embeddings, self.embed_positions
        learned = isinstance(positions, LearnedPositionalEmbedding)
        offset = getattr(self.config, "position_offset", 0)  # the ids are rows: positions + the table's first row
        if learned and max_position is not None and max_position >= positions.num_embeddings:
            if max_position_reached:  # known past the table, without a read: also under torch.compile
                raise out_of_range_error("position_ids", max_position, positions.num_embeddings, offset)
            # a bound counting padding, as OPT's ids made from the mask have, can be past the table while every id
            # fits: the ids themselves are read and checked
            max_position = None
        # no segment table (DistilBERT's, ModernBERT's layout): segment ids are ignored, as those models ignore them;
        # a BERT tokenizer still sends them, with 1s for the second text of a pair
        vocabulary_types = token_type_ids if token_types is None and self.token_types_in_vocabulary else None
        check_id_ranges(  # one host sync for every id this forward looks up in a table
            **{self.ids_name: (input_ids, self.vocabulary_size) if inputs_embeds is None else None},
            token_type_ids=(token_type_ids, token_types.num_embeddings)
            if token_types is not None and token_type_ids is not None else None,
            **{"token_type_ids:vocabulary": (vocabulary_types, self.vocabulary_size)
               if vocabulary_types is not None else None},
            position_ids=(position_ids, positions.num_embeddings, offset) if learned and max_position is None else None,
        )
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, D), or (B, T, token_width)
        if self.project_tokens is not None:
            inputs_embeds = self.project_tokens(inputs_embeds)  # (B, T, token_width) -> (B, T, D)
        hidden = inputs_embeds * self.embed_scale if self.embed_scale != 1.0 else inputs_embeds
        if token_types is not None and token_type_ids is None:
            # no segment ids: every token is in segment 0. A lookup, not `weight[0]`: an offloaded table (a device map)
            # gets its weight loaded by a hook on its own forward
            hidden = hidden + token_types(torch.zeros(1, 1, dtype=torch.long, device=hidden.device))
        elif token_types is not None:
            hidden = hidden + token_types(token_type_ids)
        if positions is not None:
            hidden = hidden + positions(position_ids, hidden.dtype, max_position)
        if vocabulary_types is not None:  # GPT-2's order: tokens + positions + token types
            types = self.embed_tokens(vocabulary_types)
            hidden = hidden + (types if self.project_tokens is None else self.project_tokens(types))
        if self.norm is not None:
            hidden = self.norm(hidden)
        hidden = self.dropout(hidden) if self.training else hidden  # eval: no module call for the identity
        return hidden if self.project is None else self.project(hidden)  # (B, T, E) -> (B, T, D)


def _checks_enabled(tensor: torch.Tensor) -> bool:
    """May a value check read ``tensor`` back to the host (a sync)? Not inside ``torch.compile``, where that would
    break the graph, nor in ``torch.jit.trace`` (the read would not be recorded), nor while a CUDA graph is being
    captured (continuous batching, ``reduce-overhead``), where a sync is an error."""
    if traced():
        return False
    return not (tensor.is_cuda and torch.cuda.is_current_stream_capturing())


#: The error for an id outside its table, by argument name: (name of the table's size in the config, advice).
_RANGE_ERRORS = {
    "input_ids": ("vocab_size", "the tokenizer and the model must share a vocabulary"),
    "decoder_input_ids": ("vocab_size", "the tokenizer and the model must share a vocabulary"),
    "token_type_ids": ("type_vocab_size", "segment ids index the token-type table"),
    "token_type_ids:vocabulary": ("vocab_size", "a GPT's token type ids are tokens of its vocabulary, as GPT-2's"),
    "position_ids": (
        "max_position_embeddings",
        "with `position_embedding_type='learned'` a model cannot read past its position table: shorten the input "
        "(truncate) or use a model with a longer table",
    ),
}


def check_id_ranges(**named: tuple[torch.Tensor, int] | tuple[torch.Tensor, int, int] | None) -> None:
    """Raise ``ValueError`` if a tensor of ids holds a value outside ``[0, size)``; ``named`` maps an argument
    name (a key of ``_RANGE_ERRORS``) to ``(ids, size)`` (position ids: ``(ids, size, offset)``, see
    :func:`out_of_range_error`), or to ``None`` when there is nothing to check.

    An embedding lookup with a bad id fails as an ``IndexError`` on the CPU and a device-side assert on a GPU,
    which kills the CUDA context. Reading the ids' range costs a host sync, so every table is checked in one:
    the minima and maxima of all the tensors are stacked and read back together. Skipped under
    ``torch.compile``, where a read-back would break the graph.
    """
    named = {name: pair for name, pair in named.items() if pair is not None}
    for name, (ids, *_) in named.items():
        if ids.dtype not in (torch.int64, torch.int32):  # what an embedding lookup takes (int8 failed inside it)
            argument = name.partition(":")[0]  # "token_type_ids:vocabulary": the argument, as the user named it
            raise ValueError(f"`{argument}` must hold integer ids (torch.int64, or torch.int32); got dtype "
                             f"{ids.dtype}.")
    named = {name: pair for name, pair in named.items() if pair[0].numel()}
    if not named or not _checks_enabled(next(iter(named.values()))[0]):
        return
    bounds = torch.stack([bound.long() for ids, *_ in named.values() for bound in torch.aminmax(ids)])
    bounds = bounds.tolist()  # [min, max] per tensor: the one host sync
    for (name, (_, size, *offset)), low, high in zip(named.items(), bounds[0::2], bounds[1::2], strict=True):
        if low < 0 or high >= size:
            raise out_of_range_error(name, low if low < 0 else high, size, *offset)


def out_of_range_error(name: str, value: int, size: int, offset: int = 0) -> ValueError:
    """The ``ValueError`` for an id ``value`` outside ``[0, size)`` in argument ``name`` (see ``_RANGE_ERRORS``).

    ``offset``: a position table whose positions start at row ``offset`` (BART's and OPT's at 2, RoBERTa's after its
    padding row): the error names the position, ``value - offset``, and the positions the table holds."""
    field, advice = _RANGE_ERRORS[name]
    argument = name.partition(":")[0]  # "token_type_ids:vocabulary": the argument, checked against another table
    if field is None:  # no table of that name to cite
        return ValueError(f"`{argument}` contains {value}: {advice}.")
    if offset:
        return ValueError(f"`{argument}` reach position {value - offset} (table row {value}), outside the "
                          f"{size - offset} positions this model holds, [0, {field} - position_offset) = "
                          f"[0, {size} - {offset}): {advice}.")
    return ValueError(f"`{argument}` contains {value}, outside [0, {field}={size}): {advice}.")


def next_positions(past: int | torch.Tensor, length: int, device, offset: int = 0):
    """Position ids (1, T) for ``length`` tokens after ``past`` cached ones (+ ``offset``, BART's table start), and
    the largest of them when the host knows it (else ``None``).

    A dynamic cache counts its tokens in a Python int: one ``arange`` makes the ids and the bound is free. A static
    cache counts them in a device tensor, so that compiled decoding does not recompile at every step; the ids are
    then made on the device (``arange + past``), without reading the count back (a host sync, and a graph break under
    ``torch.compile``), and the bound stays unknown.
    """
    first = past + offset
    if isinstance(first, torch.Tensor):
        return (torch.arange(length, device=device) + first).unsqueeze(0), None
    return torch.arange(first, first + length, device=device).unsqueeze(0), first + length - 1


def check_attention_mask(
    attention_mask: torch.Tensor | None, batch: int, length: int | torch.Tensor | None, name: str = "attention_mask",
    implementation: str | None = None, query_length: int | None = None, num_heads: int | None = None,
):
    """A 2D mask must be (batch, past + current length). A 4D mask, passed on as it is, must be boolean (True: attend)
    or floating (added to the scores), shaped (batch or 1, ``num_heads`` or 1, ``query_length`` or 1, ``length``),
    and cannot go to flex attention (``implementation``, the config's ``_attn_implementation``): see
    :func:`refuse_4d_mask_under_flex`. ``length`` may be a device tensor (a static cache's past + current length) or
    ``None`` (keys the caller does not count: a static cache's 4D mask spans all its slots, a paged cache's the blocks
    it reads): the keys are not checked then. Shapes and dtypes only: no device read."""
    if attention_mask is None:
        return
    if attention_mask.dim() == 4:
        refuse_4d_mask_under_flex(name, implementation)
        _check_4d_mask(attention_mask, batch, length, name, query_length, num_heads)
        return
    if length is None or isinstance(length, torch.Tensor):
        if attention_mask.dim() == 2 and attention_mask.shape[0] == batch:
            return
        length = "past + sequence_length"
    if attention_mask.dim() != 2 or tuple(attention_mask.shape) != (batch, length):
        raise ValueError(
            f"`{name}` must have shape (batch_size, sequence_length) = ({batch}, {length}) with 1 for tokens to "
            f"attend to and 0 for padding (or be 4D); got shape {tuple(attention_mask.shape)}."
        )


def _check_4d_mask(mask: torch.Tensor, batch: int, length, name: str, query_length: int | None,
                   num_heads: int | None = None) -> None:
    """See :func:`check_attention_mask`: a 4D mask's dtype and the sizes known without a device read."""
    keys = length if isinstance(length, int) else None
    size_ok = mask.shape[0] in (1, batch) and (query_length is None or mask.shape[2] in (1, query_length))
    size_ok = size_ok and (num_heads is None or mask.shape[1] in (1, num_heads))
    if keys is not None:
        size_ok = size_ok and mask.shape[3] == keys
    if not size_ok or not (mask.dtype == torch.bool or mask.dtype.is_floating_point):
        queries = "query_length" if query_length is None else query_length
        heads = "num_heads" if num_heads is None else num_heads
        raise ValueError(
            f"`{name}` is a 4D mask: it must be boolean (True where a query may attend) or floating (added to the "
            f"scores) with shape (batch_size or 1, {heads} or 1, {queries} or 1, "
            f"{'past + sequence_length' if keys is None else keys}) for batch_size={batch}; got shape "
            f"{tuple(mask.shape)} and dtype {mask.dtype}."
        )


def check_sequence_input(ids: torch.Tensor | None, embeds: torch.Tensor | None, width: int | None = None,
                         names: tuple[str, str] = ("input_ids", "inputs_embeds")) -> tuple[int, int] | None:
    """The (batch, length) of the ids (B, T), or else of the embeddings (B, T, ``width``), that a stack reads, once
    their shapes are checked: a wrong number of dimensions, floating embeddings of another width (``None``: not
    checked) or of an integer dtype, and an empty batch or sequence are a ``ValueError`` naming the argument
    (``names``: the ids', the embeddings'), not an error from deep inside (a reshape of 0 elements, a size mismatch
    in an addition) or a silent broadcast. ``None`` when both are ``None``. Shapes and dtypes only: no device read."""
    ids_name, embeds_name = names
    if ids is not None:
        name, given = ids_name, ids
        if ids.dim() != 2:
            raise ValueError(f"`{ids_name}` must have shape (batch_size, sequence_length); got shape "
                             f"{tuple(ids.shape)}.")
    elif embeds is not None:
        name, given = embeds_name, embeds
        if embeds.dim() != 3 or not embeds.is_floating_point() or width not in (None, embeds.shape[-1]):
            raise ValueError(f"`{embeds_name}` must be a floating-point tensor of shape (batch_size, sequence_length, "
                             f"{'width' if width is None else width}); got shape {tuple(embeds.shape)} and dtype "
                             f"{embeds.dtype}.")
    else:
        return None
    batch, length = given.shape[:2]
    if batch == 0 or length == 0:
        raise ValueError(f"`{name}` must hold at least one row and one token; got shape {tuple(given.shape)}.")
    return batch, length


def check_position_ids(position_ids: torch.Tensor | None, batch: int, length: int) -> None:
    """Given ``position_ids`` must be (batch, length), or (1, length) for every row alike (what ``generate`` makes
    without a mask, and a padding-free batch's one row); anything else would broadcast silently or fail deep inside.
    A boolean tensor is no positions (it failed inside transformers' masking). Shapes and dtypes only: no device
    read."""
    if position_ids is not None and position_ids.dtype == torch.bool:
        raise ValueError("`position_ids` must hold integer positions; got dtype torch.bool.")
    if position_ids is not None and (position_ids.dim() != 2 or position_ids.shape[0] not in (1, batch)
                                     or position_ids.shape[1] != length):
        raise ValueError(f"`position_ids` must have shape (batch_size, sequence_length) = ({batch}, {length}), or "
                         f"(1, {length}) for every row alike; got {tuple(position_ids.shape)}.")


def check_encoder_states(states: torch.Tensor, batch: int | None, width: int, name: str) -> None:
    """The encoder output that cross-attention reads (argument ``name``) must be floating (batch, source_length,
    width), with at least one source token; ``batch`` ``None``: not compared here. Shapes only: no device read."""
    if (states.dim() != 3 or not states.is_floating_point() or states.shape[-1] != width or states.shape[1] == 0
            or batch not in (None, states.shape[0])):
        rows = "batch_size" if batch is None else f"batch_size={batch}"
        raise ValueError(f"`{name}` must be a floating-point tensor of shape ({rows}, source_length >= 1, "
                         f"hidden_size={width}); got shape {tuple(states.shape)} and dtype {states.dtype}.")


def refuse_4d_mask_under_flex(name: str, implementation: str | None) -> None:
    """A 4D tensor mask cannot reach flex attention: transformers' ``flex_attention_forward`` adds a tensor mask to
    the scores as a bias (a boolean mask then adds 0 and 1 instead of masking), and on the CPU torch's compiled flex
    kernel crashed the process (malloc errors) when its score function read such a captured tensor. Flex attention
    takes only the masks transformers builds itself (``BlockMask``), from a 2D padding mask."""
    if implementation == "flex_attention":
        raise ValueError(
            f"`{name}` is a 4D tensor, which `attn_implementation='flex_attention'` cannot take (it would be added "
            f"to the scores as a bias, not used as a mask): pass a 2D padding mask (batch_size, sequence_length), "
            f"or use `attn_implementation` 'sdpa' or 'eager' for a custom 4D mask."
        )


def check_token_labels(labels: torch.Tensor, shape: tuple, name: str = "labels", *, num_classes: int | None = None,
                       classes_name: str = "num_labels", expected: str | None = None) -> torch.Tensor:
    """Per-token labels must be integer ids (-100 = ignored) shaped like the input ``shape`` (B, T); returns them as
    ``long``, the only integer type the cross-entropy takes (int32 ids, numpy's default on some platforms, are ids
    too). ``expected`` says in words what the shape must be, where it is not the input's (a seq2seq target of any
    length).

    With ``num_classes`` every id but -100 must also lie in ``[0, num_classes)`` (``classes_name`` names that size in
    the error: ``num_labels``, ``vocab_size``): outside, the cross-entropy fails with an ``IndexError`` on the CPU
    and a device-side assert on a GPU. Reading the range back is one host sync, skipped where
    :func:`_checks_enabled` says so (under ``torch.compile``, during CUDA graph capture).
    """
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold integer class ids (-100 to ignore a position); got dtype {labels.dtype}.")
    if tuple(labels.shape) != tuple(shape):
        expected = expected or f"the input's shape (batch_size, sequence_length) = {tuple(shape)}"
        raise ValueError(f"`{name}` must have {expected}; got {tuple(labels.shape)}.")
    if num_classes is not None:
        outside = class_id_outside(labels, num_classes)
        if outside is not None:
            raise ValueError(f"`{name}` contains {outside}, outside [0, {classes_name}={num_classes}) "
                             f"(-100 marks a position to ignore).")
    return labels.long()


def class_id_outside(labels: torch.Tensor, num_classes: int) -> int | None:
    """An integer label outside ``[0, num_classes)`` other than -100 (the ignored), or None: found with one host read
    (the smallest and the largest id together), skipped where :func:`_checks_enabled` says so. Outside that range the
    cross-entropy fails with an ``IndexError`` on the CPU and a device-side assert on a GPU."""
    if not labels.numel() or not _checks_enabled(labels):
        return None
    ids = labels.masked_fill(labels == -100, 0)  # ignored positions stand in as a valid id
    low, high = torch.stack(torch.aminmax(ids)).tolist()  # the one host sync
    return low if low < 0 else high if high >= num_classes else None


def resolve_problem_type(config, labels: torch.Tensor) -> str:
    """transformers' rule, widened to every integer type: 1 label -> regression, integer labels (any width: transformers
    takes only int64 and int32, and sends int16 or uint8 ids to multi-label, where they fail) -> single-label, float
    or bool labels (multi-hot rows) -> multi-label."""
    if config.problem_type is not None:
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    if not labels.dtype.is_floating_point and labels.dtype != torch.bool:
        return "single_label_classification"
    return "multi_label_classification"


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor, config, num_items_in_batch=None):
    """Loss of a (B, num_labels) classification head, checked against ``problem_type``.

    * ``regression``: mean squared error; labels (B, num_labels), or (B,) with one label; any number.
    * ``single_label_classification``: softmax cross-entropy; integer labels (B,) or (B, 1) in [0, num_labels), -100
      ignored.
    * ``multi_label_classification``: one sigmoid per label, binary cross-entropy; labels (B, num_labels) in [0, 1]:
      0/1 (multi-hot, bool too) or a probability per label (soft targets: distillation, label smoothing), as
      transformers takes them. With ``num_labels=1`` this is the binary (spam / not spam) head, and labels (B,) are
      accepted.

    ``num_items_in_batch`` (passed by the Trainer under gradient accumulation) turns the mean into a sum
    divided by the count over all accumulated micro-batches, so accumulation equals one big batch.

    A ``problem_type`` inferred from the labels is written to ``config.problem_type``, as transformers' heads do: a
    saved model then tells the text-classification pipeline which function to apply (none for regression, a sigmoid
    per label for multi-label). It is written once the labels passed the checks, so that a bad first batch does not
    fix a wrong type.
    """
    problem_type = resolve_problem_type(config, labels)
    batch, num_labels = logits.shape
    labels = labels.to(logits.device)
    where = f"for problem_type={problem_type!r} with num_labels={num_labels}"
    if problem_type == "single_label_classification":
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class ids {where}; got dtype {labels.dtype}.")
        if labels.shape == (batch, 1):  # a column of ids, as some datasets give them: transformers reads it too
            labels = labels[:, 0]
        if labels.shape != (batch,):
            raise ValueError(f"labels must have shape ({batch},) or ({batch}, 1) {where}; got {tuple(labels.shape)}.")
        labels = labels.long()  # int32 ids (numpy's default on some platforms) are ids too
        if class_id_outside(labels, num_labels) is not None:
            raise ValueError(f"labels must be in [0, {num_labels}) or -100 {where}.")
        losses = nn.functional.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="none")
        count = (labels != -100).sum()
    elif problem_type in ("regression", "multi_label_classification"):
        if labels.shape == (batch,) and num_labels == 1:
            labels = labels[:, None]
        if labels.shape != (batch, num_labels):
            raise ValueError(
                f"labels must have shape ({batch}, {num_labels})"
                + (f" or ({batch},)" if num_labels == 1 else "")
                + f" {where}; got {tuple(labels.shape)}."
            )
        labels = labels.float()
        if problem_type == "regression":
            losses = (logits.float() - labels) ** 2
        else:
            outside = ~((labels >= 0) & (labels <= 1))  # NaN included
            if _checks_enabled(labels) and labels.numel() and bool(outside.any()):
                raise ValueError(f"labels must be in [0, 1] {where} (0 or 1 for each label, or its probability); got "
                                 f"{labels[outside][0].item()}.")
            losses = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")
        count = labels.numel()
    else:
        raise ValueError(f"`problem_type` must be one of {', '.join(map(repr, PROBLEM_TYPES))}; got {problem_type!r}.")
    if config.problem_type is None:
        config.problem_type = problem_type
    if num_items_in_batch is not None:
        return losses.sum() / num_items_in_batch
    return losses.sum() / count


def last_token_pool(hidden: torch.Tensor, input_ids, attention_mask, pad_token_id) -> torch.Tensor:
    """Pick each row's last real token (B, T, D) -> (B, D): where a causal model has read the whole input.

    transformers' rule first: the last token whose id is not ``pad_token_id``, whatever the mask says, so that a
    checkpoint fine-tuned there (often with ``pad_token = eos_token``, each text ending in an eos its mask keeps)
    pools the same token here. Without ids or a pad token, the ``attention_mask`` (its last T columns: continuing
    from a cache, the mask covers the past too); else the last position, which is right only for one row or rows
    without padding: with no pad token to find it by, several rows are a ``ValueError``, as in transformers. Works
    for left and right padding.
    """
    batch, length = hidden.shape[:2]
    positions = torch.arange(length, device=hidden.device)
    if input_ids is not None and pad_token_id is not None:
        real = input_ids.to(hidden.device) != pad_token_id
    elif attention_mask is not None and attention_mask.dim() == 2:
        real = attention_mask[:, -length:].to(hidden.device).bool()  # (B, T)
    elif batch > 1 and pad_token_id is None:
        raise ValueError("A batch of several texts needs `pad_token_id` in the config (or an `attention_mask`) to find "
                         "each text's last token: set `config.pad_token_id`, or pass the attention mask.")
    else:
        real = torch.ones(batch, length, dtype=torch.bool, device=hidden.device)
    last = (positions * real).argmax(dim=-1)  # (B,) index of the right-most real token
    return hidden[torch.arange(batch, device=hidden.device), last]


def last_eos_pool(hidden: torch.Tensor, input_ids: torch.Tensor | None, eos_token_id: int | None) -> torch.Tensor:
    """Pick each row's last end-of-sequence token (B, T, D) -> (B, D): BART's and T5's sentence vector.

    An encoder-decoder classifier feeds the text to both stacks; the decoder state at the closing ``eos_token_id``
    has read the whole text through cross-attention and all of it but that token through its causal self-attention.
    BART asks every row for the same number of eos tokens; any number >= 1 works here, and where the counts agree
    the choice is BART's. A row without one is a ``ValueError``: it usually means the input was truncated without
    its end token.
    """
    if input_ids is None:
        raise ValueError("A sequence-classification head of an encoder-decoder pools the decoder state at each row's "
                         "last `eos_token_id`: pass `input_ids` (not `inputs_embeds`).")
    if eos_token_id is None:
        raise ValueError("`eos_token_id` must be set in the config: the classification head pools each row's last "
                         "end-of-sequence token.")
    is_eos = input_ids.to(hidden.device) == eos_token_id  # (B, T)
    if _checks_enabled(is_eos) and not bool(is_eos.any(dim=-1).all()):
        raise ValueError(f"Every row of `input_ids` must contain the end-of-sequence token (eos_token_id="
                         f"{eos_token_id}): the classification head reads the decoder state there. Tokenize with "
                         f"the special tokens added, and truncate so that they stay.")
    batch, length = input_ids.shape
    positions = torch.arange(length, device=hidden.device)
    last = (positions * is_eos).argmax(dim=-1)  # (B,) index of the right-most eos token
    return hidden[torch.arange(batch, device=hidden.device), last]


def span_logits(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Extractive QA scores every token twice, "the answer starts here" and "it ends here": (B, T, 2) -> two (B, T)."""
    start, end = (part.squeeze(-1).contiguous() for part in logits.split(1, dim=-1))
    return start, end


def span_loss(model, start_logits, end_logits, start_positions, end_positions, **kwargs) -> torch.Tensor | None:
    """The QA loss (None without positions): transformers' ``ForQuestionAnswering`` loss, the mean of the start and
    end cross-entropies, with ``start_positions`` / ``end_positions`` (B,) token indices; positions outside the
    input are clamped to ``T`` and ignored, as there. Checks the positions' shape and dtype first."""
    if (start_positions is None) != (end_positions is None):
        raise ValueError("Pass both `start_positions` and `end_positions` (or neither).")
    if start_positions is None:
        return None
    batch = start_logits.shape[0]
    for name, positions in (("start_positions", start_positions), ("end_positions", end_positions)):
        if positions.dtype.is_floating_point or positions.dtype == torch.bool or positions.numel() != batch:
            raise ValueError(f"`{name}` must hold one integer token index per example, shape ({batch},); "
                             f"got shape {tuple(positions.shape)} and dtype {positions.dtype}.")
    # as long: int32 indices are indices too, but the cross-entropy takes only long targets; the scores in float32,
    # as every other head's loss (a bfloat16 model's softmax over T positions would lose the loss's precision)
    return model.loss_function(start_logits.float(), end_logits.float(), start_positions.reshape(batch).long(),
                               end_positions.reshape(batch).long(), **kwargs)


def register_family(pretrained_class: type, auto_classes: dict[str, type]) -> None:
    """Declare a family's heads for remote code: each class remembers its Auto class, and saving writes
    the whole ``auto_map`` (see :meth:`MiniPreTrainedModel.save_pretrained`).

    Called at the bottom of each family module, so that it also runs when a checkpoint's copied code is
    loaded with ``trust_remote_code=True``. (Registration with the Auto classes of an *installed*
    package happens in ``modeling_mini/__init__.py``.)
    """
    pretrained_class.config_class.register_for_auto_class("AutoConfig")
    for auto_name, cls in auto_classes.items():
        cls.register_for_auto_class(auto_name)
        # generate() inspects the forward signature of remote-code models at every decoding step; unwrapping
        # the decorators each time costs ~50 us a step, a stored signature ~10 us.
        cls.forward.__signature__ = inspect.signature(cls.forward)
    pretrained_class.family_auto_classes = dict(auto_classes)
    register_peft_defaults(pretrained_class.config_class)
    if "AutoModelForCausalLM" in auto_classes:
        declare_causal_lm(pretrained_class.config_class.model_type, auto_classes["AutoModelForCausalLM"])


def declare_causal_lm(model_type: str, model_class: type) -> None:
    """Name ``model_class`` among transformers' causal language models, for the code that asks by class name.

    With ``label_smoothing_factor`` the ``Trainer`` takes the labels away from the model and computes the loss itself,
    shifting them by one only for a class named in ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``: any other causal LM is
    scored on predicting the token it was given, and learns to copy its input (the loss looks fine). The
    text-generation pipeline checks the same table. The entry is keyed by our ``model_type``, which no transformers
    config mapping holds, so the Auto classes never load through it; they find our classes by their registration."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.setdefault(model_type, model_class.__name__)


def register_peft_defaults(config_class: type) -> None:
    """Tell PEFT which layers its adapters target by default in this family, as it knows for library models.

    PEFT looks a model's ``model_type`` up in tables of default ``target_modules`` (GPT-2: its fused ``c_attn``;
    BART: ``q_proj`` and ``v_proj``) and raises without an entry. The attention projections are ours too: the fused
    ``qkv_proj`` of every block, and the decoder's cross-attention ``q_proj`` / ``kv_proj``; (IA)^3 also scales the
    feed-forward output ``down_proj``. Only the tables whose GPT-2 entry is its attention projection get an entry, so
    a method with other defaults (layer norms, the MLP) still asks for ``target_modules``. Skipped when PEFT is not
    installed; an entry PEFT already has is left alone."""
    try:
        from peft.utils import constants
    except ImportError:
        return
    # cross-attention: the seq2seq decoder's, and a GPT's with `add_cross_attention` (there a per-config property)
    attention = ["qkv_proj"] + (["q_proj", "kv_proj"] if config_class._cross_attention_stacks != () else [])
    model_type = config_class.model_type
    for name in dir(constants):
        table = getattr(constants, name)
        if name.endswith("_TARGET_MODULES_MAPPING") and isinstance(table, dict) and table.get("gpt2") == ["c_attn"]:
            table.setdefault(model_type, attention)
    constants.TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING.setdefault(model_type, [*attention, "down_proj"])
    constants.TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.setdefault(model_type, ["down_proj"])
