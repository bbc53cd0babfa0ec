"""Distributed training: the accelerate configs are valid, and 2 processes (gloo, CPU) train like 1 process.

The runs are ``train/pretrain.py`` (tiny GPT, a small text file); the 2-process run goes through ``accelerate launch``
with ``configuration/accelerate/cpu_2proc.yaml``, the config users take to try a distributed run without a GPU.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from conftest import perturb_norms_and_biases, tiny_gpt_config

import modeling_mini

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = ROOT / "configuration" / "accelerate"
SCRIPT = ROOT / "train" / "pretrain.py"

EXPECTED = {  # file -> (distributed type, processes, multi-GPU launcher, FSDP, DeepSpeed)
    "single_gpu.yaml": ("NO", 1, False, False, False),
    "multi_gpu.yaml": ("MULTI_GPU", 8, True, False, False),
    "fsdp.yaml": ("FSDP", 8, False, True, False),
    "deepspeed_zero2.yaml": ("DEEPSPEED", 8, False, False, True),
    "cpu_2proc.yaml": ("MULTI_GPU", 2, True, False, False),
}


def run_two_processes(worker: str, folder: Path, *args: str, path: list[Path] | None = None,
                      timeout: int = 180) -> subprocess.CompletedProcess:
    """``worker`` (Python source) run by 2 processes under ``torch.distributed.run`` (gloo, CPU), with ``folder`` as
    its first argument and ``path`` (default: ``train/``) importable; fails the test when a process fails."""
    (folder / "worker.py").write_text(worker)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(folder / "worker.py"), str(folder), *args]
    pythonpath = os.pathsep.join(str(p) for p in (path or [ROOT / "train"]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def launch_args(name: str):
    """What ``accelerate launch --config_file <name> x.py`` resolves the config to (accelerate's own code)."""
    parsed = launch_command_parser().parse_args(["--config_file", str(ACCELERATE / name), "x.py"])
    return _validate_launch_command(parsed)[0]


def test_every_config_is_listed():
    assert sorted(path.name for path in ACCELERATE.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_config_loads(name):
    kind, processes, multi_gpu, fsdp, deepspeed = EXPECTED[name]
    config = load_config_from_file(str(ACCELERATE / name))  # raises on unknown keys
    assert config.distributed_type.value == kind and config.num_processes == processes
    args = launch_args(name)
    assert (args.multi_gpu, args.use_fsdp, args.use_deepspeed, args.num_processes) == (multi_gpu, fsdp, deepspeed,
                                                                                       processes)
    # use_cpu would route a multi-process config to accelerate's single-process launcher (hf-v5-notes §13).
    assert not args.cpu


def test_fsdp_config_wraps_every_mini_block(monkeypatch):
    """The FSDP plugin built from the config's launch environment wraps MiniBlock, and only that, as a unit."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    for key, value in prepare_multi_gpu_env(launch_args("fsdp.yaml")).items():
        monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.transformer_cls_names_to_wrap == ["MiniBlock"]
    import modeling_mini

    model = modeling_mini.MiniGPTForCausalLM(tiny_gpt_config())
    plugin.set_auto_wrap_policy(model)  # raises if no module class is called MiniBlock
    wrapped = [name for name, module in model.named_modules()
               if plugin.auto_wrap_policy(module=module, recurse=False, nonwrapped_numel=0)]
    assert wrapped == ["model.layers.0", "model.layers.1"]


def test_deepspeed_json_is_zero2_driven_by_the_trainer():
    config = load_config_from_file(str(ACCELERATE / "deepspeed_zero2.yaml"))
    ds_file = ROOT / config.deepspeed_config["deepspeed_config_file"]
    ds = json.loads(ds_file.read_text())
    assert ds["zero_optimization"]["stage"] == 2
    # Batch sizes and accumulation must come from TrainingArguments, else they can disagree with the Trainer's.
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        assert ds[key] == "auto"


def write_corpus(path: Path) -> str:
    """A small, learnable text corpus: counting sentences in words."""
    words = "zero one two three four five six seven eight nine".split()
    path.write_text("\n".join(" ".join(words[(i + j) % 10] for j in range(12)) for i in range(200)))
    return str(path)


def run_tiny(output_dir: Path, processes: int, per_device_batch: int, steps: int = 6, family: str = "gpt",
             extra: tuple[str, ...] = ()) -> list[dict]:
    """Pretrain a tiny GPT (or ``family``) with train/pretrain.py; return the per-step log entries of
    trainer_state.json."""
    corpus = write_corpus(output_dir.parent / "corpus.txt")
    train_args = ["--family", family, "--model_config", "tiny", "--train_files", corpus, *extra,
                  "--tokenizer_vocab_size", "200", "--max_length", "16",
                  "--output_dir", str(output_dir), "--max_steps", str(steps), "--logging_steps", "1",
                  "--per_device_train_batch_size", str(per_device_batch), "--learning_rate", "3e-3", "--seed", "7",
                  "--save_strategy", "no", "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true"]
    if processes == 1:
        command = [sys.executable, str(SCRIPT), *train_args]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                   str(ACCELERATE / "cpu_2proc.yaml"), "--num_cpu_threads_per_process", "1", str(SCRIPT), *train_args]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry for entry in state["log_history"] if "loss" in entry]


@pytest.mark.slow
def test_two_processes_log_the_same_losses_as_one(tmp_path):
    """Global batch 8 both ways: 1 process x 8 rows, or 2 processes x 4 rows (DDP over gloo)."""
    one = run_tiny(tmp_path / "one", processes=1, per_device_batch=8)
    two = run_tiny(tmp_path / "two", processes=2, per_device_batch=4)
    assert len(one) == len(two) == 6
    # Same epoch fraction: the 2 processes shared the data (each alone would be at half the epoch).
    assert [entry["epoch"] for entry in two] == [entry["epoch"] for entry in one]
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5), (one, two)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3, abs=1e-5), (one, two)
    assert one[-1]["loss"] < one[0]["loss"]  # it trains


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt", "encoder"])
def test_two_processes_report_the_same_held_out_loss_and_perplexity_as_one(tmp_path, family):
    """13 held-out blocks, 3 to a batch on 1 process, 2 per process on 2: the distributed sampler repeats a block to
    even out the last batch, and the Trainer's own eval_loss (a mean of batch means) counted it (GPT: 4.86919 on 2
    processes against 4.86986 on 1; the masked LM, whose batches also score different numbers of tokens: 3.8286
    against 3.8107). The loss per held-out token is the same."""
    texts = {"gpt": "26", "encoder": "27"}[family]  # 97 and 23 blocks: odd counts
    extra = ("--validation_split_percentage", "40", "--max_eval_samples", texts)
    one = run_tiny(tmp_path / "one", processes=1, per_device_batch=4, steps=2, family=family,
                   extra=(*extra, "--per_device_eval_batch_size", "3"))
    # the same tokenizer: tokenizers' WordPiece trainer is not deterministic (tokenizers issue #1794)
    two = run_tiny(tmp_path / "two", processes=2, per_device_batch=2, steps=2, family=family,
                   extra=(*extra, "--per_device_eval_batch_size", "2", "--tokenizer_name_or_path",
                          str(tmp_path / "one")))
    assert len(one) == len(two) == 2
    results = [json.loads((tmp_path / name / "all_results.json").read_text()) for name in ("one", "two")]
    assert results[0]["eval_samples"] % 2 == 1, results[0]  # an odd count: 2 processes repeat a block
    assert results[1]["eval_loss"] == pytest.approx(results[0]["eval_loss"], rel=1e-6)
    assert results[1]["perplexity"] == pytest.approx(results[0]["perplexity"], rel=1e-6)


FSDP_SAVE = """
import os, sys, torch, torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
import modeling_mini

os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2])
dist.init_process_group("gloo", rank=0, world_size=1)
config = modeling_mini.MiniGPTConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16)
torch.manual_seed(0)
model = modeling_mini.MiniGPTForCausalLM(config).eval()
ids = torch.tensor([[1, 5, 7, 9]])
torch.save(model(ids).logits, sys.argv[1] + ".logits.pt")
for block in model.model.layers:  # as accelerate's TRANSFORMER_BASED_WRAP with MiniBlock does
    fully_shard(block)
fully_shard(model)
print("WRAPPED", type(model).__module__, type(model).__name__)  # marked: gloo may print its own lines
# What Trainer.save_model does under FSDP with FULL_STATE_DICT: gather, then save_pretrained(state_dict=...).
state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
model.save_pretrained(sys.argv[1], state_dict=state)
dist.destroy_process_group()
"""

REMOTE_LOAD = """
import sys, torch
sys.modules["modeling_mini"] = None  # only the folder's copied code may be used
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
print(type(model).__module__)
assert torch.equal(model(torch.tensor([[1, 5, 7, 9]])).logits, torch.load(sys.argv[1] + ".logits.pt"))
"""


def test_fsdp2_wrapped_model_saves_this_packages_code_and_auto_map(tmp_path):
    """FSDP2 turns the model into a class made on the fly (``FSDPMiniGPTForCausalLM``, defined in torch).

    Saved as is, transformers would copy torch's ``_fsdp_*.py`` files instead of ours and record the wrapper in
    ``auto_map``; the folder must instead carry this package's files and load with ``trust_remote_code``.
    """
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    folder = tmp_path / "saved"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", FSDP_SAVE, str(folder), port], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (wrapped,) = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("WRAPPED ")]
    module, name = wrapped
    assert module.startswith("torch.distributed.fsdp") and name == "FSDPMiniGPTForCausalLM", done.stdout
    files = sorted(path.name for path in folder.glob("*.py"))
    assert not [name for name in files if name.startswith("_fsdp")], files
    assert {"modeling_gpt.py", "modeling_base.py", "attention.py", "configuration_mini.py"} <= set(files)
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_gpt.MiniGPTForCausalLM"
    assert config["architectures"] == ["MiniGPTForCausalLM"]
    done = subprocess.run([sys.executable, "-c", REMOTE_LOAD, str(folder)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("transformers_modules.")


TENSOR_PARALLEL = """
import json, sys, torch, torch.distributed as dist
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, DistributedConfig
import modeling_mini

dist.init_process_group("gloo")


def max_grad_difference(whole, split):
    # every parameter's gradient, the split ones gathered
    worst = 0.0
    for (name, a), (_, b) in zip(whole.named_parameters(), split.named_parameters(), strict=True):
        if a.grad is not None or b.grad is not None:
            theirs = b.grad.full_tensor() if hasattr(b.grad, "full_tensor") else b.grad
            worst = max(worst, (a.grad - theirs).abs().max().item())
    return worst


ids = torch.arange(3, 15).view(2, 6)
mask = torch.ones_like(ids)
mask[0, -2:] = 0
results = {}
for name, auto in json.loads(sys.argv[2]).items():
    auto = {"causal": AutoModelForCausalLM, "masked": AutoModelForMaskedLM, "seq2seq": AutoModelForSeq2SeqLM}[auto]
    folder = f"{sys.argv[1]}/{name}"
    whole = auto.from_pretrained(folder).eval()
    split = auto.from_pretrained(folder, distributed_config=DistributedConfig(tp_plan="auto")).eval()
    inputs = dict(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
    if auto is AutoModelForSeq2SeqLM:
        inputs |= dict(decoder_input_ids=ids, decoder_attention_mask=mask)
    a, b = whole(**inputs), split(**inputs)  # eval mode (no dropout), with gradients
    a.loss.backward()
    b.loss.backward()
    stack = "model.decoder.layers" if "seq2seq" in name else "model.layers"
    down = [model.get_submodule(f"{stack}.0.mlp.down_proj").weight.grad for model in (whole, split)]
    results[name] = {
        "logits": (a.logits - b.logits)[mask.bool()].abs().max().item(),
        "loss": abs(a.loss.item() - b.loss.item()),
        "grad": (down[0] - down[1].full_tensor()).abs().max().item(),
        "all_grads": max_grad_difference(whole, split),
        "local_up_rows": split.get_submodule(f"{stack}.0.mlp.up_proj").weight.to_local().shape[0],
        "generate": auto is AutoModelForMaskedLM or torch.equal(
            whole.generate(ids[:1], max_new_tokens=5, do_sample=False),
            split.generate(ids[:1], max_new_tokens=5, do_sample=False)),
    }
    # transformers' own FSDP2 (no accelerate): parameters sharded over the 2 ranks, one unit per block
    whole.zero_grad()
    sharded = auto.from_pretrained(folder, distributed_config=DistributedConfig(fsdp_size=2)).eval()
    a, b = whole(**inputs), sharded(**inputs)
    a.loss.backward()
    b.loss.backward()
    down = [model.get_submodule(f"{stack}.0.mlp.down_proj").weight.grad for model in (whole, sharded)]
    results[name] |= {"fsdp_loss": abs(a.loss.item() - b.loss.item()),
                      "fsdp_grad": (down[0] - down[1].full_tensor()).abs().max().item()}
if dist.get_rank() == 0:
    print("RESULTS " + json.dumps(results))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_tensor_parallel_and_native_fsdp2_keep_each_familys_outputs(tmp_path):
    """``from_pretrained(..., distributed_config=DistributedConfig(tp_plan="auto"))`` on 2 processes (gloo, CPU):
    the feed-forward weights are split in half across the ranks, and logits, loss, gradients and greedy tokens stay
    those of the whole model (``MiniConfig.base_model_tp_plan``; a gated FFN and grouped-query heads included).
    transformers' own FSDP2 (``DistributedConfig(fsdp_size=2)``, ``MiniConfig.base_model_fsdp_plan``) gives each
    family's loss and gradients too. No rule of either plan may go unmatched."""
    small = dict(tiny_gpt_config().to_dict(), intermediate_size=64)
    small = {key: small[key] for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                         "intermediate_size", "pad_token_id", "bos_token_id", "eos_token_id")}
    models = {
        "gpt": (modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(**small)), "causal"),
        "gpt-swiglu-gqa": (modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(
            **small, hidden_act="swiglu", num_key_value_heads=2, position_embedding_type="rotary")), "causal"),
        "encoder": (modeling_mini.MiniEncoderForMaskedLM(modeling_mini.MiniEncoderConfig(**small)), "masked"),
        "seq2seq": (modeling_mini.MiniSeq2SeqForConditionalGeneration(
            modeling_mini.MiniSeq2SeqConfig(**small, decoder_start_token_id=1)), "seq2seq"),
    }
    for name, (model, _) in models.items():
        perturb_norms_and_biases(model)  # biases of their own: a split that mixes up a fused bias's rows shows
        model.save_pretrained(tmp_path / name)
    kinds = json.dumps({name: kind for name, (_, kind) in models.items()})
    done = run_two_processes(TENSOR_PARALLEL, tmp_path, kinds, path=[ROOT])
    assert "not sharded" not in done.stderr and "match nothing" not in done.stderr, done.stderr[-3000:]
    results = json.loads(done.stdout.split("RESULTS ", 1)[1].splitlines()[0])
    assert set(results) == set(models)
    for name, row in results.items():
        assert row["local_up_rows"] == 32, (name, row)  # 64 hidden units, half on each rank
        assert row["logits"] < 1e-5 and row["loss"] < 1e-5 and row["grad"] < 1e-6 and row["generate"], (name, row)
        assert row["all_grads"] < 1e-5, (name, row)  # every parameter, biases and norms included
        assert row["fsdp_loss"] < 1e-5 and row["fsdp_grad"] < 1e-6, (name, row)


NAN_SHARD = """
import sys, torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
import common, modeling_mini

dist.init_process_group("gloo")
config = modeling_mini.MiniGPTConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16)
model = modeling_mini.MiniGPTForCausalLM(config)
for block in model.model.layers:
    fully_shard(block)
fully_shard(model)
before = common.weights_finite(model)
if dist.get_rank() == 1:  # a NaN in the half of one weight that only rank 1 holds
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight.to_local().fill_(float("nan"))
with open(f"{sys.argv[1]}/rank{dist.get_rank()}.txt", "w") as out:  # one file each: printed lines interleave
    out.write(f"{before} {common.weights_finite(model)}")
dist.destroy_process_group()
"""


def test_the_nan_guard_sees_a_nan_in_another_ranks_fsdp_shard(tmp_path):
    """Under FSDP each rank holds a shard of each weight. A NaN in rank 1's shard must stop every rank before a save:
    a rank that went on to save alone would wait in the save's collectives until the run timed out."""
    run_two_processes(NAN_SHARD, tmp_path, path=[ROOT, ROOT / "train"], timeout=120)
    # (finite before the NaN, finite after) on each rank: rank 0's own shards stay finite, yet it must say False
    assert [(tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)] == ["True False"] * 2


SHARED_TOKENIZER = """
import json, sys, threading
from pathlib import Path

import common
from train_tokenizer import train_tokenizer
from transformers import TrainingArguments

args = TrainingArguments(output_dir=sys.argv[1], use_cpu=True, report_to="none")
words = ["alpha beta gamma", "delta epsilon zeta"][args.process_index]  # each rank would learn its own vocabulary
tokenizer = common.from_main_process(lambda: train_tokenizer([f"{words} {i}" for i in range(50)], "wordpiece", 60),
                                     args)
Path(sys.argv[1], f"vocab{args.process_index}.json").write_text(json.dumps(tokenizer.get_vocab()))
# a resumed run on nodes without a shared filesystem: only rank 0's copy of the checkpoint holds the tokenizer, and
# rank 1 (which would train one of its own from its texts) gets rank 0's
checkpoint = Path(sys.argv[1], f"checkpoint-rank{args.process_index}")
checkpoint.mkdir()
if args.process_index == 0:
    tokenizer.save_pretrained(checkpoint)
resumed = common.load_tokenizer(common.ModelArguments(tokenizer_vocab_size=60), [f"{words} again"] * 50,
                                family="encoder", resume_from=str(checkpoint), training_args=args)
Path(sys.argv[1], f"resumed{args.process_index}.json").write_text(json.dumps(resumed.get_vocab()))
try:  # a failure on the main process reaches every rank at once, instead of leaving them waiting for files
    common.from_main_process(lambda: train_tokenizer(["x"], "no-such-kind", 60), args)
except (ValueError, RuntimeError) as error:
    Path(sys.argv[1], f"error{args.process_index}.txt").write_text(f"{type(error).__name__}: {error}")


class Locked(Exception):  # an error that cannot be pickled: it is sent as text
    def __init__(self):
        super().__init__("the corpus is locked")
        self.lock = threading.Lock()


def fail():
    raise Locked()


try:
    common.from_main_process(fail, args)
except (Locked, RuntimeError) as error:
    Path(sys.argv[1], f"locked{args.process_index}.txt").write_text(f"{type(error).__name__}: {error}")
"""


@pytest.mark.slow
def test_a_tokenizer_trained_in_a_distributed_run_is_the_main_processs_on_every_rank(tmp_path):
    """Without ``--tokenizer_name_or_path`` the scripts train a tokenizer. In a 2-process run (gloo, CPU) only rank 0
    trains it and every rank reads the same one (``common.from_main_process``): each rank here sees other texts,
    and WordPiece training is not deterministic anyway, so two trainings could number the tokens differently."""
    run_two_processes(SHARED_TOKENIZER, tmp_path)
    first, second = (json.loads((tmp_path / f"vocab{rank}.json").read_text()) for rank in (0, 1))
    assert first == second
    assert "alpha" in second and "delta" not in second  # rank 0's texts, on rank 1 too
    resumed = [json.loads((tmp_path / f"resumed{rank}.json").read_text()) for rank in (0, 1)]
    assert resumed[0] == resumed[1] == first  # the checkpoint's tokenizer, read by rank 0 alone
    errors = [(tmp_path / f"error{rank}.txt").read_text() for rank in (0, 1)]
    assert errors[0].startswith("ValueError: kind must be one of"), errors
    assert errors[1].startswith("RuntimeError: the main process failed") and "no-such-kind" in errors[1], errors
    locked = [(tmp_path / f"locked{rank}.txt").read_text() for rank in (0, 1)]
    assert locked[0] == "Locked: the corpus is locked" and "Locked: the corpus is locked" in locked[1], locked


EACH_ROW_ONCE = """
import json, sys

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerFast, Seq2SeqTrainer, Seq2SeqTrainingArguments

import finetune
import modeling_mini

vocab = {**{f"w{i}": i for i in range(40)}, "<pad>": 40, "<s>": 41, "</s>": 42, "<unk>": 43}
words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
words.pre_tokenizer = pre_tokenizers.Whitespace()
tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                    unk_token="<unk>")
generator = torch.Generator().manual_seed(0)
rows = [{"input_ids": torch.randint(0, 40, (3 + i % 5,), generator=generator).tolist() + [42],
         "labels": torch.randint(0, 40, (2 + i % 4,), generator=generator).tolist() + [42]} for i in range(13)]
torch.manual_seed(0)
config = modeling_mini.MiniSeq2SeqConfig(vocab_size=44, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=37, max_position_embeddings=64, pad_token_id=40,
                                         bos_token_id=41, eos_token_id=42, decoder_start_token_id=41)
model = modeling_mini.MiniSeq2SeqForConditionalGeneration(config)
scored = {}
for name, trainer_class in (("transformers", Seq2SeqTrainer), ("ours", finetune.Seq2SeqTrainerScoringEachRowOnce)):
    args = Seq2SeqTrainingArguments(output_dir=sys.argv[1] + "/" + name, use_cpu=True, report_to="none",
                                    per_device_eval_batch_size=4, predict_with_generate=True,
                                    generation_max_length=6)
    trainer = trainer_class(model=model, args=args, eval_dataset=Dataset.from_list(rows),
                            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
                            compute_metrics=lambda p: {"rows": len(p.predictions), "label_rows": len(p.label_ids)})
    metrics = trainer.evaluate()
    scored[name] = [metrics["eval_rows"], metrics["eval_label_rows"], metrics["eval_loss"]]
if trainer.is_world_process_zero():
    open(sys.argv[1] + "/scored.json", "w").write(json.dumps(scored))
"""


def test_translation_evaluation_over_two_processes_scores_each_row_once(tmp_path):
    """transformers' Seq2SeqTrainer gathers evaluation outputs with plain ``accelerator.gather``: over 2 processes
    the rows repeated to even out the last batch reached the metrics (16 of 13 rows; a fine-tuned translation model's
    chrF 2.51 where one process gives 2.12). ``finetune.py`` evaluates translation with a subclass that gathers as
    ``Trainer`` does: each row once, and the loss of the rows alone."""
    run_two_processes(EACH_ROW_ONCE, tmp_path)
    scored = json.loads((tmp_path / "scored.json").read_text())
    assert scored["ours"][:2] == [13, 13]
    assert scored["transformers"][:2] in ([16, 16], [13, 13])  # 16 in transformers 5.25; 13 once fixed upstream
