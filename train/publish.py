"""Publish an existing output folder to the Hugging Face Hub, without retraining.

    python train/publish.py OUTPUT_DIR --hub_model_id user/name [--private] [--revision BRANCH]
        [--commit_message "..."] [--task causal-lm] [--dataset NAME ...]

Uploads what a user needs to load the model (safetensors weights, config with ``auto_map``, the model
source for ``trust_remote_code``, generation config, tokenizer, ``README.md`` card); checkpoints, logs and
pickles stay local. If the folder has no ``README.md`` (e.g. a model saved by hand), a card is written
first from its config and, when present, ``all_results.json`` / ``eval_results.json``; a model converted by
``convert.from_hf`` from a Hub checkpoint (``config.converted_from``) names it as its base model and inherits its
licence, as the card ``push_to_hub`` writes does. A card this package wrote for another repository id, or for none
(a run without ``--push_to_hub`` names ``<user>/<folder>``), is pointed at ``--hub_model_id`` first; a README
written by anything else is published as it is.

A folder that cannot be published (no ``config.json``, no ``auto_map``, no safetensors weights...:
:func:`hub.check_publishable`), a ``--task`` the saved model cannot be loaded for (:func:`hub.check_task`), and
``--private`` for a repository that exists and is public (:func:`hub.check_visibility`) are refused before
anything is written into the folder or sent, the card included.

The token comes from the environment (``HF_TOKEN``) or ``hf auth login``; there is deliberately no
``--token`` option, because command lines end up in shell history and process lists.
"""

import argparse
import json
import sys
from pathlib import Path

from huggingface_hub import HfApi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

from modeling_mini.hub import (  # noqa: E402
    TASKS,
    check_publishable,
    check_task,
    check_visibility,
    is_hub_id,
    normalize_task,
    publish_folder,
    retarget_card,
    task_of_head,
    write_model_card,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=Path, help="a run's output folder (or any save_pretrained folder)")
    parser.add_argument("--hub_model_id", required=True, help="the Hub repository, user/name or org/name")
    parser.add_argument("--private", action="store_true", default=None,
                        help="create the repository as private (default: the account's or organisation's default)")
    parser.add_argument("--revision", default=None, help="branch to push to (created if missing); default main")
    parser.add_argument("--commit_message", default="Upload model with mini-transformers")
    parser.add_argument("--task", default=None, help=f"for a new card only; one of {sorted(TASKS)} whose head "
                        "the saved model holds, or feature-extraction (default: from the saved head class)")
    parser.add_argument("--dataset", action="append", default=None, help="for a new card only; repeatable")
    args = parser.parse_args(argv)
    if args.hub_model_id.count("/") != 1 or not all(args.hub_model_id.split("/")):
        parser.error(f"--hub_model_id={args.hub_model_id!r} must look like user/name")
    return args


def ensure_card(folder: Path, repo_id: str, task: str | None, datasets: list[str] | None,
                revision: str | None = None) -> None:
    """Write README.md from the folder's config and saved metrics, unless a card is already there; a card this
    package wrote for another or no repository id, or another branch, is pointed at ``repo_id`` on ``revision``
    (:func:`hub.retarget_card`). The base
    model is the Hub checkpoint the model was converted from (``config.converted_from``), if any."""
    if (folder / "README.md").is_file():
        if retarget_card(folder / "README.md", repo_id, revision):
            branch = f" (branch {revision})" if revision not in (None, "main") else ""
            print(f"README.md: the card's repository id is now {repo_id}{branch}")
        return
    config = json.loads((folder / "config.json").read_text())
    if task is None:
        task = task_of_head((config.get("architectures") or [""])[0])
    metrics = {}
    for name in ("all_results.json", "eval_results.json"):
        if (folder / name).is_file():
            metrics.update(json.loads((folder / name).read_text()))
    source = config.get("converted_from")
    write_model_card(folder, config=config, task=normalize_task(task), datasets=datasets, metrics=metrics,
                     hyperparameters=None, repo_id=repo_id, revision=revision,
                     base_model=source if isinstance(source, str) and is_hub_id(source) else None)


def check_folder(folder: Path, task: str | None = None) -> None:
    """Refuse (``SystemExit`` with the reason) a folder that is not a publishable saved model, or a ``task`` its
    saved model holds no head for (an encoder backbone as ``text-generation`` or ``fill-mask``), before
    :func:`ensure_card` writes a README into it: a refused publish must leave the user's folder as it was."""
    if not folder.is_dir():
        raise SystemExit(f"output_dir={str(folder)!r} is not a folder")
    try:
        check_publishable(folder)  # no config.json, no auto_map, no safetensors weights, ...
        if task is not None:
            check_task(json.loads((folder / "config.json").read_text()), task)
    except ValueError as error:  # json.JSONDecodeError (a broken config.json) included
        raise SystemExit(f"cannot publish: {error}") from None


def check_repo(repo_id: str, private: bool | None) -> None:
    """Refuse (``SystemExit`` with the reason) ``--private`` for a repository that exists and is public, before
    anything is written or sent: the upload would be public (:func:`hub.check_visibility`)."""
    try:
        check_visibility(HfApi(), repo_id, private)
    except ValueError as error:
        raise SystemExit(f"cannot publish: {error}") from None


def main(argv=None) -> int:
    """Publish ``output_dir`` as the command line says; nothing is written or sent for a folder that is refused."""
    args = parse_args(argv)
    check_folder(args.output_dir, args.task)
    check_repo(args.hub_model_id, args.private)
    ensure_card(args.output_dir, args.hub_model_id, args.task, args.dataset, args.revision)
    commit = publish_folder(args.output_dir, args.hub_model_id, private=args.private, revision=args.revision,
                            commit_message=args.commit_message)
    if commit is None:
        print(f"{args.hub_model_id}: nothing changed, no new commit")
    else:
        print(f"{args.hub_model_id}: pushed commit {commit.oid} ({commit.commit_url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
