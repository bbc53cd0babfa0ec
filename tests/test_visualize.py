"""modeling_mini.visualize: every picture from a tiny model into tmp_path, bad input, the CLI."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, TINY, tiny_gpt_config

pytest.importorskip("matplotlib")
import matplotlib.axes  # noqa: E402
import matplotlib.image  # noqa: E402

import modeling_mini  # noqa: E402
from modeling_mini import MiniGPTForCausalLM  # noqa: E402
from modeling_mini import visualize as viz  # noqa: E402

SENTENCE = viz.DEMO_SENTENCE


def pixels(inches: tuple[float, float]) -> tuple[int, int]:
    """(height, width) in pixels of a figure of (width, height) inches."""
    return int(inches[1] * viz.DPI), int(inches[0] * viz.DPI)


def assert_png(path, inches):
    image = matplotlib.image.imread(path)  # (H, W, channels)
    height, width = pixels(inches)
    assert abs(image.shape[0] - height) <= 1 and abs(image.shape[1] - width) <= 1, (image.shape, height, width)
    assert image[..., :3].std() > 0.05  # something was drawn


@pytest.fixture
def drawn(monkeypatch) -> list[torch.Tensor]:
    """Every array a picture passes to ``imshow``, in drawing order: what was drawn, not only that something was."""
    arrays = []
    original = matplotlib.axes.Axes.imshow

    def recording(self, values, *args, **kwargs):
        arrays.append(torch.as_tensor(values).detach().clone())
        return original(self, values, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", recording)
    return arrays


@pytest.fixture
def gpt(bpe_tokenizer):
    return MiniGPTForCausalLM(tiny_gpt_config(vocab_size=len(bpe_tokenizer), attn_implementation="eager")).eval()


def sentence_length(tokenizer) -> int:
    return len(tokenizer(SENTENCE)["input_ids"])


# ------------------------------------------------------------------------------------------------ pictures


def test_attention_grid_every_layer_and_head(tmp_path, gpt, bpe_tokenizer, drawn):
    weights, _, _ = viz.attention_maps(gpt, bpe_tokenizer, SENTENCE)
    path = viz.plot_attention(gpt, bpe_tokenizer, SENTENCE, tmp_path / "grid.png")
    n = sentence_length(bpe_tokenizer)
    assert_png(path, viz.attention_figure_size(n, n, TINY["num_hidden_layers"], TINY["num_attention_heads"]))
    assert len(drawn) == weights.shape[0] * weights.shape[1]  # row by row: layer i's heads on row i
    for panel, matrix in zip(weights.flatten(0, 1), drawn, strict=True):
        torch.testing.assert_close(matrix, panel)


def test_attention_one_layer_one_head(tmp_path, gpt, bpe_tokenizer, drawn):
    weights, _, _ = viz.attention_maps(gpt, bpe_tokenizer, SENTENCE)
    path = viz.plot_attention(gpt, bpe_tokenizer, SENTENCE, tmp_path / "one.png", layer=1, head=3)
    n = sentence_length(bpe_tokenizer)
    assert_png(path, viz.attention_figure_size(n, n, 1, 1))
    assert len(drawn) == 1
    torch.testing.assert_close(drawn[0], weights[1, 3])


def test_attention_from_one_word(tmp_path, gpt, bpe_tokenizer, drawn):
    weights, queries, keys = viz.attention_maps(gpt, bpe_tokenizer, SENTENCE)
    assert "viu" in queries and queries == keys
    assert weights.shape == (TINY["num_hidden_layers"], TINY["num_attention_heads"], len(queries), len(keys))
    path = viz.plot_attention(gpt, bpe_tokenizer, SENTENCE, tmp_path / "viu.png", query="viu")
    rows = TINY["num_hidden_layers"] * TINY["num_attention_heads"]
    assert_png(path, viz.attention_figure_size(1, len(keys), rows, 1, query_mode=True))
    # one row per (layer, head): where "viu" looks, which is its own row of each map (a causal one: zeros after it)
    (matrix,) = drawn
    torch.testing.assert_close(matrix, weights[:, :, queries.index("viu")].flatten(0, 1))
    assert matrix[:, queries.index("viu") + 1:].abs().max() == 0


def test_attention_of_an_encoder(tmp_path, wordpiece_tokenizer):
    config = modeling_mini.MiniEncoderConfig(**{**TINY, "vocab_size": len(wordpiece_tokenizer)},
                                             attn_implementation="eager")
    model = modeling_mini.MiniEncoderModel(config).eval()
    weights, queries, _ = viz.attention_maps(model, wordpiece_tokenizer, SENTENCE)
    assert weights[0, 0, 0, -1] > 0  # the first token sees the last one: bidirectional
    path = viz.plot_attention(model, wordpiece_tokenizer, SENTENCE, tmp_path / "encoder.png", layer=0)
    assert_png(path, viz.attention_figure_size(len(queries), len(queries), 1, TINY["num_attention_heads"]))


def test_cross_attention_of_an_encoder_decoder(tmp_path, bpe_tokenizer):
    config = modeling_mini.MiniSeq2SeqConfig(**{**TINY, "vocab_size": len(bpe_tokenizer)}, decoder_start_token_id=1,
                                             attn_implementation="eager")
    model = modeling_mini.MiniSeq2SeqForConditionalGeneration(config).eval()
    target = "the cat sat on the mat"
    weights, queries, keys = viz.attention_maps(model, bpe_tokenizer, SENTENCE, target_text=target)
    assert len(keys) == sentence_length(bpe_tokenizer)  # keys: the source sentence
    assert len(queries) == 1 + len(bpe_tokenizer(text_target=target)["input_ids"])  # queries: start + target
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    path = viz.plot_attention(model, bpe_tokenizer, SENTENCE, tmp_path / "cross.png", target_text=target)
    assert_png(path, viz.attention_figure_size(len(queries), len(keys), weights.shape[0], weights.shape[1]))
    with pytest.raises(ValueError, match="target_text"):
        viz.attention_maps(model, bpe_tokenizer, SENTENCE, attention="cross")


def test_positional_encoding_picture(tmp_path):
    assert_png(viz.plot_positional_encoding(tmp_path / "pe.png", num_positions=32, hidden_size=16), (12, 4.8))
    pe = viz.sinusoidal_matrix(32, 16)
    assert pe.shape == (32, 16) and pe.abs().max() <= 1


def test_masks_picture(tmp_path):
    causal, bidirectional = viz.attention_masks(5, padding=1)
    assert causal.tolist() == [[j <= min(i, 3) for j in range(5)] for i in range(5)]
    assert bidirectional.tolist() == [[j < 4 for j in range(5)] for _ in range(5)]
    sliding = viz.sliding_window_mask(5, 2, padding=1)
    assert sliding.tolist() == [[i - 2 < j <= min(i, 3) for j in range(5)] for i in range(5)]
    local = viz.sliding_window_mask(6, 1, padding=1, bidirectional=True)
    assert local.tolist() == [[abs(i - j) <= 1 and j < 5 for j in range(6)] for i in range(6)]
    path = viz.plot_masks(tmp_path / "masks.png", tokens=["a", "b", "c"], padding=1)
    assert_png(path, viz.mask_figure_size(4, 4))
    path = viz.plot_masks(tmp_path / "masks2.png", tokens=["a", "b", "c"], sliding_window=None)
    assert_png(path, viz.mask_figure_size(3, 2))


def test_normalization_picture(tmp_path):
    assert_png(viz.plot_normalization(tmp_path / "norm.png", num_tokens=20, hidden_size=8), (11, 4.6))


def test_activations_picture(tmp_path):
    assert_png(viz.plot_activations(tmp_path / "act.png"), (11, 4.2))
    with pytest.raises(ValueError, match="hidden_act"):
        viz.plot_activations(tmp_path / "bad.png", names=("relu", "tanhh"))


def write_state(folder, history):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))


def test_training_loss_picture(tmp_path):
    history = [{"step": s, "loss": 4.0 / s} for s in range(1, 20)] + [{"step": 10, "eval_loss": 0.5}]
    write_state(tmp_path / "run", history)
    assert_png(viz.plot_training_loss(tmp_path / "run", tmp_path / "loss.png"), (7, 4.2))
    # only checkpoints (e.g. an interrupted run): the latest one is read
    write_state(tmp_path / "ckpt" / "checkpoint-5", [{"step": 5, "loss": 1.0}])
    write_state(tmp_path / "ckpt" / "checkpoint-40", history)
    assert viz.read_log_history(tmp_path / "ckpt") == history


# ---------------------------------------------------------------------------------------------- bad input


def test_sentence_longer_than_the_model_allows(gpt, bpe_tokenizer):
    gpt.config.max_position_embeddings = 5
    with pytest.raises(ValueError, match="max_position_embeddings=5.*shorter"):
        viz.plot_attention(gpt, bpe_tokenizer, SENTENCE, "unused.png")


@pytest.mark.parametrize("option, message", [({"layer": 2}, r"`layer` must be in \[0, 2\)"),
                                             ({"head": 4}, r"`head` must be in \[0, 4\)"),
                                             ({"layer": -1}, r"`layer` must be in \[0, 2\)"),
                                             ({"query": "cachorro"}, "not one of the tokens")])
def test_index_or_word_out_of_range(tmp_path, gpt, bpe_tokenizer, option, message):
    with pytest.raises(ValueError, match=message):
        viz.plot_attention(gpt, bpe_tokenizer, SENTENCE, tmp_path / "x.png", **option)
    assert not (tmp_path / "x.png").exists()


def test_model_without_attention_weights(bpe_tokenizer):
    model = MiniGPTForCausalLM(tiny_gpt_config(vocab_size=len(bpe_tokenizer), attn_implementation="sdpa")).eval()
    with pytest.raises(ValueError, match='attn_implementation="eager"'):
        viz.attention_maps(model, bpe_tokenizer, SENTENCE)
    with pytest.raises(ValueError, match="`attention` must be one of 'self'"):
        model.set_attn_implementation("eager")
        viz.attention_maps(model, bpe_tokenizer, SENTENCE, attention="cross")


def test_loss_folder_without_trainer_state(tmp_path):
    with pytest.raises(ValueError, match="trainer_state.json"):
        viz.plot_training_loss(tmp_path, tmp_path / "loss.png")
    write_state(tmp_path / "run", [{"step": 1, "learning_rate": 0.1}])
    with pytest.raises(ValueError, match="logging_steps"):
        viz.plot_training_loss(tmp_path / "run", tmp_path / "loss.png")


def test_missing_matplotlib_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        viz.plot_activations("unused.png")


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_draws_from_a_saved_model(tmp_path, gpt, bpe_tokenizer, capsys):
    gpt.save_pretrained(tmp_path / "model")
    bpe_tokenizer.save_pretrained(tmp_path / "model")
    write_state(tmp_path / "model", [{"step": s, "loss": 1.0 / s} for s in range(1, 5)])
    outputs = {
        "attention": ["attention", str(tmp_path / "model"), SENTENCE, "--layer", "0", "--query", "viu"],
        "positional": ["positional", "--positions", "16", "--hidden-size", "8"],
        "masks": ["masks", "--padding", "1"],
        "activations": ["activations", "--names", "relu", "sigmoid"],
        "normalization": ["normalization"],
        "loss": ["loss", str(tmp_path / "model")],
    }
    for name, argv in outputs.items():
        assert viz.main([*argv, "-o", str(tmp_path / f"{name}.png")]) == 0
        assert matplotlib.image.imread(tmp_path / f"{name}.png").shape[0] > 100
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / f"{name}.png") for name in outputs]
    with pytest.raises(SystemExit):
        viz.main(["attention", str(tmp_path / "model"), SENTENCE, "-o", "x.png", "--attention", "sideways"])


def test_cli_module_runs_and_package_does_not_import_visualize(tmp_path):
    """`python -m modeling_mini.visualize` works, and `import modeling_mini` pulls in neither it nor matplotlib."""
    code = (
        "import runpy, sys; import modeling_mini; "
        "assert 'modeling_mini.visualize' not in sys.modules and 'matplotlib' not in sys.modules; "
        f"sys.argv = ['mini-visualize', 'masks', '-o', {str(tmp_path / 'm.png')!r}]; "
        "runpy.run_module('modeling_mini.visualize', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "m.png").is_file()
