"""Train a tokenizer on a corpus with `tokenizers` and save it as a ``PreTrainedTokenizerFast``.

* ``bpe`` (GPT and encoder-decoder): byte-level BPE, as GPT-2 and BART use. Any byte sequence is encodable, so
  there is no unknown token. Special tokens ``<pad> <s> </s> <unk> <mask>``. For an encoder-decoder ``</s>`` ends
  every encoded text, as BART's; for a GPT a text is encoded as it is, as GPT-2's, so that a prompt is the start of a
  document and not a finished one (pretraining appends ``</s>`` to each document itself; a GPT classifier's
  fine-tuning makes its tokenizer end texts with it); a pair keeps ``</s>`` after each part, the question and
  context separator of GPT question answering. A GPT's begin-of-text token is ``</s>`` too, as GPT-2's is its
  ``<|endoftext|>``: a document in pretraining starts after one, so ``generate()`` without a prompt starts from a
  token the model has learnt (``<s>`` never occurs in its pretraining).
* ``wordpiece`` (encoder): BERT's lower-casing WordPiece. Special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]``;
  every encoded text is wrapped as ``[CLS] ... [SEP]``.

    python train/train_tokenizer.py --family seq2seq --vocab_size 4000 --output_dir outputs/tokenizer
    python train/train_tokenizer.py --kind wordpiece --train_files corpus.txt --output_dir outputs/wp

With no ``--train_files`` / ``--dataset_name`` it trains on the embedded default corpus (``embedded_data.py``).
Rows whose text is null are skipped; any other non-text row is refused. ``--vocab_size`` is a ceiling the saved
tokenizer keeps: byte-level BPE always holds the 256 bytes and the special tokens (:data:`BPE_MIN_VOCAB`), so a
smaller BPE vocabulary is refused; a WordPiece one smaller than the corpus's characters need is refused after
training, naming the smallest size that works.
"""

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

#: Tokenizer kind of each model family.
FAMILY_TOKENIZER = {"gpt": "bpe", "encoder": "wordpiece", "seq2seq": "bpe"}
KINDS = ("bpe", "wordpiece")

BPE_SPECIAL = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
               "mask_token": "<mask>"}
WORDPIECE_SPECIAL = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                     "mask_token": "[MASK]"}
#: The smallest byte-level BPE vocabulary: its 256 byte tokens (always kept, so any text is encodable) plus the
#: special tokens. ``tokenizers`` silently rounds a smaller ``vocab_size`` up to this.
BPE_MIN_VOCAB = 256 + len(BPE_SPECIAL)


def _checked_texts(texts: Iterable, source: str) -> Iterator[str]:
    """The strings of ``texts``, skipping null rows (a jsonl ``{"text": null}``, a blank csv cell): they hold no
    text to learn from. Any other non-string row (a number, a list) is a wrong ``--text_column`` or a broken file,
    so it is refused with a ``ValueError`` naming ``source`` and the row, counted from 0 as the fine-tuning checks
    count them; so are rows that are all null."""
    rows = strings = 0
    for rows, text in enumerate(texts, start=1):
        if text is None:
            continue
        if not isinstance(text, str):
            raise ValueError(f"row {rows - 1} (counting from 0) of {source} is of type {type(text).__name__} "
                             f"({str(text)[:60]!r}), not a text; check the text column (--text_column) and the file")
        strings += 1
        yield text
    if rows and not strings:
        raise ValueError(f"{source} has no text: all of its {rows} rows are null")


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def train_tokenizer(texts: Iterable[str | None], kind: str, vocab_size: int, *, min_frequency: int = 2,
                    model_max_length: int | None = None, source: str = "the texts",
                    family: str | None = None) -> PreTrainedTokenizerFast:
    """A ``kind`` tokenizer ("bpe" or "wordpiece") with at most ``vocab_size`` entries, learnt from ``texts``.

    ``vocab_size`` below a BPE's floor (:data:`BPE_MIN_VOCAB`) or below what a WordPiece needs for the
    characters of ``texts`` gives that floor instead (``tokenizers``' behaviour, kept for the training scripts);
    :func:`main` refuses it. Null texts are skipped; other non-strings raise a ``ValueError`` naming ``source``
    (where the texts come from) and the row. ``model_max_length``: the longest input, in tokens, of the model it
    is for; None (no limit known) leaves it to the training scripts, which set the model's
    (``common.fit_to_model``). ``family``, the model family it is for, sets its conventions: a GPT's BPE leaves a
    text open and any other BPE ends it with ``</s>`` (see the module docstring); an encoder's WordPiece (None: an
    encoder's) returns segment ids, which a GPT would read as tokens and a seq2seq model does not take."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}.")
    if kind == "bpe":
        special = BPE_SPECIAL
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(special.values()),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        special = WORDPIECE_SPECIAL
        tokenizer = Tokenizer(models.WordPiece(unk_token=special["unk_token"]))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=list(special.values()))
    tokenizer.train_from_iterator(_batches(_checked_texts(texts, source)), trainer=trainer)
    if kind == "bpe":
        # the mask takes the space before it, as RoBERTa's and BART's: a user's "the <mask> is" encodes as the text
        # infilling collator's masked blocks do (the mask stands for whole tokens, their leading space included)
        tokenizer.add_special_tokens([AddedToken(special["mask_token"], lstrip=True, special=True, normalized=False)])
        eos = special["eos_token"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single="$A" if family == "gpt" else f"$A {eos}", pair=f"$A {eos} $B {eos}",
            special_tokens=[(eos, tokenizer.token_to_id(eos))])
    else:
        cls, sep = special["cls_token"], special["sep_token"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))])
    limit = {} if model_max_length is None else {"model_max_length": model_max_length}
    # WordPiece's pair template gives the second text segment 1, as BERT's: an encoder's tokenizer returns those
    # segment ids (BERT's does; without the name they were dropped, and the encoder's segment-1 row never trained).
    # Its pre-tokenizer splits at punctuation, so decoding rejoins "it ' s" as "it's", as BERT's tokenizer does.
    inputs = {}
    if kind == "wordpiece":
        segments = ["token_type_ids"] if family in (None, "encoder") else []
        inputs = {"model_input_names": ["input_ids", *segments, "attention_mask"], "clean_up_tokenization_spaces": True}
    if kind == "bpe" and family == "gpt":  # GPT-2's: one token ends a document and begins the next (module docstring)
        special = {**special, "bos_token": special["eos_token"]}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **limit, **special, **inputs)


def _source(args: argparse.Namespace) -> str:
    """Where the training texts come from, for error messages."""
    if args.train_files:
        return f"--train_files {' '.join(args.train_files)} (rows counted across the files, in that order)"
    if args.dataset_name:
        return f"--dataset_name {args.dataset_name}"
    return "the embedded corpus"


def _check_size(tokenizer: PreTrainedTokenizerFast, kind: str, vocab_size: int) -> None:
    """Refuse a trained tokenizer larger than ``--vocab_size`` (WordPiece's floor depends on the corpus: every
    character it holds, alone and as a ``##`` continuation, plus the special tokens), naming the size to ask for."""
    if len(tokenizer) > vocab_size:
        raise ValueError(f"--vocab_size {vocab_size} is too small for a {kind} tokenizer of these texts: the "
                         f"smallest holds {len(tokenizer)} tokens (its characters and the special tokens); "
                         f"use --vocab_size {len(tokenizer)} or more")


def main(argv: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Train a tokenizer as the command line says, save it to ``--output_dir`` and return it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import int_at_least, load_text_splits

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=KINDS, default=None, help="tokenizer kind (default: from --family)")
    parser.add_argument("--family", choices=tuple(FAMILY_TOKENIZER), default="gpt",
                        help="model family the tokenizer is for: picks --kind when it is not given, and its "
                             "conventions: </s> ends each encoded text for seq2seq, not for gpt (as GPT-2's); only "
                             "an encoder's tokenizer returns segment ids (token_type_ids)")
    # sizes are checked as parsed: tokenizers stores them unsigned, so a negative one failed with a bare OverflowError
    parser.add_argument("--vocab_size", type=int_at_least(1), default=8000,
                        help=f"largest vocabulary, special tokens included (bpe: at least {BPE_MIN_VOCAB}, its 256 "
                             "bytes and 5 special tokens)")
    parser.add_argument("--min_frequency", type=int_at_least(0), default=2,
                        help="least count of a merge / word piece (0 and 1 keep every one)")
    parser.add_argument("--dataset_name", default=None, help="a Hub dataset name (default: embedded corpus)")
    parser.add_argument("--train_files", nargs="+", default=None, help="local txt/json/jsonl/csv/parquet files")
    parser.add_argument("--text_column", default="text", help="column holding the text")
    parser.add_argument("--output_dir", required=True, help="folder the tokenizer is saved to")
    parser.add_argument("--model_max_length", type=int_at_least(1), default=None,
                        help="the model's longest input in tokens (default: none known; the training scripts set it)")
    args = parser.parse_args(argv)
    kind = args.kind or FAMILY_TOKENIZER[args.family]
    if kind == "bpe" and args.vocab_size < BPE_MIN_VOCAB:
        parser.error(f"--vocab_size {args.vocab_size} is below the smallest byte-level BPE vocabulary, "
                     f"{BPE_MIN_VOCAB} (256 bytes + {len(BPE_SPECIAL)} special tokens); use --vocab_size "
                     f"{BPE_MIN_VOCAB} or more")
    splits = load_text_splits(dataset_name=args.dataset_name, train_files=args.train_files,
                              text_column=args.text_column, evaluation_split=None,  # every given text is used
                              allow_missing=True)  # rows checked, null rows skipped: _checked_texts
    tokenizer = train_tokenizer(splits["train"][args.text_column], kind, args.vocab_size,
                                min_frequency=args.min_frequency, model_max_length=args.model_max_length,
                                source=_source(args), family=args.family)
    _check_size(tokenizer, kind, args.vocab_size)  # before saving: nothing is written for a refused size
    tokenizer.save_pretrained(args.output_dir)
    print(f"saved a {kind} tokenizer with {len(tokenizer)} tokens to {args.output_dir}")
    return tokenizer


if __name__ == "__main__":
    main()
