#!/usr/bin/env python
"""Every way users and machines break a run, against every stage it applies to (issue 32).

Each case runs `python -m distill` as a user does, on tiny random models, in a fresh outputs folder that
holds what the earlier stages of an undisturbed run made. A row records the exit code, the one line the user
saw, whether the artifacts made before are intact, and, for faults, whether the same command run again
finishes and equals the undisturbed run. A row passes when there is no traceback, the exit code is 0 (it
worked, or counted a skip), 2 (a one-line error) or 130 (Ctrl-C), nothing made before was changed, and a
rerun after a fault equals the undisturbed run.

    python scripts/fault_matrix.py                       # every case: outputs/bench/fault_matrix.{json,md}
    python scripts/fault_matrix.py --quick               # the fast-tier subset (tests/test_fault_matrix.py)
    python scripts/fault_matrix.py --cases kill --stages train,eval

Tiny models are built at run time as the tests build them (tests/conftest.py).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from distill.errors import printable  # noqa: E402

STAGES = ["label", "weak", "train", "prune", "eval", "predict", "publish"]
# the folder under outputs/ whose files are predict's and publish's result
FILES_OF = {"predict": "predictions", "publish": "hub"}
REVIEWS = ["a great movie , really fun", "boring story and bad actors", "i loved the plot", "what a dull game",
           "the team was great", "not fun at all", "a good film , very good", "bad , bad , bad"]
WORDS = "this example is a the movie film was great good bad terrible awful fine love hate boring fun".split()
OK_CODES = {0, 2, 130}
OUTPUT_ROOTS: list[str] = []  # the undisturbed run's outputs folder, as it appears in what it wrote


@dataclass
class Row:
    case: str
    stage: str
    exit_code: Optional[int]
    line: str  # the one line the user saw: the error, or the last line printed
    traceback: bool
    intact: Optional[bool]  # the artifacts made before this command: unchanged (None: none to check)
    rerun_equal: Optional[bool]  # after a fault: the same command again finishes and equals the undisturbed run
    expected: str  # what a good outcome is here
    passed: bool = False
    seconds: float = 0.0
    notes: list = field(default_factory=list)
    must_say: str = ""  # what the line must name (the bad value), when the case knows it


def write_reviews(path: Path, n: int = 40, gold: bool = True) -> Path:
    import pandas as pd

    rows = [{"review": REVIEWS[i % len(REVIEWS)] + f" {WORDS[i % len(WORDS)]}"} for i in range(n)]
    if gold:
        for row in rows:
            row["sentiment"] = "positive" if any(w in row["review"] for w in ("great", "loved", "good")) else "negative"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


class World:
    """The tiny models, the user's file, and the undisturbed run's outputs, made once."""

    def __init__(self, root: Path):
        from conftest import build_tiny_bert

        self.root = root
        self.models = root / "models"
        if not self.models.exists():
            self.models.mkdir(parents=True)
            build_tiny_bert(self.models / "deberta-v3-nli", {0: "entailment", 1: "not_entailment"}, seed=1)
            build_tiny_bert(self.models / "all-MiniLM-L6-v2", {0: "LABEL_0", 1: "LABEL_1"}, seed=3)
            (self.models / "all-mpnet-base-v2").symlink_to(self.models / "all-MiniLM-L6-v2")
        self.project = root / "project"
        self.project.mkdir(exist_ok=True)
        write_reviews(self.project / "reviews.csv")
        write_reviews(self.project / "new.csv", n=12, gold=False)
        self.base = root / "base"  # the undisturbed run's outputs
        self.base_seconds: dict[str, float] = {}
        OUTPUT_ROOTS.append(str(self.base / "work"))

    def args(self, out: Path, stage: str, extra=()) -> list[str]:
        args = [f"stage={stage}", "data=file", "data.pool.path=reviews.csv", "data.text_columns=[review]",
                "data.labels=[negative,positive]", "data.label_column=sentiment", f"paths.models={self.models}",
                f"paths.outputs={out}", "train.epochs=2", "train.batch_size=8", "train.evals_per_epoch=4",
                "label.shard_size=8", "eval.batch_sizes=[4]", "eval.bench_texts=8", "eval.warmup_batches=1",
                "eval.repeats=1", "eval.plots=false", "eval.variants=[torch,onnx]", "prune.ffn_size=32",
                "prune.epochs=1", "prune.texts=16", "hub.repo_id=someone/tiny", "hub.dry_run=true"]
        if stage == "weak":
            args.append("weak=sst2")
        if stage == "predict":
            args.append("input=new.csv")
        return args + list(extra)

    def run(self, out: Path, stage: str, extra=(), **kw) -> "Proc":
        return Proc.start(self.args(out, stage, extra), cwd=self.project, **kw)

    def build_base(self, upto: str = STAGES[-1]):
        """The undisturbed run, stage after stage up to `upto`, its outputs folder copied after each
        (base/<i>-<stage>); stages built before (base/seconds.json) are kept."""
        record = self.base / "seconds.json"
        self.base_seconds = json.loads(record.read_text()) if record.exists() else {}
        work = self.base / "work"
        for i, stage in enumerate(STAGES[: STAGES.index(upto) + 1]):
            if stage in self.base_seconds and self.after(stage).exists():
                continue
            shutil.rmtree(work, ignore_errors=True)
            if i:
                shutil.copytree(self.after(STAGES[i - 1]), work, symlinks=True)
            start = time.perf_counter()
            proc = self.run(work, stage).wait()
            if proc.code != 0:
                raise SystemExit(f"the undisturbed run failed at stage={stage}:\n{proc.stderr[-3000:]}")
            self.base_seconds[stage] = time.perf_counter() - start
            shutil.rmtree(self.after(stage), ignore_errors=True)
            shutil.copytree(work, self.after(stage), symlinks=True, ignore=shutil.ignore_patterns("runs"))
            record.write_text(json.dumps(self.base_seconds))

    def after(self, stage: str) -> Path:
        """The undisturbed run's outputs once `stage` had run."""
        return self.base / f"{STAGES.index(stage)}-{stage}"

    def fresh(self, name: str, stage: str) -> Path:
        """An outputs folder as the undisturbed run had it just before `stage`."""
        out = self.root / "cases" / name
        shutil.rmtree(out, ignore_errors=True)
        index = STAGES.index(stage) if stage in STAGES else 0
        if index == 0:
            out.mkdir(parents=True)
        else:
            shutil.copytree(self.after(STAGES[index - 1]), out, symlinks=True)
        return out


@dataclass
class Proc:
    popen: subprocess.Popen
    code: Optional[int] = None
    stdout: str = ""
    stderr: str = ""

    @classmethod
    def start(cls, args, cwd, limit_bytes: Optional[int] = None, env=None) -> "Proc":
        def limits():
            os.setsid()
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background parent may have left Ctrl-C ignored
            if limit_bytes is not None:  # a full disk: writes past this size fail (EFBIG) instead of killing
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        environ = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "disabled",
                   "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT),
                   **(env or {})}
        popen = subprocess.Popen([sys.executable, "-m", "distill", *args], cwd=cwd, env=environ,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limits)
        return cls(popen)

    def wait(self, timeout: float = 600) -> "Proc":
        self.stdout, self.stderr = self.popen.communicate(timeout=timeout)
        self.code = self.popen.returncode
        return self

    def signal_after(self, seconds: float, sig: int) -> "Proc":
        try:
            self.stdout, self.stderr = self.popen.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.popen.send_signal(sig)
            return self.wait()
        self.code = self.popen.returncode  # it finished before the signal
        return self

    @property
    def line(self) -> str:
        errors = [x for x in self.stderr.splitlines() if x.startswith("distill:")]
        if errors:
            return errors[-1][:300]
        lines = [x for x in (self.stderr + self.stdout).splitlines() if x.strip()]
        return lines[-1][:300] if lines else ""

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr or "HYDRA_FULL_ERROR=1" in self.stderr

    def why(self) -> list[str]:
        """The end of the error output when the command failed without a one-line error: for the notes."""
        if self.code in (0, 2, None) and not self.traceback:
            return []
        return ["\n".join(self.stderr.strip().splitlines()[-6:])[-1200:]]


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (but run logs, locks and the label cache) -> its sha256."""
    out = {}
    if not folder.exists():
        return out
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        # the label cache is a store every labelling adds its texts to, not a stage's product
        if path.is_file() and not rel.startswith(("runs/", "multirun/", "label-cache/")) and path.name != ".lock":
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def unchanged(before: dict[str, str], out: Path) -> Optional[bool]:
    """Every file recorded in `before` still has its sha256 (None: there was nothing to check)."""
    if not before:
        return None
    after = digest(out)
    return all(after.get(k) == v for k, v in before.items())


def rerun(world: "World", stage: str, out: Path) -> tuple["Proc", bool]:
    """The same command again, undisturbed; whether it finished and made what the undisturbed run made."""
    again = world.run(out, stage).wait()
    return again, again.code == 0 and results(out, stage) == results(world.after(stage), stage)


def results(folder: Path, stage: str) -> dict:
    """What a stage made, in a form that compares like for like across runs: label probabilities, a student's
    predictions on fixed texts, the eval metrics without timings, prediction files, the hub folder's files."""
    import numpy as np
    import pandas as pd

    found: dict = {}
    if stage in ("label", "weak"):
        for path in sorted((folder / "labels").rglob("labels.parquet")):
            if "heldout" in path.parent.name:
                continue
            frame = pd.read_parquet(path)
            cols = [c for c in frame.columns if c.startswith(("prob", "p_")) or c in ("text",)]
            found[path.relative_to(folder).as_posix()] = frame[cols].round(5).to_json()
    elif stage in ("train", "prune"):
        from distill.students.load import load_classifier

        texts = REVIEWS
        for cfg_file in sorted((folder / "students").rglob("distill_train.json")):
            student = cfg_file.parent
            if (stage == "prune") != ("prune" in student.name or "ffn" in student.name):
                continue
            probs = load_classifier(student, device="cpu").predict_proba(texts, batch_size=8)
            found[student.relative_to(folder).as_posix()] = np.round(probs, 4).tolist()
    elif stage == "eval":
        for path in sorted((folder / "eval").rglob("metrics.json")):
            text = path.read_text()
            for root in (str(folder), *OUTPUT_ROOTS):  # where it ran is not part of the result
                text = text.replace(root, "<outputs>")
            data = json.loads(text)
            found[path.relative_to(folder).as_posix()] = strip_timing(data)
    else:
        found = {k: v for k, v in digest(folder / FILES_OF[stage]).items() if not k.endswith(".json")}
    return found


def strip_timing(data):
    if isinstance(data, dict):
        return {k: strip_timing(v) for k, v in data.items()
                if not any(w in k for w in ("second", "per_s", "speed", "latency", "time", "date", "machine"))}
    if isinstance(data, list):
        return [strip_timing(v) for v in data]
    if isinstance(data, float):
        return round(data, 4)
    return data


# --- the cases ----------------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    stages: list[str]
    run: Callable  # (world, stage, out) -> Row
    quick: bool = False


def plain(world: World, stage: str, out: Path, extra=(), expected="exit 0 or a one-line error (exit 2)",
          case="", before: Optional[dict] = None, **kw) -> Row:
    before = before if before is not None else digest(out)
    start = time.perf_counter()
    proc = world.run(out, stage, extra, **kw).wait()
    intact = unchanged(before, out)
    return Row(case, stage, proc.code, proc.line, proc.traceback, intact, None, expected,
               seconds=time.perf_counter() - start, notes=proc.why())


def input_case(name: str, make: Callable[[Path], list[str]], stages=("label", "predict"), quick=False,
               expect="exit 0 or a one-line error (exit 2)", must_say: str = "") -> Case:
    """A bad input: `make(project)` writes the file(s) and returns the overrides that point at them."""
    def run(world: World, stage: str, out: Path) -> Row:
        extra = make(world.project, stage)
        row = plain(world, stage, out, extra, expected=expect, case=name)
        row.must_say = must_say
        return row
    return Case(name, list(stages), run, quick=quick)


def pool_or_input(stage: str, filename: str) -> list[str]:
    return [f"input={filename}"] if stage == "predict" else [f"data.pool.path={filename}"]


def writer(content, filename: str, gold: bool = False, **kw):
    def make(project: Path, stage: str) -> list[str]:
        path = project / filename
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, **kw)
        return pool_or_input(stage, filename) + (["data.label_column=null"] if stage != "predict" and not gold else [])
    return make


def overrides(*extra: str):
    return lambda project, stage: list(extra)


LONG = "great " * 20000  # a 120,000-character text
CASES: list[Case] = [
    input_case("empty file", writer(b"", "empty.csv"), quick=True),
    input_case("header only", writer("review\n", "header.csv")),
    input_case("blank and missing texts", writer('review\n"a great movie"\n""\n   \n"bad , bad"\n\n"i loved it"\n',
                                                 "blanks.csv"), expect="exit 0, the blank rows counted and skipped"),
    input_case("a 100,000-character text", writer(f"review\n{LONG}\na bad film\n", "long.csv"), expect="exit 0"),
    input_case("binary garbage", writer(bytes(range(256)) * 64, "garbage.csv"), quick=True),
    input_case("wrong encoding", writer("review\ncaf\xe9 cr\xe8me was great\nbad film\n".encode("latin-1"),
                                        "latin1.csv")),
    input_case("not what its extension says", writer("review\na great movie\n", "fake.parquet"), quick=True),
    input_case("missing column", writer("comment\na great movie\nbad film\n", "othercol.csv")),
    input_case("labels empty", overrides("data.labels=[]"), stages=("label",)),
    input_case("one label", overrides("data.labels=[positive]"), stages=("label",), quick=True),
    input_case("duplicated labels", overrides("data.labels=[positive,negative,positive]"), stages=("label",)),
    input_case("a label with the template's braces", overrides("data.labels=[negative,'pos{}itive']"),
               stages=("label",)),
    input_case("gold values outside the label map",
               writer("review,sentiment\na great movie,positive\nbad,awful\nso bad,negative\n", "badgold.csv", gold=True),
               stages=("all",), expect="a one-line error naming the value and where, before any labelling (exit 2)",
               must_say="gold value 'awful' in "),
    input_case("config key typo", overrides("train.epoch=1"), stages=("train",)),
    input_case("a wrong type", overrides("train.epochs=many"), stages=("train",)),
    input_case("unknown preset", overrides("student=tinyest"), stages=("train",)),
]


def fault_case(name: str, stages, sig: int, fractions=(0.3, 0.7), quick=False) -> list[Case]:
    """SIGKILL or SIGINT a fraction of the way through the stage's undisturbed time, then the same command."""
    cases = []
    for fraction in fractions:
        def run(world: World, stage: str, out: Path, fraction=fraction, label=f"{name} at {int(fraction * 100)}%"):
            before = digest(out)
            delay = max(world.base_seconds[stage] * fraction, 1.0)
            start = time.perf_counter()
            proc = world.run(out, stage).signal_after(delay, sig)
            intact = unchanged(before, out)
            again, equal = rerun(world, stage, out)
            row = Row(label, stage, proc.code, proc.line, proc.traceback or again.traceback, intact, equal,
                      "killed: exit by signal; interrupted: exit 130 and a line; the rerun finishes and equals "
                      "the undisturbed run", seconds=time.perf_counter() - start)
            row.notes += proc.why()
            if again.code != 0:
                row.notes.append(f"rerun: exit {again.code}: {again.line}")
                row.notes += again.why()
            return row
        cases.append(Case(f"{name} at {int(fraction * 100)}%", list(stages), run, quick=quick))
    return cases


def concurrent(world: World, stage: str, out: Path) -> Row:
    before = digest(out)
    start = time.perf_counter()
    a, b = world.run(out, stage), world.run(out, stage)
    a.wait(), b.wait()
    intact = unchanged(before, out)
    codes = sorted([a.code, b.code])
    good = codes in ([0, 0], [0, 2])
    equal = results(out, stage) == results(world.after(stage), stage)
    row = Row("two runs at once", stage, max(codes) if good else codes[-1], (b if b.code else a).line,
              a.traceback or b.traceback, intact, good and equal,
              "both finish, or one waits/declines in a line; the result equals the undisturbed run",
              seconds=time.perf_counter() - start)
    row.notes += [f"exit codes {codes}"] + a.why() + b.why()
    return row


def disk_full(limit: int):
    return lambda world, stage, out: _disk_full(world, stage, out, limit)


def _disk_full(world: World, stage: str, out: Path, limit: int) -> Row:
    before = digest(out)
    start = time.perf_counter()
    proc = world.run(out, stage, limit_bytes=limit).wait()
    intact = unchanged(before, out)
    again, equal = rerun(world, stage, out)
    return Row(f"disk full ({limit // 1024} KB files)", stage, proc.code, proc.line, proc.traceback or again.traceback,
               intact, equal,
               "a one-line error (exit 2); the rerun with room finishes and equals the undisturbed run",
               seconds=time.perf_counter() - start, notes=proc.why() + again.why())


def unwritable(world: World, stage: str, out: Path) -> Row:
    return plain(world, stage, out, ["paths.outputs=/proc/distill-outputs"], expected="a one-line error (exit 2)",
                 case="unwritable output folder", before={})


def corrupt(kind: str):
    """The artifact a stage reads, truncated or garbled after it was written."""
    def run(world: World, stage: str, out: Path) -> Row:
        target = prerequisite(out, stage)
        if target is None:
            return Row(f"{kind} input artifact", stage, None, "no artifact to corrupt", False, None, None, "-",
                       passed=True)
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"\x00garbage" * 64)
        row = plain(world, stage, out, expected="a one-line error naming the file and the command that rebuilds "
                    "it (exit 2); never silently reused", case=f"{kind} input artifact")
        row.notes.append(f"corrupted {target.relative_to(out)}")
        return row
    return run


def prerequisite(out: Path, stage: str) -> Optional[Path]:
    if stage == "train":
        found = sorted(p for p in (out / "labels").rglob("labels.parquet") if "heldout" not in p.parent.name)
        return found[0] if found else None
    if stage in ("prune", "eval", "predict", "publish"):
        found = sorted((out / "students").rglob("model.safetensors"))
        return found[0] if found else None
    return None


def older_version(world: World, stage: str, out: Path) -> Row:
    metas = [*(out / "labels").rglob("meta.json"), *(out / "students").rglob("distill_train.json")]
    for path in metas:
        data = json.loads(path.read_text())
        data["distill_version"] = "0.0.1"
        data["schema"] = 0
        path.write_text(json.dumps(data))
    return plain(world, stage, out, expected="exit 0 (still readable) or a one-line error naming the file and how "
                 "to rebuild it", case="artifact from an older distill")


CASES += fault_case("SIGKILL", ["label", "weak", "train", "prune", "eval", "predict", "publish"], signal.SIGKILL,
                    quick=False)
CASES += fault_case("SIGINT", ["label", "train", "eval", "predict"], signal.SIGINT, fractions=(0.25, 0.5))
CASES += [
    Case("two runs at once", ["label", "train", "eval", "predict"], concurrent),
    Case("disk full (4 KB files)", ["label", "train", "eval", "predict", "publish"], disk_full(4096)),
    Case("disk full (64 KB files)", ["label", "weak", "train", "prune", "eval", "predict", "publish"],
         disk_full(65536)),
    Case("unwritable output folder", ["label", "train", "predict"], unwritable, quick=True),
    Case("truncated input artifact", ["train", "eval", "prune", "predict", "publish"], corrupt("truncated")),
    Case("garbled input artifact", ["train", "predict"], corrupt("garbled")),
    Case("artifact from an older distill", ["train", "eval", "predict"], older_version),
]


def judge(row: Row) -> Row:
    # -9: SIGKILL; -2: a Ctrl-C that came while Python was shutting down after the stage had finished (its
    # handlers are reset to the default then): both pass only when the same command again equals the undisturbed run
    by_signal = row.exit_code in (-signal.SIGKILL, -signal.SIGINT)
    row.passed = (not row.traceback and (row.exit_code in OK_CODES or by_signal) and row.intact is not False
                  and row.rerun_equal is not False and not (by_signal and row.rerun_equal is not True)
                  and row.must_say in row.line)
    return row


def render(rows: list[Row], meta: dict) -> str:
    lines = ["| case | stage | exit | what the user saw | earlier artifacts intact | rerun equals undisturbed | "
             "passed |", "|---|---|---|---|---|---|---|"]
    mark = {True: "yes", False: "**no**", None: "-"}
    for r in rows:
        seen = printable(r.line).replace("|", "\\|")[:160]
        lines.append(f"| {r.case} | {r.stage} | {r.exit_code} | {seen} | {mark[r.intact]} | {mark[r.rerun_equal]} | "
                     f"{'yes' if r.passed else '**no**'} |")
    passed = sum(r.passed for r in rows)
    return (f"**{passed} of {len(rows)} passed** ({len({r.case for r in rows})} cases x the stages they apply to), "
            f"{meta['date']}, {meta['seconds']:.0f} s.\n\n" + "\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the fast-tier subset")
    parser.add_argument("--cases", default="", help="comma-separated substrings of case names to run")
    parser.add_argument("--stages", default=",".join(STAGES + ["all"]))
    parser.add_argument("--work", default=None, help="a folder to keep the models and runs in (default: a temp)")
    parser.add_argument("--out", default="outputs/bench/fault_matrix.json")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="distill-faults-"))
    world = World(work)
    wanted = [s for s in args.stages.split(",") if s]
    picks = [c for c in CASES if (not args.quick or c.quick)
             and (not args.cases or any(w in c.name for w in args.cases.split(",")))]
    used = {s for c in picks for s in c.stages if s in wanted and s in STAGES}
    world.build_base(max(used, key=STAGES.index) if used else STAGES[0])
    rows = []
    for case in picks:
        for stage in case.stages:
            if stage not in wanted:
                continue
            out = world.fresh(re.sub(r"[^a-z0-9]+", "-", f"{case.name}-{stage}".lower()), stage)
            row = judge(case.run(world, stage, out))
            rows.append(row)
            print(f"{'ok  ' if row.passed else 'FAIL'} {row.case} / {row.stage}: exit {row.exit_code}: {row.line}",
                  flush=True)
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "seconds": time.perf_counter() - start, "base_seconds": world.base_seconds}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"_meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
    out.with_suffix(".md").write_text(render(rows, meta))
    print(render(rows, meta))
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
