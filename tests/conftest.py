"""Shared fixtures: tiny configs (hidden 32, 2 layers, 4 heads, vocab 99), fixed seeds, CPU only."""

import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import modeling_mini  # noqa: E402

TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


def tiny_gpt_config(**overrides) -> modeling_mini.MiniGPTConfig:
    return modeling_mini.MiniGPTConfig(**{**TINY, **overrides})


#: The longest files (seconds on a 2-core run, 2026-12-07), run first, longest first: ``make test`` hands whole files
#: to its two workers in collection order (``--dist loadfile --no-loadscope-reorder``; xdist's default reorders them
#: by their number of tests), and one of these started last would leave the other worker idle at the end.
LONGEST_FIRST = ("test_train_distributed.py",  # 133
                 "test_flex_attention.py",  # 102
                 "test_hub.py",  # 98
                 "test_demo.py",  # 80
                 "test_benchmarks.py",  # 65
                 "test_gpt.py",  # 63
                 "test_export.py",  # 40
                 "test_train_smoke.py",  # 38
                 "test_real_data.py",  # 37
                 "test_train_resume.py")  # 35


def pytest_collection_modifyitems(config, items):
    """Put the files of :data:`LONGEST_FIRST` at the front, in that order; the rest keep theirs."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file is kept


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts seeded, single-threaded and with torch.compile's caches empty: dynamo counts recompiles of
    a function across tests, and a fullgraph test run after others that compiled the same forwards hit its limit."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch._dynamo.reset()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-data tier: {SHARED_DATA} not found (only present in the project workspace)")
    return SHARED_DATA


def padded_batch(batch=3, length=9, vocab=99, pad=0, left=True, generator_seed=0):
    """Random ids (never pad) with row 0 padded by 3 on the left (``left=False``: on the right) and row 1 by 2 on the
    right."""
    g = torch.Generator().manual_seed(generator_seed)
    ids = torch.randint(3, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    if left:
        mask[0, :3] = 0
    else:
        mask[0, -3:] = 0
    if batch > 1:
        mask[1, -2:] = 0
    ids = ids.masked_fill(mask == 0, pad)
    return ids, mask


def perturb_norms_and_biases(model: torch.nn.Module) -> torch.nn.Module:
    """Shift every norm weight and bias of a freshly built HF reference (ones and zeros there) by random amounts, so
    that a converter that drops, swaps or misnames one is caught by the parity tests. Returns it in eval mode."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name.lower() or ".ln_" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def assert_same_tensors(expected: torch.nn.Module, got: torch.nn.Module) -> None:
    """``got`` holds exactly ``expected``'s tensors: the same names, each equal bit for bit (a round trip's check)."""
    theirs, ours = expected.state_dict(), got.state_dict()
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def assert_absolute_positions_both_ways(hf, mini, back, batch: dict, real=slice(None)) -> None:
    """A transformers encoder whose config names a relative ``position_embedding_type`` it never reads: ``mini``
    (converted) and ``back`` (exported again, with absolute positions) give its logits at the ``real`` positions."""
    assert getattr(back.config, "position_embedding_type", "absolute") == "absolute"
    with torch.no_grad():
        expected = hf(**batch).logits[real]
        for model in (mini, back):
            torch.testing.assert_close(model(**batch).logits[real], expected, atol=1e-5, rtol=0)


def assert_one_training_step_matches(reference, mini, batch: dict) -> None:
    """One plain SGD step on an HF reference and on ``from_hf(reference)``; exporting ours must give theirs.

    True only if the same tensors are trainable and get the same gradients (ties included). SGD, not Adam: Adam's
    first step is about ``lr * sign(grad)``, which float noise in a near-zero gradient could flip."""
    from modeling_mini.convert import to_hf

    for model in (reference, mini):
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        model(**batch).loss.backward()
        optimizer.step()
    theirs, ours = reference.state_dict(), to_hf(mini).state_dict()
    assert ours.keys() == theirs.keys()
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], atol=1e-5, rtol=0, msg=key)


_TOKENIZER_TEXT = [
    "the cat sat on the mat and the dog sat on the log",
    "o gato subiu no telhado porque viu um passaro",
    "free entry win a prize now call to claim your reward",
    "are we still meeting for lunch tomorrow at noon",
    "transformers process every position at once with attention",
    "a model is pretrained on raw text then fine tuned on a task",
] * 4


def assert_padding_free_batch_equals_the_padded_batch(model, backward: bool = True) -> None:
    """A causal LM on a padding-free batch gives the logits, loss and gradients of the padded batch.

    ``DataCollatorWithFlattening`` joins the sequences into one row, with position ids restarting at 0 and no
    attention mask; transformers' masking finds the sequence boundaries from the position ids and builds a
    block-diagonal causal mask. Each sequence must see only itself, at its own positions; the collator's -100 on
    each sequence's first label keeps the shifted loss from predicting across a boundary.
    """
    from transformers import DataCollatorWithFlattening

    ids, mask = padded_batch(left=False)  # rows with 6, 7 and 9 real tokens
    labels = ids.masked_fill(mask == 0, -100)
    real = [row[keep].tolist() for row, keep in zip(ids, mask.bool(), strict=True)]
    rows = [{"input_ids": tokens, "labels": tokens} for tokens in real]
    packed = DataCollatorWithFlattening()(rows)  # input_ids, labels, position_ids: (1, 22)
    model.train()
    with torch.set_grad_enabled(backward):
        out_packed = model(**packed)  # use_cache is left at its default (True)
        out_padded = model(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out_packed.logits[0], out_padded.logits[mask.bool()], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_packed.loss, out_padded.loss)
    if backward:
        names, params = zip(*model.named_parameters(), strict=True)
        grads_packed = torch.autograd.grad(out_packed.loss, params, retain_graph=True)
        grads_padded = torch.autograd.grad(out_padded.loss, params)
        for name, packed_grad, padded_grad in zip(names, grads_packed, grads_padded, strict=True):
            torch.testing.assert_close(packed_grad, padded_grad, atol=1e-6, rtol=1e-4, msg=name)


def count_host_reads(fn) -> int:
    """How many times ``fn`` reads tensor contents back to Python (on a GPU, each read is a device sync)."""
    reads = 0
    originals = {name: getattr(torch.Tensor, name) for name in ("item", "tolist", "__bool__", "__int__", "__float__")}

    def counting(original):
        def read(self, *args, **kwargs):
            nonlocal reads
            reads += 1
            return original(self, *args, **kwargs)
        return read

    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, counting(original))
        fn()
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
    return reads


def generate_with_compiled_static_cache(model, inputs: torch.Tensor, **kwargs):
    """``generate`` with a static cache and its decoding step compiled ``fullgraph``, as transformers does by itself
    on a GPU (``cache_implementation="static"``); the CPU is opted in, with the ``eager`` backend to compile fast.
    Any graph break (a host read, a shape that depends on the data) raises."""
    from transformers import CompileConfig

    compile_config = CompileConfig(fullgraph=True, backend="eager")
    compile_config._compile_all_devices = True  # transformers' own switch for devices other than GPUs
    torch._dynamo.reset()
    try:
        return model.generate(inputs, cache_implementation="static", compile_config=compile_config, **kwargs)
    finally:
        torch._dynamo.reset()


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A byte-level BPE tokenizer (GPT / seq2seq style) trained in memory: no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_TOKENIZER_TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", mask_token="<mask>")


@pytest.fixture(scope="session")
def wordpiece_tokenizer():
    """A BERT-style WordPiece tokenizer ([CLS] ... [SEP], [MASK]) trained in memory: no download."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(_TOKENIZER_TEXT, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def windows_passed_to_kernels(model, ids: torch.Tensor) -> list:
    """The ``sliding_window`` each attention layer of ``model`` hands its attention function in one forward: what
    flash-attention kernels would read (they cannot run on the CPU). Recorded by a probe registered with transformers'
    ``AttentionInterface`` that otherwise runs sdpa."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    seen = []

    def probe(module, query, key, value, attention_mask, **kwargs):
        seen.append(kwargs.get("sliding_window"))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("window_probe", probe)
    before = model.config._attn_implementation
    model.set_attn_implementation("window_probe")
    try:
        with torch.no_grad():
            model(ids)
    finally:
        model.set_attn_implementation(before)
    return seen


def assert_early_exit_gives_the_greedy_tokens(model, layers, inputs, greedy, **kwargs):
    """``assistant_early_exit=1``: the model's first layer drafts (transformers lowers ``config.num_hidden_layers``
    while it drafts) and the whole model checks, so the tokens are greedy decoding's and the first layer runs more
    often than the last. Before, every layer ran on the draft's one-layer cache: an ``IndexError``, with the config
    left lowered, so every later ``generate`` failed too."""
    depth = model.config.num_hidden_layers
    calls = {0: 0, depth - 1: 0}
    hooks = [layers[i].register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1)) for i in calls]
    try:
        assert torch.equal(model.generate(inputs, assistant_early_exit=1, **kwargs), greedy)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls[0] > calls[depth - 1] > 0, calls
    assert model.config.num_hidden_layers == depth
