"""Publishing to the Hub and loading back, through the real huggingface_hub client against tests/hub_server.py.

The server runs in this process (stdlib threads). Every client step runs in a subprocess, because
``HF_ENDPOINT`` is read once when huggingface_hub is imported and conftest.py has already imported it:

* ``push``: builds each family that exists (tiny, random), publishes GPT from an output folder with
  :func:`modeling_mini.hub.publish_folder` (card written by ``write_model_card``, clutter that must not be
  sent) and the others with ``model.push_to_hub`` + ``tokenizer.push_to_hub``; pushes again unchanged;
  pushes changed GPT weights; publishes a private repo; loads every repo back *with* modeling_mini and
  without ``trust_remote_code``; saves the reference outputs as safetensors.
* ``load``: modeling_mini blocked from import, ``torch.load`` patched to fail, no token: loads every repo
  with ``trust_remote_code=True`` + ``AutoTokenizer``, compares logits and ``generate`` bit for bit, loads the
  older revision, and tries the private repo.

Both run once per upload path: Xet (the default) and ``HF_HUB_DISABLE_XET=1`` (LFS). Publishing edge cases
(chat template and sentencepiece files, stale weights after a sharded save, a push to a new branch or a PR)
each have a short ``EDGE`` script body, all run in one subprocess; the card's metadata and templates are checked
in process.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import TINY
from hub_server import HubServer
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

import modeling_mini

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_secretTOKEN_4f3a9c2e7b"  # only valid on the local server; the tests grep output for it
FAMILIES = {  # family -> (config class, model class, Auto class, tokenizer fixture)
    "gpt": ("MiniGPTConfig", "MiniGPTForCausalLM", "AutoModelForCausalLM", "bpe_tokenizer"),
    "encoder": ("MiniEncoderConfig", "MiniEncoderForMaskedLM", "AutoModelForMaskedLM", "wordpiece_tokenizer"),
    "seq2seq": ("MiniSeq2SeqConfig", "MiniSeq2SeqForConditionalGeneration", "AutoModelForSeq2SeqLM", "bpe_tokenizer"),
}
PRESENT = [f for f, (cfg, cls, _, _) in FAMILIES.items() if hasattr(modeling_mini, cfg) and hasattr(modeling_mini, cls)]

COMMON = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import torch
    WORK, MODE = Path(sys.argv[1]), sys.argv[2]
    SPEC = json.loads(sys.argv[3])
    TEXT = "the cat sat on the mat and the dog"

    def outputs(model, tok, family, tag):
        enc = tok([TEXT], return_tensors="pt")
        enc.pop("token_type_ids", None) if family != "encoder" else None
        out = {}
        with torch.no_grad():
            if family == "seq2seq":
                out[f"{family}.{tag}.logits"] = model(**enc, decoder_input_ids=enc["input_ids"][:, :4]).logits
            else:
                out[f"{family}.{tag}.logits"] = model(**enc).logits
            if family != "encoder":
                gen = model.generate(**enc, max_new_tokens=6, min_new_tokens=6, do_sample=False)
                out[f"{family}.{tag}.generate"] = gen
        return out
    """
)

PUSH = COMMON + textwrap.dedent(
    """
    from huggingface_hub import HfApi, constants
    assert constants.ENDPOINT == os.environ["HF_ENDPOINT"], constants.ENDPOINT
    import transformers
    from safetensors.torch import save_file
    import modeling_mini
    from modeling_mini.hub import publish_folder, write_model_card

    api, refs, report = HfApi(), {}, {}
    commits = lambda repo: [c.commit_id for c in api.list_repo_commits(repo)]
    for family, (cfg_name, cls_name, auto_name, tok_dir) in SPEC["families"].items():
        tok = transformers.AutoTokenizer.from_pretrained(WORK / tok_dir)
        cfg = getattr(modeling_mini, cfg_name)(**{**SPEC["tiny"], "vocab_size": len(tok)})
        torch.manual_seed(0)
        model = getattr(modeling_mini, cls_name)(cfg).eval()
        repo = f"user/{family}-{MODE}"
        refs.update(outputs(model, tok, family, "v1"))
        if family == "gpt":  # the output-folder route, with clutter that must stay local
            out = WORK / f"out-{MODE}"
            model.save_pretrained(out)
            tok.save_pretrained(out)
            write_model_card(out, config=model.config, task="causal_lm", datasets=["embedded-python-docs"],
                             metrics={"eval_loss": 3.21, "perplexity": 24.8, "eval_runtime": 1.0},
                             hyperparameters={"learning_rate": 3e-4, "max_steps": 10}, repo_id=repo)
            (out / "checkpoint-1").mkdir()
            (out / "checkpoint-1" / "model.safetensors").write_bytes(b"x")
            (out / "pytorch_model.bin").write_bytes(b"not a real pickle")
            (out / "training_args.bin").write_bytes(b"x")
            (out / "train.log").write_text("log line")
            publish_folder(out, repo, commit_message="first")
            before = commits(repo)
            report["gpt_unchanged_returns_none"] = publish_folder(out, repo, commit_message="unchanged") is None
            report["gpt_unchanged_same_commits"] = commits(repo) == before
            report["gpt_v1_sha"] = before[0]
            with torch.no_grad():
                model.model.final_norm.weight.add_(0.5) if hasattr(model.model, "final_norm") else \
                    next(model.parameters()).add_(0.5)
            model.save_pretrained(out)
            publish_folder(out, repo, commit_message="changed")
            report["gpt_changed_new_commit"] = len(commits(repo)) == len(before) + 1
            refs.update(outputs(model, tok, family, "v2"))
            publish_folder(out, f"user/private-{MODE}", private=True)
            if MODE == "xet":  # the CLI on a folder saved by hand (no card yet): it writes one, then publishes
                sys.path.insert(0, SPEC["train_dir"])
                import contextlib, io, publish
                bare, printed = WORK / f"bare-{MODE}", io.StringIO()
                model.save_pretrained(bare)
                tok.save_pretrained(bare)
                with contextlib.redirect_stdout(printed):
                    publish.main([str(bare), "--hub_model_id", f"user/cli-{MODE}", "--dataset", "tiny_shakespeare"])
                report["cli_stdout"] = printed.getvalue()
                report["branch_commit"] = publish_folder(out, f"user/cli-{MODE}", revision="dev").oid
        else:  # the push_to_hub route
            model.push_to_hub(repo)
            tok.push_to_hub(repo)
            before = commits(repo)
            model.push_to_hub(repo)
            tok.push_to_hub(repo)
            report[f"{family}_unchanged_same_commits"] = commits(repo) == before
            refs.update(outputs(model, tok, family, "v2"))  # main == v1 here; v2 is what main holds
        # Installed-package route: no trust_remote_code, the registered classes load the Hub copy.
        loaded = getattr(transformers, auto_name).from_pretrained(repo)
        report[f"{family}_installed_module"] = type(loaded).__module__
        again = outputs(loaded, transformers.AutoTokenizer.from_pretrained(repo), family, "v2")
        report[f"{family}_installed_equal"] = all(torch.equal(again[k], refs[k]) for k in again)
    save_file({k: v.contiguous() for k, v in refs.items()}, WORK / f"refs-{MODE}.safetensors")
    (WORK / f"push-{MODE}.json").write_text(json.dumps(report))
    """
)

LOAD = textwrap.dedent(
    """
    import importlib.abc, sys

    class _Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "modeling_mini":
                raise ImportError("modeling_mini is blocked in this process")

    sys.meta_path.insert(0, _Blocked())
    import torch

    def _no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load was called: loading must read safetensors only")

    torch.load = _no_unpickling
    """
) + COMMON + textwrap.dedent(
    """
    try:
        import modeling_mini  # noqa: F401
        raise SystemExit("modeling_mini is importable in the load process")
    except ImportError:
        pass
    assert "HF_TOKEN" not in os.environ
    import transformers
    from safetensors.torch import load_file
    refs, report = load_file(WORK / f"refs-{MODE}.safetensors"), {}
    for family, (cfg_name, cls_name, auto_name, tok_dir) in SPEC["families"].items():
        repo = f"user/{family}-{MODE}"
        auto = getattr(transformers, auto_name)
        model = auto.from_pretrained(repo, trust_remote_code=True)
        tok = transformers.AutoTokenizer.from_pretrained(repo)
        report[f"{family}_module"] = type(model).__module__
        got = outputs(model, tok, family, "v2")
        report[f"{family}_equal"] = all(torch.equal(got[k], refs[k]) for k in got)
        report[f"{family}_compared"] = sorted(got)
    old_sha = json.loads((WORK / f"push-{MODE}.json").read_text())["gpt_v1_sha"]
    repo = f"user/gpt-{MODE}"
    old = transformers.AutoModelForCausalLM.from_pretrained(repo, revision=old_sha, trust_remote_code=True)
    got = outputs(old, transformers.AutoTokenizer.from_pretrained(repo, revision=old_sha), "gpt", "v1")
    report["gpt_old_revision_equal"] = all(torch.equal(got[k], refs[k]) for k in got)
    report["gpt_old_differs_from_new"] = not torch.equal(refs["gpt.v1.logits"], refs["gpt.v2.logits"])
    try:
        transformers.AutoModelForCausalLM.from_pretrained(f"user/private-{MODE}", trust_remote_code=True)
        report["private_error"] = None
    except Exception as err:  # noqa: BLE001
        report["private_error"] = f"{type(err).__name__}: {err}"
    (WORK / f"load-{MODE}.json").write_text(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def hub():
    server = HubServer(tokens={TOKEN: "user"}).start()
    yield server
    server.stop()


def _env(server: HubServer, home: Path, mode: str, token: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=server.url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false",
               HF_XET_CLIENT_RECONSTRUCTION_API_VERSION="1", HF_XET_CLIENT_SHARD_API_VERSION="1",
               PYTHONPATH="", OMP_NUM_THREADS="1")
    if token:
        env["HF_TOKEN"] = TOKEN
    if mode == "lfs":
        env["HF_HUB_DISABLE_XET"] = "1"
    return env


def _run(script: str, work: Path, mode: str, env: dict, spec: dict, log: list) -> None:
    path = work / "script.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path), str(work), mode, json.dumps(spec)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    log.append(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def test_families_present():
    """Every family is present, so the round trip covers them all (a renamed class or a broken import fails here,
    not as a skip)."""
    assert sorted(PRESENT) == sorted(FAMILIES)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["xet", "lfs"])
def test_push_and_load_back(hub, mode, tmp_path, request):
    """Push every family, reload without the package (remote code) and with it: identical outputs."""
    families = PRESENT if mode == "xet" else ["gpt"]  # the LFS path is the same for every family: GPT covers it
    spec = {"families": {f: list(FAMILIES[f][:3]) + [f"tok-{FAMILIES[f][3]}"] for f in families},
            "train_dir": str(ROOT / "train"),
            "tiny": {k: v for k, v in TINY.items() if k != "vocab_size"}}
    for f in families:
        request.getfixturevalue(FAMILIES[f][3]).save_pretrained(tmp_path / f"tok-{FAMILIES[f][3]}")
    log: list[str] = []
    _run(PUSH, tmp_path, mode, _env(hub, tmp_path / "home-push", mode, token=True), spec, log)
    _run(LOAD, tmp_path, mode, _env(hub, tmp_path / "home-load", mode, token=False), spec, log)
    pushed = json.loads((tmp_path / f"push-{mode}.json").read_text())
    loaded = json.loads((tmp_path / f"load-{mode}.json").read_text())

    for family in families:
        assert loaded[f"{family}_module"].startswith("transformers_modules"), loaded  # remote code, not the package
        assert loaded[f"{family}_equal"], (family, loaded)
        assert any(k.endswith(".logits") for k in loaded[f"{family}_compared"])
        if family != "encoder":
            assert any(k.endswith(".generate") for k in loaded[f"{family}_compared"])
        assert pushed[f"{family}_installed_module"].startswith("modeling_mini"), pushed
        assert pushed[f"{family}_installed_equal"], (family, pushed)
        assert pushed[f"{family}_unchanged_same_commits"], family
    assert pushed["gpt_changed_new_commit"] and pushed["gpt_unchanged_returns_none"]
    assert loaded["gpt_old_revision_equal"] and loaded["gpt_old_differs_from_new"]

    # The private repo: refused without a token, with an error that says why.
    err = loaded["private_error"]
    assert err is not None and ("private" in err or "token" in err.lower()), err

    from huggingface_hub import ModelCard

    # What the repos hold: safetensors, config with the full auto_map, code, tokenizer, card; no pickles.
    for family in families:
        repo = hub.repos[("model", f"user/{family}-{mode}")]
        files = repo.commits[repo.refs["main"]].files
        names = set(files)
        assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))], names
        assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"} <= names
        assert f"modeling_{family}.py" in names and "configuration_mini.py" in names
        config = json.loads(hub.blobs[files["config.json"].sha256])
        assert {"AutoConfig", "AutoModel"} <= set(config["auto_map"]), config["auto_map"]
        weights = files["model.safetensors"]
        assert weights.lfs and (weights.xet_hash is not None) == (mode == "xet"), weights
    gpt = hub.repos[("model", f"user/gpt-{mode}")]
    weights = gpt.commits[gpt.refs["main"]].files["model.safetensors"]
    if mode == "xet" and importlib.util.find_spec("lz4"):  # a client with Xet off gets Xet content as plain bytes
        import hashlib
        import urllib.request

        with urllib.request.urlopen(f"{hub.cdn_url}/lfs/{weights.sha256}") as response:
            assert hashlib.sha256(response.read()).hexdigest() == weights.sha256
    assert not any(n.startswith("checkpoint-") or n.endswith(".log") for n in gpt.commits[gpt.refs["main"]].files)
    assert "generation_config.json" in gpt.commits[gpt.refs["main"]].files
    assert hub.repos[("model", f"user/private-{mode}")].private
    if mode == "xet":
        assert "pushed commit" in pushed["cli_stdout"], pushed["cli_stdout"]
        cli = hub.repos[("model", f"user/cli-{mode}")]
        cli_card = ModelCard(hub.blobs[cli.commits[cli.refs["main"]].files["README.md"].sha256].decode())
        assert cli_card.data.pipeline_tag == "text-generation" and cli_card.data.datasets == ["tiny_shakespeare"]
        main, dev = cli.commits[cli.refs["main"]], cli.commits[cli.refs["dev"]]  # a push to a new branch
        assert dev.oid == pushed["branch_commit"] and dev.parent == main.oid
        assert dev.files["README.md"].sha256 != main.files["README.md"].sha256  # the other folder's card

    # The push_to_hub route carries this package's card too, not transformers' generic template.
    for family in families:
        if family == "gpt":
            continue
        repo = hub.repos[("model", f"user/{family}-{mode}")]
        pushed_card = ModelCard(hub.blobs[repo.commits[repo.refs["main"]].files["README.md"].sha256].decode())
        assert "mini-transformers" in pushed_card.data.tags and family in pushed_card.data.tags, pushed_card.data
        assert pushed_card.data.library_name == "transformers" and "trust_remote_code=True" in pushed_card.content

    # The card parses and carries the run's metrics.
    card = ModelCard(hub.blobs[gpt.commits[gpt.refs["main"]].files["README.md"].sha256].decode())
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert "mini-transformers" in card.data.tags and "gpt" in card.data.tags
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"loss": 3.21, "perplexity": 24.8}
    assert {r.dataset_split for r in card.data.eval_results} == {"validation"}  # perplexity is exp(eval_loss)
    assert "trust_remote_code=True" in card.content

    # The token never shows up in output or in files written by the runs.
    assert not any(TOKEN in text for text in log)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert TOKEN.encode() not in path.read_bytes(), path


def _card_metrics(card) -> dict:
    return {r.metric_type: r.metric_value for r in card.data.eval_results or []}


@pytest.mark.slow
def test_pretrain_push_to_hub(hub, tmp_path, bpe_tokenizer):
    """`train/pretrain.py ... --push_to_hub --hub_model_id user/name --hub_revision dev` publishes the run in one
    step, to that branch (before, the revision was dropped and the push went to main)."""
    from huggingface_hub import ModelCard

    env, out, logs = _env(hub, tmp_path / "home", "xet", token=True), tmp_path / "out", []
    bpe_tokenizer.save_pretrained(tmp_path / "tok")
    run = [sys.executable, str(ROOT / "train" / "pretrain.py"), "--family", "gpt", "--model_config", "tiny",
           "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "2",
           "--max_train_samples", "40", "--max_eval_samples", "4", "--tokenizer_name_or_path", str(tmp_path / "tok"),
           "--max_length", "32", "--report_to", "none", "--push_to_hub", "--hub_model_id", "user/pretrained",
           "--hub_revision", "dev"]
    proc = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    logs.append(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-5000:]

    repo = hub.repos[("model", "user/pretrained")]
    assert "model.safetensors" not in repo.commits[repo.refs["main"]].files  # main untouched
    files = repo.commits[repo.refs["dev"]].files
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md",
            "modeling_gpt.py", "configuration_mini.py"} <= set(files)
    assert not [n for n in files if n.endswith((".bin", ".pt")) or n.startswith("checkpoint-")], sorted(files)
    results = json.loads((out / "all_results.json").read_text())
    card = ModelCard(hub.blobs[files["README.md"].sha256].decode())
    assert card.data.pipeline_tag == "text-generation"
    assert 'from_pretrained("user/pretrained", revision="dev", trust_remote_code=True)' in card.text, card.text
    assert _card_metrics(card)["loss"] == pytest.approx(results["eval_loss"])
    assert _card_metrics(card)["perplexity"] == pytest.approx(results["perplexity"])

    assert not any(TOKEN in text for text in logs)
    assert not [p for p in out.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]


@pytest.mark.slow
def test_finetune_from_a_hub_id_and_push_to_hub(hub, tmp_path, bpe_tokenizer):
    """`train/finetune.py --model_name_or_path user/base ... --push_to_hub` downloads the base, fine-tunes and
    publishes the classifier with a card that names its base model and its held-out scores."""
    from huggingface_hub import ModelCard

    env, out, logs = _env(hub, tmp_path / "home", "xet", token=True), tmp_path / "out", []
    base = tmp_path / "base"
    config = modeling_mini.MiniGPTConfig(**{**TINY, "vocab_size": len(bpe_tokenizer),
                                            "pad_token_id": bpe_tokenizer.pad_token_id})
    modeling_mini.MiniGPTForCausalLM(config).save_pretrained(base)
    bpe_tokenizer.save_pretrained(base)
    publish = "import sys; from modeling_mini.hub import publish_folder; publish_folder(sys.argv[1], 'user/base')"
    proc = subprocess.run([sys.executable, "-c", publish, str(base)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-5000:]
    rows = [f"{text},{'spam' if 'free' in text else 'ham'}" for text in
            ("win a free prize now", "see you at lunch", "free entry today", "call me later", "meeting moved")] * 4
    (tmp_path / "sms.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    run = [sys.executable, str(ROOT / "train" / "finetune.py"), "--model_name_or_path", "user/base",
           "--train_files", str(tmp_path / "sms.csv"), "--validation_split_percentage", "25",
           "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
           "--report_to", "none", "--push_to_hub", "--hub_model_id", "user/finetuned"]
    proc = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    logs.append(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-5000:]

    repo = hub.repos[("model", "user/finetuned")]
    files = repo.commits[repo.refs["main"]].files
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "modeling_gpt.py"} <= set(files)
    assert not [n for n in files if n.endswith((".bin", ".pt")) or n.startswith("checkpoint-")], sorted(files)
    pushed = json.loads(hub.blobs[files["config.json"].sha256].decode())
    assert pushed["architectures"] == ["MiniGPTForSequenceClassification"] and pushed["id2label"] == {"0": "spam"}
    results = json.loads((out / "all_results.json").read_text())
    raw = hub.blobs[files["README.md"].sha256].decode()
    card = ModelCard(raw)
    assert card.data.pipeline_tag == "text-classification"
    assert card.data.base_model == "user/base"
    # --train_files is a local path: not a Hub dataset, and the card never shows where it lives.
    assert not card.data.datasets and str(tmp_path) not in raw and "- sms.csv" in raw, card.data.datasets
    assert _card_metrics(card)["accuracy"] == pytest.approx(results["eval_accuracy"])
    assert not any(TOKEN in text for text in logs)


# Edge cases of publishing (GPT only, Xet upload path). Each test registers its script body with @edge_case and
# asserts on the report the body fills in. The bodies of the selected tests run one after another in a single
# subprocess (a subprocess costs seconds of imports), each in its own folder, namespace, model and tokenizer, and
# against repositories of its own; an exception in one body fails that test alone, with its traceback.
EDGE = COMMON + textwrap.dedent(
    """
    import linecache, traceback
    from huggingface_hub import HfApi
    import transformers
    import modeling_mini
    from modeling_mini.hub import publish_folder, push_default_card, write_model_card

    api = HfApi()
    files = lambda repo, rev="main": sorted(api.list_repo_files(repo, revision=rev))
    prs = lambda repo: [r.ref for r in api.list_repo_refs(repo, include_pull_requests=True).pull_requests]
    reports = {}
    for name, (body, spec) in SPEC["cases"].items():
        work = WORK / name
        work.mkdir()
        tok = transformers.AutoTokenizer.from_pretrained(WORK / "tok")
        torch.manual_seed(0)
        model = modeling_mini.MiniGPTForCausalLM(
            modeling_mini.MiniGPTConfig(**{**SPEC["tiny"], "vocab_size": len(tok)}))
        scope = dict(globals(), WORK=work, SPEC={"tiny": SPEC["tiny"], **spec}, tok=tok, model=model, out=work / "out",
                     report={})
        linecache.cache[name] = (len(body), None, body.splitlines(True), name)  # tracebacks show the body's lines
        reports[name] = {"traceback": "the script stopped in this body"}  # until it ends, as written after each
        (WORK / "reports.json").write_text(json.dumps(reports))
        try:
            exec(compile(body, name, "exec"), scope)
            reports[name] = {"report": scope["report"]}
        except BaseException:  # a CLI's SystemExit too: this body fails, the next ones run
            reports[name] = {"traceback": traceback.format_exc()}
        (WORK / "reports.json").write_text(json.dumps(reports, default=repr))
    """
)
CHAT_TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
EDGE_CASES: dict[str, tuple[str, dict]] = {}  # test name -> (script body, what it reads from SPEC besides "tiny")


def edge_case(body: str, **spec):
    """Register ``body`` as the decorated test's EDGE script; the test gets its report from the ``report`` fixture."""

    def register(test):
        EDGE_CASES[test.__name__] = (textwrap.dedent(body), spec)
        return test

    return register


@pytest.fixture(scope="module")
def edge_reports(request, hub, tmp_path_factory, bpe_tokenizer) -> dict:
    """Run the bodies of this session's selected edge tests against the local Hub with a token, in one subprocess;
    the token must not leak into what it prints."""
    selected = [item.originalname for item in request.session.items if item.path == request.path]
    cases = {name: EDGE_CASES[name] for name in selected if name in EDGE_CASES}
    work = tmp_path_factory.mktemp("edge")
    bpe_tokenizer.save_pretrained(work / "tok")
    spec = {"tiny": {k: v for k, v in TINY.items() if k != "vocab_size"}, "cases": cases}
    (work / "script.py").write_text(EDGE)
    proc = subprocess.run([sys.executable, str(work / "script.py"), str(work), "xet", json.dumps(spec)], cwd=work,
                          env=_env(hub, work / "home", "xet", token=True), capture_output=True, text=True, timeout=600)
    written = (work / "reports.json").read_text() if (work / "reports.json").is_file() else "{}"
    assert TOKEN not in proc.stdout + proc.stderr + written
    reports = json.loads(written)
    ending = f"\n(script exit status {proc.returncode}; its output ends:)\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    for name in cases:  # the body the script died in, and those it never reached, fail; the others stand
        if "report" not in reports.get(name, {}):
            reports[name] = {"traceback": reports.get(name, {}).get("traceback", "not reached") + ending}
    return reports


@pytest.fixture
def report(request, edge_reports) -> dict:
    """The report of this test's edge script."""
    result = edge_reports[request.node.originalname]
    if "traceback" in result:
        pytest.fail(f"the edge script failed:\n{result['traceback']}", pytrace=False)
    return result["report"]


@pytest.mark.slow
@edge_case("""
    model.save_pretrained(out)
    tok.chat_template = SPEC["chat_template"]
    tok.save_pretrained(out)
    (out / "source.spm").write_bytes(b"stand-in for a Marian sentencepiece model")
    publish_folder(out, "user/chat")
    report["files"] = files("user/chat")
    report["template"] = transformers.AutoTokenizer.from_pretrained("user/chat").chat_template
""", chat_template=CHAT_TEMPLATE)
def test_publish_sends_chat_template_and_sentencepiece_files(report):
    """A tokenizer's chat template and sentencepiece models are published: the Hub tokenizer keeps its template."""
    assert {"chat_template.jinja", "source.spm", "tokenizer.json"} <= set(report["files"]), report["files"]
    assert report["template"] == CHAT_TEMPLATE


@pytest.mark.slow
@edge_case("""
    model.save_pretrained(out)
    tok.save_pretrained(out)
    write_model_card(out, config=model.config, task="causal_lm", datasets=None, metrics=None,
                     hyperparameters=None, repo_id="user/shards")
    publish_folder(out, "user/shards")
    api.upload_file(path_or_fileobj=b"added on the Hub", path_in_repo="NOTES.txt", repo_id="user/shards")
    report["first"] = files("user/shards")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.25)
    model.save_pretrained(out, max_shard_size="20KB")
    commits = len(api.list_repo_commits("user/shards"))
    publish_folder(out, "user/shards", commit_message="sharded")
    report["one_commit"] = len(api.list_repo_commits("user/shards")) == commits + 1
    report["second"] = files("user/shards")
    loaded = transformers.AutoModelForCausalLM.from_pretrained("user/shards").state_dict()
    report["equal"] = all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
""")
def test_publish_deletes_stale_weights(report):
    """A sharded save published after a single-file one: the old model.safetensors is deleted in the same commit
    (transformers would prefer it), so the Hub model has the new weights; the card and hand-added files stay."""
    assert "model.safetensors" in report["first"], report["first"]
    second = set(report["second"])
    assert "model.safetensors" not in second and "model.safetensors.index.json" in second, second
    assert len([f for f in second if f.endswith(".safetensors")]) > 1, second
    assert {"README.md", "NOTES.txt", "config.json", "tokenizer.json", ".gitattributes"} <= second, second
    assert report["one_commit"] and report["equal"], report


@pytest.mark.slow
@edge_case("""
    model.push_to_hub("user/branch", revision="dev")
    report["main"], report["dev"] = files("user/branch"), files("user/branch", "dev")
    card = api.hf_hub_download("user/branch", "README.md", revision="dev")
    report["dev_card_ours"] = "mini-transformers" in open(card).read()
    snippet = 'from_pretrained("user/branch", revision="dev", trust_remote_code=True)'
    report["dev_card_loads_dev"] = snippet in open(card).read()
    readme = lambda repo, rev: open(api.hf_hub_download(repo, "README.md", revision=rev)).read()
    model.push_to_hub("user/carded")  # main has our card: a new branch starts from it
    model.push_to_hub("user/carded", revision="dev")
    report["from_main_card"] = readme("user/carded", "dev")
    with torch.no_grad():
        next(model.parameters()).add_(0.1)  # new weights: the push opens a PR
    pr = model.push_to_hub("user/carded", revision="dev2", create_pr=True).pr_revision
    report["pr_card"] = readme("user/carded", pr)
    api.create_repo("user/pr-direct")
    report["direct"] = push_default_card(model, "user/pr-direct", create_pr=True)
    report["direct_main"] = files("user/pr-direct")
    report["direct_refs"] = prs("user/pr-direct")
""")
def test_push_to_hub_on_a_new_branch(report):
    """`model.push_to_hub(repo, revision="dev")` creates the branch (the card upload used to hit a missing branch)
    and leaves main alone; push_default_card with create_pr commits nothing."""
    assert report["main"] == [".gitattributes"], report
    assert {"model.safetensors", "config.json", "README.md"} <= set(report["dev"]), report
    assert report["dev_card_ours"], "transformers' generic card replaced ours on the branch"
    assert report["dev_card_loads_dev"], "the branch's card loads main's model"
    assert 'from_pretrained("user/carded", revision="dev", trust_remote_code=True)' in report["from_main_card"]
    assert 'from_pretrained("user/carded", revision="dev2", trust_remote_code=True)' in report["pr_card"]
    assert report["direct"] is False and report["direct_main"] == [".gitattributes"] and not report["direct_refs"]


@pytest.mark.slow
@edge_case("""
    model.push_to_hub("user/pr", create_pr=True)
    report["main"] = files("user/pr")
    report["prs"] = prs("user/pr")
    report["pr"] = files("user/pr", report["prs"][0]) if report["prs"] else []
    card = open(api.hf_hub_download("user/pr", "README.md", revision="refs/pr/1")).read()
    report["pr_card_ours"] = "mini-transformers" in card and "pipeline_tag: text-generation" in card
    api.create_repo("user/pr-card")
    api.upload_file(path_or_fileobj=b"---\\nlicense: mit\\n---\\nmine\\n", path_in_repo="README.md",
                    repo_id="user/pr-card")
    model.push_to_hub("user/pr-card", create_pr=True)
    report["kept"] = open(api.hf_hub_download("user/pr-card", "README.md", revision="refs/pr/1")).read()
    model.push_to_hub("user/pr-card", revision="dev", create_pr=True)  # a new branch: made from main, its card
    report["kept_on_new_branch"] = open(api.hf_hub_download("user/pr-card", "README.md",
                                                            revision="refs/pr/2")).read()
""")
def test_push_to_hub_create_pr_leaves_main_untouched(report):
    """`model.push_to_hub(repo, create_pr=True)` puts everything, card included, into the pull request; main gets
    no commit. The PR's card is this package's (transformers' template went in first); a push to a repository whose
    main has a card leaves that card as it is."""
    assert report["main"] == [".gitattributes"], report
    assert report["prs"] == ["refs/pr/1"] and {"model.safetensors", "README.md"} <= set(report["pr"]), report
    assert report["pr_card_ours"], "transformers' generic card is the pull request's"
    for kept in (report["kept"], report["kept_on_new_branch"]):
        assert "mine" in kept and "mini-transformers" not in kept, kept


def _weight_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "safetensors" in p.name)


def test_save_pretrained_into_a_file_path_logs_and_saves_nothing(tmp_path):
    """transformers logs "should be a directory, not a file" and returns; the layout clean-up after it must not fail
    on the file (it raised NotADirectoryError)."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(**TINY)).save_pretrained(path)
    assert path.read_text() == "not a folder"


def test_save_pretrained_removes_the_other_layouts_weights(tmp_path):
    """A sharded save into a folder that holds a single-file save deletes the old model.safetensors (from_pretrained
    would load it instead of the new shards), and the reverse deletes the old index and shards; files that are no
    weights, and another variant's weights, stay."""
    model = modeling_mini.MiniGPTForCausalLM(_mini_config("gpt"))
    (tmp_path / "model-notes.txt").write_text("not weights")
    model.save_pretrained(tmp_path, variant="fp16")
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.25)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    files = _weight_files(tmp_path)
    shards = set(json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"].values())
    assert set(files) == {"model.safetensors.index.json", "model.fp16.safetensors", *shards}, files
    loaded = modeling_mini.MiniGPTForCausalLM.from_pretrained(tmp_path).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    model.save_pretrained(tmp_path, max_shard_size="40KB")  # split differently: no shard of the old split is left
    new_shards = set(json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"].values())
    assert set(_weight_files(tmp_path)) == {"model.safetensors.index.json", "model.fp16.safetensors", *new_shards}
    model.save_pretrained(tmp_path)
    assert _weight_files(tmp_path) == ["model.fp16.safetensors", "model.safetensors"]
    assert (tmp_path / "model-notes.txt").is_file()


def test_publish_refuses_a_folder_with_both_weight_layouts(tmp_path):
    """A folder that holds model.safetensors beside model.safetensors.index.json (saved by other code) is refused:
    published, the Hub would serve whichever transformers prefers, the single file."""
    from modeling_mini.hub import check_publishable

    model = modeling_mini.MiniGPTForCausalLM(_mini_config("gpt"))
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    single = tmp_path / "single"
    model.save_pretrained(single)
    (single / "model.safetensors").rename(tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="both model.safetensors and model.safetensors.index.json"):
        check_publishable(tmp_path)


@pytest.mark.slow
@edge_case("""
    model.save_pretrained(out, max_shard_size="20KB")
    publish_folder(out, "user/keep")
    tok.push_to_hub("user/keep")
    api.upload_file(path_or_fileobj=b"added on the Hub", path_in_repo="NOTES.md", repo_id="user/keep")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    model.save_pretrained(out)
    publish_folder(out, "user/keep", commit_message="single file")
    report["files"] = files("user/keep")
    loaded = transformers.AutoModelForCausalLM.from_pretrained("user/keep").state_dict()
    report["equal"] = all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    report["tokenizer"] = len(transformers.AutoTokenizer.from_pretrained("user/keep")) == len(tok)
""")
def test_publish_keeps_repo_files_the_folder_never_had(report):
    """publish_folder of a model-only folder keeps a tokenizer pushed on its own and a file added on the Hub; it
    deletes only weights the folder's supersede (here the old index and shards after a single-file save)."""
    names = set(report["files"])
    assert {"tokenizer.json", "tokenizer_config.json", "NOTES.md", "model.safetensors"} <= names, names
    assert not [n for n in names if n.startswith("model-") or n.endswith(".index.json")], names
    assert report["equal"] and report["tokenizer"], report


@pytest.mark.slow
@edge_case("""
    readme = lambda repo, rev: open(api.hf_hub_download(repo, "README.md", revision=rev)).read()
    model.push_to_hub("user/twice", revision="dev")
    with torch.no_grad():
        next(model.parameters()).add_(0.1)
    model.push_to_hub("user/twice", revision="dev")
    report["again"] = readme("user/twice", "dev")
    with torch.no_grad():
        next(model.parameters()).add_(0.1)  # new weights: the push opens a PR whatever its card
    pr = model.push_to_hub("user/twice", revision="dev", create_pr=True).pr_revision
    report["pr"] = readme("user/twice", pr)
    api.create_branch("user/twice", branch="mine")
    api.upload_file(path_or_fileobj=b"---\\nlicense: mit\\n---\\nmine\\n", path_in_repo="README.md",
                    repo_id="user/twice", revision="mine")
    model.push_to_hub("user/twice", revision="mine")
    report["mine"] = readme("user/twice", "mine")
    report["main"] = files("user/twice")
""")
def test_push_to_hub_again_to_a_branch_or_a_pr_keeps_the_card(report):
    """A second push to a branch, or a pull request into it, ends with the branch's card (ours, or one its owner
    wrote), not transformers' template: transformers re-uploads main's card, and main has none here."""
    for name in ("again", "pr"):
        assert "mini-transformers" in report[name] and "pipeline_tag: text-generation" in report[name], report[name]
    assert "mine" in report["mine"] and "mini-transformers" not in report["mine"], report["mine"]
    assert report["main"] == [".gitattributes"], report["main"]


@pytest.mark.slow
@edge_case("""
    sys.path.insert(0, SPEC["train_dir"])
    import publish
    readme = lambda repo: open(api.hf_hub_download(repo, "README.md")).read()
    run = WORK / "run-out"
    model.save_pretrained(run)
    write_model_card(run, config=model.config, task="causal_lm", datasets=["tiny_shakespeare"],
                     metrics={"eval_loss": 2.0}, hyperparameters={"learning_rate": 0.001}, repo_id=None)
    publish.main([str(run), "--hub_model_id", "user/real-name"])
    report["card"] = readme("user/real-name")
    write_model_card(run, config=model.config, task="causal_lm", datasets=None, metrics=None,
                     hyperparameters=None, repo_id="bare-run")  # as a run given --hub_model_id bare-run writes it
    from modeling_mini.hub import publish_folder
    publish_folder(run, "bare-run")  # what such a run's finish_run calls
    report["bare"] = readme("user/bare-run")
    (run / "README.md").write_text("my own notes: from_pretrained('<user>/run-out')\\n")
    publish.main([str(run), "--hub_model_id", "user/other-name"])
    report["foreign"] = readme("user/other-name")
""", train_dir=str(ROOT / "train"))
def test_publish_cli_points_a_run_card_at_the_target_repo(report):
    """A run without --push_to_hub writes its card for `<user>/<folder>`; train/publish.py publishes it with the
    target id in the snippets and the name, its metrics kept. A README this package did not write is sent as is."""
    from huggingface_hub import ModelCard

    card = ModelCard(report["card"])
    assert "<user>" not in report["card"] and "run-out" not in report["card"], report["card"]
    assert 'AutoModelForCausalLM.from_pretrained("user/real-name", trust_remote_code=True)' in report["card"]
    assert "\n# real-name\n" in report["card"] and card.data.model_name == "real-name"
    assert _card_metrics(card) == {"loss": 2.0} and "| learning_rate | 0.001 |" in report["card"]
    assert report["foreign"] == "my own notes: from_pretrained('<user>/run-out')\n"
    # a card written for the bare name loads the full id the repository got (it said from_pretrained("bare-run"))
    assert 'from_pretrained("user/bare-run", trust_remote_code=True)' in report["bare"], report["bare"]


def test_publishing_leaves_a_new_repositorys_visibility_to_the_account(monkeypatch, tmp_path):
    """Without --private the repository is created with `private=None`, which huggingface_hub leaves to the
    account's or organisation's default; `False` (sent before) made it public even where an organisation makes new
    repositories private."""
    import huggingface_hub

    from modeling_mini.hub import publish_folder

    seen = []

    def create_repo(self, repo_id, *, private=None, **kwargs):
        seen.append(private)
        raise RuntimeError("stop here")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr("modeling_mini.hub.check_publishable", lambda folder: [])
    with pytest.raises(RuntimeError, match="stop here"):
        publish_folder(tmp_path, "user/name")
    monkeypatch.syspath_prepend(str(ROOT / "train"))
    import common
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), push_to_hub=True, hub_model_id="user/name", use_cpu=True)
    assert seen == [None] and common.take_push_settings(args)["private"] is None


def test_held_out_figures_only_and_every_tokenizer_file():
    """`eval_model_preparation_time` (transformers adds it to an evaluation run alone) is bookkeeping, not a result;
    Marian's second vocabulary (`target_vocab.json`, with `separate_vocabs`) is published with the tokenizer."""
    from modeling_mini.hub import _is_result, _publishable

    assert not _is_result("eval_model_preparation_time") and _is_result("eval_accuracy")
    assert _publishable("target_vocab.json") and _publishable("vocab.json")


@pytest.mark.slow
@edge_case("""
    model.save_pretrained(out)
    report["commit"] = publish_folder(out, "bare-name") is not None
    report["files"] = files("user/bare-name")
    api.create_repo("user/bare-pr")
    api.upload_file(path_or_fileobj=b"---\\nlicense: mit\\n---\\nmine\\n", path_in_repo="README.md",
                    repo_id="user/bare-pr")
    model.push_to_hub("bare-pr", create_pr=True)
    report["pr_card"] = open(api.hf_hub_download("user/bare-pr", "README.md", revision="refs/pr/1")).read()
""")
def test_publish_and_push_to_a_repo_name_without_namespace(report):
    """`publish_folder(out, "name")` and `push_to_hub("name", create_pr=True)` work on the token's user/name (the
    full id create_repo returns): the publish used to fail on the bare name, and the PR lost the repo's own card."""
    assert report["commit"] and {"model.safetensors", "config.json"} <= set(report["files"]), report
    assert "mine" in report["pr_card"] and "mini-transformers" not in report["pr_card"], report["pr_card"]


@pytest.mark.slow
@edge_case("""
    model.push_to_hub("user/push-shards")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.25)
    model.push_to_hub("user/push-shards", max_shard_size="20KB")
    report["sharded"] = files("user/push-shards")
    loaded = transformers.AutoModelForCausalLM.from_pretrained("user/push-shards").state_dict()
    report["equal"] = all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    model.push_to_hub("user/push-shards")
    report["single"] = files("user/push-shards")
""")
def test_push_to_hub_with_shards_deletes_the_old_single_file(report):
    """`push_to_hub(max_shard_size=...)` after a single-file push deletes the old model.safetensors (transformers
    only adds files, and from_pretrained preferred the stale file); the reverse deletes the old index and shards."""
    sharded = set(report["sharded"])
    assert "model.safetensors" not in sharded and "model.safetensors.index.json" in sharded, sharded
    assert report["equal"], report
    assert [n for n in report["single"] if "safetensors" in n] == ["model.safetensors"], report["single"]


def test_hub_token_is_not_kept_in_training_arguments(tmp_path, monkeypatch):
    """A token given as --hub_token must not survive in the TrainingArguments the Trainer pickles to disk."""
    monkeypatch.syspath_prepend(str(ROOT / "train"))
    import common
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), push_to_hub=True, hub_model_id="user/x", hub_token=TOKEN,
                             report_to="none")
    push = common.take_push_settings(args)
    assert push["token"] == TOKEN and not args.push_to_hub
    assert args.hub_token is None


def test_a_private_push_to_an_existing_public_repository_is_refused_before_training(tmp_path, monkeypatch):
    """``--hub_private_repo true`` for a repository that exists and is public was refused by the push at the end of
    the run, after the training; it is refused when the push settings are read, before any data."""
    import huggingface_hub

    monkeypatch.syspath_prepend(str(ROOT / "train"))
    import common
    from transformers import TrainingArguments

    asked = []
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", lambda self, repo_id, **kwargs: asked.append(
        repo_id) or type("Info", (), {"private": False})())
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", lambda self, **kwargs: {"name": "user"})
    for given in ("user/public", "public"):  # a bare name is the token's user's, as publish_folder creates it
        args = TrainingArguments(output_dir=str(tmp_path), push_to_hub=True, hub_model_id=given,
                                 hub_private_repo=True, report_to="none")
        with pytest.raises(ValueError, match="'user/public' exists and is public"):
            common.take_push_settings(args)
    assert asked == ["user/public", "user/public"]


def test_only_the_saving_process_checks_a_private_push(tmp_path, monkeypatch):
    """save_pretrained(push_to_hub=True, private=True) checks the repository's visibility on the process that saves
    and pushes, as transformers creates it there only; another rank made a Hub call (and created the repository)."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda *a, **k: pytest.fail("no Hub call here"))
    model = modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(**TINY))
    model.save_pretrained(tmp_path / "rank1", push_to_hub=True, private=True, is_main_process=False)


def _mini_config(family: str):
    return getattr(modeling_mini, FAMILIES[family][0])(**TINY)


@pytest.mark.parametrize("use_fallback", [False, True])
def test_model_card_metadata_and_prose(tmp_path, use_fallback):
    """Both templates (repo file and the embedded fallback of an installed wheel) give a valid, complete card."""
    from huggingface_hub import ModelCard

    from modeling_mini import hub as hub_module

    template = None
    if use_fallback:
        template = tmp_path / "fallback.md"
        template.write_text(hub_module._FALLBACK_TEMPLATE)
    path = hub_module.write_model_card(
        tmp_path / "run", config=_mini_config("gpt"), task="causal_lm", datasets=["tiny_shakespeare"],
        metrics={"eval_loss": 2.5, "perplexity": 12.18, "train_loss": 3.0, "eval_runtime": 4.0, "epoch": 1.0},
        hyperparameters={"learning_rate": 1e-3}, base_model="user/base", repo_id="user/my-gpt", template=template)
    text = path.read_text()
    assert path.name == "README.md" and not re.search(r"\$\{?[a-z_]+", text), "unfilled placeholder"
    card = ModelCard(text)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert card.data.license == "apache-2.0" and card.data.datasets == ["tiny_shakespeare"]
    assert {"mini-transformers", "gpt"} <= set(card.data.tags) and card.data.base_model == "user/base"
    assert _card_metrics(card) == {"loss": 2.5, "perplexity": 12.18}  # held-out scores only
    assert 'from_pretrained("user/my-gpt", trust_remote_code=True)' in text or "trust_remote_code=True" in text
    assert "import modeling_mini" in text and "AutoModelForCausalLM" in text and "1e-3" not in text
    assert 'AutoTokenizer.from_pretrained("user/my-gpt", trust_remote_code=True)' in text
    assert "limitations" in text.lower() and "0.001" in text
    if not use_fallback:
        assert "| attention | causal |" in text


@pytest.mark.parametrize("use_fallback", [False, True])
def test_a_card_for_a_branch_loads_from_that_branch(tmp_path, use_fallback):
    """A card published to a branch other than main names it in every loading snippet: without it the snippets load
    main's model (or none). Publishing the folder again elsewhere moves the snippets (retarget_card); main and a pull
    request get none. Before, no snippet named a revision."""
    from modeling_mini import hub as hub_module

    template = None
    if use_fallback:
        template = tmp_path / "fallback.md"
        template.write_text(hub_module._FALLBACK_TEMPLATE)
    path = hub_module.write_model_card(tmp_path / "run", config=_mini_config("gpt"), task="causal_lm", datasets=None,
                                       metrics=None, hyperparameters=None, repo_id="user/my-gpt", revision="dev",
                                       template=template)
    snippets = lambda: re.findall(r"from_pretrained\((.*)\)$", path.read_text(), flags=re.M)
    count = 2 if use_fallback else 4

    def assert_snippets(*allowed):
        assert len(snippets()) == count and set(snippets()) <= set(allowed), snippets()

    assert_snippets('"user/my-gpt", revision="dev"', '"user/my-gpt", revision="dev", trust_remote_code=True')
    assert hub_module.retarget_card(path, "user/my-gpt", "dev") is False  # already there: unchanged
    assert hub_module.retarget_card(path, "user/other", "v2") is True
    assert_snippets('"user/other", revision="v2"', '"user/other", revision="v2", trust_remote_code=True')
    assert hub_module.retarget_card(path, "user/other", 'odd"name') is True  # quoted as a Python string
    odd = '"user/other", revision="odd\\"name"'
    assert_snippets(odd, odd + ", trust_remote_code=True")
    assert hub_module.retarget_card(path, "user/other", 'odd"name') is False
    for revision in ("main", None, "refs/pr/3"):
        hub_module.retarget_card(path, "user/other", revision)
        assert_snippets('"user/other"', '"user/other", trust_remote_code=True')
    assert hub_module.retarget_card(path, "user/other", None) is False
    main_card = hub_module.write_model_card(tmp_path / "main", config=_mini_config("gpt"), task="causal_lm",
                                            datasets=None, metrics=None, hyperparameters=None, repo_id="user/my-gpt",
                                            revision="main", template=template)
    assert "revision=" not in main_card.read_text()


def test_model_card_inherits_the_base_models_licence(tmp_path):
    """A fine-tuned model keeps its base's licence (read from the base's card), not the apache-2.0 default; an
    explicit ``license`` wins; a base with no readable card (no README, or a Hub id offline) leaves the default."""
    from huggingface_hub import ModelCard

    from modeling_mini.hub import write_model_card

    def card_of(name, base, **extra):
        path = write_model_card(tmp_path / name, config=_mini_config("gpt"), task="causal_lm", datasets=None,
                                metrics=None, hyperparameters=None, base_model=base, **extra)
        return ModelCard(path.read_text()).data

    mit, custom, bare = tmp_path / "mit-base", tmp_path / "custom-base", tmp_path / "bare-base"
    bare.mkdir()
    mit.mkdir()
    (mit / "README.md").write_text("---\nlicense: mit\n---\n# a GPT-2\n")
    custom.mkdir()
    (custom / "README.md").write_text("---\nlicense: other\nlicense_name: acme-research\n"
                                      "license_link: https://example.com/licence\n---\n")
    assert card_of("a", str(mit)).license == "mit"
    data = card_of("b", str(custom))
    assert (data.license, data.license_name, data.license_link) == ("other", "acme-research",
                                                                     "https://example.com/licence")
    assert card_of("c", str(mit), license="cc-by-4.0").license == "cc-by-4.0"
    data = card_of("g", None, license="other", license_name="mine", license_link="https://example.com/mine")
    assert (data.license, data.license_name, data.license_link) == ("other", "mine", "https://example.com/mine")
    assert card_of("d", str(bare)).license == "apache-2.0"
    assert card_of("e", "user/not-reachable-offline").license == "apache-2.0"
    assert card_of("f", None).license == "apache-2.0"
    assert card_of("a", str(mit)).base_model is None  # a local path stays out of the metadata


def test_model_card_reads_a_gated_base_card_with_the_token(tmp_path, monkeypatch):
    """A private or gated base's card needs the token: write_model_card passes it on and keeps it out of the card."""
    from huggingface_hub import ModelCard

    from modeling_mini.hub import write_model_card

    seen = {}

    def load(repo_id_or_path, repo_type=None, token=None, ignore_metadata_errors=False):
        seen.update(repo=repo_id_or_path, token=token)
        return ModelCard("---\nlicense: llama3\n---\n")

    monkeypatch.setattr(ModelCard, "load", load)
    path = write_model_card(tmp_path, config=_mini_config("gpt"), task="causal_lm", datasets=None, metrics=None,
                            hyperparameters=None, base_model="meta/gated-base", token="hf_secret_value")
    assert seen == {"repo": "meta/gated-base", "token": "hf_secret_value"}
    text = path.read_text()
    assert ModelCard(text).data.license == "llama3" and "hf_secret_value" not in text


def test_a_relative_licence_link_of_a_hub_base_points_at_the_base_repository(tmp_path, monkeypatch):
    """``license_link: LICENSE`` names the base repository's file; the derived repository has none, so the link would
    be broken: it becomes the base's file URL. A full URL stays as it is."""
    from huggingface_hub import ModelCard

    from modeling_mini.hub import base_model_license

    links = iter(["LICENSE", "./LICENSE.md", ".github/LICENSE", "https://example.com/terms", "/acme/base/x", "#terms"])
    monkeypatch.setattr(ModelCard, "load", lambda *a, **k: ModelCard(
        f"---\nlicense: other\nlicense_name: acme\nlicense_link: \"{next(links)}\"\n---\n"))
    assert base_model_license("acme/base")["license_link"] == "https://huggingface.co/acme/base/blob/main/LICENSE"
    assert base_model_license("acme/base")["license_link"] == "https://huggingface.co/acme/base/blob/main/LICENSE.md"
    assert base_model_license("acme/base")["license_link"] == ("https://huggingface.co/acme/base/blob/main/"
                                                               ".github/LICENSE")  # a folder name, not a "./"
    for kept in ("https://example.com/terms", "/acme/base/x", "#terms"):  # a URL, a site path, an anchor
        assert base_model_license("acme/base")["license_link"] == kept


@pytest.mark.parametrize("family", ["gpt", "encoder", "seq2seq"])
def test_model_card_prose_fits_the_family_the_head_and_the_provenance(tmp_path, family):
    """"An **Encoder** Transformer", not "A Encoder"; only the generative heads' cards mention a generation config
    (only they save one); a card written without a run (``push_to_hub``'s) claims no training: a converted model's
    says where its weights came from, any other's that nothing was recorded. Before, every card said the model was
    trained on a small corpus and, without a base, "trained from scratch"."""
    from modeling_mini import hub as hub_module

    config = _mini_config(family)
    run = hub_module.write_model_card(tmp_path / "run", config=config, task="sequence-classification",
                                      datasets=["data.jsonl"], metrics={"eval_accuracy": 0.9},
                                      hyperparameters={"learning_rate": 1e-3}).read_text()
    title = {"gpt": "A **GPT**", "encoder": "An **Encoder**", "seq2seq": "A **Seq2seq**"}[family]
    prose = {"gpt": "a GPT", "encoder": "an encoder", "seq2seq": "a seq2seq"}[family]
    assert f"{title} Transformer" in run and f"how {prose} Transformer is" in " ".join(run.split())
    assert "generation config" not in run and "trained for **sequence classification**" in run
    assert "small corpus" in run and "none (trained from scratch)" in run
    tuned = hub_module.write_model_card(tmp_path / "tuned", config=config, task="sequence-classification",
                                        datasets=["data.jsonl"], metrics=None, hyperparameters={"max_steps": 2},
                                        base_model=str(tmp_path / "big-base")).read_text()
    assert "fine-tuned from big-base, whose abilities, limitations and biases it keeps" in tuned
    assert "small corpus" not in tuned
    head = {"gpt": modeling_mini.MiniGPTForCausalLM, "encoder": modeling_mini.MiniEncoderForMaskedLM,
            "seq2seq": modeling_mini.MiniSeq2SeqForConditionalGeneration}[family](config)
    bare = hub_module.default_card(head, tmp_path / "bare", "user/bare").read_text()
    assert ("generation config" in bare) == (family != "encoder")
    assert "trained" not in bare.split("## Model")[0] and "none recorded" in bare and "small corpus" not in bare
    head.config.converted_from = str(tmp_path / "source-checkpoint")
    converted = hub_module.default_card(head, tmp_path / "converted", "user/converted").read_text()
    assert "its weights were converted from source-checkpoint" in converted
    assert "Its weights come from source-checkpoint" in converted and "small corpus" not in converted


def test_model_card_describes_sliding_window_and_grouped_query_attention(tmp_path):
    from modeling_mini.hub import write_model_card

    config = modeling_mini.MiniGPTConfig(**{**TINY, "num_hidden_layers": 3}, num_key_value_heads=2, sliding_window=8,
                                         layer_types=["sliding_attention", "sliding_attention", "full_attention"])
    text = write_model_card(tmp_path, config=config, task="causal_lm", datasets=None, metrics=None,
                            hyperparameters=None).read_text()
    assert ("| attention | causal, sliding window of 8 tokens on 2 of 3 layers, 2 key/value heads (grouped-query) |"
            in text)
    config.qk_norm, config.attention_softcap = True, 50.0
    text = write_model_card(tmp_path, config=config, task="causal_lm", datasets=None, metrics=None,
                            hyperparameters=None).read_text()
    assert "(grouped-query), query-key norm, scores soft-capped at 50.0 |" in text
    encoder = modeling_mini.MiniEncoderConfig(**TINY, position_embedding_type="rotary", sliding_window=64,
                                              layer_types=["full_attention", "sliding_attention"])
    text = write_model_card(tmp_path, config=encoder, task="masked_lm", datasets=None, metrics=None,
                            hyperparameters=None).read_text()
    assert "| attention | bidirectional, sliding window of 64 tokens either side on 1 of 2 layers |" in text
    assert "| blocks | sequential: attention, then feed-forward |" in text


def test_model_card_describes_parallel_blocks(tmp_path):
    from modeling_mini.hub import write_model_card

    config = modeling_mini.MiniGPTConfig(**TINY, position_embedding_type="rotary", parallel_residual=True)
    text = write_model_card(tmp_path, config=config, task="causal_lm", datasets=None, metrics=None,
                            hyperparameters=None).read_text()
    assert "| blocks | parallel: attention and feed-forward read the same input, each through a norm of its own" in text
    config.parallel_shared_norm = True
    text = write_model_card(tmp_path, config=config, task="causal_lm", datasets=None, metrics=None,
                            hyperparameters=None).read_text()
    assert "| blocks | parallel: attention and feed-forward read the same normalised input (Phi) |" in text


def test_model_card_family_and_bad_input(tmp_path):
    from huggingface_hub import ModelCard

    from modeling_mini.hub import write_model_card

    if "encoder" in PRESENT:
        card = ModelCard(write_model_card(tmp_path, config=_mini_config("encoder"), task="mlm", datasets=None,
                                          metrics=None, hyperparameters=None).read_text())
        assert card.data.pipeline_tag == "fill-mask" and "encoder" in card.data.tags
    with pytest.raises(ValueError, match="task='poetry'.*allowed values"):
        write_model_card(tmp_path, config=_mini_config("gpt"), task="poetry", datasets=None, metrics=None,
                         hyperparameters=None)
    with pytest.raises(ValueError, match="model_type='gpt2'.*allowed values"):
        write_model_card(tmp_path, config={"model_type": "gpt2"}, task="causal_lm", datasets=None, metrics=None,
                         hyperparameters=None)


def test_publish_refuses_folders_without_safetensors_or_auto_map(tmp_path):
    """Nothing is uploaded from a folder with only pickled weights, or without remote code."""
    from modeling_mini.hub import check_publishable

    with pytest.raises(ValueError, match="no config.json"):
        check_publishable(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mini_gpt"}))
    with pytest.raises(ValueError, match="auto_map"):
        check_publishable(tmp_path)
    modeling_mini.MiniGPTForCausalLM(_mini_config("gpt")).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="no \\*.safetensors"):
        check_publishable(tmp_path)
    (tmp_path / "pytorch_model.bin").rename(tmp_path / "model.safetensors")
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "optimizer.pt").write_bytes(b"x")
    files = check_publishable(tmp_path)
    assert "model.safetensors" in files and "modeling_gpt.py" in files and "config.json" in files
    assert not [f for f in files if "checkpoint" in f or f.endswith((".pt", ".bin"))]


def test_publish_sends_tokenizer_extras(tmp_path):
    """Chat templates and sentencepiece models belong to the tokenizer: check_publishable lists them for upload."""
    from modeling_mini.hub import check_publishable

    modeling_mini.MiniGPTForCausalLM(_mini_config("gpt")).save_pretrained(tmp_path)
    extras = ["chat_template.jinja", "chat_template.json", "source.spm", "target.spm", "spiece.model",
              "sentencepiece.bpe.model"]
    for name in extras:
        (tmp_path / name).write_text("x")
    assert set(extras) <= set(check_publishable(tmp_path))


def test_model_card_keeps_local_paths_out_of_metadata(tmp_path):
    """`--train_files` paths are not Hub datasets: the metadata and model-index list Hub ids only, and the prose
    names local files by basename, so a home folder or project path is never published."""
    from huggingface_hub import ModelCard

    from modeling_mini.hub import is_hub_id, write_model_card

    local_dir = tmp_path / "corpus"
    local_dir.mkdir()
    datasets = ["/home/alice/private/sms.csv", "data/train.jsonl", "notes.txt", str(local_dir), "user/real-ds",
                "tiny_shakespeare", "/home/alice/a.csv, /home/alice/b.csv"]
    assert [d for d in datasets if is_hub_id(d)] == ["user/real-ds", "tiny_shakespeare"]
    text = write_model_card(tmp_path / "run", config=_mini_config("gpt"), task="causal_lm", datasets=datasets,
                            metrics={"eval_loss": 2.0}, hyperparameters=None,
                            base_model="/home/alice/models/base").read_text()
    card = ModelCard(text)
    assert card.data.datasets == ["user/real-ds", "tiny_shakespeare"] and card.data.base_model is None
    assert [r.dataset_type for r in card.data.eval_results] == ["user/real-ds"]
    assert "alice" not in text and str(tmp_path) not in text
    assert all(f"- {name}\n" in text for name in ("sms.csv", "train.jsonl", "notes.txt", "corpus", "a.csv, b.csv"))
    text = write_model_card(tmp_path / "run", config=_mini_config("gpt"), task="causal_lm",
                            datasets=["/home/alice/private/sms.csv"], metrics={"eval_loss": 2.0},
                            hyperparameters=None).read_text()
    assert "alice" not in text and ModelCard(text).data.datasets is None


def _tokenizer_calls_without_package(text: str) -> list[str]:
    """The ``AutoTokenizer.from_pretrained(...)`` lines of python code blocks that run before any
    ``import modeling_mini`` in their block: the snippets for a user without the package."""
    calls = []
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        lines = block.splitlines()
        imported = next((i for i, line in enumerate(lines) if line.startswith("import modeling_mini")), len(lines))
        calls += [line for line in lines[:imported] if "AutoTokenizer.from_pretrained(" in line]
    return calls


def test_no_package_snippets_pass_trust_remote_code():
    """Without the package, AutoTokenizer needs trust_remote_code=True too (the config's auto_map names custom
    code, and transformers 5 stops to ask): both card templates and docs/hub.md show it."""
    from modeling_mini import hub as hub_module

    texts = {"model_card.md": (ROOT / "model_card.md").read_text(), "fallback": hub_module._FALLBACK_TEMPLATE,
             "docs/hub.md": (ROOT / "docs" / "hub.md").read_text()}
    for name, text in texts.items():
        calls = _tokenizer_calls_without_package(text)
        assert calls and all("trust_remote_code=True" in call for call in calls), (name, calls)


def test_hub_docs_say_push_to_hub_uploads_the_card():
    """docs/hub.md describes what the code does: a mini model's push_to_hub uploads this package's card."""
    text = " ".join((ROOT / "docs" / "hub.md").read_text().split())
    assert "push_default_card" in text and "do not upload our model card" not in text


def test_model_card_for_multiple_choice(tmp_path):
    """A multiple-choice head gets its own task: pipeline tag multiple-choice, AutoModelForMultipleChoice."""
    from huggingface_hub import ModelCard

    from modeling_mini.hub import normalize_task, task_of_head, write_model_card

    task = task_of_head("MiniEncoderForMultipleChoice")
    assert task == "multiple-choice" == normalize_task("multiple_choice")
    text = write_model_card(tmp_path, config=_mini_config("encoder"), task=task, datasets=None, metrics=None,
                            hyperparameters=None).read_text()
    assert ModelCard(text).data.pipeline_tag == "multiple-choice"
    assert "AutoModelForMultipleChoice.from_pretrained" in text


def test_a_non_finite_metric_stays_out_of_the_model_index(tmp_path):
    """A diverged run's NaN would be written as YAML's `.nan` into model-index, which is no result the Hub takes."""
    from huggingface_hub import ModelCard

    from modeling_mini.hub import write_model_card

    text = write_model_card(tmp_path, config=_mini_config(PRESENT[0]), task="causal_lm", datasets=["user/corpus"],
                            metrics={"eval_loss": float("nan"), "eval_accuracy": 0.5}, hyperparameters=None).read_text()
    results = ModelCard(text).data.eval_results
    assert [r.metric_value for r in results] == [0.5]


def test_a_card_without_a_model_counts_its_parameters_exactly(tmp_path):
    """A card written from a config alone counts the parameters of the model it describes, built on the meta device:
    a token table narrower than the layers (OPT-350M's 512 for 1024, projected in and out), ALBERT's one shared
    block, and an encoder-decoder's two stacks with cross-attention (estimated from the decoder's depth alone, the
    count was 4x too low) are exact, and the encoder-decoder's depth reads encoder + decoder."""
    from modeling_mini.hub import _count_parameters, write_model_card

    opt = modeling_mini.MiniGPTConfig(vocab_size=50272, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                      intermediate_size=4096, token_embedding_size=512)
    albert = modeling_mini.MiniEncoderConfig(vocab_size=30000, hidden_size=768, num_hidden_layers=12,
                                             num_attention_heads=12, intermediate_size=3072, embedding_size=128,
                                             num_hidden_groups=1)
    seq2seq = modeling_mini.MiniSeq2SeqConfig(vocab_size=99, hidden_size=32, encoder_layers=6, decoder_layers=2,
                                              num_attention_heads=2, intermediate_size=64, decoder_start_token_id=1)
    for config, auto in ((opt, AutoModelForCausalLM), (albert, AutoModel), (seq2seq, AutoModelForSeq2SeqLM)):
        real = auto.from_config(config).num_parameters()
        assert _count_parameters(config.to_dict()) == real, type(config).__name__
    card = write_model_card(tmp_path, config=seq2seq.to_dict(), task="translation", datasets=None, metrics=None,
                            hyperparameters=None).read_text()
    real = AutoModelForSeq2SeqLM.from_config(seq2seq).num_parameters()
    assert f"| parameters | {real:,} |" in card and "| layers / hidden size / heads | 6 + 2 / 32 / 2 |" in card
    # output_size is derived from the config, not a field: a dict that lists it still loads
    assert modeling_mini.MiniGPTConfig(**{**opt.to_dict(), "output_size": 7}).output_size == 512


def test_card_results_keep_the_split_and_leave_out_sample_counts(tmp_path):
    """A validation and a test accuracy are two results, each with its split (they were one metric type with two
    values), and the Trainer's ``eval_samples`` count is no result."""
    from huggingface_hub import ModelCard

    from modeling_mini.hub import write_model_card

    write_model_card(tmp_path, config=modeling_mini.MiniGPTConfig(**TINY), task="sequence_classification",
                     datasets=None, metrics={"eval_accuracy": 0.9, "test_accuracy": 0.85, "eval_samples": 100},
                     hyperparameters=None, repo_id="user/splits")
    results = ModelCard.load(tmp_path / "README.md").data.eval_results
    assert sorted((r.dataset_split, r.metric_type, r.metric_value) for r in results) == [
        ("test", "accuracy", 0.85), ("validation", "accuracy", 0.9)]


@pytest.mark.slow
@edge_case("""
    model.save_pretrained(WORK / "sp", push_to_hub=True, repo_id="user/sp")
    report["card"] = open(api.hf_hub_download("user/sp", "README.md")).read()
    from peft import LoraConfig
    model.add_adapter(LoraConfig(r=4, target_modules=["qkv_proj"]))
    model.save_pretrained(WORK / "adapter", push_to_hub=True, repo_id="user/adapter")
    report["adapter"], report["adapter_folder"] = files("user/adapter"), sorted(os.listdir(WORK / "adapter"))
""")
def test_save_pretrained_with_push_to_hub_publishes_this_packages_card(report):
    """`save_pretrained(folder, push_to_hub=True)` bypasses `push_to_hub`: transformers writes its generic template
    into the folder and uploads it. The upload now carries this package's card (task, tags, loading snippet). An
    adapter saved and pushed that way sends no copy of the model's source (it is uploaded inside the save)."""
    from modeling_mini.hub import is_generic_card

    assert not is_generic_card(report["card"]), report["card"][:500]
    assert "mini-transformers" in report["card"] and 'from_pretrained("user/sp"' in report["card"]
    assert not [name for name in report["adapter"] + report["adapter_folder"] if name.endswith(".py")], report
    assert "adapter_model.safetensors" in report["adapter"], report["adapter"]


def test_a_converted_models_card_names_its_source_and_inherits_its_licence(tmp_path):
    """A model made by `convert.from_hf` remembers the checkpoint it came from: its card (from `push_to_hub`,
    `save_pretrained(push_to_hub=True)`) names it as the base model and takes its licence, where it said "trained from
    scratch" under apache-2.0 whatever licence the weights carry. A local folder is remembered in memory only
    (`converted_from_folder`): its absolute path, saved in `config.converted_from`, was published with the config;
    a Hub id is saved there."""
    from huggingface_hub import ModelCard
    from transformers import GPT2Config, GPT2LMHeadModel

    from modeling_mini.convert import from_hf
    from modeling_mini.hub import default_card

    source = tmp_path / "base-gpt"
    source.mkdir()
    (source / "README.md").write_text("---\nlicense: mit\n---\n# a base model\n")
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=99, n_embd=32, n_layer=1, n_head=4, n_positions=32))
    hf.config._name_or_path = str(source)
    mini = from_hf(hf)
    assert "converted_from" not in mini.config.to_dict() and mini.converted_from_folder == str(source)
    mini.save_pretrained(tmp_path / "saved")
    assert str(tmp_path) not in (tmp_path / "saved" / "config.json").read_text()
    text = default_card(mini, tmp_path, "user/converted").read_text()
    assert ModelCard(text).data.license == "mit" and "trained from scratch" not in text and "base-gpt" in text
    assert str(tmp_path) not in text
    hf.config._name_or_path = "acme/base-gpt"  # a Hub id: saved with the config, for the card of the saved folder
    assert from_hf(hf).config.to_dict()["converted_from"] == "acme/base-gpt"
    assert "converted_from" not in from_hf(GPT2LMHeadModel(hf.config.__class__(vocab_size=99, n_embd=32, n_layer=1,
                                                                               n_head=4))).config.to_dict()


def test_stale_files_make_the_repository_match_the_folder():
    """The repository files a publish deletes: superseded weights, config and code the folder lacks (an encoder over
    a GPT), and tokenizer files it lacks when it has a tokenizer (a removed chat template). Kept: README.md, figures,
    files it would not upload, another variant's weights, and a tokenizer pushed on its own over a model-only
    folder. Before, only superseded weights were deleted."""
    from modeling_mini.hub import stale_files

    repo = [".gitattributes", "README.md", "NOTES.txt", "loss_curve.png", "extra/tokenizer.json", "config.json",
            "generation_config.json", "configuration_mini.py", "modeling_gpt.py", "model.safetensors",
            "model.fp16.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
    model = ["config.json", "configuration_mini.py", "modeling_encoder.py", "model.safetensors"]
    assert stale_files(repo, model + ["tokenizer.json", "tokenizer_config.json"]) == [
        "chat_template.jinja", "generation_config.json", "modeling_gpt.py"]
    assert stale_files(repo, model) == ["generation_config.json", "modeling_gpt.py"]
    # only this package's own modules go: an Inference Endpoints handler or a custom pipeline added by hand stays
    assert stale_files([*repo, "handler.py", "pipeline.py"], model) == ["generation_config.json", "modeling_gpt.py"]


def test_a_base_folder_without_a_card_is_read_through_its_converted_from(tmp_path, monkeypatch):
    """A converted model saved with save_pretrained has no card; fine-tuned from (finetune.py names the folder as the
    base), its licence is its source's (`config.json`'s `converted_from`: a Hub id, or a folder an older version
    saved), where the fine-tuned card fell back to apache-2.0. A folder converted from itself ends the search."""
    from huggingface_hub import ModelCard

    from modeling_mini.hub import base_model_license, write_model_card

    def folder(name, converted_from, readme=None):
        path = tmp_path / name
        path.mkdir()
        (path / "config.json").write_text(json.dumps({"model_type": "mini_gpt", "converted_from": converted_from}))
        if readme:
            (path / "README.md").write_text(readme)
        return str(path)

    origin = folder("origin", None, readme="---\nlicense: mit\n---\n")
    card = write_model_card(tmp_path / "tuned", config=_mini_config("gpt"), task="causal_lm", datasets=None,
                            metrics=None, hyperparameters=None, base_model=folder("converted", origin))
    assert ModelCard(card.read_text()).data.license == "mit"
    # the base model's metadata too: a folder converted from a Hub checkpoint names that checkpoint
    monkeypatch.setattr(ModelCard, "load", lambda repo, **kwargs: ModelCard("---\nlicense: mit\n---\n"))
    card = write_model_card(tmp_path / "tuned-hub", config=_mini_config("gpt"), task="causal_lm", datasets=None,
                            metrics=None, hyperparameters=None,
                            base_model=folder("converted-hub", "openai-community/gpt2"))
    assert ModelCard(card.read_text()).data.base_model == "openai-community/gpt2"
    seen = []
    monkeypatch.setattr(ModelCard, "load", lambda repo, **kwargs: seen.append(repo) or ModelCard(
        "---\nlicense: other\nlicense_name: acme\nlicense_link: LICENSE\n---\n"))
    assert base_model_license(folder("from-hub", "acme/base")) == {
        "license": "other", "license_name": "acme", "license_link": "https://huggingface.co/acme/base/blob/main/LICENSE"}
    assert seen == ["acme/base"]
    assert base_model_license(folder("loop", str(tmp_path / "loop"))) == {}


def test_publish_cli_refuses_a_task_the_model_cannot_load(tmp_path, monkeypatch):
    """`--task text-generation` for an encoder backbone gave a card with `pipeline_tag: text-generation` and an
    AutoModelForCausalLM snippet that cannot load it; a task whose Auto class the config's auto_map does not name is
    refused, naming the tasks the model has, before anything is written or sent."""
    monkeypatch.syspath_prepend(str(ROOT / "train"))
    import publish

    modeling_mini.MiniEncoderModel(_mini_config("encoder")).save_pretrained(tmp_path)
    for name in ("publish_folder", "HfApi"):  # no Hub in this process: any request fails the test
        monkeypatch.setattr(publish, name, lambda *a, **k: pytest.fail("nothing may be sent"), raising=False)
    refused = r"task='text-generation' needs AutoModelForCausalLM.*\['feature-extraction'\]"
    with pytest.raises(SystemExit, match=refused):
        publish.main([str(tmp_path), "--hub_model_id", "user/bare", "--task", "text-generation"])
    assert not (tmp_path / "README.md").exists()
    from modeling_mini.hub import check_task

    config = json.loads((tmp_path / "config.json").read_text())
    assert check_task(config, "feature-extraction") == "feature-extraction"
    # auto_map names every head of the family, but a saved backbone holds no head's weights: those are refused too
    for task in ("fill-mask", "ner"):
        with pytest.raises(ValueError, match=rf"task='{task}' needs .* weights, which this saved \['MiniEncoderModel"):
            check_task(config, task)
    from modeling_mini.hub import tasks_of_config

    assert tasks_of_config({**config, "architectures": ["MiniEncoderForTokenClassification"]}) == [
        "token-classification", "feature-extraction"]


@pytest.mark.slow
@edge_case("""
    model.save_pretrained(out)
    tok.chat_template = SPEC["chat_template"]
    tok.save_pretrained(out)
    write_model_card(out, config=model.config, task="causal_lm", datasets=None, metrics=None,
                     hyperparameters=None, repo_id="user/match")
    publish_folder(out, "user/match")
    api.upload_file(path_or_fileobj=b"added on the Hub", path_in_repo="NOTES.md", repo_id="user/match")
    report["first"] = files("user/match")
    (out / "chat_template.jinja").unlink()
    commits = len(api.list_repo_commits("user/match"))
    publish_folder(out, "user/match", commit_message="no template")
    report["one_commit"] = len(api.list_repo_commits("user/match")) == commits + 1
    report["second"] = files("user/match")
    report["template"] = transformers.AutoTokenizer.from_pretrained("user/match").chat_template
    encoder = WORK / "encoder"
    config = modeling_mini.MiniEncoderConfig(**{**SPEC["tiny"], "vocab_size": len(tok)}, num_labels=2)
    modeling_mini.MiniEncoderForSequenceClassification(config).save_pretrained(encoder)
    tok.chat_template = None
    tok.save_pretrained(encoder)
    publish_folder(encoder, "user/match", commit_message="encoder")
    report["third"] = files("user/match")
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained("user/match")
    report["loaded"] = type(loaded).__name__
    publish_folder(out, "user/pushed")  # the GPT with its tokenizer, then an encoder pushed over it
    modeling_mini.MiniEncoderForSequenceClassification(config).push_to_hub("user/pushed")
    report["pushed"] = files("user/pushed")
""", chat_template=CHAT_TEMPLATE)
def test_publish_deletes_files_the_folder_no_longer_has(report):
    """publish_folder makes the repository match the folder, in one commit: a chat template removed from the folder
    leaves the Hub (the Hub tokenizer kept it), and an encoder classifier published over a GPT leaves no
    modeling_gpt.py or generation_config.json, and so does one pushed over it with push_to_hub. The card and a file
    added on the Hub stay."""
    assert {"chat_template.jinja", "modeling_gpt.py", "generation_config.json"} <= set(report["first"])
    second = set(report["second"])
    assert "chat_template.jinja" not in second and report["template"] is None and report["one_commit"], report
    assert {"README.md", "NOTES.md", "tokenizer.json", "modeling_gpt.py"} <= second, second
    third = set(report["third"])
    assert not {"modeling_gpt.py", "generation_config.json"} & third, third
    assert {"README.md", "NOTES.md", "modeling_encoder.py", "tokenizer.json", "model.safetensors"} <= third, third
    assert report["loaded"] == "MiniEncoderForSequenceClassification"
    pushed = set(report["pushed"])  # push_to_hub as well: the GPT's code goes, the tokenizer pushed before stays
    assert not {"modeling_gpt.py", "generation_config.json"} & pushed and "tokenizer.json" in pushed, pushed


@pytest.mark.slow
@edge_case("""
    sys.path.insert(0, SPEC["train_dir"])
    import publish
    from huggingface_hub import ModelCard, hf_hub_download
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel
    from modeling_mini.convert import from_hf
    from modeling_mini.hub import base_model_license
    card = lambda repo: ModelCard.load(repo).data.to_dict()
    config_of = lambda repo: json.load(open(hf_hub_download(repo, "config.json")))
    GPT2LMHeadModel(GPT2Config(vocab_size=99, n_embd=32, n_layer=1, n_head=4)).push_to_hub("user/base-gpt2")
    api.upload_file(path_or_fileobj=b"---\\nlicense: other\\nlicense_name: foo-license\\n---\\n# base\\n",
                    path_in_repo="README.md", repo_id="user/base-gpt2")
    converted = WORK / "converted"
    from_hf(transformers.AutoModelForCausalLM.from_pretrained("user/base-gpt2")).save_pretrained(converted)
    publish.main([str(converted), "--hub_model_id", "user/conv-publish"])
    report["publish"] = card("user/conv-publish")
    report["through"] = base_model_license(str(converted))
    private = WORK / "alice-private" / "bert-ckpt"
    BertForMaskedLM(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                               intermediate_size=37)).save_pretrained(private)
    (private / "README.md").write_text("---\\nlicense: mit\\n---\\n")
    mini = from_hf(BertForMaskedLM.from_pretrained(private))
    mini.push_to_hub("user/leak")
    report["pushed_config"] = config_of("user/leak")
    report["pushed_card"] = open(hf_hub_download("user/leak", "README.md")).read()
    old = WORK / "old"  # as the old from_hf saved it: the local path in config.json
    mini.config.converted_from = str(private)
    mini.save_pretrained(old)
    publish_folder(old, "user/old")
    report["old_config"] = config_of("user/old")
    report["republish"] = publish_folder(old, "user/old") is None
    report["work"] = str(WORK)
""", train_dir=str(ROOT / "train"))
def test_publish_cli_and_push_of_a_converted_model(report):
    """train/publish.py writes a converted model's card as push_to_hub does: its source (`config.converted_from`) is
    the base model and gives the licence (it said apache-2.0, no base); a folder fine-tuned from reads its licence
    through it. A model converted from a local folder publishes no path: not in the pushed config, nor in the
    config.json an older version saved (publish_folder leaves it out, and republishing makes no new commit)."""
    published = report["publish"]
    assert (published["license"], published["license_name"], published["base_model"]) == (
        "other", "foo-license", "user/base-gpt2"), published
    assert report["through"] == {"license": "other", "license_name": "foo-license"}, report["through"]
    assert "converted_from" not in report["pushed_config"] and "converted_from" not in report["old_config"]
    assert report["work"] not in report["pushed_card"] and "bert-ckpt" in report["pushed_card"]
    assert "license: mit" in report["pushed_card"] and report["republish"]


@pytest.mark.slow
@edge_case("""
    sys.path.insert(0, SPEC["train_dir"])
    import publish
    model.save_pretrained(out)
    api.create_repo("user/was-public", private=False)
    try:
        publish_folder(out, "user/was-public", private=True)
    except ValueError as error:
        report["error"] = str(error)
    try:
        publish.main([str(out), "--hub_model_id", "user/was-public", "--private"])
    except SystemExit as stop:
        report["cli"] = str(stop)
    report["files"] = files("user/was-public")
    report["readme"] = (out / "README.md").exists()
    try:
        model.push_to_hub("user/was-public", private=True)
    except ValueError as error:
        report["push"] = str(error)
    try:  # transformers' own path: save_pretrained creates the repository and uploads, past push_to_hub
        model.save_pretrained(WORK / "again", push_to_hub=True, repo_id="user/was-public", private=True)
    except ValueError as error:
        report["save"] = str(error)
    report["files"] = files("user/was-public")
    api.create_repo("user/was-private", private=True)
    report["private_ok"] = publish_folder(out, "user/was-private", private=True) is not None
""", train_dir=str(ROOT / "train"))
def test_publish_private_refuses_an_existing_public_repository(report):
    """create_repo(exist_ok=True) keeps an existing repository's visibility, so `publish.py --private` (and
    ``push_to_hub(private=True)``) uploaded to a public repository; it is refused, naming the repository and what to
    do, before anything is written or sent. An existing private repository takes the upload."""
    for message in (report.get("error", ""), report.get("cli", ""), report.get("push", ""), report.get("save", "")):
        assert "'user/was-public' exists and is public" in message and "update_repo_settings" in message, report
    assert report["files"] == [".gitattributes"] and not report["readme"] and report["private_ok"], report


def test_a_saved_config_keeps_a_hub_source_but_not_a_local_path(tmp_path, monkeypatch):
    """A folder converted before ``convert.from_hf`` stored Hub ids only has a local path in ``converted_from``; a
    model loaded from it saved (and pushed) that path again. The save leaves it out of ``config.json`` and keeps it
    on the model for this session's card; a Hub id stays in the config."""
    model = modeling_mini.MiniGPTForCausalLM(modeling_mini.MiniGPTConfig(**TINY))
    hub_id = "openai-community/gpt2"
    monkeypatch.chdir(tmp_path)  # a download of the id in the working folder (hf download --local-dir <id>) is no
    (tmp_path / hub_id).mkdir(parents=True)  # reason to drop the id from the config: judged by its shape
    for source, saved in (("/home/alice/private-project/gpt2", None), (hub_id, hub_id)):
        model.config.converted_from = source
        model.save_pretrained(tmp_path / "out")
        assert json.loads((tmp_path / "out" / "config.json").read_text()).get("converted_from") == saved
    assert model.converted_from_folder == "/home/alice/private-project/gpt2"
