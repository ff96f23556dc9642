"""logger=wandb for real, offline (no network, no key), on tiny models: what lands in the run is read back
from the `.wandb` file W&B 0.31 writes (offline it writes no wandb-summary.json or config.yaml)."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import assert_one_line_error, tiny_args  # noqa: F401  (tiny_args is a fixture)
from test_stages import make_cfg  # noqa: F401  (a fixture)

from distill import tracking
from distill.config import load_config
from distill.errors import DistillError
from distill.stages import run_stage

wandb = pytest.importorskip("wandb", reason="logger=wandb needs wandb: pip install 'distill[wandb]'")


# --- reading an offline run ------------------------------------------------------------------------------
# The .wandb file is a LevelDB-style log: a 7-byte file header (":W&B", magic, version), then records of a
# 7-byte header (crc32, length, type) in 32 KiB blocks, each a protobuf `Record`; long ones are split into
# FIRST/MIDDLE/LAST pieces. W&B 0.31 no longer ships a Python reader for it.
BLOCK, HEADER, FULL, FIRST, MIDDLE, LAST = 32768, 7, 1, 2, 3, 4


def wandb_records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += left
            continue
        piece, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        pending = piece if kind in (FULL, FIRST) else pending + piece
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def finished_records(run_dir: Path, timeout: float = 60.0) -> list:
    """The run's records once its `exit` record is on disk: W&B's service closes the file a moment after
    `run.finish()` returns."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(wandb_records(next(run_dir.glob("run-*.wandb"))))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def read_run(run_dir: Path) -> dict:
    """config, group, job type, name, tags, history keys, final summary, artifacts and files of one run."""
    run = {"config": {}, "history": [], "summary": {}, "artifacts": [], "files": []}
    for record in finished_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(group=r.run_group, job_type=r.job_type, name=r.display_name, tags=list(r.tags))
            run["config"].update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "config":
            run["config"].update({_key(u): json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            run["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            run["summary"].update({_key(u): json.loads(u.value_json) for u in record.summary.update})
        elif kind == "artifact":
            a = record.artifact
            run["artifacts"].append({"type": a.type, "name": a.name, "metadata": json.loads(a.metadata or "{}"),
                                     "files": sorted(c.path for c in a.manifest.contents)})
        elif kind == "files":
            run["files"] += [f.path for f in record.files.files]
    return run


def offline_runs(outputs: Path) -> list[Path]:
    return sorted((outputs / "wandb").glob("offline-run-*"))


@pytest.fixture
def offline(monkeypatch, tmp_path_factory):
    """WANDB_MODE=offline with no key, W&B's own caches in a temporary folder (never the user's)."""
    home = tmp_path_factory.mktemp("wandb-home")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return home


# --- tests ---------------------------------------------------------------------------------------------

def test_report_to_names_wandb_only_while_a_run_is_open(monkeypatch):
    class FakeWandb:
        run = None

    monkeypatch.setitem(sys.modules, "wandb", FakeWandb)
    assert tracking.report_to() == []
    FakeWandb.run = object()
    assert tracking.report_to() == ["wandb"]
    monkeypatch.delitem(sys.modules, "wandb")
    assert tracking.report_to() == []


def test_stage_all_offline_is_one_run_with_config_steps_labels_eval_and_student(make_cfg, offline, tmp_path):
    cfg = make_cfg("logger=wandb", "logger.tags=[test]")
    result = run_stage(cfg)

    runs = offline_runs(tmp_path / "out")
    assert len(runs) == 1, runs  # the Trainer's WandbCallback logged into our run, it did not open a second
    run = read_run(runs[0])
    assert run["job_type"] == "all" and run["tags"] == ["test"]
    assert run["name"] == f"sst2-{cfg.teacher.name}-{cfg.student.name}-soft"
    # the resolved config, and the Trainer's own arguments added to it
    assert run["config"]["train"]["lr"] == cfg.train.lr and run["config"]["data"]["name"] == "sst2"
    assert run["config"]["logger"]["kind"] == "wandb" and "learning_rate" in run["config"]

    steps = [h for h in run["history"] if "train/loss" in h]
    assert steps and all(h["train/global_step"] >= 1 for h in steps)  # per-step training metrics

    label = result["label"]
    summary = run["summary"]
    assert summary["label/n_texts"] == label["n_texts"] == 32 and summary["label/cached"] is False
    assert summary["label/texts_per_s"] > 0
    assert sum(v for k, v in summary.items() if k.startswith("label/count/")) == 32

    student = next(m for m in result["eval"]["models"] if m["role"] == "student")
    assert summary["eval/student/accuracy"] == pytest.approx(student["accuracy"])
    assert summary["eval/teacher/accuracy"] == pytest.approx(result["eval"]["teacher_accuracy"])
    assert summary["eval/student/samples_per_s@4"] > 0
    assert summary["eval/models/_type"] == "table-file"

    (model,) = [a for a in run["artifacts"] if a["type"] == "model"]
    assert model["name"] == f"sst2-{Path(result['train']['student_dir']).name}"
    assert {"config.json", "model.safetensors", "tokenizer.json", "distill_train.json"} <= set(model["files"])
    assert not any("checkpoint" in f for f in model["files"])


def test_log_model_false_logs_no_artifact(make_cfg, offline, tmp_path):
    run_stage(make_cfg("logger=wandb", "logger.log_model=false", "stage=label"))
    run_stage(make_cfg("logger=wandb", "logger.log_model=false", "stage=train"))
    # two runs started within one second: their folder names (time, random id) do not tell their order
    runs = {r["job_type"]: r for r in (read_run(p) for p in offline_runs(tmp_path / "out"))}
    assert sorted(runs) == ["label", "train"]
    assert not [a for r in runs.values() for a in r["artifacts"] if a["type"] == "model"]
    assert "train/train_loss" in runs["train"]["summary"]


def test_eval_table_plots_and_report(offline, tmp_path):
    """The eval stage's optional `plots` and `report` (and fields the table does not know yet)."""
    from PIL import Image

    plot = tmp_path / "confusion_student.png"
    Image.new("RGB", (8, 8), "red").save(plot)
    report = tmp_path / "report.md"
    report.write_text("# report\n")
    models = [{"name": "tiny-teacher", "role": "teacher", "accuracy": 0.75, "macro_f1": 0.7,
               "agreement_with_teacher": 1.0, "samples_per_s": {"1": 10, "32": None}, "model": "x"},
              {"name": "tiny (soft)", "role": "student", "accuracy": 0.5, "macro_f1": 0.5,
               "agreement_with_teacher": 0.6, "samples_per_s": {"1": 55.5, "32": 300.25},
               "per_label": {"positive": {"f1": 0.4}}, "model": "y"}]
    result = {"eval_dir": str(tmp_path), "student_accuracy": 0.5, "models": models,
              "report": str(report), "plots": [str(plot), str(tmp_path / "missing.png")]}
    cfg = load_config(["logger=wandb", f"paths.outputs={tmp_path / 'out'}", "stage=eval"])
    with tracking.tracked(cfg, "eval"):
        tracking.log_stage("eval", cfg, result)

    (run_dir,) = offline_runs(tmp_path / "out")
    run = read_run(run_dir)
    assert run["summary"]["eval/student/samples_per_s@32"] == 300.25
    assert "eval/teacher/samples_per_s@32" not in run["summary"]  # None is not logged as a number
    assert run["summary"]["eval/plots/confusion_student/_type"] == "image-file"
    assert not any("missing" in k for k in run["summary"])
    assert (run_dir / "files" / "report.md").read_text() == "# report\n"
    (table_file,) = (run_dir / "files" / "media" / "table" / "eval").glob("models_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"][:2] == ["name", "role"] and "samples_per_s@32" in table["columns"]
    assert [row[1] for row in table["data"]] == ["teacher", "student"]
    assert json.loads(table["data"][1][table["columns"].index("per_label@positive")]) == {"f1": 0.4}


def test_online_without_a_key_is_a_clear_error(make_cfg, offline, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    with pytest.raises(DistillError, match=r"wandb login.*WANDB_API_KEY.*WANDB_MODE=offline"):
        run_stage(make_cfg("logger=wandb", "logger.mode=online"))
    assert not (tmp_path / "out" / "wandb").exists()


def test_cli_online_without_a_key_is_one_line(tiny_args, tmp_path):  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    env.update(WANDB_MODE="online", HOME=str(home), NETRC=str(home / ".netrc"), HYDRA_FULL_ERROR="0")
    proc = subprocess.run([sys.executable, "-m", "distill", "stage=label", "logger=wandb", *tiny_args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert_one_line_error(proc, "wandb login", "WANDB_API_KEY", "WANDB_MODE=offline")


def test_bad_mode_is_a_clear_error(make_cfg, offline):
    with pytest.raises(DistillError, match="must be one of online, offline, disabled"):
        run_stage(make_cfg("logger=wandb", "logger.mode=ofline"))


SCRIPT = """
import sys
from distill.config import load_config
from distill.stages import run_stage
run_stage(load_config(sys.argv[1:]))
assert "wandb" not in sys.modules, "logger=none imported wandb"
print("WANDB NOT IMPORTED")
"""


def test_logger_none_never_imports_wandb(make_cfg, tmp_path, tiny_nli_2way, tiny_encoder):
    args = [f"paths.data={tmp_path / 'data'}", f"paths.outputs={tmp_path / 'out'}", f"teacher.model={tiny_nli_2way}",
            f"student.model={tiny_encoder}", "data.pool_size=16", "train.epochs=1", "eval.batch_sizes=[1]",
            "eval.bench_texts=2", "eval.warmup_batches=0", "logger=none"]
    make_cfg()  # writes the tiny data set
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WANDB NOT IMPORTED" in proc.stdout
    assert not (tmp_path / "out" / "wandb").exists()


@pytest.mark.parametrize("preset", ["none", "wandb"])
def test_logger_presets_compose(preset):
    cfg = load_config([f"logger={preset}"])
    assert cfg.logger.kind.value == preset and cfg.logger.project == "distill"


def test_disabled_mode_trains_and_writes_nothing(make_cfg, offline, tmp_path):
    run_stage(make_cfg("stage=label"))
    result = run_stage(make_cfg("logger=wandb", "logger.mode=disabled", "stage=train"))
    assert result["cached"] is False and result["train_loss"] > 0
    assert not offline_runs(tmp_path / "out")
