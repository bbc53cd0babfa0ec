"""Train a tokenizer on a corpus with `tokenizers` and save it as a ``PreTrainedTokenizerFast``.

* ``bpe`` (GPT and encoder-decoder): byte-level BPE, as GPT-2 and BART use. Any byte sequence is encodable, so
  there is no unknown token. Special tokens ``<pad> <s> </s> <unk> <mask>``; ``</s>`` ends every encoded text.
* ``wordpiece`` (encoder): BERT's lower-casing WordPiece. Special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]``;
  every encoded text is wrapped as ``[CLS] ... [SEP]``.

    python train/train_tokenizer.py --kind bpe --vocab_size 4000 --output_dir outputs/tokenizer
    python train/train_tokenizer.py --kind wordpiece --train_files corpus.txt --output_dir outputs/wp

With no ``--train_files`` / ``--dataset_name`` it trains on the embedded default corpus (``embedded_data.py``).
"""

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

#: Tokenizer kind of each model family.
FAMILY_TOKENIZER = {"gpt": "bpe", "encoder": "wordpiece", "seq2seq": "bpe"}
KINDS = ("bpe", "wordpiece")

BPE_SPECIAL = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
               "mask_token": "<mask>"}
WORDPIECE_SPECIAL = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                     "mask_token": "[MASK]"}


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def train_tokenizer(texts: Iterable[str], kind: str, vocab_size: int, *, min_frequency: int = 2,
                    model_max_length: int | None = None) -> PreTrainedTokenizerFast:
    """A ``kind`` tokenizer ("bpe" or "wordpiece") with at most ``vocab_size`` entries, learnt from ``texts``.

    ``model_max_length``: the longest input, in tokens, of the model it is for; None (no limit known) leaves it to
    the training scripts, which set the model's (``common.fit_to_model``)."""
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
    tokenizer.train_from_iterator(_batches(texts), trainer=trainer)
    if kind == "bpe":
        eos = special["eos_token"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, tokenizer.token_to_id(eos))])
    else:
        cls, sep = special["cls_token"], special["sep_token"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))])
    limit = {} if model_max_length is None else {"model_max_length": model_max_length}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **limit, **special)


def main(argv: list[str] | None = None) -> PreTrainedTokenizerFast:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import load_text_splits

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=KINDS, default=None, help="tokenizer kind (default: from --family)")
    parser.add_argument("--family", choices=tuple(FAMILY_TOKENIZER), default="gpt",
                        help="model family the tokenizer is for; picks --kind when it is not given")
    parser.add_argument("--vocab_size", type=int, default=8000, help="largest vocabulary, special tokens included")
    parser.add_argument("--min_frequency", type=int, default=2, help="least count of a merge / word piece")
    parser.add_argument("--dataset_name", default=None, help="a Hub dataset name (default: embedded corpus)")
    parser.add_argument("--train_files", nargs="+", default=None, help="local txt/json/jsonl/csv/parquet files")
    parser.add_argument("--text_column", default="text", help="column holding the text")
    parser.add_argument("--output_dir", required=True, help="folder the tokenizer is saved to")
    parser.add_argument("--model_max_length", type=int, default=None,
                        help="the model's longest input in tokens (default: none known; the training scripts set it)")
    args = parser.parse_args(argv)
    splits = load_text_splits(dataset_name=args.dataset_name, train_files=args.train_files,
                              text_column=args.text_column, evaluation_split=None)  # every given text is used
    kind = args.kind or FAMILY_TOKENIZER[args.family]
    tokenizer = train_tokenizer(splits["train"][args.text_column], kind, args.vocab_size,
                                min_frequency=args.min_frequency, model_max_length=args.model_max_length)
    tokenizer.save_pretrained(args.output_dir)
    print(f"saved a {kind} tokenizer with {len(tokenizer)} tokens to {args.output_dir}")
    return tokenizer


if __name__ == "__main__":
    main()
