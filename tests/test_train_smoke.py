"""Smoke tests of train/: every objective and task on tiny models and tiny data, bad input, NaN stop, recipes.

The scripts' ``main(argv)`` run in-process (faster than a subprocess); data files are written by the tests.
"""

import functools
import json
import math
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

import modeling_mini

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "train"))
import common  # noqa: E402
import finetune  # noqa: E402
import pretrain  # noqa: E402

WORDS = ("apple pear plum fig lime kiwi date grape melon peach berry cherry lemon mango olive onion carrot bean "
         "pea leek kale corn rice oat rye wheat barley millet").split()
QUICK = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
         "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--use_cpu", "true",
         "--logging_steps", "1", "--max_length", "16"]


def sentences(count: int, seed: int = 0, length: int = 10) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(length)) for _ in range(count)]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("data")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(sentences(120)))
    texts = sentences(40, seed=1, length=6)
    spam = [{"text": t, "label": "spam" if "apple" in t else "ham"} for t in texts]
    multi = [{"text": t, "label": ["fruit", "grain", "vegetable"][i % 3]} for i, t in enumerate(texts)]
    ner = [{"tokens": t.split(), "ner_tags": ["B-FRUIT" if w in WORDS[:13] else "O" for w in t.split()]}
           for t in texts]
    pairs = [{"source": t, "target": t.upper()} for t in texts]
    (folder / "spam.csv").write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in spam))
    return {"corpus": str(corpus), "spam": str(folder / "spam.csv"),
            "multi": write_jsonl(folder / "multi.jsonl", multi), "ner": write_jsonl(folder / "ner.jsonl", ner),
            "pairs": write_jsonl(folder / "pairs.jsonl", pairs),
            "nolabel": write_jsonl(folder / "nolabel.jsonl", [{"text": t} for t in texts]),
            "empty": write_jsonl(folder / "empty.jsonl", [])}


def pretrain_tiny(family: str, output_dir: Path, corpus: str, *extra: str) -> dict:
    return pretrain.main(["--family", family, "--model_config", "tiny", "--train_files", corpus,
                          "--tokenizer_vocab_size", "200", "--output_dir", str(output_dir), *QUICK, *extra])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, data) -> dict[str, Path]:
    """One tiny pretrained checkpoint per family (2 steps): the fine-tuning tests start from them."""
    folders = {}
    for family in ("gpt", "encoder", "seq2seq"):
        folders[family] = tmp_path_factory.mktemp(f"pretrain-{family}")
        folders[family + "-metrics"] = pretrain_tiny(family, folders[family], data["corpus"])
    return folders


# ------------------------------------------------------------------------------------------------ pretraining

@pytest.mark.parametrize("family", ["gpt", "encoder", "seq2seq"])
def test_pretraining_writes_a_complete_output_folder(pretrained, family):
    folder, metrics = pretrained[family], pretrained[family + "-metrics"]
    assert math.isfinite(metrics["eval_loss"])
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    for name in ("model.safetensors", "config.json", "tokenizer.json", "recipe.yaml", "trainer_state.json",
                 "loss_curve.png", "README.md"):
        assert (folder / name).is_file(), name
    if family != "encoder":
        assert (folder / "generation_config.json").is_file()
    assert not list(folder.glob("pytorch_model*"))  # weights only as safetensors
    config = AutoConfig.from_pretrained(folder)
    assert common.family_of(config) == family
    assert config.use_cache is (family != "encoder")  # the model's own setting, not the Trainer's use_cache=False
    assert "perplexity" in (folder / "README.md").read_text()
    recipe = (folder / "recipe.yaml").read_text()
    assert "family: " + family in recipe and "hub_token" not in recipe
    assert "average_tokens_across_devices" in recipe  # a setting with "token" in its name is no secret
    model = getattr(modeling_mini, pretrain.MODEL_CLASSES[family]).from_pretrained(folder)
    card = (folder / "README.md").read_text()
    assert f"| parameters | {model.num_parameters():,} |" in card  # counted
    # the run's length once: the max_steps that ended it, not also the epochs it overrode
    assert "| max_steps | 2 |" in card and "num_train_epochs" not in card
    # the saved recipe repeats the run: it parses back to the same arguments (empty lists once broke it)
    again = common.parse_arguments((common.ModelArguments, common.DataArguments, pretrain.PretrainArguments,
                                    pretrain.TrainingArguments), [str(folder / "recipe.yaml")])
    assert common.resolved_recipe(*again) == yaml.safe_load(recipe)


def test_streaming_corpus_with_tensorboard_logging(data, tmp_path):
    argv = [a if a != "none" else "tensorboard" for a in QUICK]
    metrics = pretrain.main(["--family", "gpt", "--model_config", "tiny", "--train_files", data["corpus"],
                             "--tokenizer_vocab_size", "200", "--output_dir", str(tmp_path), "--streaming", "true",
                             *argv])
    assert math.isfinite(metrics["eval_loss"]) and (tmp_path / "model.safetensors").is_file()
    assert list(tmp_path.rglob("events.out.tfevents*"))


@pytest.mark.parametrize("family", ["gpt", "encoder"])
def test_the_held_out_loss_per_token_is_the_same_however_the_evaluation_is_batched(data, tmp_path, family):
    """Pretraining's eval_loss is the loss per held-out token (pretrain.held_out_token_losses): the same with the
    evaluation batches kept apart (--eval_do_concat_batches false, whose last batch is smaller) or scored batch by
    batch (--batch_eval_metrics true). Both failed when the per-token loss came in (a ragged array; a compute_metrics
    without compute_result); --prediction_loss_only, which would skip it, is refused."""
    runs = {}
    for name, extra in {"default": (), "apart": ("--eval_do_concat_batches", "false"),
                        "batch by batch": ("--batch_eval_metrics", "true")}.items():
        # one tokenizer for all runs: tokenizers' WordPiece trainer is not deterministic (tokenizers issue #1794)
        tokenizer = () if name == "default" else ("--tokenizer_name_or_path", str(tmp_path / "default"))
        runs[name] = pretrain_tiny(family, tmp_path / name.replace(" ", "-"), data["corpus"],
                                   "--per_device_eval_batch_size", "3", *tokenizer, *extra)
    assert runs["default"]["eval_samples"] % 3  # a smaller last batch
    for name in ("apart", "batch by batch"):
        assert runs[name]["eval_loss"] == pytest.approx(runs["default"]["eval_loss"], rel=1e-9), name
        assert runs[name]["eval_samples"] == runs["default"]["eval_samples"]
    with pytest.raises(ValueError, match="--prediction_loss_only"):
        pretrain_tiny(family, tmp_path / "loss-only", data["corpus"], "--prediction_loss_only", "true")


@pytest.mark.parametrize("family", ["gpt", "seq2seq"])
def test_a_run_evaluated_in_bfloat16_saves_its_float32_weights(data, tmp_path, family):
    """--bf16_full_eval makes the Trainer cast the model to bfloat16 in place for the final evaluation; the run still
    saves the weights it trained, in float32 (seq2seq: its final_logits_bias buffer too), and evaluates in bfloat16.
    Before, the saved model was bfloat16 (config dtype "bfloat16")."""
    from safetensors.torch import load_file

    metrics = pretrain_tiny(family, tmp_path / "run", data["corpus"], "--bf16", "true", "--bf16_full_eval", "true")
    assert math.isfinite(metrics["eval_loss"])
    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {torch.float32}
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dtype"] == "float32"


def test_a_lora_run_evaluated_in_bfloat16_saves_float32_adapter_and_model(pretrained, data, tmp_path):
    """The same for fine-tuning with LoRA: the adapter and the merged model are saved after the final evaluation."""
    from safetensors.torch import load_file

    out = tmp_path / "lora"
    finetune.main(["--model_name_or_path", str(pretrained["encoder"]), "--train_files", data["spam"],
                   "--output_dir", str(out), "--lora_r", "4", *QUICK, "--bf16", "true", "--bf16_full_eval", "true"])
    for path in (out / "model.safetensors", out / "adapter" / "adapter_model.safetensors"):
        assert {tensor.dtype for tensor in load_file(path).values()} == {torch.float32}, path


def test_pretrained_gpt_reloads_and_generates(pretrained):
    model = AutoModelForCausalLM.from_pretrained(pretrained["gpt"])
    out = model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 7)


def test_a_gpt_tokenizer_leaves_a_prompt_open_and_an_encoder_decoders_ends_it(pretrained):
    """The GPT's tokenizer ended every text with ``</s>``, so the text-generation pipeline and a card's
    ``tokenizer(prompt)`` handed the model a finished document to continue. It encodes a prompt as it is now, as
    GPT-2's does (pretraining still ends each document, ``document_end``); an encoder-decoder's source ends as
    BART's."""
    gpt = AutoTokenizer.from_pretrained(pretrained["gpt"])
    assert gpt("Return a new list")["input_ids"][-1] != gpt.eos_token_id
    # generate() without a prompt starts from the token every pretraining document followed, as GPT-2's
    assert AutoConfig.from_pretrained(pretrained["gpt"]).bos_token_id == gpt.eos_token_id
    assert pretrain.document_end(gpt) == gpt.eos_token_id
    generator = pipeline("text-generation", model=str(pretrained["gpt"]))
    assert gpt.eos_token_id not in generator.preprocess("Return a new list")["input_ids"][0].tolist()
    seq2seq = AutoTokenizer.from_pretrained(pretrained["seq2seq"])
    assert seq2seq("Return a new list")["input_ids"][-1] == seq2seq.eos_token_id


def test_text_infilling_collator_masks_spans_and_keeps_originals():
    collator = pretrain.TextInfillingCollator(mask_token_id=1, pad_token_id=0, noise_density=0.3,
                                              mean_span_length=3.0, seed=0)
    blocks = [{"input_ids": list(range(10, 50))} for _ in range(4)]
    batch = collator(blocks)
    assert torch.equal(batch["labels"], torch.tensor([b["input_ids"] for b in blocks]))
    for row, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
        kept = row[mask.bool()]
        assert (kept == 1).any()  # at least one span replaced by the mask token
        removed = 40 - int((kept >= 10).sum())
        assert 40 * 0.3 - 1 <= removed <= 40 * 0.3 + 1  # about noise_density of the tokens removed
        real = kept[kept >= 10]
        assert torch.all(real[1:] > real[:-1])  # survivors keep their order


def test_seq2seq_pretraining_with_label_smoothing_teaches_the_shifted_labels(data, tmp_path):
    """With ``--label_smoothing_factor`` the Trainer takes ``labels`` out of the batch before the model could shift
    them into decoder inputs, so the collator makes them (as ``DataCollatorForSeq2Seq`` does with a model). Before,
    the decoder read the corrupted source instead: a raw size error in the smoother, or, where the lengths happened
    to agree, silently the wrong teacher forcing."""
    metrics = pretrain_tiny("seq2seq", tmp_path, data["corpus"], "--label_smoothing_factor", "0.1")
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["eval_loss"])
    model = modeling_mini.MiniSeq2SeqForConditionalGeneration.from_pretrained(tmp_path)
    collator = pretrain.TextInfillingCollator(mask_token_id=1, pad_token_id=0, seed=0,
                                              decoder_inputs=model.prepare_decoder_input_ids_from_labels)
    batch = collator([{"input_ids": list(range(10, 30))} for _ in range(2)])
    assert torch.equal(batch["decoder_input_ids"], model.prepare_decoder_input_ids_from_labels(batch["labels"]))


def test_text_infilling_removes_the_noise_density_at_any_length_and_never_lengthens_a_block():
    """Over many blocks the spans remove ``noise_density`` of the tokens (a zero-length span stopped the masking: 0.21
    removed at 128 tokens, 0.11 at 512), and a block never comes out longer than it went in (an inserted mask made 5%
    of them one token longer, past a learned position table)."""
    collator = pretrain.TextInfillingCollator(mask_token_id=1, pad_token_id=0)
    rng = random.Random(0)
    for length, blocks in ((128, 200), (512, 40)):
        removed, longest = [], 0
        for _ in range(blocks):
            ids = [rng.randrange(5, 1000) for _ in range(length)]
            out = collator.corrupt(ids)
            removed.append(1 - sum(token != 1 for token in out) / length)
            longest = max(longest, len(out))
        assert abs(sum(removed) / blocks - 0.3) < 0.02, (length, sum(removed) / blocks)
        assert longest <= length


@pytest.mark.parametrize(("option", "value"), [("noise_density", 1.2), ("noise_density", -0.1),
                                               ("mean_span_length", 0.0), ("mlm_probability", 0.0)])
def test_objective_settings_out_of_range_fail_before_training(option, value):
    """A density above 1 hung the first batch (the budget could not be met); a mean span of 0 masked nothing."""
    with pytest.raises(ValueError, match=option):
        pretrain.PretrainArguments(**{option: value})


@pytest.mark.parametrize(("option", "value"), [
    ("tokenizer_vocab_size", "-1"), ("tokenizer_vocab_size", "0"), ("max_length", "0"), ("max_length", "-4"),
    ("validation_split_percentage", "150"), ("validation_split_percentage", "0"),
    ("validation_split_percentage", "100"), ("max_train_samples", "-3"), ("max_train_samples", "0"),
    ("max_eval_samples", "-1"), ("preprocessing_num_workers", "0")])
def test_data_and_model_arguments_out_of_range_fail_at_parsing(option, value):
    """Before, a vocabulary size of -1 was an OverflowError in the tokenizer's training, a max_length of 0 a
    ZeroDivisionError in the packing, a split percentage outside (0, 100) a datasets error naming no argument, and a
    negative sample count sliced the data from its end."""
    with pytest.raises(ValueError, match=f"`{option}` must be"):
        common.parse_arguments((common.ModelArguments, common.DataArguments, pretrain.PretrainArguments,
                                pretrain.TrainingArguments), [f"--{option}", value, "--output_dir", "unused"])


def test_each_epoch_of_a_streamed_run_gets_its_own_masks():
    """Over a streamed dataset the Trainer's epoch at each pass's start is a fraction of max_steps (0, 0.17, 1.17):
    its floor gave the second pass the first one's masks. The callback counts the passes instead; a resumed run
    starts from the epoch in its state."""
    collator = pretrain.TextInfillingCollator(mask_token_id=1, pad_token_id=0)
    callback = pretrain.EpochOfMasks(collator)
    seen = []
    for epoch in (0.0, 1 / 6, 1 + 1 / 6, 2 + 1 / 6):
        callback.on_epoch_begin(None, SimpleNamespace(epoch=epoch), None)
        seen.append(collator.mask_epoch)
    assert seen == [0, 1, 2, 3]
    resumed = pretrain.EpochOfMasks(collator)
    resumed.on_epoch_begin(None, SimpleNamespace(epoch=1.5), None)
    assert collator.mask_epoch == 1


# ------------------------------------------------------------------------------------------------ fine-tuning

def test_binary_sequence_classification_uses_one_sigmoid_output(pretrained, data, tmp_path):
    metrics = finetune.main(["--model_name_or_path", str(pretrained["gpt"]), "--train_files", data["spam"],
                             "--output_dir", str(tmp_path), *QUICK])
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.num_labels == 1 and config.problem_type == "multi_label_classification"
    assert config.id2label == {0: "spam"}
    assert {"eval_accuracy", "eval_f1", "eval_precision", "eval_recall"} <= set(metrics)
    assert (tmp_path / "README.md").is_file() and (tmp_path / "tokenizer.json").is_file()
    # the classifier reads the end token's state: its saved tokenizer ends every text with it, pipelines' too
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer("win a prize")["input_ids"][-1] == tokenizer.eos_token_id
    fed = pipeline("text-classification", model=str(tmp_path)).preprocess("win a prize")["input_ids"][0]
    assert fed[-1].item() == tokenizer.eos_token_id


def test_an_encoder_decoder_fine_tunes_with_a_tokenizer_that_leaves_texts_open(pretrained, data, tmp_path):
    """A tokenizer without BART's ending (a GPT's, GPT-2's) made the seq2seq classifier refuse every row (no end
    token to pool at), and would have trained translation targets that never teach the model to stop: fine-tuning
    an encoder-decoder makes its tokenizer end texts with ``</s>``, and saves it so."""
    open_ended = AutoTokenizer.from_pretrained(pretrained["seq2seq"])
    open_ended.add_eos_token = False  # transformers' template without the end token
    assert open_ended("win a prize")["input_ids"][-1] != open_ended.eos_token_id
    open_ended.save_pretrained(tmp_path / "tokenizer")
    finetune.main(["--model_name_or_path", str(pretrained["seq2seq"]), "--tokenizer_name_or_path",
                   str(tmp_path / "tokenizer"), "--train_files", data["spam"], "--output_dir", str(tmp_path / "out"),
                   *QUICK])
    saved = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert saved("win a prize")["input_ids"][-1] == saved.eos_token_id


def test_an_encoder_decoder_fine_tunes_as_a_classifier(pretrained, data, tmp_path):
    """BART's way: the text through both stacks, the label from the decoder state at its end token (the tokenizer
    closes every text with one)."""
    metrics = finetune.main(["--model_name_or_path", str(pretrained["seq2seq"]), "--train_files", data["spam"],
                             "--output_dir", str(tmp_path), *QUICK])
    assert type(AutoModelForSequenceClassification.from_pretrained(tmp_path)).__name__ == (
        "MiniSeq2SeqForSequenceClassification")
    assert math.isfinite(metrics["eval_loss"]) and "eval_f1" in metrics


def test_multiclass_sequence_classification(pretrained, data, tmp_path):
    metrics = finetune.main(["--model_name_or_path", str(pretrained["encoder"]), "--train_files", data["multi"],
                             "--output_dir", str(tmp_path), *QUICK])
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.num_labels == 3 and sorted(config.label2id) == ["fruit", "grain", "vegetable"]
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0


def test_modern_encoder_preset_pretrains_and_fine_tunes_every_head(data, tmp_path):
    """``encoder-modern-small`` (ModernBERT's layout: local layers, sparse masked-LM prediction, a transform in every
    task head, a half-width model here) pretrains, then fine-tunes as a classifier and a tagger."""
    pretrain.main(["--family", "encoder", "--model_config", "modern-small", "--train_files", data["corpus"],
                   "--config_overrides", "hidden_size=64,num_attention_heads=2,intermediate_size=96,sliding_window=4",
                   "--tokenizer_vocab_size", "200", "--output_dir", str(tmp_path / "base"), *QUICK])
    config = AutoConfig.from_pretrained(tmp_path / "base")
    assert (config.sparse_prediction, config.head_transform, config.sliding_window) == (True, True, 4)
    metrics = finetune.main(["--model_name_or_path", str(tmp_path / "base"), "--train_files", data["multi"],
                             "--output_dir", str(tmp_path / "classifier"), *QUICK])
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    metrics = finetune.main(["--task", "token_classification", "--model_name_or_path", str(tmp_path / "base"),
                             "--train_files", data["ner"], "--output_dir", str(tmp_path / "tagger"), *QUICK])
    assert 0.0 <= metrics.get("eval_overall_f1", metrics.get("eval_f1", -1)) <= 1.0, sorted(metrics)


def test_token_classification_aligns_labels_to_first_subwords(pretrained, data, tmp_path):
    assert finetune.align_word_labels([None, 0, 0, 1, None], [3, 4]) == [-100, 3, -100, 4, -100]
    metrics = finetune.main(["--task", "token_classification", "--model_name_or_path", str(pretrained["encoder"]),
                             "--train_files", data["ner"], "--output_dir", str(tmp_path), *QUICK])
    assert AutoConfig.from_pretrained(tmp_path).id2label == {0: "B-FRUIT", 1: "O"}
    assert "eval_overall_f1" in metrics or "eval_f1" in metrics, sorted(metrics)


@pytest.mark.parametrize("family", ["gpt", "encoder"])
def test_pre_split_words_get_the_tokens_of_running_text(pretrained, family):
    """The tags are learned on the tokens the model meets at inference: a byte-level BPE marks words after a space."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pretrained[family])
    words = "apple pear plum fig".split()
    split = finetune.token_classification_features({"tokens": [words], "ner_tags": [["O"] * 4]}, tokenizer,
                                                   "tokens", "ner_tags", ["O"], max_length=32)
    assert split["input_ids"][0] == tokenizer(" ".join(words))["input_ids"]


def test_a_tag_seen_only_in_validation_gets_a_label_id(pretrained, tmp_path):
    train = [{"tokens": ["apple", "pear"], "ner_tags": ["B-FRUIT", "O"]}] * 8
    validation = [{"tokens": ["oat", "apple"], "ner_tags": ["B-GRAIN", "B-FRUIT"]}] * 4
    finetune.main(["--task", "token_classification", "--model_name_or_path", str(pretrained["encoder"]),
                   "--train_files", write_jsonl(tmp_path / "train.jsonl", train), "--validation_files",
                   write_jsonl(tmp_path / "validation.jsonl", validation), "--output_dir", str(tmp_path / "out"),
                   *QUICK])
    assert AutoConfig.from_pretrained(tmp_path / "out").id2label == {0: "B-FRUIT", 1: "B-GRAIN", 2: "O"}


def test_gpt_pretraining_with_a_gpt2_style_tokenizer_ends_each_document_and_scores_every_token(data, tmp_path,
                                                                                               bpe_tokenizer):
    """A tokenizer that adds no end token (GPT-2's, Llama's) and has no pad token. Before, the packed documents ran
    into each other, the collator asked for a pad token and failed, and with ``pad_token = eos_token`` it hid every
    end token from the loss."""
    from datasets import Dataset, DatasetDict
    from transformers import PreTrainedTokenizerFast

    gpt2_like = PreTrainedTokenizerFast(tokenizer_object=bpe_tokenizer.backend_tokenizer, eos_token="</s>",
                                        bos_token="<s>", unk_token="<unk>")
    assert gpt2_like.pad_token is None and gpt2_like("a b")["input_ids"][-1] != gpt2_like.eos_token_id
    eos = gpt2_like.eos_token_id
    raw = DatasetDict({"train": Dataset.from_dict({"text": ["First document here.", "Second one."] * 4})})
    args = SimpleNamespace(text_column="text", max_length=8, preprocessing_num_workers=None)
    blocks = pretrain.tokenize_and_pack(raw, gpt2_like, args, family="gpt")["train"]
    stream = [token for block in blocks["input_ids"] for token in block]
    first = gpt2_like("First document here.")["input_ids"]
    assert stream[:len(first) + 1] == first + [eos]  # the first document, then its end
    assert stream.count(eos) >= 3
    batch = pretrain.build_collator("gpt", gpt2_like, pretrain.PretrainArguments(), seed=0)(
        [{"input_ids": block} for block in blocks["input_ids"][:2]])
    assert torch.equal(batch["labels"], batch["input_ids"]) and (batch["labels"] == eos).any()

    folder = tmp_path / "tokenizer"
    gpt2_like.save_pretrained(folder)
    metrics = pretrain.main(["--family", "gpt", "--model_config", "tiny", "--tokenizer_name_or_path", str(folder),
                             "--train_files", data["corpus"], "--output_dir", str(tmp_path / "out"), *QUICK])
    assert math.isfinite(metrics["eval_loss"])


@pytest.mark.parametrize("family", ["gpt", "encoder"])
def test_blank_lines_are_no_documents(family, bpe_tokenizer, wordpiece_tokenizer):
    """A .txt file's blank lines (7,223 of Tiny Shakespeare's 40,000) each became a document of one end token (a bare
    [CLS] [SEP] for the encoder): a GPT learnt that an end token follows an end token, and generate() without a
    prompt stopped at once. They are skipped, as run_clm.py's GPT-2 tokenizer makes nothing of them."""
    from datasets import Dataset, DatasetDict

    tokenizer = bpe_tokenizer if family == "gpt" else wordpiece_tokenizer
    lines = ["the cat sat", "", "  ", "on the mat"]
    raw = DatasetDict({"train": Dataset.from_dict({"text": lines})})
    args = SimpleNamespace(text_column="text", max_length=2, preprocessing_num_workers=None)
    stream = [t for block in pretrain.tokenize_and_pack(raw, tokenizer, args, family=family)["train"]["input_ids"]
              for t in block]
    kept = DatasetDict({"train": Dataset.from_dict({"text": ["the cat sat", "on the mat"]})})
    assert stream == [t for block in pretrain.tokenize_and_pack(kept, tokenizer, args, family=family)["train"][
        "input_ids"] for t in block]


def test_a_text_file_is_cut_into_lines_paragraphs_or_one_document(tmp_path):
    """``--text_sample_by`` (datasets' own ``sample_by``): a play's speaker and speech are one document when cut at
    blank lines, where one text a line made the name a document of its own, which pretraining ended with the end
    token (a GPT then answered 'ROMEO:' with an end token). Other formats refuse it; a resumed run keeps it."""
    play = tmp_path / "play.txt"
    play.write_text("ROMEO:\nBut soft, what light.\n\nJULIET:\nAy me.\n")
    texts = {by: common.load_text_splits(train_files=[str(play)], evaluation_split=None, text_sample_by=by)["train"][
        "text"] for by in ("line", "paragraph", "document")}
    assert texts["line"] == ["ROMEO:", "But soft, what light.", "", "JULIET:", "Ay me."]
    assert [t.strip() for t in texts["paragraph"]] == ["ROMEO:\nBut soft, what light.", "JULIET:\nAy me."]
    assert [t.strip() for t in texts["document"]] == ["ROMEO:\nBut soft, what light.\n\nJULIET:\nAy me."]
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "a b"}\n')
    with pytest.raises(ValueError, match="--text_sample_by paragraph cuts .txt files into texts; these are json"):
        common.load_text_splits(train_files=[str(rows)], evaluation_split=None, text_sample_by="paragraph")
    with pytest.raises(ValueError, match="text_sample_by must be one of 'line', 'paragraph', 'document'; got 'page'"):
        common.DataArguments(text_sample_by="page")
    for source in ({}, {"dataset_name": str(tmp_path)}):  # the embedded corpus, a dataset: the flag did nothing
        with pytest.raises(ValueError, match="--text_sample_by paragraph cuts local .txt files"):
            common.load_text_splits(evaluation_split=None, text_sample_by="paragraph", **source)
    assert "text_sample_by" in common.DATA_SETTINGS  # a resumed run must cut its files alike


def test_a_stream_with_columns_it_does_not_name_packs_its_text_alone(bpe_tokenizer):
    """A stream may not know its columns (a CSV stream, a generator): map could not drop the others, and packing
    failed with a column-length error. The text column is selected first."""
    from datasets import IterableDataset, IterableDatasetDict

    def rows():
        for i in range(40):
            yield {"text": f"the cat sat on the mat {i}", "source": f"row {i}"}

    raw = IterableDatasetDict({"train": IterableDataset.from_generator(rows)})
    assert raw["train"].column_names is None
    args = SimpleNamespace(text_column="text", max_length=8, preprocessing_num_workers=None)
    blocks = list(pretrain.tokenize_and_pack(raw, bpe_tokenizer, args, family="gpt")["train"].take(3))
    assert [sorted(block) for block in blocks] == [["input_ids"]] * 3 and len(blocks[0]["input_ids"]) == 8


def test_packing_ends_documents_with_the_separator_when_there_is_no_eos(bpe_tokenizer):
    """A tokenizer with a separator but no end-of-text token (and no post-processor) ends its packed documents with
    the separator, instead of letting them run into each other with a warning."""
    from transformers import PreTrainedTokenizerFast

    sep_only = PreTrainedTokenizerFast(tokenizer_object=bpe_tokenizer.backend_tokenizer, sep_token="</s>")
    assert sep_only.eos_token_id is None
    assert pretrain.document_end(sep_only) == sep_only.sep_token_id
    assert pretrain.document_end(bpe_tokenizer) == bpe_tokenizer.eos_token_id  # adds none itself: eos appended


def test_tokenizer_cli_learns_from_every_given_text(tmp_path):
    """`train/train_tokenizer.py` trains on all of its files. Before, it held 5% out as a validation split it never
    used, so words found only there got no token."""
    import train_tokenizer

    words = [f"word{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(100)]
    corpus = tmp_path / "words.txt"
    corpus.write_text("\n".join(" ".join([word] * 3) for word in words))
    tokenizer = train_tokenizer.main(["--kind", "wordpiece", "--vocab_size", "2000", "--train_files", str(corpus),
                                      "--output_dir", str(tmp_path / "tok")])
    assert [word for word in words if word not in tokenizer.get_vocab()] == []


def test_saved_tokenizers_carry_the_models_length_and_longer_inputs_are_refused(pretrained, data, tmp_path):
    """A run's tokenizer says how long an input the model reads (pipelines truncate to it). Before, every tokenizer
    trained here said 1024, so a pipeline fed the 512-position encoder 1024 tokens and failed; and
    `finetune.py --max_length 1024` failed only in training."""
    from transformers import AutoTokenizer, pipeline

    for family in ("gpt", "encoder"):
        tokenizer = AutoTokenizer.from_pretrained(pretrained[family])
        assert tokenizer.model_max_length == AutoConfig.from_pretrained(pretrained[family]).max_position_embeddings
    finetune.main(["--model_name_or_path", str(pretrained["encoder"]), "--train_files", data["spam"],
                   "--output_dir", str(tmp_path / "spam"), *QUICK])
    classify = pipeline("text-classification", model=str(tmp_path / "spam"))
    assert classify("apple " * 2000, truncation=True)[0]["label"] in {"spam", "ham"}
    with pytest.raises(ValueError, match="max_length=513 exceeds the model's max_position_embeddings=512"):
        finetune.main(["--model_name_or_path", str(pretrained["encoder"]), "--train_files", data["spam"],
                       "--output_dir", str(tmp_path / "long"), *QUICK, "--max_length", "513"])


def test_finetune_refuses_arguments_it_would_ignore(pretrained, data, tmp_path):
    """`--model_config` beside a checkpoint (its config is the architecture, --from_scratch too) and `--streaming`
    (fine-tuning reads its data into memory) were silently ignored; the saved recipe still named them."""
    base = ["--model_name_or_path", str(pretrained["gpt"]), "--train_files", data["spam"], "--output_dir",
            str(tmp_path), *QUICK]
    with pytest.raises(ValueError, match="--model_config='small' with --model_name_or_path"):
        finetune.main([*base, "--from_scratch", "true", "--model_config", "small"])
    with pytest.raises(ValueError, match="--streaming is for pretraining"):
        finetune.main([*base, "--streaming", "true"])


def test_class_label_ids_pass_through_even_when_names_look_like_ids():
    """A ``ClassLabel`` with names "1", "2", "3" (star ratings) holds ids 0, 1, 2. Before, each id was looked up as a
    name first, so 0, 1, 2 became 0, 0, 1: the wrong classes, silently."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    stars = ClassLabel(names=["1", "2", "3"])
    rows = Dataset.from_dict({"text": ["bad", "ok", "good"], "label": [0, 1, 2]},
                             features=Features({"text": Value("string"), "label": stars}))
    splits = {"train": rows}
    names = finetune.label_names(splits, "label", sequence=False)
    assert names == ["1", "2", "3"] and finetune.is_class_label(splits, "label", sequence=False)
    assert finetune.label_ids([0, 1, 2], names, class_ids=True) == [0, 1, 2]
    assert finetune.label_ids(["1", "2", 3], names) == [0, 1, 2]  # plain values: looked up by name
    with pytest.raises(ValueError, match="unknown label 3"):
        finetune.label_ids([3], names, class_ids=True)
    tags = Dataset.from_dict({"tokens": [["a", "b"]], "tags": [[1, 0]]},
                             features=Features({"tokens": Sequence(Value("string")),
                                                "tags": Sequence(ClassLabel(names=["1", "0"]))}))
    assert finetune.is_class_label({"train": tags}, "tags", sequence=True)
    assert finetune.label_ids(tags[0]["tags"], finetune.label_names({"train": tags}, "tags", sequence=True),
                              class_ids=True) == [1, 0]


def test_translation_with_generate(pretrained, data, tmp_path):
    metrics = finetune.main(["--task", "translation", "--model_name_or_path", str(pretrained["seq2seq"]),
                             "--train_files", data["pairs"], "--output_dir", str(tmp_path),
                             "--predict_with_generate", "true", "--generation_max_length", "8", *QUICK])
    assert {"eval_bleu", "eval_chrf"} <= set(metrics)


def test_translation_from_scratch_trains_its_tokenizer_on_both_languages(data, tmp_path):
    """The targets here are the sources in capitals: a tokenizer trained on the sources alone spells them out."""
    finetune.main(["--task", "translation", "--from_scratch", "true", "--family", "seq2seq", "--model_config", "tiny",
                   "--tokenizer_vocab_size", "300", "--train_files", data["pairs"], "--text_column", "source",
                   "--label_column", "target", "--output_dir", str(tmp_path), *QUICK, "--max_steps", "1"])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    upper, lower = (len(tokenizer.tokenize(" ".join(WORDS).upper())), len(tokenizer.tokenize(" ".join(WORDS))))
    assert upper <= 1.5 * lower


def test_conll_files_are_read_again_once_edited(tmp_path):
    """datasets caches a generator's rows by its arguments: an edited file must not come back stale."""
    path = tmp_path / "ner.conll"
    path.write_text("Paris B-location\nis O\n")
    first = common._read(None, None, [str(path)], None, streaming=False)["train"][0]
    path.write_text("Obama B-person\nspoke O\nhere O\n")
    second = common._read(None, None, [str(path)], None, streaming=False)["train"][0]
    assert (first["tokens"], second["tokens"]) == (["Paris", "is"], ["Obama", "spoke", "here"])


def test_translation_fine_tunes_from_a_t5_checkpoint(data, tmp_path, bpe_tokenizer):
    """A T5 v1.1 checkpoint (`google/flan-t5-small`'s layout, smaller: gated GELU, an output matrix of its own)
    converts into a MiniSeq2Seq with T5's relative attention bias, which then fine-tunes and translates."""
    from transformers import T5Config, T5ForConditionalGeneration

    source = tmp_path / "t5"
    T5ForConditionalGeneration(T5Config(
        vocab_size=len(bpe_tokenizer), d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=bpe_tokenizer.pad_token_id,
        eos_token_id=bpe_tokenizer.eos_token_id, decoder_start_token_id=bpe_tokenizer.pad_token_id,
    )).save_pretrained(source)
    bpe_tokenizer.save_pretrained(source)
    metrics = finetune.main(["--task", "translation", "--model_name_or_path", str(source), "--train_files",
                             data["pairs"], "--output_dir", str(tmp_path / "mt"), "--predict_with_generate", "true",
                             "--generation_max_length", "8", *QUICK])
    assert {"eval_bleu", "eval_chrf"} <= set(metrics)
    config = AutoConfig.from_pretrained(tmp_path / "mt")
    assert (config.model_type, config.position_embedding_type, config.hidden_act) == ("mini_seq2seq", "relative",
                                                                                        "geglu_tanh")


def test_from_scratch_keeps_the_architecture_but_not_the_weights(pretrained, data, tmp_path):
    finetune.main(["--model_name_or_path", str(pretrained["gpt"]), "--from_scratch", "true", "--train_files",
                   data["multi"], "--output_dir", str(tmp_path), *QUICK, "--max_steps", "1", "--learning_rate", "0"])
    from safetensors.torch import load_file

    base, scratch = load_file(pretrained["gpt"] / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    shared = sorted(set(base) & set(scratch))
    assert len(shared) >= len(base) - 2  # the whole backbone (only the LM head differs from the classifier)
    assert all(base[n].shape == scratch[n].shape for n in shared)
    assert not any(torch.equal(base[n], scratch[n]) for n in shared if n.endswith("proj.weight"))
    assert "base_model" not in (tmp_path / "README.md").read_text().split("---")[1]


def test_lora_trains_adapters_and_the_new_head_and_saves_a_merged_model(pretrained, data, tmp_path):
    """``--lora_r``: the pretrained weights stay frozen, the adapters and the layers the checkpoint lacked (pooler,
    classifier) train; the run's model is the merged one, and the saved adapter on the checkpoint equals it."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "lora"
    finetune.main(["--model_name_or_path", str(pretrained["encoder"]), "--train_files", data["spam"],
                   "--output_dir", str(out), "--lora_r", "4", "--lora_alpha", "8", *QUICK, "--max_steps", "3",
                   "--learning_rate", "1e-2"])
    base, merged = load_file(pretrained["encoder"] / "model.safetensors"), load_file(out / "model.safetensors")
    assert not any("lora" in name or "base_layer" in name for name in merged)  # a plain mini model
    frozen = [n for n in base if n in merged and ("embeddings" in n or "norm" in n)]
    assert frozen and all(torch.equal(base[n], merged[n]) for n in frozen)  # not adapted: unchanged
    adapted = [n for n in base if n.endswith("qkv_proj.weight")]
    assert adapted and not any(torch.equal(base[n], merged[n]) for n in adapted)  # W + (alpha / r) B A
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert any("lora_A" in n for n in adapter)
    assert any("classifier" in n for n in adapter) and any("pooler" in n for n in adapter)  # trained whole
    assert sum(t.numel() for t in adapter.values()) < 0.5 * sum(t.numel() for t in merged.values())
    assert "| lora_r | 4 |" in (out / "README.md").read_text()  # the model card reports the LoRA settings

    config = AutoConfig.from_pretrained(out)
    on_base = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(pretrained["encoder"], config=config), out / "adapter"
    ).eval()
    reloaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    ids = torch.randint(5, 100, (3, 9))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, on_base(ids).logits, atol=1e-5, rtol=0)


def test_lora_translation_generates_and_keeps_the_tied_output_layer(pretrained, data, tmp_path):
    metrics = finetune.main(["--task", "translation", "--model_name_or_path", str(pretrained["seq2seq"]),
                             "--train_files", data["pairs"], "--output_dir", str(tmp_path), "--lora_r", "4",
                             "--lora_target_modules", "qkv_proj", "q_proj", "kv_proj",
                             "--predict_with_generate", "true", "--generation_max_length", "8", *QUICK])
    assert {"eval_bleu", "eval_chrf"} <= set(metrics)
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert model.lm_head.weight is model.model.encoder.embeddings.embed_tokens.weight
    assert model.config.use_cache is True  # through the PEFT wrapper and the merge, not the Trainer's False
    adapter = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["kv_proj", "q_proj", "qkv_proj"] and adapter["r"] == 4


# ------------------------------------------------------------------------------------------------ bad input

def test_bad_input_fails_before_training(pretrained, data, tmp_path):
    gpt = str(pretrained["gpt"])
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text("".join(f'{{"text": {i}}}\n' for i in range(8)))
    cases = {
        "column 'body'": (finetune.main, ["--model_name_or_path", gpt, "--train_files", data["spam"],
                                          "--text_column", "body"]),
        "column 'label'": (finetune.main, ["--model_name_or_path", gpt, "--train_files", data["nolabel"]]),
        "empty": (finetune.main, ["--model_name_or_path", gpt, "--train_files", data["empty"]]),
        "task must be one of": (finetune.main, ["--model_name_or_path", gpt, "--task", "summarization"]),
        "lora_r.*>= 0": (finetune.main, ["--model_name_or_path", gpt, "--train_files", data["spam"], "--lora_r", "-1"]),
        "lora_r.*from_scratch": (finetune.main, ["--model_name_or_path", gpt, "--train_files", data["spam"],
                                                 "--lora_r", "4", "--from_scratch", "true"]),
        "family must be one of": (pretrain.main, ["--family", "rnn", "--train_files", data["corpus"]]),
        "tokenizer has": (pretrain.main, ["--family", "gpt", "--train_files", data["corpus"],
                                          "--tokenizer_name_or_path", gpt, "--model_config",
                                          str(write_config(tmp_path, vocab_size=50))]),
        "extension": (pretrain.main, ["--train_files", str(tmp_path / "corpus.xml")]),
        "column 'text' of the train data holds int values, not texts": (
            pretrain.main, ["--family", "gpt", "--train_files", str(numbers)]),
        "'hiden_dropout' is not a field of MiniGPTConfig": (
            pretrain.main, ["--family", "gpt", "--train_files", data["corpus"], "--config_overrides",
                            "hiden_dropout=0.0"]),
        "'key=value' pairs": (finetune.main, ["--model_name_or_path", gpt, "--train_files", data["spam"],
                                              "--config_overrides", "classifier_dropout"]),
    }
    for i, (message, (main, argv)) in enumerate(cases.items()):
        out = tmp_path / f"run{i}"
        with pytest.raises(ValueError, match=message):
            main([*argv, "--output_dir", str(out), *QUICK])
        assert not (out / "trainer_state.json").exists()


def write_config(folder: Path, **values) -> Path:
    path = folder / "small_vocab.json"
    path.write_text(json.dumps({"model_type": "mini_gpt", "hidden_size": 32, "num_hidden_layers": 1,
                                "num_attention_heads": 2, **values}))
    return path


def test_config_overrides_change_the_preset_and_the_checkpoint(pretrained, data, tmp_path):
    pretrain_tiny("gpt", tmp_path / "lm", data["corpus"], "--config_overrides",
                  "num_hidden_layers=1, position_embedding_type=learned,hidden_dropout=0.25")
    config = AutoConfig.from_pretrained(tmp_path / "lm")
    assert (config.num_hidden_layers, config.position_embedding_type, config.hidden_dropout) == (1, "learned", 0.25)
    finetune.main(["--model_name_or_path", str(pretrained["gpt"]), "--train_files", data["spam"],
                   "--config_overrides", "classifier_dropout=0.3", "--output_dir", str(tmp_path / "ft"), *QUICK])
    assert AutoConfig.from_pretrained(tmp_path / "ft").classifier_dropout == 0.3
    # a saved model as the preset, deeper and wider: its derived head width and layer types follow, not go stale
    saved = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert saved.get("head_dim") is None and saved.get("layer_types") is None  # derived, so not stored
    pretrain_tiny("gpt", tmp_path / "deeper", data["corpus"], "--model_config", str(tmp_path / "lm"),
                  "--config_overrides", "num_hidden_layers=3,hidden_size=96")
    config = AutoConfig.from_pretrained(tmp_path / "deeper")
    assert config.head_dim == 96 // config.num_attention_heads and len(config.layer_types) == 3
    # continuing from a checkpoint: the overrides apply to it (they were ignored); its architecture stays
    pretrain.main(["--family", "gpt", "--model_name_or_path", str(pretrained["gpt"]), "--train_files", data["corpus"],
                   "--config_overrides", "hidden_dropout=0.3", "--output_dir", str(tmp_path / "more"), *QUICK])
    assert AutoConfig.from_pretrained(tmp_path / "more").hidden_dropout == 0.3
    with pytest.raises(ValueError, match="the checkpoint fixes the architecture"):
        pretrain.main(["--family", "gpt", "--model_name_or_path", str(pretrained["gpt"]), "--model_config", "small",
                       "--train_files", data["corpus"], "--output_dir", str(tmp_path / "no"), *QUICK])


def test_config_overrides_take_lists_keep_the_layer_pattern_and_are_checked_on_a_checkpoint(bpe_tokenizer):
    """List values parse (commas inside brackets do not split); a new depth alone repeats a preset's per-layer
    attention pattern; overrides of a loaded checkpoint's config go through the config's checks."""
    assert common.split_overrides('a=1,b=["x", "y"],c={"k": [1, 2]},d="p,q"') == [
        "a=1", 'b=["x", "y"]', 'c={"k": [1, 2]}', 'd="p,q"']
    deeper = common.build_config(common.ModelArguments(family="gpt", model_config="modern-small",
                                                       config_overrides="num_hidden_layers=8"), bpe_tokenizer)
    assert deeper.layer_types == ["sliding_attention", "sliding_attention", "full_attention"] * 2 + [
        "sliding_attention", "sliding_attention"]
    given = common.build_config(common.ModelArguments(
        family="encoder", model_config="modern-small",
        config_overrides='num_hidden_layers=2,layer_types=["sliding_attention", "full_attention"],hidden_dropout=0.1'),
        bpe_tokenizer)
    assert given.layer_types == ["sliding_attention", "full_attention"] and given.hidden_dropout == 0.1
    loaded = modeling_mini.MiniGPTConfig(position_embedding_type="rotary", num_labels=3)
    for bad, field_name in [("position_embedding_type=bogus", "position_embedding_type"),
                            ("hidden_act=gelu_neww", "hidden_act"), ("num_attention_heads=5", "num_attention_heads")]:
        with pytest.raises(ValueError, match=field_name):  # config.update() took each silently
            common.override_config(loaded, bad)
    changed = common.override_config(loaded, "hidden_dropout=0.3")
    assert (changed.hidden_dropout, changed.num_labels, changed.position_embedding_type) == (0.3, 3, "rotary")
    # the encoder-decoder's num_hidden_layers is another name of decoder_layers: either name changes the depth
    seq2seq = modeling_mini.MiniSeq2SeqConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    for text in ("decoder_layers=3", "num_hidden_layers=3"):
        deeper = common.override_config(seq2seq, text)
        assert (deeper.decoder_layers, deeper.num_hidden_layers, deeper.encoder_layers) == (3, 3, 2), text
    preset = common.build_config(common.ModelArguments(family="seq2seq", config_overrides="num_hidden_layers=3"),
                                 bpe_tokenizer)
    assert preset.decoder_layers == 3


def test_recipes_survive_launchers_yaml_booleans_and_a_cleared_preset(tmp_path):
    """``deepspeed`` and ``torch.distributed.launch`` put ``--local_rank`` before the recipe; YAML 1.1 reads an
    unquoted ``no`` as false; ``--model_config none`` clears a recipe's preset to continue from a checkpoint."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("family: gpt\nmodel_config: small\neval_strategy: no\nsave_strategy: no\n")
    types = (common.ModelArguments, common.DataArguments, pretrain.PretrainArguments, pretrain.TrainingArguments)
    model_args, _, _, training_args = common.parse_arguments(
        types, ["--local_rank=0", str(recipe), "--model_config", "none", "--output_dir", str(tmp_path / "o")])
    assert model_args.model_config is None and training_args.local_rank == 0
    assert training_args.eval_strategy == "no" and training_args.save_strategy == "no"
    model_args, _, _, training_args = common.parse_arguments(
        types, ["--local_rank", "0", str(recipe), "--output_dir", str(tmp_path / "o")])
    assert model_args.model_config == "small" and training_args.local_rank == 0


def test_unknown_recipe_key_is_an_error(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("family: gpt\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        pretrain.main([str(recipe), "--output_dir", str(tmp_path / "out")])


def test_recipe_values_and_command_line_overrides(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("family: encoder\nlearning_rate: 0.1\nmax_steps: 7\ntrain_files: [a.txt, b.txt]\n"
                      "output_dir: from-recipe\nstreaming: true\n")
    model_args, data_args, _, training_args = common.parse_arguments(
        (common.ModelArguments, common.DataArguments, pretrain.PretrainArguments, pretrain.TrainingArguments),
        [str(recipe), "--learning_rate", "0.5", "--output_dir", str(tmp_path / "cli")])
    assert model_args.family == "encoder" and training_args.max_steps == 7
    assert training_args.learning_rate == 0.5 and training_args.output_dir == str(tmp_path / "cli")
    assert data_args.train_files == ["a.txt", "b.txt"] and data_args.streaming is True


def test_every_shipped_recipe_parses():
    for recipe in sorted((ROOT / "configuration" / "recipes").glob("*.yaml")):
        script = finetune if "task" in recipe.read_text() else pretrain
        types = ((common.ModelArguments, common.DataArguments, finetune.FinetuneArguments,
                  finetune.Seq2SeqTrainingArguments) if script is finetune else
                 (common.ModelArguments, common.DataArguments, pretrain.PretrainArguments, pretrain.TrainingArguments))
        common.parse_arguments(types, [str(recipe)])


def test_every_shipped_model_preset_is_a_valid_config_and_recipes_name_presets():
    import yaml

    presets = sorted((ROOT / "configuration" / "models").glob("*.json"))
    assert {p.stem.split("-")[0] for p in presets} == set(common.FAMILIES)
    for preset in presets:
        options = json.loads(preset.read_text())
        family = preset.stem.split("-")[0]
        config = AutoConfig.for_model(options.pop("model_type"), **options)  # validates every option
        assert isinstance(config, common.family_config_class(family)), preset.name
        assert all(getattr(config, key) == value for key, value in options.items()), preset.name
    modern = AutoConfig.from_pretrained(common.resolve_preset("modern-small", "gpt"))
    assert modern.layer_sliding_window(0) == 512 and modern.layer_sliding_window(2) is None  # Ministral-like
    for recipe in sorted((ROOT / "configuration" / "recipes").glob("*.yaml")):
        text = yaml.safe_load(recipe.read_text())
        if "model_config" in text:
            assert common.resolve_preset(text["model_config"], text["family"]).is_file(), recipe.name


# ------------------------------------------------------------------------------------------------ NaN guard

def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    forward = modeling_mini.MiniGPTForCausalLM.forward
    calls = {"train": 0}

    @functools.wraps(forward)  # the Trainer reads the signature to keep the input columns
    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        if self.training:
            calls["train"] += 1
            if calls["train"] > 3:
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(modeling_mini.MiniGPTForCausalLM, "forward", poisoned)
    with pytest.raises(RuntimeError, match="NaN|nan") as error:
        pretrain_tiny("gpt", tmp_path, data["corpus"], "--max_steps", "8", "--save_strategy", "steps",
                      "--save_steps", "1")
    assert "checkpoint-3" in str(error.value)
    assert not (tmp_path / "model.safetensors").exists() and not (tmp_path / "checkpoint-4").exists()
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "checkpoint-3" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


# ------------------------------------------------------------------------------ pretraining pays off

# 24 made-up words from one alphabet, so spelling tells nothing about a word's group.
_RNG = random.Random(0)
_WORDS = list(dict.fromkeys("".join(_RNG.choice("bdfgklmnprstvz") + _RNG.choice("aeiou") for _ in range(2))
                            for _ in range(100)))[:24]
GROUP_A, GROUP_B = _WORDS[:12], _WORDS[12:]


def group_rows(words_a, words_b, count, seed, length):
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = i % 2
        words = words_b if label else words_a
        rows.append({"text": " ".join(rng.choice(words) for _ in range(length)), "label": label})
    return rows


@pytest.mark.slow
def test_finetuning_from_pretrained_beats_random_init(tmp_path):
    """Words of two groups never mix in the corpus; the labelled task asks for a text's group.

    Fine-tuning sees only 4 words of each group; the test split uses only the 8 others. From random weights
    those words are unknown embeddings (chance level); pretraining has learnt which words go together.
    """
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(row["text"] for row in group_rows(GROUP_A, GROUP_B, 400, 0, 12)))
    train = group_rows(GROUP_A[:4], GROUP_B[:4], 64, 1, 4)
    test = group_rows(GROUP_A[4:], GROUP_B[4:], 64, 2, 4)
    files = ["--train_files", write_jsonl(tmp_path / "train.jsonl", train),
             "--validation_files", write_jsonl(tmp_path / "test.jsonl", test)]
    common_args = ["--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--use_cpu", "true",
                   "--logging_steps", "10", "--seed", "0"]
    pretrain.main(["--family", "gpt", "--model_config", "tiny", "--train_files", str(corpus),
                   "--tokenizer_vocab_size", "400", "--max_length", "32", "--output_dir", str(tmp_path / "lm"),
                   "--max_steps", "150", "--per_device_train_batch_size", "16", "--learning_rate", "3e-3",
                   *common_args])
    scores = {}
    for name, extra in (("pretrained", []), ("scratch", ["--from_scratch", "true"])):
        scores[name] = finetune.main(["--model_name_or_path", str(tmp_path / "lm"), *files, *extra,
                                      "--output_dir", str(tmp_path / name), "--max_steps", "40",
                                      "--per_device_train_batch_size", "16", "--learning_rate", "1e-3",
                                      *common_args])["eval_accuracy"]
    print(scores)
    assert scores["pretrained"] >= 0.8 and scores["pretrained"] >= scores["scratch"] + 0.2, scores


# ------------------------------------------------------------------------------- transformers checkpoints

def test_a_checkpoint_without_a_tokenizer_is_refused_unless_one_is_named(data, tmp_path, wordpiece_tokenizer):
    """A model saved alone (README's `model.save_pretrained("my-gpt")`) holds no tokenizer: transformers built one
    from its config, a DistilBERT folder's a BERT tokenizer of 5 tokens that read every word as [UNK] and trained
    without a warning, a GPT's an error about sentencepiece. The run names the option instead; with
    --tokenizer_name_or_path it trains."""
    folder = tmp_path / "model-only"
    modeling_mini.MiniEncoderForMaskedLM(modeling_mini.MiniEncoderConfig(
        vocab_size=len(wordpiece_tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64)).save_pretrained(folder)
    with pytest.raises(ValueError, match=r"--model_name_or_path .*model-only.* holds no tokenizer.*"
                                         r"--tokenizer_name_or_path"):
        finetune.main(["--model_name_or_path", str(folder), "--train_files", data["multi"],
                       "--output_dir", str(tmp_path / "refused"), *QUICK])
    wordpiece_tokenizer.save_pretrained(tmp_path / "tok")
    metrics = finetune.main(["--model_name_or_path", str(folder), "--tokenizer_name_or_path", str(tmp_path / "tok"),
                             "--train_files", data["multi"], "--output_dir", str(tmp_path / "ft"), *QUICK])
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0


def test_fine_tuning_starts_from_a_transformers_checkpoint(data, tmp_path, wordpiece_tokenizer):
    """--model_name_or_path naming a DistilBERT masked LM (as `distilbert-base-uncased` on the Hub): the run converts
    it once into <output_dir>/converted-base, weight for weight, and fine-tunes our model from it; the model card
    and the recipe name the original checkpoint."""
    import yaml
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    torch.manual_seed(0)
    reference = DistilBertForMaskedLM(DistilBertConfig(vocab_size=len(wordpiece_tokenizer), dim=32, n_layers=2,
                                                       n_heads=4, hidden_dim=37, max_position_embeddings=64))
    source = tmp_path / "distilbert"
    reference.save_pretrained(source)
    wordpiece_tokenizer.save_pretrained(source)
    out = tmp_path / "ft"
    metrics = finetune.main(["--model_name_or_path", str(source), "--train_files", data["multi"],
                             "--output_dir", str(out), *QUICK])
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    converted = AutoConfig.from_pretrained(out / common.CONVERTED_FOLDER)
    assert converted.model_type == "mini_encoder" and (out / common.CONVERTED_FOLDER / "tokenizer.json").is_file()
    starting_point = modeling_mini.MiniEncoderForMaskedLM.from_pretrained(out / common.CONVERTED_FOLDER)
    torch.testing.assert_close(starting_point.model.embeddings.embed_tokens.weight,
                               reference.distilbert.embeddings.word_embeddings.weight, atol=0, rtol=0)
    tuned = AutoConfig.from_pretrained(out)
    assert (tuned.model_type, tuned.pooler_activation, tuned.num_labels) == ("mini_encoder", "relu", 3)
    card = (out / "README.md").read_text()
    assert "| base model | distilbert |" in card and str(source) not in card  # a local path: its name only
    recipes = list(out.glob("*.yaml"))
    assert recipes and all(yaml.safe_load(r.read_text())["model_name_or_path"] == str(source) for r in recipes)


@pytest.mark.parametrize("family", ["gpt2", "opt"])
def test_pretraining_continues_from_a_transformers_checkpoint(data, tmp_path, bpe_tokenizer, family):
    from transformers import GPT2Config, GPT2LMHeadModel, OPTConfig, OPTForCausalLM

    source = tmp_path / family
    if family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(bpe_tokenizer), n_embd=32, n_layer=2, n_head=4,
                                           n_positions=64))
    else:  # OPT: a table from row 2, positions counted by the mask (`facebook/opt-125m`'s layout, smaller)
        model = OPTForCausalLM(OPTConfig(vocab_size=len(bpe_tokenizer), hidden_size=32, word_embed_proj_dim=32,
                                         num_hidden_layers=2, num_attention_heads=4, ffn_dim=48,
                                         max_position_embeddings=64))
    model.save_pretrained(source)
    bpe_tokenizer.save_pretrained(source)
    metrics = pretrain.main(["--family", "gpt", "--model_name_or_path", str(source), "--train_files", data["corpus"],
                             "--output_dir", str(tmp_path / "lm"), *QUICK])
    assert math.isfinite(metrics["perplexity"])
    config = AutoConfig.from_pretrained(tmp_path / "lm")
    assert (config.model_type, config.position_embedding_type) == ("mini_gpt", "learned")
    assert config.pad_aware_positions == (family == "opt")


def test_a_checkpoint_nothing_converts_is_refused_by_name(data, tmp_path):
    from transformers import CLIPTextConfig, CLIPTextModel

    source = tmp_path / "clip"
    CLIPTextModel(CLIPTextConfig(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                 num_attention_heads=4)).save_pretrained(source)
    with pytest.raises(ValueError, match="'clip_text_model' checkpoint of .*CLIPTextModel.*DistilBertForMaskedLM"):
        finetune.main(["--model_name_or_path", str(source), "--train_files", data["multi"],
                       "--output_dir", str(tmp_path / "ft"), *QUICK])


def test_an_electra_discriminator_fine_tunes_from_its_converted_backbone(data, tmp_path, wordpiece_tokenizer):
    """`google/electra-small-discriminator`'s config names ElectraForPreTraining, whose per-token head has no mini
    equivalent: the run converts its backbone (ElectraModel) and fine-tunes a classifier on it."""
    from transformers import ElectraConfig, ElectraForPreTraining

    source = tmp_path / "electra"
    ElectraForPreTraining(ElectraConfig(vocab_size=len(wordpiece_tokenizer), embedding_size=16, hidden_size=32,
                                        num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
                                        max_position_embeddings=64)).save_pretrained(source)
    wordpiece_tokenizer.save_pretrained(source)
    finetune.main(["--model_name_or_path", str(source), "--train_files", data["multi"],
                   "--output_dir", str(tmp_path / "ft"), *QUICK])
    tuned = AutoConfig.from_pretrained(tmp_path / "ft")
    assert (tuned.embedding_size, tuned.pooler_activation, tuned.num_labels) == (16, "gelu", 3)


# ---------------------------------------------------------------------------------------- question answering

def squad_rows(count: int, seed: int = 0, length: int = 30) -> list[dict]:
    """SQuAD-like rows: contexts of fruit words, each answer a run of 1-3 words of its context (by characters)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        words = [rng.choice(WORDS) for _ in range(length)]
        first = rng.randrange(length - 3)
        answer = " ".join(words[first:first + rng.randint(1, 3)])
        start = len(" ".join(words[:first])) + (1 if first else 0)
        rows.append({"id": f"q{i}", "question": f"which {words[first]} comes after {words[first - 1]}",
                     "context": " ".join(words), "answers": {"text": [answer], "answer_start": [start]}})
    return rows


def squad_features(rows, tokenizer, for_evaluation=False, **options):
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    return finetune.question_answering_features(columns, tokenizer, "question", "answers",
                                                for_evaluation=for_evaluation, **options)


def test_question_answering_windows_point_at_the_answer_tokens(wordpiece_tokenizer):
    """Every window that holds the answer is trained on tokens that spell it; the others point at [CLS]; a long
    context gives several windows, consecutive ones sharing doc_stride tokens. The stride is wider than any answer
    (up to 3 words, some 9 word pieces with this 200-token vocabulary), so each answer lies whole in some window: with
    8, an answer across a window edge was in none for some vocabularies (the WordPiece trainer breaks ties in no fixed
    order), and the count below fell one short in a CI run."""
    metric = common.metric("squad")
    rows = squad_rows(12)
    features = squad_features(rows, wordpiece_tokenizer, max_length=48, doc_stride=16)
    assert len(features["input_ids"]) > len(rows)  # the 30-word contexts do not fit one 32-token window
    assert all(len(ids) == 48 for ids in features["input_ids"])
    cls = wordpiece_tokenizer.cls_token_id
    mapping = wordpiece_tokenizer(rows[0]["question"], rows[0]["context"], truncation="only_second", max_length=48,
                                  stride=16, return_overflowing_tokens=True)["overflow_to_sample_mapping"]
    assert mapping.count(0) >= 2
    found = 0
    for ids, start, end in zip(features["input_ids"], features["start_positions"], features["end_positions"],
                               strict=True):
        if start == end == ids.index(cls):
            continue
        found += 1
        spelled = wordpiece_tokenizer.decode(ids[start:end + 1])
        answers = {row["answers"]["text"][0] for row in rows}
        assert any(metric.compute(predictions=[{"id": "0", "prediction_text": spelled}],
                                  references=[{"id": "0", "answers": {"text": [a], "answer_start": [0]}}]
                                  )["exact_match"] == 100.0 for a in answers), spelled
    assert found >= len(rows)
    evaluation = squad_features(rows, wordpiece_tokenizer, for_evaluation=True, max_length=48, doc_stride=16)
    assert evaluation["example_id"][0] == "q0" and len(evaluation["example_id"]) == len(features["input_ids"])
    assert evaluation["offset_mapping"][0][0] is None  # [CLS]: outside the context
    with pytest.raises(ValueError, match="doc_stride=32 must be >= 0 and smaller than --max_length=32"):
        finetune.check_question_answering(wordpiece_tokenizer, 32, 32)


def test_question_answering_answers_each_question_from_its_best_valid_span():
    """The best start + end over every window of a question wins; spans in the question, ending before they start
    or longer than max_answer_length are never picked, however high their logits."""
    from datasets import Dataset

    context = "alpha beta gamma delta epsilon"
    examples = Dataset.from_dict({"id": ["a"], "context": [context]})
    word_offsets = [(0, 5), (6, 10), (11, 16), (17, 22), (23, 30)]
    # window 0: [CLS] q q [SEP] alpha beta gamma [SEP]; window 1: [CLS] q q [SEP] gamma delta epsilon [SEP]
    windows = [[None, None, None, None, *word_offsets[:3], None], [None, None, None, None, *word_offsets[2:], None]]
    features = Dataset.from_dict({"example_id": ["a", "a"], "offset_mapping": windows})
    start, end = torch.full((2, 8), -100.0).numpy(), torch.full((2, 8), -100.0).numpy()
    start[0, 1] = end[0, 2] = 50.0  # a span in the question: no offsets there
    start[0, 6], end[0, 4] = 40.0, 40.0  # ends ("alpha") before it starts ("gamma")
    start[1, 4], end[1, 5] = 5.0, 4.0  # "gamma delta" in window 1
    start[0, 5], end[0, 5] = 3.0, 3.0  # "beta" in window 0: a valid span, but it scores less
    answers = finetune.best_answers(examples, features, start, end, n_best_size=20, max_answer_length=30)
    assert answers == {"a": "gamma delta"}
    start[1, 4], end[1, 6] = 5.0, 9.0  # "gamma delta epsilon" (3 tokens) is best unless the limit is 2 tokens
    assert finetune.best_answers(examples, features, start, end)["a"] == "gamma delta epsilon"
    assert finetune.best_answers(examples, features, start, end, max_answer_length=2)["a"] == "gamma delta"
    with pytest.raises(ValueError, match="3 rows of logits for 2 evaluation windows"):
        finetune.best_answers(examples, features, start[[0, 1, 1]], end[[0, 1, 1]])


def test_question_answering_fine_tunes_and_reports_squad_scores(pretrained, tmp_path):
    rows = squad_rows(24, length=12)
    metrics = finetune.main(["--task", "question_answering", "--model_name_or_path", str(pretrained["encoder"]),
                             "--train_files", write_jsonl(tmp_path / "train.jsonl", rows[:16]),
                             "--validation_files", write_jsonl(tmp_path / "validation.jsonl", rows[16:]),
                             "--output_dir", str(tmp_path / "out"), *QUICK, "--max_length", "48", "--doc_stride", "8"])
    assert {"eval_exact_match", "eval_f1", "eval_loss"} <= set(metrics)
    assert 0.0 <= metrics["eval_exact_match"] <= metrics["eval_f1"] <= 100.0
    assert type(AutoModelForQuestionAnswering.from_pretrained(tmp_path / "out")).__name__ == (
        "MiniEncoderForQuestionAnswering")
    assert "exact_match" in (tmp_path / "out" / "README.md").read_text()
    with pytest.raises(ValueError, match="has no column 'context'"):
        finetune.main(["--task", "question_answering", "--model_name_or_path", str(pretrained["encoder"]),
                       "--train_files", write_jsonl(tmp_path / "bad.jsonl", [{k: v for k, v in r.items()
                                                                               if k != "context"} for r in rows]),
                       "--output_dir", str(tmp_path / "bad"), *QUICK])


def test_question_answering_edge_rows(pretrained, wordpiece_tokenizer, tmp_path):
    """A long question over a context that fits one window is fine (only a context to be cut needs room beside the
    question); an answer given with spaces around it is trained on its own tokens; answers with more keys than
    text / answer_start evaluate (a KeyError after training before); repeated validation ids are refused."""
    long_question = {"id": "long", "question": " ".join(["apple"] * 38), "context": "apple pear",
                     "answers": {"text": ["pear"], "answer_start": [6]}}
    spaced = {"id": "spaced", "question": "which fruit", "context": "apple pear plum",
              "answers": {"text": [" pear "], "answer_start": [5]}}
    features = squad_features([long_question, spaced], wordpiece_tokenizer, max_length=48, doc_stride=8)
    for ids, start, end in zip(features["input_ids"], features["start_positions"], features["end_positions"],
                               strict=True):
        assert wordpiece_tokenizer.decode(ids[start:end + 1]) == "pear"
    with pytest.raises(ValueError, match="row id 'cut'"):  # this context must be cut: the question leaves no room
        squad_features([{**long_question, "id": "cut", "context": " ".join(["apple"] * 40)}], wordpiece_tokenizer,
                       max_length=48, doc_stride=8)
    rows = [{**row, "answers": {**row["answers"], "answer_end": [0]}} for row in squad_rows(20, length=12)]
    options = ["--task", "question_answering", "--model_name_or_path", str(pretrained["encoder"]),
               "--train_files", write_jsonl(tmp_path / "train.jsonl", rows[:12]), *QUICK, "--max_length", "48",
               "--doc_stride", "8"]
    metrics = finetune.main([*options, "--validation_files", write_jsonl(tmp_path / "validation.jsonl", rows[12:]),
                             "--output_dir", str(tmp_path / "out")])
    assert "eval_f1" in metrics
    twice = rows[12:14] + [{**rows[14], "id": rows[12]["id"]}]
    with pytest.raises(ValueError, match="must be unique"):
        finetune.main([*options, "--validation_files", write_jsonl(tmp_path / "twice.jsonl", twice),
                       "--output_dir", str(tmp_path / "twice")])


def test_question_answering_windows_recover_the_xquad_answers(shared_data, wordpiece_tokenizer):
    """On real SQuAD-format data (XQuAD, English), the answer tokens of the windows that hold the answer cut the
    answer's own text back out of the context (offsets), after SQuAD's normalisation."""
    path = shared_data / "qa_xquad_en" / "xquad_en.jsonl"
    assert path.is_file(), f"{path} is missing from the shared data (see its README.md)"
    import importlib.util

    spec = importlib.util.spec_from_file_location("squad", common.METRICS_DIR / "squad" / "squad.py")
    squad = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(squad)
    normalize_answer = squad.normalize_answer
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    features = squad_features(rows, wordpiece_tokenizer, for_evaluation=True, max_length=384, doc_stride=128)
    cls = wordpiece_tokenizer.cls_token_id
    contexts = {row["id"]: row for row in rows}
    hits = total = 0
    for ids, start, end, example_id, offsets in zip(features["input_ids"], features["start_positions"],
                                                    features["end_positions"], features["example_id"],
                                                    features["offset_mapping"], strict=True):
        if start == end == ids.index(cls):
            continue
        row = contexts[example_id]
        total += 1
        hits += normalize_answer(row["context"][offsets[start][0]:offsets[end][1]]) == normalize_answer(
            row["answers"]["text"][0])
    assert total >= len(rows) and hits / total >= 0.95, (hits, total)


def test_the_saved_recipe_records_a_launchers_mixed_precision(monkeypatch, tmp_path):
    """``accelerate launch --mixed_precision bf16`` sets only the environment: the Trainer trains in bf16 while
    ``--bf16`` stays False, and the recipe recorded ``bf16: false`` (run again with python: float32)."""
    from transformers import TrainingArguments

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    assert (args.bf16, args.mixed_precision) == (False, "bf16")
    assert common.resolved_recipe(args)["bf16"] is True
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert common.resolved_recipe(TrainingArguments(output_dir=str(tmp_path), use_cpu=True))["bf16"] is False
