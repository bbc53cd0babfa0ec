"""The embedded default data: a pretraining corpus and a labelled task, built from the running Python itself.

With no data arguments the training scripts use these, so ``make demo`` works offline on any machine with no
download. Nothing is stored in this repository: the text is read at run time from the documentation that ships
with the user's own Python installation.

* :func:`load_default_corpus`: English prose about Python: the reference-manual topics that ``help()`` shows
  (``pydoc_data.topics``) plus the docstrings of a fixed list of standard-library modules. Splits ``train`` /
  ``validation``, column ``text``; about 1.4 MB of text.
* :func:`load_default_task`: "which area of the standard library does this docstring come from?" Five real
  classes (text, numbers, files, internet, concurrency), decided by the module the docstring belongs to, not by
  its words. Splits ``train`` / ``test``, columns ``text`` and ``label`` (a ``ClassLabel``).

Why it is sound:

* Deterministic: sources are read in a fixed order, texts are deduplicated before splitting, and a text's split
  is decided by a hash of its first paragraph, so the same installation always gives the same datasets.
* No leakage: a text is in one split only, and so are texts sharing a first paragraph; the corpus leaves out every
  docstring whose task example is in the task's ``test`` split, so pretraining never reads the held-out inputs.
* Docstrings are read with :mod:`ast` from the source files, so no module is imported (no side effects; builtin
  C modules such as :mod:`math` are the exception and are imported, which is harmless).

Licence: the text is the Python documentation and standard-library docstrings, distributed by the Python Software
Foundation with every Python under the PSF License Agreement. It is read from the user's own installation and
never copied into this repository; models trained on it are the user's. Different Python versions give slightly
different (still deterministic) datasets.
"""

import ast
import contextlib
import functools
import gc
import hashlib
import importlib
import inspect
import sys
import sysconfig
from pathlib import Path

import datasets

#: Task classes -> the standard-library modules (or packages) whose docstrings belong to them.
#: Modules missing from an installation (removed in a newer Python) are skipped.
TASK_AREAS: dict[str, tuple[str, ...]] = {
    "text": ("string", "re", "textwrap", "difflib", "codecs", "locale", "gettext", "shlex", "html", "_markupbase",
             "stringprep", "unicodedata", "pprint", "reprlib", "base64", "quopri", "binascii"),
    "numbers": ("math", "cmath", "_pydecimal", "fractions", "statistics", "random", "numbers"),
    "files": ("os", "pathlib", "shutil", "tempfile", "glob", "fnmatch", "filecmp", "stat", "fileinput", "zipfile",
              "tarfile", "gzip", "bz2", "lzma", "posixpath", "ntpath", "genericpath"),
    "internet": ("socket", "ssl", "http", "urllib", "smtplib", "ftplib", "imaplib", "poplib", "socketserver",
                 "ipaddress", "xmlrpc", "wsgiref", "mimetypes"),
    "concurrency": ("threading", "multiprocessing", "asyncio", "concurrent", "queue", "subprocess", "sched",
                    "selectors", "signal"),
}

#: Further modules read for the corpus only (general-purpose prose about Python).
CORPUS_EXTRA: tuple[str, ...] = (
    "collections", "functools", "itertools", "operator", "typing", "dataclasses", "enum", "contextlib", "abc",
    "inspect", "argparse", "logging", "unittest", "doctest", "datetime", "calendar", "json", "csv", "pickle",
    "configparser", "email", "heapq", "bisect", "copy", "weakref", "traceback", "warnings",
    "builtins", "time",
)

TASK_TEST_PERCENT = 20  # share of task texts in the held-out test split
CORPUS_VALIDATION_PERCENT = 5  # share of corpus documents in the validation split
MIN_TASK_CHARS = 60  # shorter docstrings ("Return self.") carry no signal about their area
MAX_TASK_CHARS = 600  # task texts keep whole leading paragraphs up to this length: short inputs, fast training
MAX_PER_CLASS = 300  # cap so that no class dominates (taken in hash order, so still deterministic)


def _bucket(text: str) -> int:
    """A stable number in [0, 100) from the text alone: its split, independent of order and of Python's hash seed."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % 100


def _module_files(name: str) -> list[Path]:
    """Source files of a standard-library module or package, without test folders; empty if it has no source."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    single = lib / f"{name}.py"
    if single.is_file():
        return [single]
    package = lib / name
    if not (package / "__init__.py").is_file():
        return []
    return [path for path in sorted(package.rglob("*.py"))
            if not {"test", "tests", "idle_test"} & set(path.relative_to(lib).parts)]


def _source_docstrings(path: Path) -> list[str]:
    """Module, class and function docstrings of one source file, in source order."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return []
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [doc for node in ast.walk(tree) if isinstance(node, nodes) and (doc := ast.get_docstring(node))]


def _builtin_docstrings(name: str) -> list[str]:
    """Docstrings of a builtin (C) module and its public members, e.g. :mod:`math`: these have no source file."""
    if name not in sys.builtin_module_names and name not in ("math", "cmath", "unicodedata", "select", "time"):
        return []
    try:
        module = importlib.import_module(name)
    except ImportError:
        return []
    members = [getattr(module, attr) for attr in sorted(dir(module)) if not attr.startswith("_")]
    # functions and classes only: a constant (``math.pi``) has no docstring of its own, and getdoc would give its
    # type's (``float``'s), which says nothing about the module
    docs = [inspect.getdoc(module)] + [inspect.getdoc(member) for member in members
                                       if inspect.isroutine(member) or inspect.isclass(member)]
    return [doc for doc in docs if doc]


@functools.cache
def _docstrings(name: str) -> tuple[str, ...]:
    files = _module_files(name)
    with _no_gc():
        docs = [doc for path in files for doc in _source_docstrings(path)] if files else _builtin_docstrings(name)
    return tuple(doc.strip() for doc in docs)


@contextlib.contextmanager
def _no_gc():
    """Pause the cyclic garbage collector: parsing makes millions of short-lived AST nodes and its passes
    would more than double the build time; the nodes are freed by reference counting anyway."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _leading_paragraphs(doc: str) -> str:
    """Whole leading paragraphs of a docstring, up to ``MAX_TASK_CHARS`` (at least the first one), on one line each."""
    kept = []
    for paragraph in doc.split("\n\n"):
        paragraph = " ".join(paragraph.split())
        if kept and sum(map(len, kept)) + len(paragraph) > MAX_TASK_CHARS:
            break
        kept.append(paragraph)
    return "\n".join(kept)[: MAX_TASK_CHARS * 2]


def _summary(doc: str) -> str:
    """A docstring's first paragraph, whitespace normalised: near-duplicates (the same summary with different
    details, e.g. a method and its alias) share it, so deduplication and splitting go by this key."""
    return " ".join(doc.split("\n\n", 1)[0].split())


@functools.cache
def _task_examples() -> tuple[dict[str, list], frozenset[str]]:
    """(task columns per split, the summaries of the held-out examples)."""
    labels: dict[str, set[int]] = {}  # summary -> areas it occurs in
    texts: dict[str, set[str]] = {}  # summary -> candidate task texts
    for label, area in enumerate(TASK_AREAS):
        for module in TASK_AREAS[area]:
            for doc in _docstrings(module):
                text = _leading_paragraphs(doc)
                if len(text) >= MIN_TASK_CHARS:
                    labels.setdefault(_summary(doc), set()).add(label)
                    texts.setdefault(_summary(doc), set()).add(text)
    # Deduplicate before splitting: one example per summary, the same one every time; a summary found in two
    # areas has no true label and is dropped.
    unique = {key: next(iter(found)) for key, found in labels.items() if len(found) == 1}
    per_class: dict[int, list[str]] = {}
    for key in sorted(unique, key=lambda k: hashlib.sha256(k.encode("utf-8")).hexdigest()):
        per_class.setdefault(unique[key], []).append(key)
    chosen = sorted((key for keys in per_class.values() for key in keys[:MAX_PER_CLASS]), key=lambda k: (unique[k], k))
    splits: dict[str, dict[str, list]] = {"train": {"text": [], "label": []}, "test": {"text": [], "label": []}}
    for key in chosen:
        split = "test" if _bucket(key) < TASK_TEST_PERCENT else "train"
        splits[split]["text"].append(min(texts[key]))
        splits[split]["label"].append(unique[key])
    held_out = frozenset(key for key in chosen if _bucket(key) < TASK_TEST_PERCENT)
    return splits, held_out


def load_default_task() -> datasets.DatasetDict:
    """The embedded labelled task: classify a standard-library docstring by area (5 classes).

    Returns splits ``train`` and ``test`` with columns ``text`` (str) and ``label``
    (``ClassLabel(names=["text", "numbers", "files", "internet", "concurrency"])``).
    """
    splits, _ = _task_examples()
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(TASK_AREAS))})
    return datasets.DatasetDict({name: datasets.Dataset.from_dict(columns, features=features)
                                 for name, columns in splits.items()})


def _corpus_documents() -> list[str]:
    """Reference-manual topics, then module docstrings, in a fixed order, deduplicated."""
    from pydoc_data.topics import topics

    documents = [topics[key].strip() for key in sorted(topics)]
    modules = [module for area in TASK_AREAS.values() for module in area] + list(CORPUS_EXTRA)
    _, held_out = _task_examples()
    documents += [doc for module in modules for doc in _docstrings(module) if _summary(doc) not in held_out]
    return list(dict.fromkeys(doc for doc in documents if doc))


def load_default_corpus() -> datasets.DatasetDict:
    """The embedded pretraining corpus: Python's reference topics and standard-library docstrings.

    Returns splits ``train`` and ``validation`` with one column ``text``, one document per row.
    """
    columns: dict[str, list[str]] = {"train": [], "validation": []}
    for document in _corpus_documents():
        # split by the summary, as the task does: near-duplicates (a method and its alias) share a split
        split = "validation" if _bucket(_summary(document)) < CORPUS_VALIDATION_PERCENT else "train"
        columns[split].append(document)
    return datasets.DatasetDict({name: datasets.Dataset.from_dict({"text": texts}) for name, texts in columns.items()})
