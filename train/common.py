"""What ``pretrain.py`` and ``finetune.py`` share: arguments and recipes, data, tokenizers, model configs, the
NaN guard and the output folder.

Each concept has one small function here; the two scripts only wire them together.
"""

import argparse
import dataclasses
import glob
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import yaml
from transformers import AutoTokenizer, HfArgumentParser, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import ExportableState

TRAIN_DIR = Path(__file__).resolve().parent
ROOT = TRAIN_DIR.parent
MODELS_DIR = ROOT / "configuration" / "models"
METRICS_DIR = TRAIN_DIR / "metrics"
if str(TRAIN_DIR) not in sys.path:
    sys.path.insert(0, str(TRAIN_DIR))

FAMILIES = ("gpt", "encoder", "seq2seq")
#: Config class name in ``modeling_mini`` of each family, and the model_type that identifies it.
FAMILY_CONFIG = {"gpt": "MiniGPTConfig", "encoder": "MiniEncoderConfig", "seq2seq": "MiniSeq2SeqConfig"}
MODEL_TYPE_FAMILY = {"mini_gpt": "gpt", "mini_encoder": "encoder", "mini_seq2seq": "seq2seq"}
#: File extension -> ``datasets`` builder for local data files.
FILE_BUILDERS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".csv": "csv",
                 ".parquet": "parquet", ".conll": "conll"}


def check_choice(name: str, value, allowed) -> None:
    """``ValueError`` naming the field and the allowed values when ``value`` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


def int_at_least(least: int):
    """An argparse ``type``: the text as an integer >= ``least``, else ``argparse.ArgumentTypeError`` (argparse then
    names the option). For the scripts with an argparse parser of their own (the tokenizer trainer, the demo); the
    dataclass arguments use :func:`check_at_least`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is not allowed; it must be an integer >= {least}")
        return value

    return parse


def check_at_least(name: str, value, least: int, unset: str = "") -> None:
    """``ValueError`` naming the argument when ``value`` is below ``least`` (``unset``: how else it may be left)."""
    if value < least:
        allowed = f"an integer >= {least}" + (f" {unset}" if unset else "")
        raise ValueError(f"`{name}` must be {allowed}; got {value}.")


# ------------------------------------------------------------------------------------------------ arguments

@dataclass
class ModelArguments:
    """Which model to build or load, and its tokenizer."""

    family: str = field(default="gpt", metadata={"help": f"model family: one of {', '.join(FAMILIES)}"})
    model_config: str | None = field(default=None, metadata={
        "help": "size preset (tiny, small, base: configuration/models/<family>-<preset>.json; default tiny) or a "
                "path to a config JSON / folder, for a model built new (not with --model_name_or_path, whose config "
                "is used)"})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "pretrained checkpoint to start from: a local folder or a Hub id; a mini checkpoint, or a "
                "transformers one of a family modeling_mini.convert knows (BERT, DistilBERT, GPT-2, Llama, Marian, "
                "...), converted once into <output_dir>/converted-base"})
    tokenizer_name_or_path: str | None = field(default=None, metadata={
        "help": "existing tokenizer (folder or Hub id); default: the checkpoint's, else one trained on the data"})
    tokenizer_vocab_size: int = field(default=8000, metadata={
        "help": "vocabulary size of a tokenizer trained on the training split (when none is given)"})
    config_overrides: str | None = field(default=None, metadata={
        "help": "change config values of the preset, as in HF's run_clm: 'hidden_dropout=0.0,num_hidden_layers=6' "
                "(values read as JSON where they parse, else as strings)"})
    from_scratch: bool = field(default=False, metadata={
        "help": "random initialisation with the checkpoint's config (the baseline a pretrained start must beat)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow code from a Hub checkpoint"})

    def __post_init__(self):
        """Clear a ``none`` preset, and refuse a vocabulary size below 1 before any data is read (the tokenizer
        trainer would fail with an ``OverflowError`` naming nothing)."""
        if self.model_config is not None and self.model_config.strip().lower() in ("", "none", "null"):
            self.model_config = None  # `--model_config none` clears a recipe's preset (to use --model_name_or_path)
        check_at_least("tokenizer_vocab_size", self.tokenizer_vocab_size, 1)


@dataclass
class DataArguments:
    """Where the data comes from and how it is cut. No data argument at all: the embedded default."""

    dataset_name: str | None = field(default=None, metadata={"help": "a Hub dataset name (or a local dataset folder)"})
    dataset_config_name: str | None = field(default=None, metadata={"help": "the dataset's configuration name"})
    train_files: list[str] | None = field(default=None, metadata={
        "help": "local training files: txt (one text a line), json/jsonl, csv or parquet"})
    validation_files: list[str] | None = field(default=None, metadata={"help": "local validation files"})
    text_column: str | None = field(default=None, metadata={
        "help": "column holding the input: default text (tokens for token classification, source for translation)"})
    text_sample_by: str = field(default="line", metadata={
        "help": "how a .txt file is cut into texts (documents, each ended by the end token in pretraining): line, "
                "paragraph (at blank lines: a play's speeches, a book's paragraphs; line breaks kept) or document "
                "(the whole file)"})
    validation_split_percentage: float = field(default=5.0, metadata={
        "help": "percentage of train held out for validation when the data has no validation split"})
    streaming: bool = field(default=False, metadata={
        "help": "stream the data (corpora larger than memory; pretraining only, with --max_steps)"})
    max_train_samples: int | None = field(default=None, metadata={"help": "keep only this many training rows"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "keep only this many validation rows"})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "processes for datasets.map"})
    max_length: int = field(default=128, metadata={
        "help": "tokens per training block (pretraining) or per example (fine-tuning)"})

    def __post_init__(self):
        """Each a ``ValueError`` naming the argument, before any data is read: a ``max_length`` of 0 divided by zero
        in :func:`pack_blocks`, a split percentage outside (0, 100) failed inside ``datasets``, a negative sample
        count sliced the data from the end."""
        check_at_least("max_length", self.max_length, 1)
        check_choice("text_sample_by", self.text_sample_by, TEXT_SAMPLING)
        if not 0 < self.validation_split_percentage < 100:
            raise ValueError("`validation_split_percentage` must be in (0, 100) (exclusive); got "
                             f"{self.validation_split_percentage}.")
        for name in ("max_train_samples", "max_eval_samples", "preprocessing_num_workers"):
            if getattr(self, name) is not None:
                check_at_least(name, getattr(self, name), 1, unset="or unset")


def recipe_to_argv(recipe: dict, parser: HfArgumentParser) -> list[str]:
    """A recipe dict as command-line arguments, after checking every key is a known field."""
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise ValueError(f"Unknown recipe key(s) {unknown}; every key must be an argument of the script "
                         f"(see --help).")
    choices = {action.dest: action.choices or () for action in parser._actions}
    argv = []
    for key, value in recipe.items():
        if value is None or value == []:  # an empty list is the default; a bare `--name` would not parse
            continue
        if value is False and "no" in choices[key]:
            value = "no"  # YAML 1.1 reads an unquoted `eval_strategy: no` as false
        values = value if isinstance(value, list) else [value]
        argv.append(f"--{key}")
        argv.extend(json.dumps(v) if isinstance(v, dict) else str(v) for v in values)
    return argv


def parse_arguments(dataclass_types: tuple, argv: list[str] | None = None) -> tuple:
    """Parse ``[recipe.yaml|recipe.json] [--overrides ...]`` into the dataclasses.

    A recipe is a flat mapping of argument names to values; command-line arguments after it win. An unknown
    key is a ``ValueError`` before anything else runs.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types)
    launcher = launcher_arguments(argv)  # `deepspeed` and torch.distributed.launch put --local_rank first
    argv = argv[len(launcher):]
    if argv and Path(argv[0]).suffix in (".yaml", ".yml", ".json"):
        path = Path(argv.pop(0))
        if not path.is_file():
            raise ValueError(f"recipe file {path} does not exist.")
        recipe = yaml.safe_load(path.read_text()) or {}
        if not isinstance(recipe, dict):
            raise ValueError(f"recipe {path} must be a mapping of argument names to values.")
        argv = recipe_to_argv(recipe, parser) + argv
    argv = launcher + argv
    parsed = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    *objects, remaining = parsed
    if remaining:
        raise ValueError(f"Unknown argument(s) {remaining}; see --help.")
    for obj in objects:
        check_launch(obj)
        if hasattr(obj, "dataloader_pin_memory") and obj.device.type == "cpu":
            obj.dataloader_pin_memory = False  # nothing to pin for; torch would warn at every DataLoader
    return tuple(objects)


def launcher_arguments(argv: list[str]) -> list[str]:
    """The ``--local_rank=N`` / ``--local_rank N`` arguments a launcher put before the script's own."""
    count = 0
    while count < len(argv) and argv[count].replace("-", "_").startswith("__local_rank"):
        count += 1 if "=" in argv[count] else 2
    return argv[:count]


def check_launch(training_args) -> None:
    """Refuse a multi-process launch that would silently train each process alone on all the data.

    On a machine without CUDA, a launcher starts N processes, but unless ``use_cpu`` is set each one builds its
    own single-process Trainer ("rank 0 of 1").
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and hasattr(training_args, "world_size") and training_args.world_size != launched:
        raise ValueError(
            f"Launched {launched} processes but the Trainer sees world_size={training_args.world_size}: on CPU pass "
            "`--use_cpu true` (or set ACCELERATE_USE_CPU=1) so the processes join one gloo group."
        )


def count_parameters(model) -> int:
    """Every parameter of the model (under a PEFT wrapper: the base model's and the adapters'), for the card."""
    return int(sum(p.numel() for p in model.parameters()))


#: arguments that hold credentials, left out of the saved recipe
SECRETS = ("hub_token", "push_to_hub_token", "token")


def resolved_recipe(*objects) -> dict:
    """Every argument of the run as one flat dict (secrets dropped), ready to write as YAML. A converted checkpoint
    is recorded under its original name (see :func:`use_mini_checkpoint`).

    The precision is recorded as the run trained: ``accelerate launch --mixed_precision bf16`` (or an accelerate
    config saying so) leaves ``--bf16`` False and sets only the arguments' ``mixed_precision``, which the Trainer
    follows; the recipe then says ``bf16: true``, so that running it again with ``python`` trains the same way."""
    recipe = {}
    for obj in objects:
        values = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        for key, value in values.items():
            if key in SECRETS:
                continue  # never written to disk
            recipe[key] = value.value if hasattr(value, "value") else value
        if getattr(obj, "converted_from", None):
            recipe["model_name_or_path"] = obj.converted_from
        if getattr(obj, "mixed_precision", None) in ("fp16", "bf16"):  # the training arguments
            recipe[obj.mixed_precision] = True
    return recipe


# ------------------------------------------------------------------------------------------------------ data

def is_pattern(path: str) -> bool:
    """Whether ``path`` is a glob pattern: it holds ``*``, ``?`` or ``[`` and names no existing file or folder (a
    file called ``part[1].jsonl`` is read as it is named, not as ``part1.jsonl``)."""
    return glob.escape(path) != path and not Path(path).exists()


def data_files(paths: list[str]) -> list[str]:
    """The files ``paths`` name, a glob (``data/part-*.jsonl``, ``**`` for subfolders) standing for its matches in
    sorted order, as ``datasets`` reads them; a recipe's globs reach here unexpanded by any shell. A glob that matches
    no file is a ``ValueError`` naming it; the checks on each file are :func:`_read`'s."""
    files = []
    for path in paths:
        if is_pattern(path):
            matches = sorted(p for p in glob.glob(path, recursive=True) if Path(p).is_file())
            if not matches:
                raise ValueError(f"data file pattern {path!r} matches no file.")
            files += matches
        else:
            files.append(path)
    return files


def _load_files(builder: str, files: dict, streaming: bool, options: dict | None = None):
    """``datasets.load_dataset`` on local files. The builder takes its columns from the first file, and one with
    other columns failed as ``datasets``' cast error, which points to Hub configurations. Validation files whose
    columns differ from the training files' (another corpus as the held-out set: TICO-19's extra ``source_id`` and
    ``doc`` beside Tatoeba's pairs) are read split by split, each keeping the training files' columns it has (the
    scripts then check those they read, naming a split that lacks one). Files of one split that differ are a
    ``ValueError`` listing each file's columns (each file read alone, only on that path; a stream is not read twice:
    refused too). The paths are files (:func:`data_files` expanded the globs): escaped, so that ``datasets`` reads a
    ``part[1].jsonl`` as named. ``options`` go to the builder (the text builder's ``sample_by``)."""
    options = options or {}
    try:
        return datasets.load_dataset(builder, data_files=_escaped(files), streaming=streaming, **options)
    except datasets.exceptions.DatasetGenerationError as error:
        columns = _columns_of_each(builder, files)
        if columns is None or len({tuple(sorted(names)) for names in columns.values()}) == 1:
            raise  # not a column mismatch (a malformed file): datasets' own error
        per_split = {split: {tuple(sorted(columns[path])) for path in paths} for split, paths in files.items()}
        if not streaming and all(len(kinds) == 1 for kinds in per_split.values()):
            splits = {split: datasets.load_dataset(builder, data_files=paths, split="train", **options)
                      for split, paths in _escaped(files).items()}
            kept = splits["train"].column_names
            return datasets.DatasetDict({split: data.select_columns([c for c in data.column_names if c in kept])
                                         for split, data in splits.items()})
        listed = "; ".join(f"{path}: {names}" for path, names in columns.items())
        raise ValueError(f"the data files of a split must have the same columns; {listed}.") from error
    except ValueError as error:
        if "corresponds to no data" not in str(error):  # datasets' words for a split with no rows
            raise
        empty = [split for split in files if f'"{split}"' in str(error)] or list(files)
        raise ValueError(f"the {empty[0]} data files ({', '.join(files[empty[0]])}) hold no rows (a header "
                         "only?).") from error


def _escaped(files: dict) -> dict:
    """``{split: paths}`` with each path escaped for ``datasets``, which reads every data file name as a glob."""
    return {split: [glob.escape(path) for path in paths] for split, paths in files.items()}


def _columns_of_each(builder: str, files: dict) -> dict | None:
    """Each data file's columns, each file read alone; None when one cannot be read (then the error is elsewhere)."""
    try:
        return {path: datasets.load_dataset(builder, data_files=[glob.escape(path)], split="train").column_names
                for split_files in files.values() for path in split_files}
    except (datasets.exceptions.DatasetGenerationError, ValueError):
        return None


#: how the text builder cuts a .txt file into texts (``datasets``' ``sample_by``)
TEXT_SAMPLING = ("line", "paragraph", "document")


def _read(dataset_name, dataset_config_name, train_files, validation_files, streaming,
          text_sample_by="line") -> datasets.DatasetDict:
    if dataset_name:
        return datasets.load_dataset(dataset_name, dataset_config_name, streaming=streaming)
    files = {"train": data_files(train_files)}
    if validation_files:
        files["validation"] = data_files(validation_files)
    every = [path for paths in files.values() for path in paths]
    for path in every:
        if Path(path).is_dir():
            raise ValueError(f"data file {path} is a folder; pass its files, or a glob such as {path}/*.jsonl.")
    suffixes = {Path(f).suffix.lower() for f in every}
    for suffix in suffixes:
        check_choice("the data file extension", suffix, tuple(FILE_BUILDERS))
    builders = {FILE_BUILDERS[s] for s in suffixes}
    if len(builders) > 1:
        raise ValueError(f"data files must all be of one format; got {sorted(suffixes)}.")
    for path in every:
        if not Path(path).is_file():
            raise ValueError(f"data file {path} does not exist.")
        if not Path(path).stat().st_size:
            raise ValueError(f"data file {path} is empty.")
    builder = builders.pop()
    if text_sample_by != "line" and builder != "text":
        raise ValueError(f"--text_sample_by {text_sample_by} cuts .txt files into texts; these are {builder} files, "
                         "whose rows are the texts: drop it.")
    if builder == "conll":
        make = datasets.IterableDataset.from_generator if streaming else datasets.Dataset.from_generator
        kind = datasets.IterableDatasetDict if streaming else datasets.DatasetDict
        # the files' sizes and times in the generator's arguments: datasets caches by them, so an edited file is read
        stamps = {split: [(p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in paths]
                  for split, paths in files.items()}
        return kind({split: make(conll_rows, gen_kwargs={"paths": paths, "stamps": stamps[split]})
                     for split, paths in files.items()})
    return _load_files(builder, files, streaming, {"sample_by": text_sample_by} if builder == "text" else None)


def conll_rows(paths: list[str], stamps: list | None = None):
    """Sentences of CoNLL files as rows ``{"tokens": [...], "ner_tags": [...]}``: one token a line with its tag in
    the last column (tab or space separated, as WNUT-17 and CoNLL-2003; a line with a tab is split at tabs only, so
    a token may hold a space), a blank line between sentences; ``-DOCSTART-`` lines are skipped. ``stamps`` (each
    file's size and modification time) is not read: it is there so that the datasets cache, keyed by the
    generator's arguments, notices an edited file."""
    for path in paths:
        tokens, tags = [], []
        with open(path, encoding="utf-8-sig") as handle:  # a byte-order mark is no token
            for number, line in enumerate([*handle, ""], start=1):
                fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
                fields = [f for f in fields if f]
                if fields and fields[0] != "-DOCSTART-":
                    if len(fields) < 2:
                        raise ValueError(f"{path}:{number}: a CoNLL line needs a token and a tag; got {line!r}.")
                    tokens.append(fields[0])
                    tags.append(fields[-1])
                elif tokens:
                    yield {"tokens": tokens, "ner_tags": tags}
                    tokens, tags = [], []


def load_text_splits(*, dataset_name=None, dataset_config_name=None, train_files=None, validation_files=None,
                     text_column="text", validation_split_percentage=5.0, streaming=False, default=None,
                     evaluation_split="validation", required_columns=(), seed=42, allow_missing=False,
                     text_columns=(), text_sample_by="line"):
    """``{"train", evaluation_split}`` splits of the data, checked for the needed columns and for emptiness.

    With no dataset name and no files, ``default()`` gives the data (the embedded corpus if ``default`` is
    None). Data with no evaluation split is split here (``validation_split_percentage`` of train, seeded);
    ``evaluation_split=None`` asks for none, so all of the training data stays in ``train`` (a tokenizer's).
    Missing values in the columns read are refused (:func:`check_no_missing_values`) unless ``allow_missing`` (the
    tokenizer's trainer, which skips them). ``text_columns``, the columns that hold one text a row, must hold strings
    (:func:`check_text_columns`). ``text_sample_by`` cuts ``.txt`` files into texts: each line, each paragraph (at
    blank lines) or the whole file (:data:`TEXT_SAMPLING`).
    """
    check_choice("text_sample_by", text_sample_by, TEXT_SAMPLING)
    if text_sample_by != "line" and not train_files:
        raise ValueError(f"--text_sample_by {text_sample_by} cuts local .txt files (--train_files) into texts; a Hub "
                         "dataset's rows and the embedded corpus are texts already: drop it.")
    if dataset_name or train_files:
        raw = _read(dataset_name, dataset_config_name, train_files, validation_files, streaming, text_sample_by)
    else:
        if default is None:
            from embedded_data import load_default_corpus as default
        raw = default()
        if streaming:
            raw = datasets.IterableDatasetDict({k: v.to_iterable_dataset() for k, v in raw.items()})
    if "train" not in raw:
        raise ValueError(f"the data has no 'train' split; its splits are {list(raw)}.")
    if not streaming:  # as read, before a validation split is cut out: the files' rows
        for name, split in raw.items():
            if not allow_missing:
                check_no_missing_values(split, name,
                                        [c for c in (text_column, *required_columns) if c in split.features])
            check_text_columns(split, name, [c for c in text_columns if c in split.features])
    if evaluation_split is not None and evaluation_split not in raw:
        other = next((s for s in ("validation", "test", "valid", "dev") if s in raw), None)
        if other is not None:
            raw[evaluation_split] = raw.pop(other)
        elif streaming:
            count = max(1, int(validation_split_percentage * 10))  # a fixed head of the stream, e.g. 50 rows at 5%
            raw = datasets.IterableDatasetDict({"train": raw["train"].skip(count),
                                                evaluation_split: raw["train"].take(count)})
        else:
            if len(raw["train"]) < 2:  # train_test_split would leave one side empty
                raise ValueError(f"the training data has {len(raw['train'])} row(s): too few to hold "
                                 f"{validation_split_percentage}% of it out for validation; give more rows or "
                                 "--validation_files.")
            parts = raw["train"].train_test_split(test_size=validation_split_percentage / 100, seed=seed)
            raw = datasets.DatasetDict({"train": parts["train"], evaluation_split: parts["test"]})
    for name in ("train",) if evaluation_split is None else ("train", evaluation_split):
        split = raw[name]
        columns = split.column_names or []
        for column in (text_column, *required_columns):
            if columns and column not in columns:
                raise ValueError(f"the {name} data has no column {column!r}; its columns are {columns}. "
                                 "Pick the right one with --text_column / --label_column.")
        if not streaming and not len(split):
            raise ValueError(f"the {name} data is empty.")
    return raw


def check_text_columns(split, name: str, columns) -> None:
    """``ValueError`` naming a column that should hold texts but holds another type (numbers: a wrong
    ``--text_column``; ``Json``: a JSON column mixing texts with numbers or lists), read from the split's features, so
    before any tokenising; the tokenizer failed on such a row with a ``TypeError`` naming nothing. The first row that
    is not a string is found only on that path."""
    for column in columns:
        if getattr(split.features[column], "dtype", None) not in ("string", "large_string"):
            row, value = next(((i, v) for i, v in enumerate(split[column]) if not isinstance(v, (str, type(None)))),
                              (None, None))
            if row is None:  # no value at all (a column of nulls): check_no_missing_values's case
                continue
            raise ValueError(f"column {column!r} of the {name} data holds {type(value).__name__} values, not texts "
                             f"(the first in data row {row}, counting from 0 in the order of its files: "
                             f"{str(value)[:40]!r}): pick the text column with --text_column (and --label_column), "
                             "or fix the rows that are not strings.")


def check_no_missing_values(split, name: str, columns) -> None:
    """``ValueError`` naming the column, the count and the first row of missing values (null in a JSON line, an
    empty CSV cell, an absent key) in the columns a task reads. The tokenizer's trainer skips them, but the tokenising
    after it, the label set and the loss cannot: each failed with a raw ``TypeError`` naming nothing, or (an empty
    cell turns a column of class ids into floats) as a regression task. One Arrow count per column, no row loop."""
    import pyarrow.compute as pc

    for column in dict.fromkeys(columns):
        values = split.data.column(column)
        if values.null_count:
            first = pc.index(pc.is_null(values), True).as_py()
            raise ValueError(f"column {column!r} of the {name} data has {values.null_count} missing value(s) (null, "
                             f"an empty CSV cell or an absent key), the first in data row {first} (counting from 0, "
                             "in the order of its files): fill or drop those rows.")


def limit(split, count: int | None, seed: int = 42):
    """``count`` rows (all when None): a seeded random sample, so a class-ordered file keeps every class.

    A stream keeps its first ``count`` rows.
    """
    if count is None:
        return split
    if isinstance(split, datasets.IterableDataset):
        return split.take(count)
    return split.shuffle(seed=seed).select(range(min(count, len(split))))


def pack_blocks(examples: dict, block_size: int) -> dict:
    """Concatenate tokenised texts and cut them into full ``block_size`` blocks (the remainder is dropped)."""
    ids = [token for sequence in examples["input_ids"] for token in sequence]
    usable = len(ids) // block_size * block_size
    return {"input_ids": [ids[i:i + block_size] for i in range(0, usable, block_size)]}


# ------------------------------------------------------------------------------------ converted checkpoints

#: where a run keeps the mini conversion of a transformers checkpoint (inside its output folder)
CONVERTED_FOLDER = "converted-base"


def use_mini_checkpoint(model_args: ModelArguments, training_args) -> None:
    """Let ``--model_name_or_path`` name a transformers checkpoint as well as a mini one.

    A checkpoint of a family :mod:`modeling_mini.convert` knows (``config.architectures`` names a class ``from_hf``
    accepts: ``DistilBertForMaskedLM``, ``GPT2LMHeadModel``, ``MarianMTModel`` ...; else its backbone converts, as
    ``ElectraModel`` for ELECTRA's discriminator ``ElectraForPreTraining``) is converted once, weight for weight, into
    ``<output_dir>/converted-base`` with its tokenizer and generation config, and the run starts from that folder (a
    resumed run finds it there). The main process converts first; the others then read its folder.
    ``model_args.converted_from`` keeps the original name for the model card. A mini checkpoint is left as it is.
    """
    from transformers import AutoConfig

    import modeling_mini  # noqa: F401  (registers the mini Auto classes)

    name = model_args.model_name_or_path
    if not name:
        return
    config = AutoConfig.from_pretrained(name, trust_remote_code=model_args.trust_remote_code)
    if config.model_type in MODEL_TYPE_FAMILY:
        return
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    from modeling_mini.convert import convertible_classes, from_hf

    # its own head first; else its backbone (ELECTRA's discriminator head has no mini equivalent: its encoder has)
    candidates = [*(config.architectures or ()), MODEL_MAPPING_NAMES.get(config.model_type)]
    known = [arch for arch in candidates if arch in convertible_classes()]
    if not known:
        raise ValueError(f"--model_name_or_path {name!r} is a {config.model_type!r} checkpoint of "
                         f"{config.architectures or 'unnamed architectures'}; a mini checkpoint or one of the classes "
                         f"modeling_mini.convert.from_hf converts is needed: {', '.join(convertible_classes())}.")
    folder = Path(training_args.output_dir) / CONVERTED_FOLDER
    with training_args.main_process_first(desc=f"converting {name}"):
        if not (folder / "config.json").is_file():
            reference = getattr(transformers, known[0]).from_pretrained(name)
            from_hf(reference).save_pretrained(folder)
            if known[0] not in (config.architectures or ()):
                print(f"{name!r} is a {config.architectures}: its backbone ({known[0]}) converts, its head does not")
            try:
                AutoTokenizer.from_pretrained(name, trust_remote_code=model_args.trust_remote_code).save_pretrained(
                    folder)
            except (OSError, ValueError):  # no tokenizer beside the weights: pass --tokenizer_name_or_path
                pass
            print(f"converted {known[0]} {name!r} into {folder}")
    model_args.converted_from = name
    model_args.model_name_or_path = str(folder)


# ------------------------------------------------------------------------------------------ tokenizer, config

def checkpoint_to_resume(training_args) -> str | None:
    """The checkpoint folder ``--resume_from_checkpoint`` names: a path, or ``true`` for the output folder's last
    complete one (none there yet: the run starts from the beginning, so one command line serves a job that may be
    preempted and restarted).

    A run killed while writing a checkpoint leaves a ``checkpoint-N`` folder without ``trainer_state.json``, the
    last file the Trainer writes: ``true`` skips it for the one before. The scripts pass the folder found here, not
    the raw argument, to ``Trainer.train``: the command line gives the string ``"true"``, which the Trainer would
    take for a path. A path named explicitly must be a complete checkpoint (:func:`check_checkpoint_complete`).

    Call it before reading the data: a bad path then fails at once, not after the tokenising."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("false", ""):
        return None
    if str(value).lower() != "true":
        check_checkpoint_complete(Path(value))
        return str(value)
    folder = Path(training_args.output_dir)
    steps = {}
    for path in folder.glob("checkpoint-*") if folder.is_dir() else ():
        step = re.fullmatch(r"checkpoint-([0-9]+)", path.name)  # the Trainer's names; ASCII digits only
        if path.is_dir() and step:
            steps[int(step.group(1))] = path
    for step in sorted(steps, reverse=True):
        if (steps[step] / "trainer_state.json").is_file():
            return str(steps[step])
        print(f"--resume_from_checkpoint true: {steps[step]} is incomplete (killed while saving?); skipping it")
    print(f"--resume_from_checkpoint true: no checkpoint in {folder} yet; starting from the beginning")
    return None


def check_checkpoint_complete(checkpoint: Path) -> None:
    """``ValueError`` when ``--resume_from_checkpoint`` names a folder that is missing, or one without
    ``trainer_state.json`` (the last file the Trainer writes): the Trainer would fail with a bare
    ``FileNotFoundError`` once the data was tokenised."""
    if not checkpoint.is_dir():
        raise ValueError(f"--resume_from_checkpoint {checkpoint}: no such checkpoint folder; pass an existing "
                         "checkpoint-N folder, or `true` for the output folder's last complete one.")
    if not (checkpoint / "trainer_state.json").is_file():
        raise ValueError(f"--resume_from_checkpoint {checkpoint} is incomplete (killed while saving?): it has no "
                         "trainer_state.json; pass the checkpoint before it, or `true` for the output folder's last "
                         "complete one.")


#: the arguments that decide which batches each optimizer step reads: a resumed run must keep them (``seed`` also
#: draws the validation split, the ``--max_train_samples`` sample and the pretraining masks; ``data_seed``, where set,
#: the sampler's order)
RESUME_SETTINGS = ("per_device_train_batch_size", "gradient_accumulation_steps", "world_size", "seed", "data_seed")
#: the data arguments that decide which rows and blocks the training set holds
DATA_SETTINGS = ("dataset_name", "dataset_config_name", "train_files", "text_column", "validation_split_percentage",
                 "streaming", "max_train_samples", "max_length", "text_sample_by")
#: config.json keys a resumed run may change: rates that leave every weight's shape and the evaluated function as
#: they were (a run may turn dropout down for its last stretch)
CONFIG_RESUMABLE = ("activation_dropout", "attention_dropout", "classifier_dropout", "embedding_dropout",
                    "hidden_dropout")
#: config.json keys that are bookkeeping, not architecture (the Trainer saves checkpoints with ``use_cache`` off)
CONFIG_BOOKKEEPING = ("transformers_version", "architectures", "auto_map", "dtype", "torch_dtype", "use_cache",
                      "_name_or_path")


def data_files_identity(files: list[str] | None) -> list | None:
    """``--train_files`` as a resumed run compares them: each file (a glob's matches, :func:`data_files`) by its name
    and size in bytes, so the data may move (another mount on the node that resumes) but not change size; a path that
    names no file by the string given (the data reader refuses it)."""
    if files is None:
        return None
    return [[Path(name).name, Path(name).stat().st_size] if Path(name).is_file() else name
            for name in data_files(files)]


def run_settings(training_args, data_args=None, **script_settings) -> dict:
    """The settings a resumed run must keep (:data:`RESUME_SETTINGS`, :data:`DATA_SETTINGS` and the script's own, such
    as the fine-tuning task), JSON-ready, as :class:`RunSettings` records them and :func:`check_resume_settings`
    compares them. ``validation_split_percentage`` counts only where the validation rows come out of train."""
    settings = {name: getattr(training_args, name) for name in RESUME_SETTINGS}
    if data_args is not None:
        settings.update({name: getattr(data_args, name) for name in DATA_SETTINGS})
        settings["train_files"] = data_files_identity(data_args.train_files)
        if data_args.validation_files:
            del settings["validation_split_percentage"]
    return {**settings, **script_settings}


class RunSettings(TrainerCallback, ExportableState):
    """Records :func:`run_settings` in every checkpoint's ``trainer_state.json`` (a stateful callback's state, so in
    the file the Trainer writes last and atomically with the rest), for :func:`check_resume_settings`."""

    def __init__(self, **settings):
        self.settings = settings

    @classmethod
    def of(cls, training_args, data_args=None, **script_settings) -> "RunSettings":
        """The settings of this run."""
        return cls(**run_settings(training_args, data_args, **script_settings))

    def state(self) -> dict:
        return {"args": dict(self.settings), "attributes": {}}


def recorded_settings(checkpoint: Path) -> dict:
    """:func:`run_settings` as a checkpoint recorded them (:class:`RunSettings`); a checkpoint written without that
    callback gives what its ``trainer_state.json`` always holds: the batch size (``train_batch_size``, per device on a
    machine without several GPUs in one process)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    recorded = (state.get("stateful_callbacks") or {}).get(RunSettings.__name__)
    if isinstance(recorded, list):  # the Trainer lists callbacks of one class
        recorded = recorded[0]
    if recorded:
        return dict(recorded.get("args", {}))
    if state.get("train_batch_size"):
        return {"train_batch_size": state["train_batch_size"]}
    return {}


def check_resume_settings(checkpoint: str | None, training_args, data_args=None, **script_settings) -> None:
    """``ValueError`` naming each of :func:`run_settings` that differs from the checkpoint's, with both values.

    The Trainer skips ``global_step`` x ``gradient_accumulation_steps`` batches of the data it would now draw: with
    another batch size, accumulation, number of processes, seed (the shuffle's, the split's), data files or block
    length, those are other batches, so the resumed run would silently repeat some data and skip the rest
    (transformers only warns about the batch size). ``--max_steps`` and ``--num_train_epochs`` may change: they extend
    or shorten the run without moving its data. A checkpoint records only what it was written with: a setting added
    to the record later is not checked against an older checkpoint."""
    if checkpoint is None:
        return
    recorded = recorded_settings(Path(checkpoint))
    if "train_batch_size" in recorded:  # written without RunSettings: the batch size alone, read as transformers does
        recorded = {"per_device_train_batch_size": recorded["train_batch_size"] // max(1, training_args.n_gpu)}
    current = json.loads(json.dumps(run_settings(training_args, data_args, **script_settings)))  # as recorded
    changed = [f"--{name} {recorded[name]} (now {current[name]})" for name in recorded
               if name in current and recorded[name] != current[name]]
    if changed:
        raise ValueError(f"--resume_from_checkpoint {checkpoint}: the checkpoint was trained with "
                         f"{', '.join(changed)}; a resumed run must keep these, or it repeats and skips data. "
                         "Resume with the checkpoint's values (--max_steps / --num_train_epochs may change), or start "
                         "a new run from its weights with --model_name_or_path.")


def check_resume_config(checkpoint: str | None, config) -> None:
    """``ValueError`` naming the model config fields (``--config_overrides``, ``--model_config``) that differ from the
    checkpoint's ``config.json``: the weights would not load, or the optimizer's state would not fit them ("loaded
    state dict contains a parameter group that doesn't match the size"), an error that names no field. The dropout
    rates (:data:`CONFIG_RESUMABLE`) may change. A checkpoint without ``config.json`` (a LoRA adapter's) is not
    checked."""
    if checkpoint is None or not (Path(checkpoint) / "config.json").is_file():
        return
    saved = json.loads((Path(checkpoint) / "config.json").read_text())
    built = json.loads(config.to_json_string(use_diff=True))  # as saved: the values that differ from the defaults
    keys = sorted((saved.keys() | built.keys()) - set(CONFIG_BOOKKEEPING) - set(CONFIG_RESUMABLE))
    differ = [f"{key}={saved.get(key)!r} (now {built.get(key)!r})" for key in keys if saved.get(key) != built.get(key)]
    if differ:
        raise ValueError(f"--resume_from_checkpoint {checkpoint}: the model config differs from the checkpoint's: "
                         f"{'; '.join(differ)}. Resume with the checkpoint's --model_config / --config_overrides, or "
                         "start a new run from its weights with --model_name_or_path.")


#: The files a saved tokenizer folder holds one of (with ``*.model``, a sentencepiece model).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


def holds_tokenizer(folder: Path) -> bool:
    """Does ``folder`` hold a saved tokenizer (one of :data:`TOKENIZER_FILES`, or a sentencepiece model)?"""
    return any((folder / name).is_file() for name in TOKENIZER_FILES) or any(folder.glob("*.model"))


def load_tokenizer(model_args: ModelArguments, texts=None, *, family: str, resume_from: str | None = None,
                   training_args=None) -> PreTrainedTokenizerBase:
    """The tokenizer named by the arguments, the checkpoint's, or one trained now on ``texts``.

    A run resumed from a checkpoint (``resume_from``) whose tokenizer was trained by the run itself reads the one
    saved in the checkpoint: training again could give other ids (the WordPiece trainer breaks frequency ties in no
    fixed order), and the resumed model would read every token as another one. In a distributed run
    (``training_args``) the main process alone makes that choice and reads or trains the tokenizer, and every process
    gets its files (:func:`from_main_process`): on nodes without a shared filesystem, one whose copy of the checkpoint
    lacks the tokenizer still gets the main process's, never one of its own."""
    name = model_args.tokenizer_name_or_path or model_args.model_name_or_path
    if name:
        folder = Path(name)
        if folder.is_dir() and not holds_tokenizer(folder):
            # transformers would build a tokenizer from the model config alone: an error about sentencepiece, or a
            # BERT tokenizer of 5 tokens that reads every word as [UNK] and trains without a word of warning
            option = "--tokenizer_name_or_path" if model_args.tokenizer_name_or_path else "--model_name_or_path"
            raise ValueError(f"{option} {name!r} holds no tokenizer (no tokenizer.json, tokenizer_config.json or "
                             "vocabulary file): save one there (`tokenizer.save_pretrained`), or pass "
                             "--tokenizer_name_or_path with a tokenizer folder or Hub id.")
        return AutoTokenizer.from_pretrained(name, trust_remote_code=model_args.trust_remote_code)

    def read_or_train() -> PreTrainedTokenizerBase:
        if resume_from and holds_tokenizer(Path(resume_from)):
            return AutoTokenizer.from_pretrained(resume_from)
        if texts is None:
            raise ValueError("no tokenizer: pass --tokenizer_name_or_path, --model_name_or_path, or training data.")
        from train_tokenizer import FAMILY_TOKENIZER, train_tokenizer

        return train_tokenizer(texts, FAMILY_TOKENIZER[family], model_args.tokenizer_vocab_size, family=family)

    return from_main_process(read_or_train, training_args)


def from_main_process(make_tokenizer, training_args=None) -> PreTrainedTokenizerBase:
    """``make_tokenizer()`` run by the main process alone, its result sent to every process of a distributed run.

    Each process training its own tokenizer would be safe only if training were deterministic, and WordPiece's is
    not (it breaks frequency ties in no fixed order): two ranks could then read the same id as different tokens. The
    main process saves its tokenizer and broadcasts the files' bytes (``broadcast_object_list``), so no shared
    filesystem is needed across nodes; every process, the main one included, loads the same files. If the main
    process fails, it sends the error instead, and every process raises at once. The others wait in the broadcast
    while the main process trains, for at most ``--ddp_timeout`` seconds (30 minutes by default): for a corpus that
    takes longer, raise it, or train the tokenizer first (``train/train_tokenizer.py``). A single process
    just runs ``make_tokenizer``, and so does any run without ``training_args``, whose process state is what tells."""
    import tempfile
    import traceback

    from accelerate.utils import broadcast_object_list

    if training_args is None or training_args.device is None:  # .device sets up the processes, as the Trainer will
        return make_tokenizer()
    state = training_args.distributed_state
    if state is None or state.num_processes == 1:
        return make_tokenizer()
    files, failure = [None], None
    if state.is_main_process:
        try:
            with tempfile.TemporaryDirectory() as folder:
                make_tokenizer().save_pretrained(folder)
                files = [{path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}]
        except Exception as error:  # tell the others, who would otherwise wait for the files until the timeout
            # as text: an exception object may not pickle (one holding a lock) or unpickle (a custom __init__)
            failure, files = error, ["".join(traceback.format_exception_only(error)).strip()]
    broadcast_object_list(files, from_process=0)
    if failure is not None:
        raise failure
    if isinstance(files[0], str):
        raise RuntimeError(f"the main process failed to make the tokenizer: {files[0]}")
    with tempfile.TemporaryDirectory() as folder:
        for name, data in files[0].items():
            (Path(folder) / name).write_bytes(data)
        return AutoTokenizer.from_pretrained(folder)


def resolve_preset(spec: str, family: str) -> Path:
    """A preset name (``tiny``), a preset file name (``gpt-tiny``) or a path -> the config JSON path."""
    for candidate in (Path(spec), MODELS_DIR / f"{family}-{spec}.json", MODELS_DIR / f"{spec}.json",
                      MODELS_DIR / spec):
        if candidate.is_dir() and (candidate / "config.json").is_file():
            return candidate / "config.json"
        if candidate.is_file():
            return candidate
    presets = sorted(p.stem for p in MODELS_DIR.glob(f"{family}-*.json"))
    raise ValueError(f"model_config={spec!r} is neither a preset of family {family!r} ({presets}) nor a config "
                     "file or folder.")


def family_config_class(family: str):
    import modeling_mini

    check_choice("family", family, FAMILIES)
    name = FAMILY_CONFIG[family]
    if not hasattr(modeling_mini, name):
        raise ValueError(f"family {family!r} is not available in this version of modeling_mini.")
    return getattr(modeling_mini, name)


def special_token_ids(tokenizer: PreTrainedTokenizerBase, family: str) -> dict:
    """pad / bos / eos (and decoder_start for seq2seq) ids of the tokenizer, for the model config."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": bos, "eos_token_id": eos}
    if family == "seq2seq":
        ids["decoder_start_token_id"] = eos if bos is None else bos
    return {k: v for k, v in ids.items() if v is not None}


def build_config(model_args: ModelArguments, tokenizer: PreTrainedTokenizerBase, **overrides):
    """The model config from a preset / config path, sized to the tokenizer (``vocab_size`` defaults to it)."""
    family = model_args.family
    cls = family_config_class(family)
    spec = model_args.model_config or "tiny"
    values = json.loads(resolve_preset(spec, family).read_text())
    model_type = values.pop("model_type", cls.model_type)
    if model_type != cls.model_type:
        raise ValueError(f"model_config {spec!r} is a {model_type!r} config, not one of family {family!r} "
                         f"({cls.model_type!r}).")
    for key in ("architectures", "auto_map", "transformers_version", "dtype"):
        values.pop(key, None)
    values.setdefault("vocab_size", len(tokenizer))
    values.update(special_token_ids(tokenizer, family))
    values = with_overrides(values, parse_config_overrides(model_args.config_overrides, cls), cls.attribute_map)
    values.update(overrides)
    config = cls(**values)
    check_vocab_fits(tokenizer, config)
    return config


def override_config(config, text: str | None):
    """A checkpoint's config with ``--config_overrides`` applied, rebuilt so that its checks run again.

    ``config.update`` would set the attributes unchecked: a misspelt ``position_embedding_type`` would load a model
    with no positions at all, and a wrong head count fail later as a weight-shape error.
    """
    overrides = parse_config_overrides(text, type(config))
    if not overrides:
        return config
    values = config.to_dict()
    for key in ("model_type", "transformers_version"):
        values.pop(key, None)
    return type(config)(**with_overrides(values, overrides, type(config).attribute_map))


def with_overrides(values: dict, overrides: dict, aliases: dict | None = None) -> dict:
    """``values`` updated by ``overrides``, keeping a per-layer ``layer_types`` pattern when only the depth changes.

    A preset such as ``gpt-modern-small`` lists one attention type per layer (two sliding layers, then one full).
    ``num_hidden_layers=8`` alone repeats that pattern over the new depth, as Gemma's and ModernBERT's configs derive
    their layer types from a period; setting ``layer_types`` too uses the list given.

    ``aliases`` (the config class's ``attribute_map``) names one field twice: the encoder-decoder's
    ``num_hidden_layers`` is its ``decoder_layers``, GPT-2's ``n_layer`` the ``num_hidden_layers``. Both sides are
    put under the field's own name first, so an override of either name is not undone by the other's saved value.
    """
    overrides = canonical_names(overrides, aliases)
    values = {**canonical_names(values, aliases), **overrides}
    depth_keys = [k for k in ("num_hidden_layers", "n_layer", "decoder_layers") if k in overrides]
    layer_types = values.get("layer_types")
    if depth_keys and "layer_types" not in overrides and isinstance(layer_types, list) and layer_types:
        depth = overrides[depth_keys[0]]
        if isinstance(depth, int) and depth > 0:
            values["layer_types"] = repeat_pattern(layer_types, depth)
    return values


def canonical_names(values: dict, aliases: dict | None) -> dict:
    """``values`` with each alias (a key of ``aliases``) under the name it stands for; an alias whose field is also
    there is dropped (``to_dict`` writes both, with one value)."""
    aliases = aliases or {}
    return {aliases.get(key, key): value for key, value in values.items()
            if not (key in aliases and aliases[key] in values)}


def repeat_pattern(items: list, length: int) -> list:
    """The shortest period of ``items`` repeated to ``length`` entries: ``[s, s, f, s, s, f]``, 4: ``[s, s, f, s]``."""
    period = next(p for p in range(1, len(items) + 1)
                  if all(items[i] == items[i % p] for i in range(len(items))))
    return [items[i % period] for i in range(length)]


def split_overrides(text: str) -> list[str]:
    """``text`` cut at the commas outside brackets, braces and quotes, so list values can be given."""
    items, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def parse_config_overrides(text: str | None, config_class) -> dict:
    """``"hidden_dropout=0.0,num_hidden_layers=6"`` -> ``{"hidden_dropout": 0.0, "num_hidden_layers": 6}``.

    Each key must be a field of ``config_class`` (a typo would otherwise become a silently ignored attribute);
    values are read as JSON where they parse (numbers, true/false, null, lists such as
    ``layer_types=["sliding_attention","full_attention"]``), else kept as strings.
    """
    if not text:
        return {}
    known = set(config_class().to_dict())
    values = {}
    for item in split_overrides(text):
        key, sep, raw = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise ValueError(f"config_overrides must be 'key=value' pairs separated by commas; got {item!r}.")
        if key not in known:
            raise ValueError(f"config_overrides: {key!r} is not a field of {config_class.__name__}; known fields: "
                             f"{', '.join(sorted(known))}.")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def check_vocab_fits(tokenizer: PreTrainedTokenizerBase, config) -> None:
    """``ValueError`` when the tokenizer can produce ids the model's embedding does not have."""
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
                         f"{config.vocab_size}: use a smaller tokenizer or a config with vocab_size >= "
                         f"{len(tokenizer)}.")


def fit_to_model(tokenizer: PreTrainedTokenizerBase, config, **lengths: int) -> None:
    """Check the run's token lengths against the model, and give the tokenizer the model's limit.

    ``lengths`` (``max_length=...``, ``max_target_length=...``) longer than a model with learned positions has
    rows raise a ``ValueError`` before training, not an index error in its first long batch. The tokenizer's
    ``model_max_length``, which pipelines truncate to and which is saved with it, is lowered to the model's
    ``max_position_embeddings``: one trained here knows no limit, and one from elsewhere may claim more than this
    model reads."""
    limit = config.max_position_embeddings
    if config.position_embedding_type == "learned":
        for name, length in lengths.items():
            if length is not None and length > limit:
                raise ValueError(f"{name}={length} exceeds the model's max_position_embeddings={limit} (learned "
                                 f"positions): pass --{name} {limit} or less.")
    if tokenizer.model_max_length > limit:
        tokenizer.model_max_length = limit


def family_of(config) -> str:
    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_TYPE_FAMILY:
        raise ValueError(f"the checkpoint is a {model_type!r} model, not a mini family "
                         f"({', '.join(MODEL_TYPE_FAMILY)}).")
    return MODEL_TYPE_FAMILY[model_type]


# ---------------------------------------------------------------------------------------------- training run

class NaNGuard(TrainerCallback):
    """Stop the run when the loss (or gradient norm) is NaN / infinite, before a broken checkpoint is saved.

    The check runs on every log, on the loss and the gradient norm (the Trainer's default ``logging_nan_inf_filter``
    leaves a NaN step out of the logged loss, but not out of the gradient norm), and, at each step that is about to
    save a checkpoint, on the weights themselves. The last good checkpoint stays on disk;
    the script reports it and exits with an error instead of saving the final model.
    """

    def __init__(self):
        self.bad_step = None
        self.what = None

    def _stop(self, state, control, what):
        self.bad_step, self.what = state.global_step, what
        control.should_training_stop = True
        control.should_save = False
        control.should_evaluate = False
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(value):
                return self._stop(state, control, f"{key} = {value}")

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if control.should_save and model is not None and not weights_finite(model, args.device):
            return self._stop(state, control, "non-finite weights")

    def raise_if_stopped(self, output_dir) -> None:
        if self.bad_step is None:
            return
        checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        last = str(checkpoints[-1]) if checkpoints else "none was saved yet"
        raise RuntimeError(f"Training stopped at step {self.bad_step}: {self.what}. The final model was not saved; "
                           f"the last good checkpoint is {last}. Lower the learning rate or check the data, then "
                           "resume with --resume_from_checkpoint.")


def weights_finite(model, device=None) -> bool:
    """Whether every weight of ``model`` is finite, on every process of the run.

    Under FSDP each process holds a shard of each weight (a DTensor), so each checks its own and the answers are
    combined (a minimum over the processes): were one process alone to stop and skip the save, the others would wait
    for it in the save's collective calls until the run timed out.
    """
    import torch
    import torch.distributed as dist

    local = [p.to_local() if hasattr(p, "to_local") else p for p in model.parameters()]
    # the flag lives on the run's device (``device``: the one the collective communicates on), as weights may sit on
    # several devices (a device map) or be offloaded to the CPU
    device = device or (local[0].device if local else torch.device("cpu"))
    flags = [torch.isfinite(p).all().to(device) for p in local]
    finite = (torch.stack(flags).all() if flags else torch.tensor(True, device=device)).to(torch.int32)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def metric(name: str):
    """A local ``evaluate`` module from ``train/metrics/<name>`` (no Hub access)."""
    import evaluate

    return evaluate.load(str(METRICS_DIR / name))


def final_evaluation(trainer) -> dict:
    """``trainer.evaluate()`` after training, the trained weights kept as they were.

    With ``--bf16_full_eval`` / ``--fp16_full_eval`` the Trainer casts the model to half precision in place for an
    evaluation outside training, so the model saved after it (and a LoRA adapter) would be rounded to bfloat16 and
    load so (transformers' ``run_clm.py`` saves before it evaluates). A copy of every tensor is kept on the CPU and
    put back, each in its own dtype (a T5 in float16 keeps float32 feed-forward outputs). Not under FSDP or
    DeepSpeed, whose sharded weights this copy would not restore: there the flags keep transformers' behaviour."""
    args = trainer.args
    if not (args.bf16_full_eval or args.fp16_full_eval) or trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        return trainer.evaluate()
    model = trainer.model
    parameters = list(model.named_parameters(remove_duplicate=False))
    buffers = [(module, name) for _, module in model.named_modules() for name, buffer in module._buffers.items()
               if buffer is not None]
    kept_parameters = [parameter.detach().to("cpu", copy=True) for _, parameter in parameters]
    kept_buffers = [module._buffers[name].to("cpu", copy=True) for module, name in buffers]
    try:
        return trainer.evaluate()
    finally:
        for (_, parameter), kept in zip(parameters, kept_parameters, strict=True):
            parameter.data = kept.to(parameter.device)  # the same Parameter objects: ties stay
        for (module, name), kept in zip(buffers, kept_buffers, strict=True):  # `.to` made new buffer tensors
            module._buffers[name] = kept.to(module._buffers[name].device)


def finish_run(trainer, tokenizer, *, recipe: dict, task: str, datasets_used, metrics: dict, base_model=None,
               push: dict | None = None, use_cache: bool | None = None) -> None:
    """Write the output folder: model, tokenizer, state, resolved recipe, loss curve, model card; then push.

    ``use_cache``: the model's own setting before training. transformers 5's Trainer overwrites ``config.use_cache``
    with ``TrainingArguments.use_cache`` (False by default); saved as is, a published GPT would not return its
    key/value cache from a plain forward call."""
    output_dir = Path(trainer.args.output_dir)
    if use_cache is not None:
        trainer.model.config.use_cache = use_cache
    trainer.save_model()
    trainer.save_state()
    trainer.log_metrics("final", metrics)
    if not trainer.is_world_process_zero():
        return
    tokenizer.save_pretrained(output_dir)
    trainer.save_metrics("all", metrics)
    (output_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=True))
    from modeling_mini.visualize import plot_training_loss

    try:
        plot_training_loss(output_dir, output_dir / "loss_curve.png")
    except (ValueError, ImportError) as error:  # nothing logged (a very short run), or no matplotlib
        print(f"no loss curve: {error}")
    from modeling_mini.hub import write_model_card

    keep = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps",
            "num_train_epochs", "warmup_steps", "weight_decay", "seed", "max_length", "lr_scheduler_type")
    if recipe.get("lora_r"):
        keep += ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
    hyperparameters = {key: recipe[key] for key in keep if key in recipe}
    # the run's length, once: a positive max_steps overrides the epochs; -1 (unset) says nothing
    hyperparameters.pop("num_train_epochs" if (hyperparameters.get("max_steps") or -1) > 0 else "max_steps", None)
    write_model_card(output_dir, config=trainer.model.config, task=task, datasets=datasets_used,
                     metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                     hyperparameters=hyperparameters, base_model=base_model,
                     repo_id=(push or {}).get("repo_id"), revision=(push or {}).get("revision"),
                     num_parameters=count_parameters(trainer.model),
                     token=(push or {}).get("token"))
    if push:
        from modeling_mini.hub import publish_folder

        commit = publish_folder(output_dir, push["repo_id"], private=push.get("private"),
                                token=push.get("token"), revision=push.get("revision"))
        branch = f" (branch {push['revision']})" if push.get("revision") else ""
        print(f"pushed {output_dir} to {push['repo_id']}{branch}" + ("" if commit else " (no change)"))


def take_push_settings(training_args) -> dict | None:
    """Push once, at the end, with :func:`modeling_mini.hub.publish_folder` (model, tokenizer, card, code).

    The Trainer's own push would upload each checkpoint and replace our model card with its generic one, so
    ``--push_to_hub`` is read here and switched off for the Trainer. ``--hub_private_repo true`` for a repository
    that exists and is public is refused here, before training, not by the push at its end
    (:func:`modeling_mini.hub.check_visibility`).
    """
    if not training_args.push_to_hub:
        return None
    if not training_args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id user/name.")
    if training_args.hub_private_repo:  # every process checks, so that all stop together
        from huggingface_hub import HfApi

        from modeling_mini.hub import check_visibility

        api = HfApi(token=training_args.hub_token)
        repo_id = training_args.hub_model_id
        if "/" not in repo_id:  # the token's namespace, where publish_folder's create_repo puts a bare name
            repo_id = f"{api.whoami()['name']}/{repo_id}"
        check_visibility(api, repo_id, True)
    push = {"repo_id": training_args.hub_model_id, "token": training_args.hub_token,
            # None (the default) leaves a new repository's visibility to the account's or organisation's default
            "private": training_args.hub_private_repo, "revision": training_args.hub_revision}
    training_args.push_to_hub = False
    training_args.hub_token = None  # the Trainer pickles its arguments into the output folder: keep no secret there
    return push
