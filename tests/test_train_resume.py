"""Kill train/pretrain.py with SIGKILL after a checkpoint, resume it: the final weights equal an uninterrupted run's."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "pretrain.py"
STEPS, SAVE_EVERY = 40, 5


def command(output_dir: Path, corpus: Path, *extra: str) -> list[str]:
    # Shuffled data (the Trainer's seeded sampler), a tiny GPT with dropout, AdamW with a linear schedule: every piece
    # of state the resumed run needs (weights, optimizer, scheduler, the RNG dropout draws from, data position) is in
    # the checkpoint.
    return [sys.executable, str(SCRIPT), "--family", "gpt", "--model_config", "tiny", "--train_files", str(corpus),
            "--tokenizer_vocab_size", "200", "--max_length", "16", "--output_dir", str(output_dir),
            "--max_steps", str(STEPS), "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--seed", "11",
            "--logging_steps", "5", "--save_strategy", "steps", "--save_steps", str(SAVE_EVERY), "--report_to", "none",
            "--use_cpu", "true", "--disable_tqdm", "true", "--config_overrides",
            "hidden_dropout=0.1,attention_dropout=0.1", *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def final_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "model.safetensors")


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path):
    corpus = tmp_path / "corpus.txt"
    words = "zero one two three four five six seven eight nine".split()
    corpus.write_text("\n".join(" ".join(words[(i + j) % 10] for j in range(12)) for i in range(200)))
    reference = tmp_path / "uninterrupted"
    done = subprocess.run(command(reference, corpus), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    first = killed / f"checkpoint-{SAVE_EVERY}"
    run = subprocess.Popen(command(killed, corpus), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    # trainer_state.json is the last file of a checkpoint the Trainer writes.
    while not (first / "trainer_state.json").exists():
        assert run.poll() is None, run.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    run.stderr.close()
    assert run.returncode == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists(), "the run finished before the kill: the test proves nothing"
    latest = max((path for path in killed.glob("checkpoint-*")), key=lambda path: int(path.name.split("-")[1]))
    if not (latest / "trainer_state.json").exists():  # killed while writing the next checkpoint: use the one before
        latest = killed / f"checkpoint-{int(latest.name.split('-')[1]) - SAVE_EVERY}"
    assert int(latest.name.split("-")[1]) < STEPS

    # the same command line again, told to resume: it finds the last complete checkpoint itself
    resumed = subprocess.run(command(killed, corpus, "--resume_from_checkpoint", "true"), cwd=ROOT, env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected, got = final_weights(reference), final_weights(killed)
    assert expected.keys() == got.keys()
    worst = max((expected[name] - got[name]).abs().max().item() for name in expected)
    assert worst <= 1e-6, f"resumed weights differ from the uninterrupted run by {worst}"
    start = load_file(latest / "model.safetensors")
    assert max((start[name] - got[name]).abs().max().item() for name in got) > 1e-3  # the resumed run did train


@pytest.mark.parametrize("family", ["encoder", "seq2seq"])
def test_resuming_a_masked_objective_replays_its_masks(tmp_path, family):
    """The encoder's and the seq2seq's masks are random: a resumed run must draw the ones the uninterrupted run drew
    (each block's from its seed, epoch and tokens), here from a checkpoint in the second epoch. Before, the seq2seq
    collator restarted its generator from the seed and the masked LM's first resumed batch came before the Trainer
    restored the random state. Dropout is on: the Trainer restores its random state, so the resumed run drops the
    units the uninterrupted one dropped."""
    sys.path.insert(0, str(ROOT / "train"))
    import pretrain

    corpus = tmp_path / "corpus.txt"
    words = "zero one two three four five six seven eight nine".split()
    corpus.write_text("\n".join(" ".join(words[(i * 7 + j * 3) % 10] for j in range(12)) for i in range(60)))
    common = ["--family", family, "--model_config", "tiny", "--train_files", str(corpus), "--tokenizer_vocab_size",
              "200", "--max_length", "16", "--max_steps", "10", "--seed", "5",
              "--per_device_train_batch_size", "8" if family == "encoder" else "32",  # about 7 steps an epoch
              "--learning_rate", "3e-3", "--save_strategy", "steps", "--save_steps", "8", "--report_to", "none",
              "--use_cpu", "true", "--disable_tqdm", "true", "--config_overrides",
              "hidden_dropout=0.1,attention_dropout=0.1"]
    pretrain.main([*common, "--output_dir", str(tmp_path / "full")])
    checkpoint = tmp_path / "full" / "checkpoint-8"
    # past the first epoch: its masks are the second epoch's, which a collator restarted at epoch 0 would not draw
    assert json.loads((checkpoint / "trainer_state.json").read_text())["epoch"] > 1
    pretrain.main([*common, "--output_dir", str(tmp_path / "resumed"), "--resume_from_checkpoint", str(checkpoint)])
    full, resumed = final_weights(tmp_path / "full"), final_weights(tmp_path / "resumed")
    assert full.keys() == resumed.keys()
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], atol=0, rtol=0, msg=key)


def test_resume_true_finds_the_last_complete_checkpoint_or_starts_afresh(tmp_path, capsys):
    """``--resume_from_checkpoint true`` (the string the command line gives) names the output folder's last checkpoint
    that the Trainer finished writing; with none, the run starts from the beginning. Before, the string went to
    ``Trainer.train`` as it was and failed ("Can't find a valid checkpoint at true")."""
    sys.path.insert(0, str(ROOT / "train"))
    from types import SimpleNamespace

    import common

    def resume(value):
        return common.checkpoint_to_resume(SimpleNamespace(resume_from_checkpoint=value, output_dir=str(tmp_path)))

    assert resume("true") is None and "starting from the beginning" in capsys.readouterr().out
    for step in (5, 10, 15):
        (tmp_path / f"checkpoint-{step}").mkdir()
    for step in (5, 10):
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-last").mkdir()  # not a step: ignored
    (tmp_path / "checkpoint-\u00b2").mkdir()  # a superscript two: a digit to str.isdigit, not to int(); ignored
    assert resume("true") == str(tmp_path / "checkpoint-10")
    assert "checkpoint-15 is incomplete" in capsys.readouterr().out
    assert resume(True) == str(tmp_path / "checkpoint-10")
    assert resume("false") is None and resume(None) is None
    assert resume(str(tmp_path / "checkpoint-5")) == str(tmp_path / "checkpoint-5")


def test_masks_change_with_the_epoch_and_replay_exactly():
    sys.path.insert(0, str(ROOT / "train"))
    import dataclasses

    import pretrain

    collator = pretrain.TextInfillingCollator(mask_token_id=1, pad_token_id=0, seed=3)
    blocks = [{"input_ids": list(range(10, 42))}, {"input_ids": list(range(50, 82))}]
    first = collator(blocks)["input_ids"]
    assert torch.equal(collator(blocks)["input_ids"], first)  # the same epoch: the same masks
    collator.epoch = 1
    second = collator(blocks)["input_ids"]
    assert not torch.equal(second, first)  # a new epoch: new masks
    # epoch is still an ordinary dataclass field: a constructor argument, kept by dataclasses.replace
    assert torch.equal(pretrain.TextInfillingCollator(1, 0, seed=3, epoch=1)(blocks)["input_ids"], second)
    assert dataclasses.replace(collator, noise_density=0.3).mask_epoch == 1
    frozen = collator.for_evaluation()
    collator.epoch = 2
    assert (frozen.epoch, frozen.mask_epoch, collator.mask_epoch) == (0, 0, 2)  # evaluation keeps epoch 0


def _masked_run(tmp_path, name: str, *extra: str) -> Path:
    """A tiny encoder pretraining run over about 2.4 epochs, with dropout off (only the masks are random)."""
    sys.path.insert(0, str(ROOT / "train"))
    import pretrain

    corpus = tmp_path / "corpus.txt"
    words = "zero one two three four five six seven eight nine".split()
    corpus.write_text("\n".join(" ".join(words[(i * 7 + j * 3) % 10] for j in range(12)) for i in range(60)))
    output = tmp_path / name
    pretrain.main(["--family", "encoder", "--model_config", "tiny", "--train_files", str(corpus),
                   "--tokenizer_vocab_size", "200", "--max_length", "16", "--max_steps", "12",
                   "--max_train_samples", "100", "--per_device_train_batch_size", "8", "--seed", "3",
                   "--save_strategy", "no", "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true",
                   "--config_overrides", "hidden_dropout=0.0,attention_dropout=0.0", "--output_dir", str(output),
                   *extra])
    return output


def test_evaluation_scores_the_same_masks_in_every_epoch(tmp_path):
    """With the weights fixed (learning rate 0, no dropout), every evaluation must give the same loss. Before, the
    evaluation shared the training collator and so its masks changed with the epoch."""
    import json

    output = _masked_run(tmp_path, "fixed", "--learning_rate", "0", "--eval_strategy", "steps", "--eval_steps", "3")
    history = json.loads((output / "trainer_state.json").read_text())["log_history"]
    evaluations = [(entry["epoch"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
    assert len(evaluations) >= 4 and max(epoch for epoch, _ in evaluations) > 1  # evaluations in two epochs
    assert len({loss for _, loss in evaluations}) == 1, evaluations


@pytest.mark.parametrize("family", ["encoder", "seq2seq"])
def test_persistent_data_loader_workers_draw_each_epochs_masks(family, wordpiece_tokenizer):
    """A persistent worker keeps its copy of the collator for the whole run; the epoch reaches it through shared
    memory. Before, the worker's copy kept epoch 0, so every epoch was masked as the first (static masking)."""
    sys.path.insert(0, str(ROOT / "train"))
    import pretrain

    collator = pretrain.build_collator(family, wordpiece_tokenizer, pretrain.PretrainArguments(), seed=3)
    blocks = [{"input_ids": list(range(10 + 20 * i, 26 + 20 * i))} for i in range(4)]
    loader = torch.utils.data.DataLoader(blocks, batch_size=2, collate_fn=collator, num_workers=1,
                                         persistent_workers=True)
    seen = []
    for epoch in range(3):
        collator.epoch = epoch  # what EpochOfMasks does when an epoch begins
        from_worker = [batch["input_ids"] for batch in loader]
        here = [collator(blocks[i : i + 2])["input_ids"] for i in (0, 2)]  # the main process, this epoch
        for got, expected in zip(from_worker, here, strict=True):
            assert torch.equal(got, expected), f"epoch {epoch}"
        seen.append(torch.cat([batch.flatten() for batch in from_worker]))
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])  # masks change with the epoch


def _streamed_run(tmp_path, name: str, family: str, rows: int, *extra: str) -> Path:
    """A tiny streamed pretraining run over a stream of ``rows`` texts (a few blocks of 16 tokens), with dropout."""
    sys.path.insert(0, str(ROOT / "train"))
    import pretrain

    corpus = tmp_path / "corpus.txt"
    words = "zero one two three four five six seven eight nine".split()
    corpus.write_text("\n".join(" ".join(words[(i * 7 + j * 3) % 10] for j in range(12)) for i in range(60)))
    output = tmp_path / name
    pretrain.main(["--family", family, "--model_config", "tiny", "--train_files", str(corpus), "--streaming", "true",
                   "--validation_split_percentage", "1", "--max_train_samples", str(rows), "--tokenizer_vocab_size",
                   "200", "--max_length", "16", "--per_device_train_batch_size", "1", "--seed", "5", "--learning_rate",
                   "3e-3", "--save_strategy", "steps", "--logging_steps", "1", "--report_to", "none", "--use_cpu",
                   "true", "--disable_tqdm", "true", "--config_overrides", "hidden_dropout=0.1,attention_dropout=0.1",
                   "--output_dir", str(output), *extra])
    return output


#: family, rows of the stream (GPT's byte-level tokenizer: 3 blocks of a row; the encoder's: 4 blocks of 5 rows),
#: gradient accumulation, steps, the checkpoint resumed from
STREAMED_RESUMES = [("gpt", 1, 1, 8, 5), ("encoder", 5, 3, 5, 3)]


@pytest.mark.parametrize(("family", "rows", "accumulation", "steps", "resume_at"), STREAMED_RESUMES)
def test_resuming_a_stream_past_its_first_pass_reads_the_uninterrupted_batches(tmp_path, family, rows, accumulation,
                                                                               steps, resume_at):
    """Over a stream the Trainer's epoch is one pass, and it skipped the trained batches within one pass only: from a
    checkpoint past the first pass, the resumed run read the next pass from its start (and, for the masked LM, drew the
    masks of the wrong pass). Now the skip replays the passes. With accumulation 3 over 4-batch passes, each pass's
    last batch joins the next pass's first step, and checkpoint-3 lies before such a batch."""
    import json

    options = ["--max_steps", str(steps), "--save_steps", str(resume_at), "--gradient_accumulation_steps",
               str(accumulation)]
    full = _streamed_run(tmp_path, "full", family, rows, *options)
    checkpoint = full / f"checkpoint-{resume_at}"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["epoch"] >= 1  # past the first pass
    resumed = _streamed_run(tmp_path, "resumed", family, rows, *options, "--resume_from_checkpoint", str(checkpoint))

    def losses(output):
        history = json.loads((output / "trainer_state.json").read_text())["log_history"]
        return {entry["step"]: entry["loss"] for entry in history if "loss" in entry and entry["step"] > resume_at}

    assert losses(resumed) == losses(full) and len(losses(full)) == steps - resume_at
    expected, got = final_weights(full), final_weights(resumed)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=0, rtol=0, msg=key)


def _checkpoint_run(tmp_path, name: str, *extra: str) -> Path:
    """A two-step GPT run with a checkpoint at step 2 (batch size 4, no accumulation, seed 5)."""
    sys.path.insert(0, str(ROOT / "train"))
    import pretrain

    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text("\n".join(f"line {i} of the little corpus to pack" for i in range(40)))
    output = tmp_path / name
    pretrain.main(["--family", "gpt", "--model_config", "tiny", "--train_files", str(corpus), "--tokenizer_vocab_size",
                   "300", "--max_length", "16", "--max_steps", "2", "--per_device_train_batch_size", "4", "--seed",
                   "5", "--save_strategy", "steps", "--save_steps", "2", "--report_to", "none", "--use_cpu", "true",
                   "--disable_tqdm", "true", "--output_dir", str(output), *extra])
    return output


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """checkpoint-2 of a finished :func:`_checkpoint_run`."""
    return _checkpoint_run(tmp_path_factory.mktemp("resume"), "run") / "checkpoint-2"


def _resume(checkpoint: Path, tmp_path, *extra: str, corpus: str | None = None):
    """Resume ``checkpoint`` as :func:`_checkpoint_run` would, with ``extra`` arguments; ``corpus`` (default: a file
    that does not exist, so that a check that passes the data's reading fails with another message)."""
    sys.path.insert(0, str(ROOT / "train"))
    import pretrain

    return pretrain.main(["--family", "gpt", "--model_config", "tiny", "--train_files",
                          corpus or str(tmp_path / "missing.txt"), "--tokenizer_vocab_size", "300", "--max_length",
                          "16", "--max_steps", "2", "--per_device_train_batch_size", "4", "--seed", "5",
                          "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true", "--output_dir",
                          str(tmp_path / "resumed"), "--resume_from_checkpoint", str(checkpoint), *extra])


@pytest.mark.parametrize(("extra", "message"), [
    (["--per_device_train_batch_size", "2"], "--per_device_train_batch_size 4 (now 2)"),
    (["--gradient_accumulation_steps", "2"], "--gradient_accumulation_steps 1 (now 2)"),
    (["--seed", "6", "--gradient_accumulation_steps", "3"],
     "--gradient_accumulation_steps 1 (now 3), --seed 5 (now 6)"),
    (["--data_seed", "3"], "--data_seed None (now 3)"),  # the sampler's order, where set
    (["--max_length", "32"], "--max_length 16 (now 32)"),  # other blocks
    (["--max_train_samples", "10"], "--max_train_samples None (now 10)"),
])
def test_resuming_with_other_batches_is_refused_before_the_data_is_read(checkpoint, tmp_path, extra, message):
    """Another batch size, accumulation, seed, data seed, number of processes, block length or sample of the data
    reads other batches than the Trainer skips: transformers only warned (about the batch size) and the run repeated
    and skipped data. The checkpoint records them (``RunSettings`` in ``trainer_state.json``); a change is a
    ``ValueError`` naming each, before any data is read (the training file here does not exist)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        _resume(checkpoint, tmp_path, *extra)


def test_resuming_on_another_number_of_processes_is_refused(checkpoint, tmp_path):
    """The world size is recorded too (edited here: a test runs one process); a checkpoint written before the settings
    were recorded is still checked for its batch size, the one setting ``trainer_state.json`` always holds."""
    import json
    import shutil

    copy = tmp_path / "checkpoint-2"
    shutil.copytree(checkpoint, copy)
    state = json.loads((copy / "trainer_state.json").read_text())
    state["stateful_callbacks"]["RunSettings"]["args"]["world_size"] = 2
    (copy / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match=re.escape("--world_size 2 (now 1)")):
        _resume(copy, tmp_path)
    del state["stateful_callbacks"]["RunSettings"]
    (copy / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match=re.escape("--per_device_train_batch_size 4 (now 8)")):
        _resume(copy, tmp_path, "--per_device_train_batch_size", "8")


def test_resuming_may_extend_the_run_but_not_change_the_model(checkpoint, tmp_path):
    """More steps is allowed. Another depth failed deep in the optimizer's loading ("a parameter group that doesn't
    match the size"), naming nothing: now the differing config fields are named."""
    corpus = str(checkpoint.parents[1] / "corpus.txt")
    with pytest.raises(ValueError, match=re.escape("num_hidden_layers=2 (now 3)")):
        _resume(checkpoint, tmp_path, "--config_overrides", "num_hidden_layers=3", corpus=corpus)
    _resume(checkpoint, tmp_path, "--max_steps", "3", "--save_strategy", "no", corpus=corpus)
    assert (tmp_path / "resumed" / "model.safetensors").is_file()


def test_resuming_follows_moved_data_and_dropout_but_refuses_changed_data(checkpoint, tmp_path):
    """The training files are recorded by name and size: the data may move (the node that resumes mounts it
    elsewhere), but a file that changed reads other blocks, and is refused. A dropout rate may change (the weights keep
    their shapes); before, any config change was refused."""
    import shutil

    moved = tmp_path / "elsewhere" / "corpus.txt"
    moved.parent.mkdir()
    shutil.copy(checkpoint.parents[1] / "corpus.txt", moved)
    _resume(checkpoint, tmp_path, "--max_steps", "3", "--save_strategy", "no", "--config_overrides",
            "hidden_dropout=0.3", corpus=str(moved))
    assert json.loads((tmp_path / "resumed" / "config.json").read_text())["hidden_dropout"] == 0.3
    with open(moved, "a") as f:
        f.write("\none line more")
    with pytest.raises(ValueError, match=r"--train_files \[\['corpus.txt', \d+\]\] \(now \[\['corpus.txt', \d+\]\]\)"):
        _resume(checkpoint, tmp_path, corpus=str(moved))


def test_a_fine_tuning_run_resumes_and_refuses_another_task(tmp_path):
    """train/finetune.py records its settings too, with the task and its columns: a token-classification head on an
    encoder has the shape of a two-class sequence head, and would have resumed silently as another task. A column
    named as its default is the same setting as the default left unnamed."""
    sys.path.insert(0, str(ROOT / "train"))
    import finetune

    words = "apple pear plum fig lime kiwi oat rye".split()
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": " ".join(words[(i + j) % 8] for j in range(5)), "label": i % 2})
                            + "\n" for i in range(40)))
    common_args = ["--train_files", str(data), "--from_scratch", "true", "--family", "encoder", "--model_config",
                   "tiny", "--tokenizer_vocab_size", "120", "--per_device_train_batch_size", "4", "--max_length", "16",
                   "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true", "--seed", "5",
                   "--output_dir", str(tmp_path / "run")]
    finetune.main([*common_args, "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "2",
                   "--eval_strategy", "no", "--text_column", "text"])
    checkpoint = str(tmp_path / "run" / "checkpoint-2")
    with pytest.raises(ValueError, match=re.escape("--task sequence_classification (now token_classification)")):
        finetune.main([*common_args, "--max_steps", "3", "--task", "token_classification",
                       "--resume_from_checkpoint", checkpoint])
    finetune.main([*common_args, "--max_steps", "3", "--save_strategy", "no", "--eval_strategy", "no",
                   "--resume_from_checkpoint", checkpoint])  # no --text_column: its default, the same column
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())  # the resumed run's, at its end
    assert state["global_step"] == 3 and state["log_history"][0]["step"] == 3  # it went on from step 2


def test_a_missing_or_incomplete_checkpoint_is_refused_before_the_data_is_read(checkpoint, tmp_path):
    """An explicit path without ``trainer_state.json`` (killed while saving) or with no folder at all failed with a raw
    ``FileNotFoundError`` once the data was tokenised."""
    import shutil

    with pytest.raises(ValueError, match="no such checkpoint folder"):
        _resume(tmp_path / "checkpoint-9", tmp_path)
    partial = tmp_path / "checkpoint-2"
    shutil.copytree(checkpoint, partial)
    (partial / "trainer_state.json").unlink()
    with pytest.raises(ValueError, match=re.escape("is incomplete (killed while saving?)")):
        _resume(partial, tmp_path)


def test_fine_tuning_resume_keeps_the_lora_scale_and_the_two_class_head_form():
    """LoRA's rank, scale and target layers and ``--binary_sigmoid`` were not recorded: a resumed run with another
    ``--lora_alpha`` trained the saved adapters at another strength without a word. LoRA's dropout may change."""
    sys.path.insert(0, str(ROOT / "train"))
    import finetune

    def settings(**values):
        args = finetune.FinetuneArguments(**{"lora_r": 4, **values})
        return finetune.resume_settings("sequence_classification", "text", "label", args, 16)

    assert settings() == settings(lora_dropout=0.2)
    assert settings(lora_alpha=32.0) != settings()
    assert settings(lora_target_modules=["qkv_proj", "o_proj"]) == settings(lora_target_modules=["o_proj", "qkv_proj"])
    assert settings(lora_target_modules=["o_proj"]) != settings()
    assert settings(binary_sigmoid=False) != settings()
    assert "lora_alpha" not in settings(lora_r=0) and settings(lora_r=0)["lora_r"] == 0  # resumed without LoRA
