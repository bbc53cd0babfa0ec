"""Pretrain a mini model from scratch: causal LM (gpt), masked LM (encoder) or denoising (seq2seq).

    python train/pretrain.py configuration/recipes/pretrain-gpt-small.yaml --learning_rate 1e-3
    python train/pretrain.py --family encoder --model_config tiny --train_files corpus.txt --output_dir out \\
        --max_steps 200
    accelerate launch --config_file configuration/accelerate/multi_gpu.yaml train/pretrain.py <recipe.yaml>

With no data argument it trains on the embedded default corpus. The text is tokenised with a batched
multi-process ``map`` and packed into blocks of ``--max_length`` tokens; the objective is the family's:

* gpt: next-token prediction (:func:`packed_causal_lm_collator`: every token of a block is a label);
* encoder: 15% of tokens masked (80% ``[MASK]``, 10% random, 10% kept), as BERT (``mlm_probability``);
* seq2seq: text infilling, as BART (:class:`TextInfillingCollator`).

The masks of the encoder and the seq2seq objectives are drawn anew every epoch, each block's from a generator seeded
by (seed, epoch, the block's tokens) (:func:`block_rng`): a killed run resumes with the masks it would have drawn,
whatever the number of data-loader workers (persistent ones too: the epoch is in shared memory, :class:`MaskEpoch`),
and an evaluation draws epoch 0's masks each time (:class:`MaskedObjectiveTrainer`), so its losses compare across the
run, without taking anything from the training's random stream.
"""

import copy
import itertools
import math
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments, set_seed

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

OBJECTIVES = {"gpt": "causal-lm", "encoder": "masked-lm", "seq2seq": "denoising"}
MODEL_CLASSES = {"gpt": "MiniGPTForCausalLM", "encoder": "MiniEncoderForMaskedLM",
                 "seq2seq": "MiniSeq2SeqForConditionalGeneration"}


@dataclass
class PretrainArguments:
    """Settings of the pretraining objectives."""

    mlm_probability: float = field(default=0.15, metadata={"help": "encoder: share of tokens to mask"})
    noise_density: float = field(default=0.3, metadata={"help": "seq2seq: share of tokens inside masked spans"})
    mean_span_length: float = field(default=3.0, metadata={"help": "seq2seq: mean (Poisson) masked-span length"})

    def __post_init__(self):
        """Each a ``ValueError`` before anything runs: a density above 1 would never be reached (the first batch
        would hang), and a mean span of 0 masks nothing."""
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"`mlm_probability` must be in (0, 1); got {self.mlm_probability}.")
        if not 0 <= self.noise_density <= 1:
            raise ValueError(f"`noise_density` must be in [0, 1]; got {self.noise_density}.")
        if not self.mean_span_length > 0:
            raise ValueError(f"`mean_span_length` must be > 0; got {self.mean_span_length}.")


def block_rng(seed: int, epoch: int, ids) -> np.random.Generator:
    """The noise of one block: a generator seeded by the run's seed, the epoch and the block's tokens. The same block
    gets other masks in another epoch (dynamic masking, as RoBERTa) and the same ones whenever that epoch is replayed
    (a resumed run, another worker)."""
    tokens = np.asarray(ids, dtype=np.int64)
    return np.random.default_rng([seed, epoch, zlib.crc32(tokens.tobytes()), tokens.size])


class MaskEpoch:
    """The epoch a masking collator draws its masks for (:func:`block_rng`), mirrored into shared memory.

    Data-loader workers hold copies of the collator; with ``--dataloader_persistent_workers`` they keep them for the
    whole run, so the plain ``epoch`` field would never reach them and every epoch would get the first one's masks.
    Setting ``epoch`` (as :class:`EpochOfMasks` does) also writes a shared-memory tensor, the same memory in the
    workers (inherited, or passed by handle when they are spawned), and the masks read that (:attr:`mask_epoch`).
    ``epoch`` stays an ordinary dataclass field: a constructor argument, kept by ``dataclasses.replace``."""

    def _share_epoch(self) -> None:
        """Called by the collator's ``__post_init__``, once ``epoch`` is set."""
        object.__setattr__(self, "_shared_epoch", torch.tensor(int(self.epoch), dtype=torch.long).share_memory_())

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "epoch" and "_shared_epoch" in self.__dict__:
            self._shared_epoch.fill_(int(value))

    @property
    def mask_epoch(self) -> int:
        """The epoch as the main process last set it, read here or in a worker."""
        return int(self._shared_epoch)

    def for_evaluation(self):
        """A copy that draws epoch 0's masks for good: an evaluation then scores the same masks whenever it runs, and
        its losses compare across the run."""
        frozen = copy.copy(self)
        object.__setattr__(frozen, "_shared_epoch", torch.zeros((), dtype=torch.long))  # its own, not the run's
        object.__setattr__(frozen, "epoch", 0)
        return frozen


class EpochOfMasks(TrainerCallback):
    """Tells a masking collator (:class:`MaskEpoch`) which epoch starts: at the run's first epoch, the one the Trainer's
    state is in (a resumed run: the one it resumes in), then one more at each new epoch. Counting, not reading
    ``state.epoch`` each time: over a streamed dataset the Trainer's epoch is a fraction of ``max_steps`` (0, 0.17,
    1.17, ... at the passes' starts), and its floor gave the second pass the first one's masks. A streamed run resumed
    past its first pass gets its epoch from the passes its skip replays (:class:`ResumedStream`), then counts on."""

    def __init__(self, collator):
        self.collator = collator
        self.started = False

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.started:
            self.collator.epoch = self.collator.epoch + 1
        else:
            self.collator.epoch = math.floor((state.epoch or 0.0) + 1e-6)
            self.started = True


class ResumedStream:
    """A streamed training set's data loader, resumed after ``steps`` optimizer steps counted over its passes.

    Over a dataset without a length the Trainer takes ``max_steps`` for one epoch, and each epoch is one pass of the
    stream, however short. Resuming, it skips ``global_step`` x ``gradient_accumulation_steps`` batches of one pass:
    from a checkpoint past the first pass's end, the rest of the skip was lost, and the run went on from the next
    pass's start. Here the passes are replayed as the uninterrupted run read them: a pass's optimizer steps end at
    each ``accumulation``-th batch of the pass (batches left over at a pass's end join the next pass's first step),
    and the passes' steps are skipped until ``steps`` are; the rest of that pass follows, and the Trainer's next epoch
    starts the pass after it. Each replayed pass sets a masking collator's epoch (:class:`MaskEpoch`) to its number,
    so the masks are that pass's, whatever epoch the Trainer counts."""

    def __init__(self, dataloader, steps: int, accumulation: int, collator=None):
        self.dataloader, self.steps, self.accumulation, self.collator = dataloader, steps, accumulation, collator

    def start_pass(self, number: int) -> None:
        """What the Trainer does as an epoch (a pass) starts: the loader's epoch (a shuffled stream's order) and the
        masks' epoch."""
        if hasattr(self.dataloader, "set_epoch"):
            self.dataloader.set_epoch(number)
        if isinstance(self.collator, MaskEpoch):
            self.collator.epoch = number

    def __iter__(self):
        steps = self.steps
        for number in itertools.count():
            self.start_pass(number)
            batches = 0
            for batch in self.dataloader:
                if steps == 0:
                    yield batch  # the rest of the pass the checkpoint was saved in
                    continue
                batches += 1
                if batches % self.accumulation == 0:  # an optimizer step of the uninterrupted run ends here
                    steps -= 1
            if steps == 0 or batches == 0:  # done; or an empty stream, which the Trainer reports
                return


class MaskedObjectiveTrainer(Trainer):
    """A Trainer whose evaluations use the collator's :meth:`MaskEpoch.for_evaluation` copy: the training collator's
    masks change every epoch (dynamic masking), an evaluation's never do. A resumed run over a stream skips the
    batches already trained over all the passes they span (:class:`ResumedStream`)."""

    def get_resumed_dataloader(self, dataloader, num_batches: int):
        """The Trainer's skip of ``num_batches`` (the steps trained x the accumulation), across a stream's passes."""
        if hasattr(self.train_dataset, "__len__"):
            return super().get_resumed_dataloader(dataloader, num_batches)
        accumulation = self.args.gradient_accumulation_steps
        return ResumedStream(dataloader, num_batches // accumulation, accumulation, self.data_collator)

    def get_eval_dataloader(self, eval_dataset=None):
        training_collator = self.data_collator
        if isinstance(training_collator, MaskEpoch):
            self.data_collator = training_collator.for_evaluation()
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = training_collator


def held_out_token_losses(family: str) -> Callable:
    """``preprocess_logits_for_metrics`` of pretraining: each row's summed negative log-likelihood over the tokens its
    labels score, and their count, (B, 2) in float64; :class:`LossPerToken` divides the sums.

    The Trainer's ``eval_loss`` is the mean of its batches' mean losses: over several processes it also counts the
    rows the distributed sampler repeats to even out the last batch (13 rows on 2 processes: one row scored twice),
    and a masked LM's batches score different numbers of tokens. Reduced per row, a repeated row is dropped with its
    tokens by the gather, so the held-out loss (and the perplexity) is one loss per held-out token, whatever the
    number of processes and the batch size."""
    def reduce(logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        if family == "gpt":  # position t predicts token t + 1 (the model shifts its labels the same way)
            logits, labels = logits[:, :-1], labels[:, 1:]
        scored = labels != -100  # (B, T)
        # the scored tokens' rows, in row order, (N, V): as they come with sparse_prediction, else picked out
        scored_logits = logits if logits.dim() == 2 else logits[scored]
        nll = torch.nn.functional.cross_entropy(scored_logits.float(), labels[scored], reduction="none")  # (N,)
        per_row = torch.zeros(labels.shape[0], dtype=torch.float64, device=nll.device)
        per_row.index_add_(0, scored.nonzero()[:, 0], nll.double())  # each token's loss onto its row
        return torch.stack([per_row, scored.sum(1).double()], dim=1)  # (B, 2)

    return reduce


class LossPerToken:
    """``compute_metrics`` of pretraining: the held-out loss per scored token, from :func:`held_out_token_losses`'
    sums, and the number of held-out rows (blocks) scored. Returned as ``loss``, it becomes the evaluation's
    ``eval_loss`` (the Trainer prefixes metric names after setting its own ``eval_loss``).

    The sums arrive as one array, as a list of per-batch arrays (``--eval_do_concat_batches false``), or batch by
    batch (``--batch_eval_metrics true``: ``compute_result`` is False until the last batch); they are added up until
    the result is asked for."""

    def __init__(self):
        self.totals = np.zeros(3)  # summed loss, scored tokens, rows

    def __call__(self, prediction, compute_result: bool = True) -> dict:
        parts = prediction.predictions
        for part in parts if isinstance(parts, (list, tuple)) else [parts]:
            if isinstance(part, torch.Tensor):  # batch by batch: still on the device
                part = part.detach().cpu().double().numpy()
            sums = np.asarray(part, dtype=np.float64).reshape(-1, 2)  # (rows, 2)
            self.totals += (sums[:, 0].sum(), sums[:, 1].sum(), len(sums))
        if not compute_result:
            return {}
        (loss, tokens, rows), self.totals = self.totals, np.zeros(3)
        return {"loss": float(loss / max(tokens, 1.0)), "samples": int(rows)}


@dataclass
class SeededMaskedLMCollator(DataCollatorForLanguageModeling, MaskEpoch):
    """BERT's masking (``DataCollatorForLanguageModeling``: ``mlm_probability`` of the tokens, 80% ``[MASK]``, 10%
    random, 10% kept), each block's drawn from :func:`block_rng` instead of the global random stream."""

    mask_seed: int = 0
    epoch: int = 0  # set by :class:`EpochOfMasks`; the masks read :attr:`MaskEpoch.mask_epoch`

    def __post_init__(self):
        super().__post_init__()
        self._share_epoch()

    def torch_mask_tokens(self, inputs, special_tokens_mask=None, offset_mapping=None):
        rows = []
        for i in range(inputs.shape[0]):  # per block: its own generator (a batch costs microseconds per row)
            state = block_rng(self.mask_seed, self.mask_epoch, inputs[i].tolist()).integers(2**62)
            self.generator = torch.Generator().manual_seed(int(state))
            special = None if special_tokens_mask is None else special_tokens_mask[i : i + 1]
            rows.append(super().torch_mask_tokens(inputs[i : i + 1], special_tokens_mask=special))
        self.generator = None
        return torch.cat([row[0] for row in rows]), torch.cat([row[1] for row in rows])


@dataclass
class TextInfillingCollator(MaskEpoch):
    """BART-style text infilling for encoder-decoder pretraining.

    For each block of token ids, spans whose lengths are drawn from Poisson(``mean_span_length``) are chosen
    until ``noise_density`` of the tokens are covered; each span is replaced by ONE mask token (a zero-length
    span inserts a mask). The encoder reads the corrupted text; the decoder must regenerate the original block
    (``labels``), so the model learns to fill gaps of unknown length. Inputs are right-padded with
    ``pad_token_id`` (attention mask 0). ``decoder_inputs`` (the model's ``prepare_decoder_input_ids_from_labels``,
    as ``DataCollatorForSeq2Seq`` takes it) makes the ``decoder_input_ids`` in the batch: with label smoothing the
    Trainer takes ``labels`` away before the model could shift them.
    A corrupted block is never longer than the original (inserted masks beyond the tokens the spans removed are
    dropped), so it fits wherever the block did, a learned position table included.
    """

    mask_token_id: int
    pad_token_id: int
    noise_density: float = 0.3
    mean_span_length: float = 3.0
    seed: int = 0
    epoch: int = 0  # set by :class:`EpochOfMasks`; the masks read :attr:`MaskEpoch.mask_epoch`
    decoder_inputs: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self):
        self._share_epoch()

    def corrupt(self, ids: list[int]) -> list[int]:
        self.rng = block_rng(self.seed, self.mask_epoch, ids)
        length = len(ids)
        budget = int(round(length * self.noise_density))
        masked = np.zeros(length, dtype=bool)
        starts, inserts = set(), []
        while masked.sum() < budget:  # a zero-length span (Poisson's 0) inserts a mask and takes none of the budget
            span = min(int(self.rng.poisson(self.mean_span_length)), budget - int(masked.sum()))
            start = int(self.rng.integers(0, length))
            if masked[start]:
                continue
            starts.add(start)
            masked[start:start + span] = True
            if span == 0:
                inserts.append(start)
        # each masked run becomes one mask token (>= 1 token fewer); each insertion left unmasked adds one: drop the
        # last insertions that would make the block longer than it was
        runs = int(np.count_nonzero(masked & ~np.concatenate(([False], masked[:-1]))))
        live = [start for start in dict.fromkeys(inserts) if not masked[start]]
        for start in live[max(0, int(masked.sum()) - runs):]:
            starts.discard(start)
        out, i = [], 0
        while i < length:
            if i in starts:
                out.append(self.mask_token_id)
                if masked[i]:
                    while i < length and masked[i]:
                        i += 1
                    continue
            if not masked[i]:
                out.append(ids[i])
            i += 1
        return out

    def __call__(self, examples: list[dict]) -> dict:
        originals = [list(example["input_ids"]) for example in examples]
        corrupted = [self.corrupt(ids) for ids in originals]
        width = max(map(len, corrupted))
        input_ids = torch.full((len(examples), width), self.pad_token_id)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, ids in enumerate(corrupted):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            attention_mask[row, :len(ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": torch.tensor(originals)}
        if self.decoder_inputs is not None:
            batch["decoder_input_ids"] = self.decoder_inputs(batch["labels"])
        return batch


def packed_causal_lm_collator(examples: list[dict]) -> dict:
    """A batch of packed blocks for next-token prediction: the ids, and the same ids as ``labels`` (the model shifts
    them). Every block is full, so nothing is padded and no label is hidden. ``DataCollatorForLanguageModeling``
    would pad (failing for a tokenizer without a pad token, as GPT-2's) and hide every label equal to the pad id,
    which, with the usual ``pad_token = eos_token``, drops each document's end token from the loss."""
    ids = torch.tensor([example["input_ids"] for example in examples])  # (B, max_length)
    return {"input_ids": ids, "labels": ids.clone()}


def build_collator(family: str, tokenizer, pretrain_args: PretrainArguments, seed: int, model=None):
    if family == "gpt":
        return packed_causal_lm_collator
    if tokenizer.mask_token_id is None:
        raise ValueError(f"family {family!r} needs a tokenizer with a mask token; {tokenizer.name_or_path!r} has none.")
    if family == "encoder":
        return SeededMaskedLMCollator(tokenizer, mlm=True, mlm_probability=pretrain_args.mlm_probability,
                                      mask_seed=seed)
    decoder_inputs = model.prepare_decoder_input_ids_from_labels if model is not None else None
    return TextInfillingCollator(tokenizer.mask_token_id, tokenizer.pad_token_id, pretrain_args.noise_density,
                                 pretrain_args.mean_span_length, seed, decoder_inputs=decoder_inputs)


def document_end(tokenizer) -> int | None:
    """The id to append to each document before packing, or None when the tokenizer ends documents itself.

    Packed blocks join documents, so each must end in a token that says so. This package's encoder-decoder and
    encoder tokenizers and BERT's add one (``</s>``, ``[SEP]``); its GPT tokenizers, GPT-2's and Llama's add none at
    the end (a prompt stays open), so their end-of-text token (else the separator) is appended. A tokenizer with
    neither is used as it is, with a warning: its documents run together."""
    ends = {tokenizer.eos_token_id, tokenizer.sep_token_id} - {None}
    probe = tokenizer("a b", add_special_tokens=True)["input_ids"]
    if probe and probe[-1] in ends:
        return None
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if end is None:
        print(f"warning: tokenizer {tokenizer.name_or_path!r} has no end-of-text or separator token: packed documents "
              "run into each other")
    return end


def tokenize_and_pack(raw, tokenizer, data_args, *, family: str):
    """Token ids packed into ``max_length`` blocks; documents are separated by the tokenizer's end token
    (:func:`document_end`). Blank texts (the empty lines of a ``.txt`` file) are no documents and are skipped, as
    ``run_clm.py``'s GPT-2 tokenizer makes nothing of them: each became an end token alone (or a bare ``[CLS]
    [SEP]``), and Tiny Shakespeare's 7,223 blank lines taught a GPT that an end token follows an end token, so
    ``generate()`` without a prompt stopped at once."""
    text_column = data_args.text_column
    # Room for the tokenizer's own special tokens is not needed: packed blocks are raw token streams.
    streaming = not hasattr(raw["train"], "__len__")
    raw = raw.select_columns([text_column])  # a stream may not know its other columns, which map could not drop
    columns = [text_column]
    end = document_end(tokenizer)

    def tokenize(batch):  # the ids alone: blocks are token streams (no mask, one segment)
        texts = [text for text in batch[text_column] if text and text.strip()]
        ids = tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"] if texts else []
        return {"input_ids": ids if end is None else [sequence + [end] for sequence in ids]}

    map_options = {} if streaming else {"num_proc": data_args.preprocessing_num_workers,
                                        "desc": "tokenising"}
    tokenized = raw.map(tokenize, batched=True, remove_columns=columns, **map_options)
    pack_options = {} if streaming else {"num_proc": data_args.preprocessing_num_workers,
                                         "desc": f"packing into blocks of {data_args.max_length}"}
    packed = tokenized.map(common.pack_blocks, batched=True, fn_kwargs={"block_size": data_args.max_length},
                           remove_columns=["input_ids"] if streaming else tokenized["train"].column_names,
                           **pack_options)
    if not streaming:
        for name, split in packed.items():
            if not len(split):
                raise ValueError(f"the {name} data holds fewer than max_length={data_args.max_length} tokens: "
                                 "no full block to train on; add data or lower --max_length.")
    return packed


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, pretrain_args, training_args = common.parse_arguments(
        (common.ModelArguments, common.DataArguments, PretrainArguments, TrainingArguments), argv)
    family = model_args.family
    data_args.text_column = data_args.text_column or "text"
    common.check_choice("family", family, common.FAMILIES)
    common.family_config_class(family)  # the family exists in this version
    if training_args.prediction_loss_only:
        raise ValueError("--prediction_loss_only: pretraining counts its held-out loss per token from each batch's "
                         "logits (pretrain.held_out_token_losses), reduced at once to two numbers a row; leave it "
                         "unset.")
    push = common.take_push_settings(training_args)
    set_seed(training_args.seed)
    common.use_mini_checkpoint(model_args, training_args)  # a transformers checkpoint is converted first
    resume_from = common.checkpoint_to_resume(training_args)  # a folder or None (``true`` resolved)
    common.check_resume_settings(resume_from, training_args, data_args)  # before any data is read

    raw = common.load_text_splits(
        dataset_name=data_args.dataset_name, dataset_config_name=data_args.dataset_config_name,
        train_files=data_args.train_files, validation_files=data_args.validation_files,
        text_column=data_args.text_column, validation_split_percentage=data_args.validation_split_percentage,
        streaming=data_args.streaming, seed=training_args.seed, text_columns=(data_args.text_column,),
        text_sample_by=data_args.text_sample_by)
    raw["train"] = common.limit(raw["train"], data_args.max_train_samples, training_args.seed)
    raw["validation"] = common.limit(raw["validation"], data_args.max_eval_samples, training_args.seed)

    texts = None if model_args.tokenizer_name_or_path else (row[data_args.text_column] for row in raw["train"])
    tokenizer = common.load_tokenizer(model_args, texts, family=family,
                                      resume_from=resume_from,
                                      training_args=training_args)
    if model_args.model_name_or_path:  # continue pretraining a checkpoint
        from transformers import AutoConfig

        import modeling_mini  # noqa: F401  (registers the Auto classes)

        config = AutoConfig.from_pretrained(model_args.model_name_or_path,
                                            trust_remote_code=model_args.trust_remote_code)
        if common.family_of(config) != family:
            raise ValueError(f"--model_name_or_path is a {common.family_of(config)!r} model but --family is "
                             f"{family!r}.")
        if model_args.model_config:
            raise ValueError(f"--model_config={model_args.model_config!r} with --model_name_or_path: the checkpoint "
                             "fixes the architecture; change options with --config_overrides (dropout, ...), and clear "
                             "a recipe's preset with `--model_config none`.")
        config = common.override_config(config, model_args.config_overrides)
        common.check_vocab_fits(tokenizer, config)
    else:
        config = common.build_config(model_args, tokenizer)
    common.check_resume_config(resume_from, config)
    common.fit_to_model(tokenizer, config, max_length=data_args.max_length)

    with training_args.main_process_first(desc="tokenising"):
        blocks = tokenize_and_pack(raw, tokenizer, data_args, family=family)

    import modeling_mini

    model_class = getattr(modeling_mini, MODEL_CLASSES[family])
    if model_args.model_name_or_path:
        model = model_class.from_pretrained(model_args.model_name_or_path, config=config)  # with the overrides
    else:
        model = model_class(config)
    guard = common.NaNGuard()
    use_cache = model.config.use_cache  # the Trainer overwrites it (see common.finish_run)
    collator = build_collator(family, tokenizer, pretrain_args, training_args.seed, model)
    callbacks = [guard, common.RunSettings.of(training_args, data_args)]
    if isinstance(collator, MaskEpoch):
        callbacks.append(EpochOfMasks(collator))
    trainer = MaskedObjectiveTrainer(model=model, args=training_args, train_dataset=blocks["train"],
                                     eval_dataset=blocks["validation"], processing_class=tokenizer,
                                     data_collator=collator, callbacks=callbacks, compute_metrics=LossPerToken(),
                                     preprocess_logits_for_metrics=held_out_token_losses(family))
    result = trainer.train(resume_from_checkpoint=resume_from)
    guard.raise_if_stopped(training_args.output_dir)
    metrics = dict(result.metrics)
    metrics.update(common.final_evaluation(trainer))  # with --bf16_full_eval too, the float32 weights are saved
    metrics["perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
    trainer.log_metrics("eval", {"perplexity": metrics["perplexity"]})
    recipe = common.resolved_recipe(model_args, data_args, pretrain_args, training_args)
    data_name = data_args.dataset_name or (", ".join(data_args.train_files) if data_args.train_files else
                                           "embedded default corpus (Python documentation)")
    common.finish_run(trainer, tokenizer, recipe=recipe, task=OBJECTIVES[family], datasets_used=[data_name],
                      metrics=metrics, base_model=getattr(model_args, "converted_from", model_args.model_name_or_path),
                      push=push, use_cache=use_cache)
    return metrics


if __name__ == "__main__":
    main()
