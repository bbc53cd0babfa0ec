"""Publishing to the Hugging Face Hub: the model card and the upload of an output folder.

* :func:`write_model_card` renders ``model_card.md`` into ``<output_dir>/README.md``: YAML metadata the Hub
  indexes (``library_name``, ``pipeline_tag``, tags, datasets, metrics and ``model-index`` results, licence),
  then prose (family, size, data, hyperparameters, final metrics, intended use, how to load it).
* :func:`publish_folder` uploads a finished output folder with ``huggingface_hub``: weights (safetensors
  only), config with ``auto_map``, the remote-code ``.py`` files, generation config, tokenizer (chat template
  and sentencepiece models included) and card, and deletes the repository's files that the folder's supersede or
  no longer has (weights of the other layout or an older split, another model's code, a removed chat template:
  :func:`stale_files`). Checkpoints, logs, pickles (``.bin`` / ``.pt``) and local paths never leave the machine.

The template: ``model_card.md`` at the repository root is the one to edit. An installed wheel does not ship
the repository root, so this module embeds a compact fallback (``_FALLBACK_TEMPLATE``) with the same
placeholders; ``tests/test_hub.py`` renders both. Pass ``template=`` to use your own.

``model.push_to_hub(repo_id)`` on a mini model also gets this card (not transformers' generic one): see
:func:`push_default_card`, called by ``MiniPreTrainedModel.push_to_hub``. For that reason this module is copied
into checkpoints with the model code; it imports ``huggingface_hub`` only inside functions.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import posixpath
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Canonical task -> (Hub pipeline tag, Auto class that loads the model for it). Aliases below.
TASKS = {
    "causal-lm": ("text-generation", "AutoModelForCausalLM"),
    "masked-lm": ("fill-mask", "AutoModelForMaskedLM"),
    "denoising": ("text2text-generation", "AutoModelForSeq2SeqLM"),
    "translation": ("translation", "AutoModelForSeq2SeqLM"),
    "sequence-classification": ("text-classification", "AutoModelForSequenceClassification"),
    "token-classification": ("token-classification", "AutoModelForTokenClassification"),
    "question-answering": ("question-answering", "AutoModelForQuestionAnswering"),
    "multiple-choice": ("multiple-choice", "AutoModelForMultipleChoice"),
    "feature-extraction": ("feature-extraction", "AutoModel"),
}
_TASK_ALIASES = {
    "clm": "causal-lm", "causal": "causal-lm", "lm": "causal-lm", "text-generation": "causal-lm",
    "mlm": "masked-lm", "fill-mask": "masked-lm",
    "span-corruption": "denoising", "text-infilling": "denoising", "seq2seq": "denoising",
    "text2text-generation": "denoising",
    "classification": "sequence-classification", "text-classification": "sequence-classification",
    "binary-classification": "sequence-classification", "multiclass-classification": "sequence-classification",
    "ner": "token-classification", "bio": "token-classification", "qa": "question-answering",
    "mc": "multiple-choice",
}
#: Head class-name suffix -> task, for a card written without a training run.
TASK_OF_HEAD = {"ForCausalLM": "causal-lm", "ForMaskedLM": "masked-lm", "ForConditionalGeneration": "denoising",
                "ForSequenceClassification": "sequence-classification",
                "ForTokenClassification": "token-classification", "ForQuestionAnswering": "question-answering",
                "ForMultipleChoice": "multiple-choice"}
#: config.model_type -> (family, one-line summary).
FAMILIES = {
    "mini_gpt": ("gpt", "decoder-only, causal self-attention, like GPT-2"),
    "mini_encoder": ("encoder", "encoder-only, bidirectional self-attention, like BERT"),
    "mini_seq2seq": ("seq2seq", "encoder-decoder with cross-attention, like BART / Marian"),
}
#: What :func:`publish_folder` uploads. Everything else (checkpoint-*/, runs/, logs, pickles) stays local.
#: Tokenizers also need their chat template (``chat_template.jinja`` / ``.json``) and sentencepiece models
#: (Marian's ``source.spm`` / ``target.spm``, T5's ``spiece.model``, XLM-R's ``sentencepiece.bpe.model``).
#: The model's config and code (the weights are :func:`superseded_weights`' business) and the tokenizer's files: the
#: two parts whose files :func:`stale_files` deletes from a repository when the folder published over it lacks them.
CONFIG_FILES = ["config.json", "generation_config.json"]
MODEL_CODE_PATTERNS = [*CONFIG_FILES, "*.py"]
TOKENIZER_PATTERNS = ["tokenizer*", "special_tokens_map.json", "vocab.*", "merges.txt", "added_tokens.json",
                      "chat_template.jinja", "chat_template.json", "*.spm", "*.model",
                      "target_vocab.json"]  # Marian's tokenizer with a vocabulary per side (separate_vocabs)
#: The package's own modules, the only ``.py`` files :func:`stale_files` deletes (``save_pretrained`` copies them).
OWN_CODE_FILES = frozenset(path.name for path in Path(__file__).parent.glob("*.py"))
ALLOW_PATTERNS = ["*.safetensors", "*.safetensors.index.json", *MODEL_CODE_PATTERNS, *TOKENIZER_PATTERNS,
                  "README.md", "*.png"]
IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "runs/**", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl",
                   "*.pickle", "training_args*", "optimizer*", "scheduler*", "rng_state*", "*.log", "*.out",
                   "__pycache__/**", "*.pyc", "*/**"]
#: A model's safetensors weights, as transformers names them: one file ``model.safetensors``, or shards
#: ``model-00001-of-00003.safetensors`` listed in ``model.safetensors.index.json``; a ``variant`` (``fp16``) gives
#: ``model.fp16.safetensors``, ``model.fp16-00001-of-00003.safetensors`` and ``model.safetensors.index.fp16.json``.
_WEIGHTS_FILE = re.compile(r"(?P<stem>model(?:\.[^./-]+)?)(?:-\d{5}-of-\d{5})?\.safetensors")
_WEIGHTS_INDEX = re.compile(r"model\.safetensors\.index(?P<variant>\.[^./]+)?\.json")
#: transformers' generic card (``push_to_hub`` writes it when main has no card): never a card worth keeping.
GENERIC_CARD_TEXT = "This is the model card of a 🤗 transformers model that has been pushed on the Hub."
#: Endings of data files: a name with one is a local file (``--train_files``), never a Hub dataset id.
DATA_FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".txt", ".parquet", ".arrow", ".xml", ".gz", ".zip",
                      ".tar", ".bz2", ".xz", ".zst")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def normalize_task(task: str) -> str:
    """``"causal_lm"``, ``"mlm"``, ``"text-classification"``... -> a key of :data:`TASKS`; ``ValueError`` otherwise."""
    key = str(task).strip().lower().replace("_", "-").replace(" ", "-")
    key = _TASK_ALIASES.get(key, key)
    if key not in TASKS:
        allowed = sorted(set(TASKS) | set(_TASK_ALIASES))
        raise ValueError(f"task={task!r} is not a known task; allowed values: {allowed}")
    return key


def is_hub_id(name: str) -> bool:
    """Whether ``name`` can be put in the card's metadata as a Hub id (``namespace/name`` or ``name``).

    The metadata is public: a local path (``/home/alice/private/sms.csv``, ``data/train.jsonl``, an existing
    folder) must not be published as a dataset or base model, so anything shaped like a path or a data file is
    refused.
    """
    return is_hub_id_shaped(name) and not os.path.exists(name)


def is_hub_id_shaped(name: str) -> bool:
    """Whether ``name`` is shaped as a Hub id, whatever exists on disk: what a saved or published config may keep as
    ``converted_from`` (:func:`public_config`). A save must not drop ``openai-community/gpt2`` because the current
    folder holds a download of that name; a path (absolute, ``./``, ``~``, a drive, more than one ``/``) is refused
    by its shape."""
    return bool(_HUB_ID.fullmatch(name)) and not name.lower().endswith(DATA_FILE_SUFFIXES)


def _prose_name(name: str) -> str:
    """How a dataset or base model is named in the card's prose: a Hub id as it is, local paths by basename only
    (a full path can name a user's home folder or a private project). Comma-joined lists are handled per item."""
    if is_hub_id(name):
        return name
    return ", ".join(re.split(r"[\\/]", part.strip().rstrip("/\\"))[-1] for part in name.split(","))


def _template_text(template: str | os.PathLike | None) -> str:
    if template is not None:
        return Path(template).read_text(encoding="utf-8")
    repo_template = Path(__file__).resolve().parents[1] / "model_card.md"  # source checkout / editable install
    if repo_template.is_file():
        return repo_template.read_text(encoding="utf-8")
    return _FALLBACK_TEMPLATE


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: Mapping, header=("name", "value")) -> str:
    if not rows:
        return "_none recorded_"
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v).replace('|', '/')} |" for k, v in rows.items()]
    return "\n".join(lines)


def _metric_name(key: str) -> str:
    return key.removeprefix("eval_").removeprefix("test_")


def _metric_split(key: str) -> str | None:
    """The split a score was measured on, from the Trainer's prefix: ``eval_`` validation, ``test_`` test; so that a
    validation and a test accuracy are two results, not one metric with two values. ``perplexity`` is
    ``exp(eval_loss)``, so validation too."""
    if key == "perplexity":
        return "validation"
    return "test" if key.startswith("test_") else "validation" if key.startswith("eval_") else None


def _is_result(key: str) -> bool:
    """Held-out scores go into ``model-index``; training figures and bookkeeping (runtime, flos, sample counts) do
    not."""
    if key.startswith(("train_", "total_")) or key in ("epoch", "step", "loss", "grad_norm", "learning_rate"):
        return False
    return not key.endswith(("runtime", "per_second", "epoch", "samples", "_time"))  # eval_model_preparation_time


#: The card's note on what the model learned from, by (written for a training run, has a base model).
_TRAINING_NOTES = {
    (True, True): "It was fine-tuned from {base}, whose abilities, limitations and biases it keeps (read that "
                  "model's card for its training data), on the data above, with a small compute budget; its outputs "
                  "may be wrong.",
    (True, False): "It was trained on a small corpus with a small compute budget, so its outputs are often wrong, "
                   "repetitive or nonsensical, and it inherits whatever biases its training data holds.",
    (False, True): "Its weights come from {base}: its abilities, limitations and biases are that model's (unless it "
                   "was trained further after the conversion); read that model's card for its training data and "
                   "intended use.",
    (False, False): "This card was written when the model was pushed, with no record of how it was trained: nothing "
                    "is known of its data, abilities or biases.",
}


def write_model_card(
    output_dir,
    *,
    config,
    task: str,
    datasets: str | Sequence[str] | None,
    metrics: Mapping[str, float] | None,
    hyperparameters: Mapping[str, object] | None,
    base_model: str | None = None,
    **extra,
) -> Path:
    """Render the model card into ``output_dir/README.md`` and return its path.

    Args:
        output_dir: the run's output folder.
        config: the model config (a mini config instance, or its dict).
        task: what the model was trained for (see :data:`TASKS`; ``"causal_lm"``, ``"mlm"``, ``"translation"``...).
        datasets: dataset names or descriptions. Hub ids go into the metadata as they are; local paths (a run's
            ``--train_files``) appear in the prose by basename only (see :func:`is_hub_id`).
        metrics: final metrics of the run, e.g. ``{"eval_loss": 2.1, "perplexity": 8.2}``; numbers only are kept.
        hyperparameters: the settings worth reporting (learning rate, batch size, steps...).
        base_model: the checkpoint fine-tuned from, if any (a Hub id, or a local path: prose only, by basename).
        extra: ``repo_id`` (used in the loading snippet), ``revision`` (the branch it is published to, if not main: the
            loading snippets name it, so that they load this model and not main's), ``model_name``, ``license``
            (default: the base model's, read from its card, see :func:`base_model_license`; apache-2.0 without a base or
            a readable card; with ``license="other"``, also ``license_name`` and ``license_link``), ``token`` (to read a
            private or gated base's card), ``language``, ``tags`` (added), ``template`` (path of another template),
            ``dataset_name`` (the name shown in ``model-index``).
    """
    from huggingface_hub import EvalResult, ModelCardData

    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    model_type = cfg.get("model_type", "")
    if model_type not in FAMILIES:
        raise ValueError(f"config.model_type={model_type!r} is not a mini family; allowed values: {sorted(FAMILIES)}")
    family, summary = FAMILIES[model_type]
    task_key = normalize_task(task)
    pipeline_tag, auto_class = TASKS[task_key]
    if isinstance(datasets, str):
        datasets = [datasets]
    datasets = [str(d) for d in (datasets or [])]
    numeric = {k: float(v) for k, v in (metrics or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    repo_id = extra.pop("repo_id", None) or f"<user>/{Path(output_dir).resolve().name}"
    model_name = extra.pop("model_name", None) or repo_id.split("/")[-1]
    revision_arg = _revision_arg(extra.pop("revision", None))
    tags = ["mini-transformers", family, f"mini-{family}", task_key] + list(extra.pop("tags", []) or [])
    hub_datasets = [d for d in datasets if is_hub_id(d)]
    dataset_name = extra.pop("dataset_name", None) or (hub_datasets[0] if hub_datasets else "unspecified")

    eval_results = [
        EvalResult(task_type=pipeline_tag, dataset_type=dataset_name, dataset_name=dataset_name,
                   dataset_split=_metric_split(k), metric_type=_metric_name(k), metric_name=_metric_name(k),
                   metric_value=v)
        for k, v in numeric.items() if _is_result(k) and math.isfinite(v)  # YAML's .nan is no Hub result
    ]
    given = {key: extra.pop(key) for key in ("license", "license_name", "license_link") if key in extra}
    token = extra.pop("token", None)  # only to read the base's card: never part of the card
    if base_model:
        traced = traced_base(base_model)  # a converted folder without a card: the checkpoint it was converted from
        base_model = traced if is_hub_id(traced) else base_model
    licence = given if "license" in given else base_model_license(base_model, token=token)
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=licence.get("license", "apache-2.0"),
        license_name=licence.get("license_name"),
        license_link=licence.get("license_link"),
        language=extra.pop("language", None),
        tags=list(dict.fromkeys(tags)),
        datasets=hub_datasets or None,
        metrics=sorted({r.metric_type for r in eval_results}) or None,
        base_model=base_model if base_model and is_hub_id(base_model) else None,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    n_params = extra.pop("num_parameters", None)
    template = extra.pop("template", None)
    title = family.upper() if family == "gpt" else family.capitalize()
    article = "An" if title[0] in "AEIOU" else "A"
    task_title = re.sub(r"\blm\b", "LM", task_key.replace("-", " "))
    recorded = bool(datasets or numeric or hyperparameters)  # written for a training run, or for a bare push
    base_prose = _prose_name(base_model) if base_model else None
    provenance = f"trained for **{task_title}**" if recorded else f"with a **{task_title}** head"
    if base_model and not recorded:
        provenance += f"; its weights were converted from {base_prose} by `modeling_mini.convert.from_hf`"
    training_note = _TRAINING_NOTES[recorded, bool(base_model)].format(base=base_prose)
    generative = auto_class in ("AutoModelForCausalLM", "AutoModelForSeq2SeqLM")
    values = {
        "metadata": card_data.to_yaml(),
        "model_name": model_name,
        "repo_id": repo_id,
        "revision_arg": revision_arg,  # ', revision="dev"' for a branch; "" for main or a pull request
        "family": family,
        "family_title": title,
        "family_article": article,  # "An **Encoder** Transformer", "A **GPT** Transformer"
        "family_article_lower": article.lower(),
        "family_prose": "GPT" if family == "gpt" else family,  # "how an encoder Transformer is built"
        "family_summary": summary,
        "model_type": model_type,
        "task_title": task_title,
        "provenance": provenance,
        "training_note": training_note,
        # only the generative heads save generation defaults
        "more_files": "the generation config and the tokenizer" if generative else "and the tokenizer",
        "auto_class": auto_class,
        "num_parameters": _thousands(n_params if isinstance(n_params, int) else _count_parameters(cfg)),
        "num_layers": _depth(cfg),
        "hidden_size": cfg.get("hidden_size", "?"),
        "num_heads": cfg.get("num_attention_heads", "?"),
        "intermediate_size": cfg.get("intermediate_size", "?"),
        "vocab_size": cfg.get("vocab_size", "?"),
        "position_embedding_type": cfg.get("position_embedding_type", "?"),
        "max_positions": cfg.get("max_position_embeddings", "?"),
        "norm_type": cfg.get("norm_type", "?"),
        "norm_position": cfg.get("norm_position", "?"),
        "block_layout": _block_layout(cfg),
        "attention": _attention_summary(cfg, family),
        "base_model": base_prose or ("none (trained from scratch)" if recorded else "none recorded"),
        "datasets_prose": "\n".join(f"- {_prose_name(d)}" for d in datasets) or "_not recorded_",
        "hyperparameters_table": _table(dict(hyperparameters or {}), ("hyperparameter", "value")),
        "metrics_table": _table(numeric, ("metric", "value")),
        **{k: _fmt(v) for k, v in extra.items()},
    }
    text = string.Template(_template_text(template)).safe_substitute(values)
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


#: A card's loading snippet: the repository id, and the revision argument after it, if any.
_REVISION_ARG = r', revision="(?:[^"\\]|\\.)*"'  # a double-quoted string, escapes included
_LOAD_SNIPPET = re.compile(rf'from_pretrained\("([^"\s]+)"((?:{_REVISION_ARG})?)')


def _revision_arg(revision: str | None) -> str:
    """The snippets' revision argument for a card whose model loads from ``revision``: ``, revision="dev"`` for a
    branch (a pull request's card names the branch it merges into: see :func:`push_default_card`); none for main,
    which ``from_pretrained`` reads by default, or for a pull request's own ref (``refs/pr/N``)."""
    return f", revision={json.dumps(revision)}" if _is_new_branch_name(revision) else ""


def retarget_card(path, repo_id: str, revision: str | None = None) -> bool:
    """Point a card that :func:`write_model_card` wrote for another repository id, or for none (its placeholder
    ``<user>/<folder name>``), or for another branch, at ``repo_id`` on ``revision`` (None: main); return True when
    the file was rewritten.

    The loading snippets get ``repo_id`` (and ``revision="..."`` for a branch other than main), and a model name that
    was derived from the old id (the title and the ``model-index`` name) gets ``repo_id``'s name; everything else
    (metadata, data, hyperparameters, metrics) stays as it is. A README this package did not write (no
    ``mini-transformers`` tag, or not exactly one repository id in its ``from_pretrained`` snippets) is left
    untouched.
    """
    from huggingface_hub import ModelCard

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        card = ModelCard(text, ignore_metadata_errors=True)
    except ValueError:  # no metadata block at all: not ours
        return False
    snippets = set(_LOAD_SNIPPET.findall(card.text))  # {(repository id, revision argument)}
    ids, revision_arg = {repo for repo, _ in snippets}, _revision_arg(revision)
    if "mini-transformers" not in (card.data.tags or []) or len(ids) != 1 \
            or snippets == {(repo_id, revision_arg)}:
        return False
    (old,) = ids
    old_name, new_name = old.split("/")[-1], repo_id.split("/")[-1]
    body = re.sub(rf'from_pretrained\("{re.escape(old)}"(?:{_REVISION_ARG})?',
                  lambda _: f'from_pretrained("{repo_id}"{revision_arg}', card.text)
    metadata = text[: len(text) - len(card.text)]
    if old_name != new_name:
        body = re.sub(rf"^# {re.escape(old_name)}$", f"# {new_name}", body, count=1, flags=re.M)
        if card.data.model_name == old_name:
            card.data.model_name = new_name
            metadata = f"---\n{card.data.to_yaml()}\n---\n"
    path.write_text(metadata + body, encoding="utf-8")
    return True


def traced_base(base_model: str) -> str:
    """``base_model``, or, for a local folder without a card that ``convert.from_hf`` made (a converted checkpoint
    saved with ``save_pretrained``), the checkpoint its ``config.json`` names as ``converted_from``, followed to a
    folder with a card or a Hub id: the weights are that checkpoint's, so the card's base model and licence are."""
    seen = set()
    while base_model not in seen and not (Path(base_model) / "README.md").is_file():
        seen.add(base_model)  # a folder converted from itself (or a cycle of them) ends here
        try:
            source = json.loads((Path(base_model) / "config.json").read_text(encoding="utf-8")).get("converted_from")
        except (OSError, ValueError, AttributeError):  # no local folder or config (a Hub id), or not a JSON object
            break
        if not source:
            break
        base_model = str(source)
    return base_model


def base_model_license(base_model: str | None, token: str | None = None) -> dict:
    """The licence fields (``license``, and ``license_name`` / ``license_link`` for ``other``) of the base model's
    card, or ``{}`` when there is no base or its card cannot be read.

    A fine-tuned model is a derivative of its base, so its card inherits the base's licence (a Llama or an MIT GPT-2
    base stays so) instead of claiming apache-2.0. The card is the folder's ``README.md`` for a local base, else the
    Hub repository's (not reachable offline: then ``{}``), read with ``token`` for a private or gated one. A local
    base without a card that ``convert.from_hf`` made (a converted checkpoint saved with ``save_pretrained``) is
    looked through: the card read is that of the checkpoint its ``config.json`` names as ``converted_from``."""
    if not base_model:
        return {}
    from huggingface_hub import ModelCard

    base_model = traced_base(base_model)
    local = Path(base_model) / "README.md"
    if not (local.is_file() or is_hub_id(base_model)):
        return {}
    try:
        data = ModelCard.load(local if local.is_file() else base_model, token=token).data.to_dict()
    except Exception as error:  # offline, no such repository, no card, a card without metadata: nothing to inherit
        print(f"the licence of base model {base_model!r} is unknown ({type(error).__name__}); not inherited")
        return {}
    licence = {key: data[key] for key in ("license", "license_name", "license_link") if data.get(key)}
    link = str(licence.get("license_link", ""))
    relative = link and not re.match(r"[a-z][a-z0-9+.-]*:|[/#]", link, flags=re.I)  # no scheme, root or anchor
    if relative and not local.is_file() and not posixpath.normpath(link).startswith(".."):
        # the base repository's own file (`license_link: LICENSE`): the derived repository has no such file
        licence["license_link"] = f"https://huggingface.co/{base_model}/blob/main/{posixpath.normpath(link)}"
    return licence


def _block_layout(cfg: Mapping) -> str:
    """How a block's sub-layers are wired, in words."""
    if not cfg.get("parallel_residual"):
        return "sequential: attention, then feed-forward"
    if cfg.get("parallel_shared_norm"):
        return "parallel: attention and feed-forward read the same normalised input (Phi)"
    return "parallel: attention and feed-forward read the same input, each through a norm of its own (GPT-NeoX)"


def _attention_summary(cfg: Mapping, family: str) -> str:
    """What each token attends to, in words: "causal, sliding window of 512 tokens on 4 of 6 layers, 2 key/value
    heads (grouped-query)"."""
    kinds = {"gpt": "causal", "encoder": "bidirectional",
             "seq2seq": "bidirectional encoder; causal decoder with cross-attention"}
    parts = [kinds.get(family, "?")]
    sliding = [kind == "sliding_attention" for kind in cfg.get("layer_types") or []]
    if any(sliding) and cfg.get("sliding_window"):
        layers = "every layer" if all(sliding) else f"{sum(sliding)} of {len(sliding)} layers"
        either_side = " either side" if family == "encoder" else ""  # an encoder's window looks both ways
        parts.append(f"sliding window of {cfg['sliding_window']} tokens{either_side} on {layers}")
    heads, kv_heads = cfg.get("num_attention_heads"), cfg.get("num_key_value_heads")
    if kv_heads and heads and kv_heads < heads:
        parts.append(f"{kv_heads} key/value heads (grouped-query)")
    if cfg.get("qk_norm"):
        parts.append("query-key norm")
    if cfg.get("attention_softcap"):
        parts.append(f"scores soft-capped at {cfg['attention_softcap']}")
    return ", ".join(parts)


def _thousands(count: int | str) -> str:
    """``20352`` -> ``"20,352"``; a count that is not a number ("unknown") as it is."""
    return f"{count:,}" if isinstance(count, int) else str(count)


def _depth(cfg: Mapping):
    """The card's layer count: an encoder-decoder's two stacks as ``encoder + decoder`` (its ``num_hidden_layers`` is
    the decoder's alone)."""
    if "encoder_layers" in cfg and "decoder_layers" in cfg:
        return f"{cfg['encoder_layers']} + {cfg['decoder_layers']}"
    return cfg.get("num_hidden_layers", "?")


def _count_parameters(cfg: Mapping) -> int | str:
    """The exact parameter count of the model ``cfg`` describes, for cards written without a model at hand (a folder
    published from its config): the class its ``architectures`` names (else the family's base model) is built on the
    meta device, which allocates nothing, and its parameters are counted (a tied table once). "unknown" when the
    config names no class of this package."""
    import importlib

    import torch

    names = list(cfg.get("architectures") or [])
    base = {"mini_gpt": "MiniGPTModel", "mini_encoder": "MiniEncoderModel", "mini_seq2seq": "MiniSeq2SeqModel"}
    names.append(base.get(cfg.get("model_type"), ""))
    for name in names:
        for module in ("modeling_gpt", "modeling_encoder", "modeling_seq2seq"):
            model_class = getattr(importlib.import_module(f".{module}", __package__), name, None)
            if model_class is not None:
                values = {k: v for k, v in cfg.items() if k not in ("model_type", "transformers_version")}
                with torch.device("meta"):
                    model = model_class(model_class.config_class(**values))
                return sum(p.numel() for p in model.parameters())
    return "unknown"


def _publishable(rel: str) -> bool:
    """Whether a relative path is one :func:`publish_folder` sends: it matches ALLOW and not IGNORE."""
    if any(fnmatch.fnmatch(rel, pat) for pat in IGNORE_PATTERNS):
        return False
    return any(fnmatch.fnmatch(rel, pat) for pat in ALLOW_PATTERNS)


def _uploadable(folder: Path) -> list[str]:
    """Relative paths :func:`publish_folder` would upload (top-level files matching ALLOW, not IGNORE)."""
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return [rel for rel in paths if _publishable(rel)]


def weights_stem(name: str) -> str | None:
    """Which weights a top-level file holds or indexes: ``"model"`` for ``model.safetensors``, its shards and
    ``model.safetensors.index.json``; ``"model.fp16"`` for the ``fp16`` variant's; ``None`` for any other file."""
    if match := _WEIGHTS_FILE.fullmatch(name):
        return match["stem"]
    if match := _WEIGHTS_INDEX.fullmatch(name):
        return "model" + (match["variant"] or "")
    return None


def superseded_weights(names: Sequence[str], kept: Sequence[str]) -> list[str]:
    """The weight files among ``names`` that a save holding the files ``kept`` supersedes, to delete.

    They are the files of the same weights (:func:`weights_stem`) that ``kept`` lacks: after a sharded save, the
    single ``model.safetensors``; after a single-file save, the index and its shards; after a save split
    differently, the shards of the old split. Left over, they serve the old weights: transformers loads
    ``model.safetensors`` in preference to an index. Nothing else is ever listed (a tokenizer pushed on its own,
    a file added on the Hub, another variant's weights).
    """
    stems = {weights_stem(name) for name in kept} - {None}
    return sorted(name for name in set(names) - set(kept) if weights_stem(name) in stems)


def stale_files(names: Sequence[str], kept: Sequence[str]) -> list[str]:
    """The repository files among ``names`` to delete when a folder holding the files ``kept`` is published over it,
    so that the repository serves the folder's model and nothing left from an earlier one.

    They are the weights ``kept`` supersedes (:func:`superseded_weights`), the config and this package's code files
    (:data:`CONFIG_FILES`, :data:`OWN_CODE_FILES`: an encoder published over a GPT leaves no
    ``modeling_gpt.py`` or ``generation_config.json``) and, when the folder holds a tokenizer, the tokenizer files
    (:data:`TOKENIZER_PATTERNS`: a chat template removed from the folder leaves the Hub too) that ``kept`` lacks.
    Kept: ``README.md`` (a card edited on the Hub), figures, subfolders, other ``.py`` files (an Inference Endpoints
    ``handler.py``) and every file :func:`publish_folder` would not upload (added on the Hub by hand), and the
    tokenizer of a repository published from a model-only folder (a tokenizer pushed on its own).
    """
    patterns = [*CONFIG_FILES, *OWN_CODE_FILES]
    if any(fnmatch.fnmatch(name, pat) for name in kept for pat in TOKENIZER_PATTERNS):
        patterns += TOKENIZER_PATTERNS
    lacking = [name for name in set(names) - set(kept) if _publishable(name)]
    old_parts = [name for name in lacking if any(fnmatch.fnmatch(name, pat) for pat in patterns)]
    return sorted({*superseded_weights(names, kept), *old_parts})


def create_repo(api, repo_id: str, private: bool | None) -> str:
    """``api.create_repo(..., exist_ok=True)``, then :func:`check_visibility`: the full ``user/name`` id of a
    repository that takes an upload as ``private`` asks, else a ``ValueError`` before anything is uploaded."""
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id  # "name" -> "user/name"
    check_visibility(api, repo_id, private)
    return repo_id


def check_visibility(api, repo_id: str, private: bool | None) -> None:
    """``ValueError`` when ``private=True`` is asked of a repository that exists and is public.

    ``create_repo(..., exist_ok=True)`` leaves an existing repository's visibility as it is, so the upload would go
    out publicly although the user asked for a private repository. Nothing is checked for ``private`` None or
    False, nor for a repository that does not exist yet (or that the token cannot see: the upload then fails on
    its own)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    if not private:
        return
    try:
        public = api.repo_info(repo_id).private is False
    except RepositoryNotFoundError:
        return
    if public:
        raise ValueError(f"private=True, but the repository {repo_id!r} exists and is public: nothing was uploaded. "
                         f"Make it private first (its Settings page on the Hub, or HfApi().update_repo_settings("
                         f"{repo_id!r}, private=True)), or publish to it without private / --private")


def tasks_of_config(config: Mapping) -> list[str]:
    """The tasks (keys of :data:`TASKS`) a saved model has trained weights for: its saved head's (``architectures``:
    a causal LM's ``causal-lm``; translation beside denoising, both a seq2seq LM) and feature extraction, whose
    backbone every head holds, each only where the config's ``auto_map`` names the Auto class. ``auto_map`` lists
    every head of the family, whose weights a checkpoint does not hold: a config without ``architectures`` falls back
    to it."""
    auto_map = config.get("auto_map") or {}
    heads = config.get("architectures") or []
    classes = {TASKS[task_of_head(head)][1] for head in heads} | {"AutoModel"} if heads else set(auto_map)
    return [task for task, (_, auto_class) in TASKS.items() if auto_class in classes and auto_class in auto_map]


def check_task(config: Mapping, task: str) -> str:
    """``task`` normalised (:func:`normalize_task`), or ``ValueError`` when the saved model cannot be loaded for it:
    it is not among :func:`tasks_of_config` (``text-generation`` for an encoder, ``fill-mask`` for an encoder
    backbone without the MLM head), so the card's ``pipeline_tag`` and loading snippet would name a model the
    repository does not hold."""
    key = normalize_task(task)
    auto_class = TASKS[key][1]
    allowed = tasks_of_config(config)
    if key not in allowed:
        raise ValueError(f"task={task!r} needs {auto_class} weights, which this saved "
                         f"{config.get('architectures') or config.get('model_type', '?')} does not hold; the tasks it "
                         f"has: {allowed}")
    return key


def public_config(config: Mapping) -> dict:
    """The config as it may be published: without a ``converted_from`` that is not a Hub id (a local folder's path,
    kept by ``convert.from_hf`` before it stored Hub ids only), which could name a user's home or a private project
    (judged by its shape: :func:`is_hub_id_shaped`)."""
    source = config.get("converted_from")
    if source is None or is_hub_id_shaped(str(source)):
        return dict(config)
    return {key: value for key, value in config.items() if key != "converted_from"}


def is_generic_card(text: str) -> bool:
    """Whether a README is transformers' generic template (:data:`GENERIC_CARD_TEXT`), not a card anyone wrote."""
    return GENERIC_CARD_TEXT in text


def _is_new_branch_name(revision: str | None) -> bool:
    """Whether ``revision`` names a branch to create before committing to it (not main, not a PR ref)."""
    return revision is not None and revision != "main" and not revision.startswith("refs/pr/")


def check_publishable(folder) -> list[str]:
    """Validate an output folder before upload; return the files that would be sent.

    ``ValueError`` when it is not a saved mini model: no ``config.json``, a config without ``auto_map``
    (no remote code), or no safetensors weights (a folder with only pickled ``.bin`` / ``.pt`` weights is
    refused, never converted: unpickling runs arbitrary code); also when it holds the same weights in both
    layouts (``model.safetensors`` beside ``model.safetensors.index.json``, left by a save that is not
    ``MiniPreTrainedModel.save_pretrained``): transformers would load the single file, which may be the older.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(f"folder={str(folder)!r} has no config.json: not a saved model folder")
    config = json.loads((folder / "config.json").read_text())
    if not config.get("auto_map"):
        raise ValueError("config.json has no auto_map: save the model with modeling_mini (save_pretrained / "
                         "Trainer.save_model) so the remote code and auto_map are written")
    files = _uploadable(folder)
    if not any(f.endswith(".safetensors") for f in files):
        raise ValueError(f"folder={str(folder)!r} has no *.safetensors weights; only safetensors are published "
                         "(.bin / .pt pickles are never uploaded)")
    for index in (f for f in files if _WEIGHTS_INDEX.fullmatch(f)):
        single = f"{weights_stem(index)}.safetensors"
        if single in files:
            raise ValueError(f"folder={str(folder)!r} holds both {single} and {index}: two saves of the weights "
                             f"in different layouts; delete the older ({single} is the one transformers loads)")
    missing = [m for m in config["auto_map"].values() if isinstance(m, str)
               and f"{m.split('--')[-1].rsplit('.', 1)[0]}.py" not in files]
    if missing:
        raise ValueError(f"auto_map names code that is not in the folder: {sorted(set(missing))}")
    return files


def publish_folder(
    folder,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload model with mini-transformers",
):
    """Upload a saved output folder to ``repo_id``; return the new commit's ``CommitInfo``, or ``None`` if unchanged.

    Only what a user needs to load the model is sent (:data:`ALLOW_PATTERNS`): safetensors weights, config
    with ``auto_map``, the remote-code ``.py`` files, generation config, tokenizer files and the README card.
    Checkpoints, logs, optimizer state and any pickle stay local. Unchanged files are skipped by
    ``huggingface_hub`` (the Hub returns their hashes at preupload), so republishing an unchanged folder
    creates no commit and returns ``None``. The repository is made to match the folder: in the same commit,
    the repository's files that the folder's supersede or no longer has are deleted (:func:`stale_files`: the old
    ``model.safetensors`` after a sharded save, the old index and shards after a single-file or differently split
    save, another family's code and generation config, a removed chat template), so the Hub serves the folder's
    model. Kept: ``README.md`` (a card edited on the Hub), figures, files added by hand that this function would
    not upload, and a tokenizer pushed on its own when the folder has none. A ``converted_from`` that is a local
    path is left out of the uploaded ``config.json`` (:func:`public_config`). ``private=True`` on an existing public
    repository is refused before anything is uploaded (:func:`check_visibility`). ``repo_id`` may leave out the
    namespace (``"name"``:
    the token's user); the commit goes to the full id that ``create_repo`` returns, and a card this package wrote
    for another id (or for the bare name) is pointed at it first (:func:`retarget_card`). ``private``: None leaves a
    new repository's visibility to the account's or organisation's default (``False`` would make it public). The
    token comes from ``token`` or the usual ``HF_TOKEN`` / ``hf auth login``; it is never printed.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    folder = Path(folder)
    files = check_publishable(folder)
    api = HfApi(token=token)
    repo_id = create_repo(api, repo_id, private)  # "name" -> "user/name"
    if (folder / "README.md").is_file():
        retarget_card(folder / "README.md", repo_id, revision)  # its snippets load the full id, from that branch
    if _is_new_branch_name(revision):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    head = api.repo_info(repo_id, revision=revision).sha
    stale = stale_files(api.list_repo_files(repo_id, revision=head), files)
    operations = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in files]
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if public_config(config) != config:  # as transformers writes it, so an unchanged folder still makes no commit
        text = json.dumps(public_config(config), indent=2, sort_keys=True) + "\n"
        operations = [op for op in operations if op.path_in_repo != "config.json"]
        operations.append(CommitOperationAdd(path_in_repo="config.json", path_or_fileobj=text.encode("utf-8")))
    operations += [CommitOperationDelete(path_in_repo=f) for f in stale]
    # create_commit drops files whose hash equals the Hub's copy; with nothing left it makes no commit.
    # parent_commit=head: the deletions were computed on head, so a concurrent commit makes this one fail (412).
    info = api.create_commit(repo_id, operations=operations, commit_message=commit_message, revision=revision,
                             parent_commit=head)
    return None if info.oid == head else info


_FALLBACK_TEMPLATE = """---
$metadata
---

# $model_name

$family_article **$family_title** Transformer ($family_summary) built with the `mini-transformers` package
(`modeling_mini`), $provenance. Parameters: $num_parameters; layers / hidden / heads: $num_layers / $hidden_size /
$num_heads; vocabulary $vocab_size; base model: $base_model.

## Training data

$datasets_prose

## Training hyperparameters

$hyperparameters_table

## Results

$metrics_table

## How to load it

Without the `mini-transformers` package, the code shipped in this repository is used (review it first):

```python
from transformers import AutoTokenizer, $auto_class

tokenizer = AutoTokenizer.from_pretrained("$repo_id"$revision_arg, trust_remote_code=True)
model = $auto_class.from_pretrained("$repo_id"$revision_arg, trust_remote_code=True)
```

With the package installed, `import modeling_mini` first and leave out `trust_remote_code=True`.

## Intended use and limitations

A research and teaching model, not for production. $training_note Evaluate it on your own data before any other
use.
"""


def task_of_head(class_name: str) -> str:
    """The card task for a head class name (``MiniGPTForCausalLM`` -> ``causal-lm``); backbones: feature extraction."""
    return next((task for suffix, task in TASK_OF_HEAD.items() if class_name.endswith(suffix)), "feature-extraction")


def read_card(repo_id: str, *, revision: str | None = None, token=None) -> str | None:
    """The text of the repository's ``README.md`` on ``revision``, or ``None`` when the repository or the card does
    not exist. A missing branch reads as main, from which ``push_to_hub`` will create it (``file_exists`` alone
    says False there). ``repo_id`` is the full ``namespace/name``: a bare name reads as a missing repository."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    if not api.repo_exists(repo_id):
        return None
    if revision is not None and not api.revision_exists(repo_id, revision):
        revision = None
    if not api.file_exists(repo_id, "README.md", revision=revision):
        return None
    return Path(api.hf_hub_download(repo_id, "README.md", revision=revision)).read_text(encoding="utf-8")


def default_card(model, folder, repo_id: str | None, token=None, revision: str | None = None) -> Path:
    """Write this package's card for ``model`` alone (no run: no data, metrics or hyperparameters) into ``folder``;
    return its path. A model converted from a transformers checkpoint (``config.converted_from``, set by
    ``convert.from_hf`` for a Hub checkpoint; ``model.converted_from_folder``, in memory only, for a local one) names
    it as its base model and inherits its licence. ``revision``: the branch it goes to (its snippets load from it)."""
    base_model = getattr(model.config, "converted_from", None) or getattr(model, "converted_from_folder", None)
    return write_model_card(folder, config=model.config, task=task_of_head(type(model).__name__), datasets=None,
                            metrics=None, hyperparameters=None, repo_id=repo_id, base_model=base_model, token=token,
                            revision=revision,
                            num_parameters=sum(p.numel() for p in model.parameters()))


def push_default_card(model, repo_id: str, *, token=None, private=None, revision=None, create_pr: bool = False,
                      overwrite: bool = False, card: str | None = None, load_revision: str | None = None) -> bool:
    """Upload this package's card for the model (no run metrics) to ``revision``, unless it has a card already.

    transformers' ``push_to_hub`` re-uploads the card main already has, and writes its generic template only when
    there is none; uploading ours to main first makes the repository carry valid mini-transformers metadata. A
    generic template already there counts as no card. ``revision`` names the branch (created from main when
    missing, as ``push_to_hub`` does) or a pull request (``refs/pr/N``). With ``overwrite`` the card is uploaded
    whatever ``revision`` holds (an unchanged card makes no commit), and ``card`` is the text to upload instead of
    ours: :meth:`MiniPreTrainedModel.push_to_hub` uses both after a push to another branch than main or into a
    pull request, where transformers has put main's card or its template. With ``create_pr`` nothing is uploaded:
    a pull request must leave its target branch untouched, and ``push_to_hub`` opens a new PR per call, so there
    is no PR to put the card in beforehand. The loading snippets of the uploaded card (ours, or ``card`` when this
    package wrote it: :func:`retarget_card`) load from ``load_revision``, default ``revision``: a pull request's card
    names the branch it merges into. Returns True when a card was uploaded.
    """
    import tempfile

    from huggingface_hub import HfApi

    if create_pr:
        return False
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if _is_new_branch_name(revision):  # upload_file to a missing branch: RevisionNotFoundError
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    if not overwrite and (current := read_card(repo_id, revision=revision, token=token)) is not None \
            and not is_generic_card(current):
        return False
    with tempfile.TemporaryDirectory() as folder:
        load_revision = revision if load_revision is None else load_revision
        if card is None:
            path = default_card(model, folder, repo_id, token=token, revision=load_revision)
        else:  # a card of this package's, from another branch (main's, which a new branch starts from): its snippets
            path = Path(folder) / "README.md"
            path.write_text(card, encoding="utf-8")
            retarget_card(path, repo_id, load_revision)
        api.upload_file(path_or_fileobj=str(path), path_in_repo="README.md", repo_id=repo_id, revision=revision,
                        commit_message="Add model card (mini-transformers)")
    return True
