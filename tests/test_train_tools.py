"""The small command-line tools of train/: bad input to `train_tokenizer.py`, `publish.py` and `demo.py`.

Each test takes seconds: tokenizers train on a few lines, nothing is published (``publish_folder`` is replaced by a
stub that refuses to upload) and the demo's training runs are replaced by a recorder.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "train"))
import demo  # noqa: E402
import publish  # noqa: E402
import train_tokenizer  # noqa: E402

LINES = ["the cat sat on the mat", "a dog ran in the park", "the end of the story is near"] * 5


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: to show that a refused command wrote nothing there."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- train/train_tokenizer.py ---------------------------------------------------------------------------------

def test_saved_tokenizers_keep_their_families_conventions(tmp_path):
    """Each family's tokenizer, saved and loaded back with AutoTokenizer, encodes as its model's reference does: the
    encoder's returns BERT's segment ids for a pair (they were dropped, so the encoder's segment-1 row never trained
    and BERT-style callers got other outputs) and decodes punctuation back in place; a GPT's leaves a text open as
    GPT-2's (it ended it with ``</s>``); a seq2seq's ends it as BART's, its mask taking the space before it."""
    from transformers import AutoTokenizer

    text = "the cat's mat, the end."
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"text": line} for line in [*LINES, text, text]])
    encoded = {}
    for family in ("encoder", "gpt", "seq2seq"):
        train_tokenizer.main(["--family", family, "--vocab_size", "300", "--train_files", corpus,
                              "--output_dir", str(tmp_path / family)])
        tokenizer = AutoTokenizer.from_pretrained(tmp_path / family)
        encoded[family] = tokenizer, tokenizer("the cat", "the dog")
    tokenizer, pair = encoded["encoder"]
    assert pair["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]  # [CLS] the cat [SEP] | the dog [SEP]
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text  # not "cat ' s mat ,"
    for family, ends in (("gpt", False), ("seq2seq", True)):
        tokenizer, _ = encoded[family]
        assert (tokenizer("the cat")["input_ids"][-1] == tokenizer.eos_token_id) is ends, family
        # a GPT begins a text with the token that ended the one before, as GPT-2 (<s> never occurs in pretraining)
        assert (tokenizer.bos_token == tokenizer.eos_token == "</s>") is not ends, family
    # segment ids are an encoder's: a GPT would read them as tokens, a seq2seq model does not take them
    train_tokenizer.main(["--family", "gpt", "--kind", "wordpiece", "--vocab_size", "300", "--train_files", corpus,
                          "--output_dir", str(tmp_path / "gpt-wordpiece")])
    assert "token_type_ids" not in AutoTokenizer.from_pretrained(tmp_path / "gpt-wordpiece")("the cat", "the dog")
    # the BPE mask takes the space before it, as BART's: no lone 'Ġ' that text infilling never produces
    tokenizer, _ = encoded["seq2seq"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("the <mask> sat")["input_ids"]) == ["the", "<mask>", "Ġsat",
                                                                                          "</s>"]



def test_tokenizer_skips_null_rows(tmp_path):
    """A jsonl row ``{"text": null}`` holds no text: it is skipped. Before, it failed with `TypeError: 'None' is not
    an instance of 'str'` from inside tokenizers."""
    rows = [{"text": line} for line in LINES]
    rows.insert(3, {"text": None})
    corpus = write_jsonl(tmp_path / "corpus.jsonl", rows)
    tokenizer = train_tokenizer.main(["--kind", "wordpiece", "--vocab_size", "200", "--train_files", corpus,
                                      "--output_dir", str(tmp_path / "tok")])
    assert "story" in tokenizer.get_vocab()
    assert (tmp_path / "tok" / "tokenizer.json").is_file()


@pytest.mark.parametrize("rows, message", [
    ([{"text": "a b c"}, {"text": ["x", "y"]}],
     r"row 1 \(counting from 0\) of --train_files .*corpus\.jsonl.* is of type list"),
    ([{"text": None}, {"text": None}], r"--train_files .*corpus\.jsonl.* has no text: all of its 2 rows are null"),
])
def test_tokenizer_refuses_rows_that_are_not_text(tmp_path, rows, message):
    """A row holding something other than a string (a list: the wrong --text_column) is refused naming the file
    and the row; a file whose rows are all null has nothing to learn from. Nothing is saved."""
    corpus = write_jsonl(tmp_path / "corpus.jsonl", rows)
    with pytest.raises(ValueError, match=message):
        train_tokenizer.main(["--kind", "wordpiece", "--vocab_size", "200", "--train_files", corpus,
                              "--output_dir", str(tmp_path / "tok")])
    assert not (tmp_path / "tok").exists()


@pytest.mark.parametrize("option, value, allowed", [
    ("--vocab_size", "-5", ">= 1"), ("--vocab_size", "0", ">= 1"), ("--min_frequency", "-1", ">= 0"),
    ("--model_max_length", "-3", ">= 1"), ("--model_max_length", "0", ">= 1"), ("--vocab_size", "8k", "integer"),
])
def test_tokenizer_cli_refuses_out_of_range_numbers(tmp_path, capsys, option, value, allowed):
    """Negative sizes and counts are refused by argparse, naming the option. Before, a negative --vocab_size or
    --min_frequency failed with a bare OverflowError and --model_max_length -3 was saved in the tokenizer."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES))
    with pytest.raises(SystemExit):
        train_tokenizer.main(["--kind", "wordpiece", "--train_files", str(corpus), "--output_dir",
                              str(tmp_path / "tok"), option, value])
    error = capsys.readouterr().err
    assert f"argument {option}" in error and allowed in error
    assert not (tmp_path / "tok").exists()


def test_tokenizer_cli_accepts_min_frequency_zero(tmp_path):
    """tokenizers takes ``min_frequency=0`` (it keeps every merge, as 1 does), so the CLI does too."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES))
    tokenizer = train_tokenizer.main(["--kind", "wordpiece", "--vocab_size", "200", "--min_frequency", "0",
                                      "--train_files", str(corpus), "--output_dir", str(tmp_path / "tok")])
    assert 0 < len(tokenizer) <= 200


def test_tokenizer_cli_refuses_a_bpe_vocabulary_below_its_floor(tmp_path, capsys):
    """Byte-level BPE always holds its 256 bytes and the 5 special tokens, so --vocab_size 100 cannot be kept.
    Before, it silently saved 261 tokens although --vocab_size is documented as the largest vocabulary."""
    assert train_tokenizer.BPE_MIN_VOCAB == 261
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES))
    argv = ["--kind", "bpe", "--train_files", str(corpus), "--output_dir", str(tmp_path / "tok")]
    with pytest.raises(SystemExit):
        train_tokenizer.main([*argv, "--vocab_size", "100"])
    assert "use --vocab_size 261 or more" in capsys.readouterr().err
    assert not (tmp_path / "tok").exists()
    assert len(train_tokenizer.main([*argv, "--vocab_size", "261"])) == 261  # the floor itself is fine


def test_tokenizer_cli_refuses_a_wordpiece_vocabulary_its_characters_do_not_fit(tmp_path):
    """A WordPiece's floor depends on the corpus (each character, alone and as ``##`` continuation, plus the
    special tokens): a smaller --vocab_size is refused after training, naming the size that works, and nothing is
    saved. Before, --vocab_size 10 silently saved a larger tokenizer."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES))
    argv = ["--kind", "wordpiece", "--train_files", str(corpus), "--output_dir", str(tmp_path / "tok")]
    with pytest.raises(ValueError, match=r"--vocab_size 10 is too small .* use --vocab_size (\d+) or more") as error:
        train_tokenizer.main([*argv, "--vocab_size", "10"])
    assert not (tmp_path / "tok").exists()
    smallest = int(error.value.args[0].split("use --vocab_size ")[1].split()[0])
    assert len(train_tokenizer.main([*argv, "--vocab_size", str(smallest)])) <= smallest


# --- train/publish.py -----------------------------------------------------------------------------------------


def _config(auto_map: bool = True) -> str:
    config = {"model_type": "mini_gpt", "architectures": ["MiniGPTForCausalLM"]}
    if auto_map:
        config["auto_map"] = {"AutoConfig": "configuration_mini.MiniGPTConfig",
                              "AutoModelForCausalLM": "modeling_gpt.MiniGPTForCausalLM"}
    return json.dumps(config)


@pytest.mark.parametrize("files, reason", [
    ({"model.bin": b"pickle"}, "has no config.json"),
    ({"config.json": _config(), "pytorch_model.bin": b"pickle"}, r"has no \*\.safetensors weights"),
    ({"config.json": _config(auto_map=False), "model.safetensors": b"weights"}, "config.json has no auto_map"),
    ({"config.json": "{not json", "model.safetensors": b"weights"}, "cannot publish"),
])
def test_publish_refuses_a_folder_before_writing_into_it(tmp_path, monkeypatch, files, reason):
    """A folder that cannot be published is refused with the reason, and left as it was: no README.md card is
    written into it. Before, a folder without config.json gave a raw FileNotFoundError, and one with only
    pytorch_model.bin first got a README.md and only then was refused."""
    def no_upload(folder, repo_id, **kwargs):
        publish.check_publishable(folder)
        raise AssertionError("a refused folder reached the upload")

    monkeypatch.setattr(publish, "publish_folder", no_upload)  # never the network, whatever happens
    for name, content in files.items():
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit, match=reason):
        publish.main([str(tmp_path), "--hub_model_id", "user/model"])
    assert snapshot(tmp_path) == before


def test_publish_refuses_a_path_that_is_not_a_folder(tmp_path):
    with pytest.raises(SystemExit, match="is not a folder"):
        publish.main([str(tmp_path / "missing"), "--hub_model_id", "user/model"])


# --- train/demo.py --------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised by the recorder after the demo's three runs, before it loads their (never written) outputs."""


@pytest.fixture
def demo_runs(monkeypatch) -> list[list[str]]:
    """The argv of each training run the demo starts; the runs themselves are not done."""
    runs = []

    def record(main, argv):
        runs.append(argv)
        if len(runs) == 3:
            raise _Stop
        return {"perplexity": 1.0, "eval_accuracy": 0.5, "eval_f1": 0.5}

    monkeypatch.setattr(demo, "run_quietly", record)
    return runs


@pytest.mark.parametrize("argv", [["--pretrain_steps", "0"], ["--pretrain_steps", "-1"], ["--finetune_epochs", "0"],
                                  ["--finetune_epochs", "-2"], ["--finetune_epochs", "nan"],
                                  ["--finetune_epochs", "inf"]])
def test_demo_refuses_non_positive_budgets(tmp_path, capsys, demo_runs, argv):
    """0 or a negative step / epoch count is refused, naming the option. Before, 0 counted as "not given" (the
    recipe's 600 steps ran) and --pretrain_steps -1 became --max_steps -1 (train by epochs instead)."""
    with pytest.raises(SystemExit):
        demo.main(["--output_dir", str(tmp_path), *argv])
    assert f"argument {argv[0]}" in capsys.readouterr().err
    assert demo_runs == []


def test_demo_passes_the_given_budgets_to_its_runs(tmp_path, demo_runs):
    with pytest.raises(_Stop):
        demo.main(["--output_dir", str(tmp_path), "--pretrain_steps", "5", "--finetune_epochs", "0.5"])
    pretraining, *finetunings = demo_runs
    assert pretraining[-2:] == ["--max_steps", "5"]
    assert [run[-2:] for run in finetunings] == [["--num_train_epochs", "0.5"]] * 2


def test_demo_leaves_the_recipes_budgets_alone_when_none_is_given(tmp_path, demo_runs):
    with pytest.raises(_Stop):
        demo.main(["--output_dir", str(tmp_path)])
    assert not any(flag in run for run in demo_runs for flag in ("--max_steps", "--num_train_epochs"))
