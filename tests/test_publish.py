"""stage=publish on a tiny student that label -> train -> eval really produced: the repo folder, its
model card, and the upload against a local fake Hub (tests/fakehub.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from test_stages import write_sst2_like

from distill import artifacts
from distill.config import load_config
from distill.errors import DistillError
from distill.stages import evaluate, label, publish, train

from fakehub import FakeHub

REPO = "tiny-org/tiny-sst2"
TEXTS = ["a great movie", "i hate this film", "really boring story"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_nli_2way, tiny_encoder):
    """A make_cfg(*overrides) whose student was labelled, trained and evaluated once for the module."""
    root = tmp_path_factory.mktemp("publish")
    write_sst2_like(root / "data")

    def make(*extra):
        return load_config([
            "data=sst2", f"paths.data={root / 'data'}", f"paths.outputs={root / 'out'}",
            f"teacher.model={tiny_nli_2way}", f"student.model={tiny_encoder}", "data.pool_size=32",
            "train.epochs=1", "train.batch_size=8", "eval.batch_sizes=[1,4]", "eval.bench_texts=8",
            "eval.warmup_batches=1", f"hub.repo_id={REPO}", *extra])

    cfg = make()
    label.run(cfg), train.run(cfg), evaluate.run(cfg)
    return make


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    """No HF_TOKEN and an empty login cache."""
    import huggingface_hub.constants as constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


@pytest.fixture
def fake_hub(monkeypatch):
    """A running fake Hub, HF_ENDPOINT pointing at it, a token, and offline mode (conftest) lifted."""
    import huggingface_hub.constants as constants

    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", "hf_fake_write_token")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        yield hub


def local_files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def student_metrics(cfg) -> dict:
    metrics = json.loads((artifacts.eval_dir(cfg) / "metrics.json").read_text())
    return next(e for e in metrics["models"] if e["role"] == "student")


def test_dry_run_writes_a_complete_folder_that_pipeline_loads(trained, tmp_path):
    from transformers import pipeline

    cfg = trained("hub.dry_run=true", f"hub.out_dir={tmp_path / 'repo'}")
    result = publish.run(cfg)
    folder = Path(result["folder"])
    assert result["uploaded"] is False and folder == tmp_path / "repo"
    names = {p.name for p in folder.iterdir()}
    assert {"README.md", "config.json", "model.safetensors", "tokenizer_config.json", "distill_eval.json"} <= names
    assert not names & {"training_args.bin", "distill_train.json", "distill_config.json", "pytorch_model.bin"}
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path))
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    # The published folder predicts exactly what the trained student predicts.
    ours = pipeline("text-classification", model=str(folder), device="cpu")
    theirs = pipeline("text-classification", model=str(artifacts.student_dir(cfg)), device="cpu")
    for a, b in zip(ours(TEXTS), theirs(TEXTS)):
        assert a["label"] == b["label"] and a["label"] in {"negative", "positive"}
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)


def test_card_metadata_parses_and_matches_metrics(trained, tmp_path):
    cfg = trained("hub.dry_run=true", f"hub.out_dir={tmp_path / 'repo'}")
    folder = Path(publish.run(cfg)["folder"])
    card = ModelCard.load(folder / "README.md")  # parses the YAML and validates model-index
    assert card.data.pipeline_tag == "text-classification" and card.data.library_name == "transformers"
    assert card.data.datasets == ["stanfordnlp/sst2"]
    entry = student_metrics(cfg)
    got = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert got == {"accuracy": round(entry["accuracy"], 4), "f1": round(entry["macro_f1"], 4),
                   "agreement": round(entry["agreement_with_teacher"], 4)}
    assert {r.dataset_type for r in card.data.eval_results} == {"stanfordnlp/sst2"}
    assert {r.dataset_split for r in card.data.eval_results} == {"validation"}
    text = card.text
    for needle in ("no human-labelled example was used", "## How it was made", "## Results", "### Speed",
                   "## How to use", "## Limitations", f'pipeline("text-classification", model="{REPO}")',
                   f"{100 * entry['accuracy']:.1f}%", "samples/s @4", "train.targets"):
        assert needle in text, needle
    assert "x)" in text  # speed-up over the teacher next to the student's samples/s
    assert str(tmp_path) not in card.content and os.path.expanduser("~") + "/" not in card.content


@pytest.mark.parametrize("xet", [True, False], ids=["pipelined-upload", "single-commit"])
def test_upload_sends_every_file_byte_identical(trained, tmp_path, fake_hub, monkeypatch, xet):
    import huggingface_hub.hf_api

    # With hf_xet installed upload_folder streams through its commit pipeline; without, one create_commit.
    monkeypatch.setattr(huggingface_hub.hf_api, "is_xet_available", lambda: xet)
    cfg = trained("hub.private=true", f"hub.out_dir={tmp_path / 'repo'}")
    result = publish.run(cfg)
    assert result["uploaded"] is True and result["commit_url"].startswith(fake_hub.url)
    calls = [(r["method"], r["path"].split("/")[-2] if "/api/models/" in r["path"] else r["path"])
             for r in fake_hub.requests]
    assert calls[0] == ("POST", "/api/repos/create") and ("POST", "preupload") in calls
    assert calls[-1] == ("POST", "commit")
    repo = fake_hub.repos[REPO]
    assert repo["private"] is True
    assert repo["files"] == local_files(Path(result["folder"]))  # every file, byte for byte
    assert all(r["authorization"] == "Bearer hf_fake_write_token"
               for r in fake_hub.requests if r["method"] == "POST")
    # Publishing again updates the same repo (create_repo answers 409: it already exists).
    again = publish.run(trained(f"hub.out_dir={tmp_path / 'repo'}", "hub.commit_message=second"))
    assert again["uploaded"] is True and [c["summary"] for c in repo["commits"]][-1] == "second"


def test_no_token_keeps_the_folder_and_says_how_to_log_in(trained, tmp_path, fake_hub, no_token):
    cfg = trained(f"hub.out_dir={tmp_path / 'repo'}")
    with pytest.raises(DistillError) as err:
        publish.run(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert "HF_TOKEN" in message and "hf auth login" in message and str(tmp_path / "repo") in message
    assert (tmp_path / "repo" / "model.safetensors").is_file() and (tmp_path / "repo" / "README.md").is_file()
    assert fake_hub.requests == []


def test_unreachable_hub_keeps_the_folder(trained, tmp_path, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(DistillError, match="could not reach http://127.0.0.1:9.*hf upload"):
        publish.run(trained(f"hub.out_dir={tmp_path / 'repo'}"))
    assert (tmp_path / "repo" / "README.md").is_file()


def test_dry_run_never_contacts_the_hub(trained, tmp_path, fake_hub):
    result = publish.run(trained("hub.dry_run=true", f"hub.out_dir={tmp_path / 'repo'}"))
    assert result["uploaded"] is False and fake_hub.requests == [] and fake_hub.repos == {}


def test_never_overwrites_a_folder_it_did_not_write(trained, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DistillError, match="not a repo folder that stage=publish wrote"):
        publish.run(trained("hub.dry_run=true", f"hub.out_dir={tmp_path / 'mine'}"))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # ...but replaces its own earlier folder.
    for _ in range(2):
        publish.run(trained("hub.dry_run=true", f"hub.out_dir={tmp_path / 'repo'}"))
    assert (tmp_path / "repo" / "README.md").is_file() and not (tmp_path / "repo.tmp").exists()


@pytest.mark.parametrize("override,needle", [
    ("hub.repo_id=null", "hub.repo_id is not set"),
    ("hub.repo_id=just-a-name", "must be ORG/NAME"),
    ("hub.repo_id=org/bad--name", "not a valid Hub repo id"),
    ("train.lr=0.5", "stage=train"),  # a student that was never trained
])
def test_clear_errors(trained, tmp_path, override, needle):
    with pytest.raises(DistillError, match=needle):
        publish.run(trained("hub.dry_run=true", f"hub.out_dir={tmp_path / 'repo'}", override))


def test_unevaluated_student_gets_a_card_without_results(trained, tmp_path):
    cfg = trained()
    student = tmp_path / "student"
    student.mkdir()
    for path in artifacts.student_dir(cfg).iterdir():  # the same student, away from its eval results
        if path.is_file():
            (student / path.name).write_bytes(path.read_bytes())
    folder = Path(publish.run(trained("hub.dry_run=true", f"hub.student_path={student}",
                                      f"hub.out_dir={tmp_path / 'repo'}"))["folder"])
    card = ModelCard.load(folder / "README.md")
    assert card.data.eval_results is None and "model-index" not in card.content
    assert "has not been evaluated" in card.text and "stage=eval" in card.text
    assert not (folder / "distill_eval.json").exists()


def test_richer_metrics_and_plots_reach_the_card(trained, tmp_path):
    cfg = trained()
    metrics = json.loads((artifacts.eval_dir(cfg) / "metrics.json").read_text())
    teacher, student, *_ = metrics["models"]
    student.update(ece=0.0421, latency_ms={"p50": 3.2, "p95": 5.9}, num_parameters=123456,
                   per_class={"negative": {"precision": 0.5, "recall": 0.75, "f1": 0.6},
                              "positive": {"precision": 0.7, "recall": 0.4, "f1": 0.51}},
                   confusion=[[3, 1], [4, 4]])
    metrics["models"].append({**student, "name": "minilm (onnx-int8)", "model": str(tmp_path / "onnx"),
                              "samples_per_s": {"1": 99.0, "4": 400.0}})
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps(metrics))
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    (eval_dir / "speed_vs_accuracy.png").write_bytes(png)
    folder = Path(publish.run(trained("hub.dry_run=true", f"hub.metrics_path={eval_dir / 'metrics.json'}",
                                      f"hub.out_dir={tmp_path / 'repo'}"))["folder"])
    assert (folder / "images" / "speed_vs_accuracy.png").read_bytes() == png
    text = (folder / "README.md").read_text()
    assert "![Speed vs accuracy](images/speed_vs_accuracy.png)" in text
    for needle in ("| ECE |", "latency ms p95", "minilm (onnx-int8)", "### Per label", "### Confusion matrix",
                   "expected calibration error 0.042", "| 0.1M |", "95% CI"):
        assert needle in text, needle
    # model-index still describes this model, not the ONNX variant.
    results = {r.metric_type: r.metric_value for r in ModelCard(text).data.eval_results}
    assert results["accuracy"] == round(student["accuracy"], 4)


def test_cli_without_token_is_one_line(trained, tmp_path):
    cfg = trained()
    env = {**os.environ, "HF_TOKEN": "", "HF_TOKEN_PATH": str(tmp_path / "no-token"), "HYDRA_FULL_ERROR": "0"}
    env.pop("HF_OIDC_RESOURCE", None)
    args = [f"paths.data={cfg.paths.data}", f"paths.outputs={cfg.paths.outputs}", f"teacher.model={cfg.teacher.model}",
            f"student.model={cfg.student.model}", "data.pool_size=32", "train.epochs=1", "train.batch_size=8",
            f"hub.repo_id={REPO}", f"hub.out_dir={tmp_path / 'repo'}"]
    proc = subprocess.run([sys.executable, "-m", "distill", "stage=publish", *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("distill: error:")]
    assert len(lines) == 1 and "hf auth login" in lines[0] and "Traceback" not in proc.stderr
    assert (tmp_path / "repo" / "model.safetensors").is_file()


def test_card_of_a_weakly_supervised_student_names_its_sources():
    from distill.hub.card import CardInputs, build_card

    weak = {"name": "sst2", "teachers": {"deberta-v3-nli": {}, "mpnet": {}}, "keywords": {"negative": ["bad"]},
            "label_model": "dawid_skene"}
    card = build_card(CardInputs(
        repo_id=REPO, labels=["negative", "positive"], teacher={"name": "deberta-v3-nli", "model": "x/nli"},
        data={"name": "sst2"}, student={"name": "minilm", "model": "~/models/all-MiniLM-L6-v2", "max_length": 64},
        train={"targets": "hard", "lr": 3e-5}, summary={"n_texts": 100}, weak=weak))
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and card.data.eval_results is None
    assert "`deberta-v3-nli`, `mpnet`" in card.text and "dawid_skene" in card.text
    assert "stage=all data=sst2 weak=sst2 student=minilm train.targets=hard train.lr=3e-05" in card.text
    multi = build_card(CardInputs(
        repo_id=REPO, labels=["anger", "joy"], teacher={"name": "mpnet", "label_sets": "rate:auto"},
        data={"name": "goemotions", "multi_label": True}, student={"name": "minilm", "max_length": 64},
        train={"targets": "hard"}, summary={"n_texts": 100}, weak={**weak, "label_sets": "threshold:0.5"}))
    assert "the label model's label sets (hard targets; `weak.label_sets=threshold:0.5`)" in multi.text


def test_card_of_a_student_cut_to_fewer_layers_says_so_and_reproduces_it():
    from distill.hub.card import CardInputs, build_card

    card = build_card(CardInputs(
        repo_id=REPO, labels=["negative", "positive"], teacher={"name": "deberta-v3-nli", "model": "x/nli"},
        data={"name": "sst2"}, student={"name": "deberta-nli", "model": "microsoft/deberta-v3-xsmall",
                                        "max_length": 128, "layers": 6},
        train={"targets": "soft", "temperature": 2.0}, summary={"n_texts": 100}))
    assert "deberta-v3-xsmall), cut to its first 6 layers, with a new 2-way head" in card.text
    assert "student=deberta-nli student.layers=6" in card.text


def test_card_of_a_student_taught_by_a_teacher_assistant_says_who_labelled_its_texts(tmp_path):
    """A label file a trained classifier wrote (teacher=assistant) is named in the card, beside the zero-shot
    teacher that taught the assistant; a zero-shot teacher's label file adds nothing."""
    from distill.artifacts import classifier_teacher_of as labelling_classifier
    from distill.hub.card import CardInputs, build_card

    folder = tmp_path / "labels" / "assistant-pool-0123456789"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"teacher": {"kind": "classifier", "model": "/o/deberta-nli-soft"}}))
    assistant = labelling_classifier(str(folder / "labels.parquet"))
    assert assistant["model"] == "/o/deberta-nli-soft"
    (folder / "meta.json").write_text(json.dumps({"teacher": {"kind": "nli", "model": "x/nli"}}))
    assert labelling_classifier(str(folder / "labels.parquet")) is None
    assert labelling_classifier(None) is None and labelling_classifier(str(tmp_path / "none/labels.parquet")) is None
    card = build_card(CardInputs(
        repo_id=REPO, labels=["negative", "positive"], teacher={"name": "deberta-v3-nli", "model": "x/nli"},
        data={"name": "sst2"}, student={"name": "deberta-nli-6l", "model": "microsoft/deberta-v3-xsmall",
                                        "max_length": 128}, train={"targets": "soft", "temperature": 2.0},
        summary={"n_texts": 100}, assistant=assistant))
    assert "that a larger student, `deberta-nli-soft` (itself distilled from the zero-shot teacher" in card.text
    assert "then labelled the texts below as a *teacher assistant*" in card.text
    assert "labelled by the teacher assistant" in card.text
