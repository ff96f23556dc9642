"""Where every artifact is on disk for a config: stable, content-keyed paths under `paths.outputs`, and
the lookups the stages share (which labels a student learns from, which student a stage works on,
which eval numbers belong to it).

`train` finds what `label` wrote, and a sweep over student settings reuses one labelling, because every
path is derived from the settings that change its content (never from a timestamp):

    outputs/labels/<data>/<teacher>-<split>-<key>/labels.parquet      teacher probabilities (split: pool|heldout)
    outputs/students/<data>/<teacher>-<student>-<targets>-<key>/            fine-tuned student folder
    outputs/eval/<data>/<same name as the student>/metrics.{json,md}       side-by-side scores
    outputs/weak/<data>/<weak>-<key>/{pool,heldout}.parquet, summary.{json,md}   combined labels (stage=weak)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .config import EvalStudents, TeacherConfig, multi_label
from .data import data_fingerprint, has_gold
from .errors import DistillError
from .students.folder import RECORD_FILE, folder_meta, is_student, is_trained, trained_on
from .students.trainset import holdout_rows

log = logging.getLogger(__name__)
# Student/train settings that change the student; `labels_path` is covered by the label key, `holdout` is
# put in as the share it comes to (see `holdout`).
TRAIN_EXCLUDE = ("device", "labels_path", "overwrite", "resume", "holdout", "thresholds", "label_balance")
# Train settings added later: left at None they stay out, so earlier students keep their names.
TRAIN_NONE_OMITTED = ("max_minutes",)


def stable_hash(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def outputs_root(cfg: DictConfig) -> Path:
    return Path(os.path.expanduser(cfg.paths.outputs))


def teacher_identity(cfg: DictConfig) -> dict:
    """The teacher settings that change its labels, as each teacher kind declares them (LABEL_KEYS)."""
    from .teachers import TEACHERS, identity_keys

    teacher = OmegaConf.to_container(cfg.teacher, resolve=True)
    keys, explicit = identity_keys()
    # Unset options are left out, so adding a new option to the schema keeps existing keys valid.
    identity = {k: teacher[k] for k in keys if teacher.get(k) not in (None, {}, [])}
    for key in explicit:  # YAML reads compile: false as a bool
        default = str(getattr(TeacherConfig, key)).lower()
        value = str(teacher.get(key, default)).lower()
        if value != default:
            identity[key] = value
    kind = TEACHERS.get(teacher.get("kind"))
    for key in ("label_text", "shortlist", "ranker"):  # in the key as what they make, below
        identity.pop(key, None)
    if kind is not None and kind.PROMPTED:
        from .teachers.nli import descriptions_of, label_texts

        if identity.pop("descriptions_file", None):  # what the file holds, wherever it lies
            identity["descriptions"] = descriptions_of(cfg.teacher)
        labels = list(cfg.data.labels)
        # only the names that read otherwise: label names that read as they are keep every key made before
        renamed = {label: text for label, text in zip(labels, label_texts(cfg.teacher, labels)) if text != label}
        if renamed:
            identity["label_text"] = renamed
        from .teachers.shortlist import shortlist_k

        if k := shortlist_k(cfg.teacher, len(labels)):  # only where it is on: full teachers keep their keys
            identity["shortlist"] = {"k": k, "ranker": teacher.get("ranker")}
    return {**identity, **(kind.extra_identity(teacher) if kind else {})}


def label_identity(cfg: DictConfig, split: str = "pool") -> dict:
    """Everything that determines the teacher's labels of a split: its texts, the label names, the teacher."""
    return {
        "data": data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))[split],
        "labels": list(cfg.data.labels),
        "teacher": teacher_identity(cfg),
    }


def labels_dir(cfg: DictConfig, split: str = "pool") -> Path:
    key = stable_hash(label_identity(cfg, split))
    return outputs_root(cfg) / "labels" / cfg.data.name / f"{cfg.teacher.name}-{split}-{key}"


def label_cache(cfg: DictConfig) -> Path:
    """The per-text cache of this teacher's labels over these label names, shared by every file and split."""
    key = stable_hash({"labels": list(cfg.data.labels), "teacher": teacher_identity(cfg)})
    return outputs_root(cfg) / "label-cache" / f"{cfg.teacher.name}-{key}.sqlite"


def labels_file(cfg: DictConfig, split: str = "pool") -> Path:
    return labels_dir(cfg, split) / "labels.parquet"


def weak_identity(cfg: DictConfig) -> dict:
    """Everything that determines the combined labels of stage=weak: the pool, every source, the label model."""
    from .weak.sources import active_teachers, lf_identity, teacher_config

    weak = cfg.weak
    settings = OmegaConf.to_container(weak, resolve=True)
    for key in ("name", "teachers", "keywords", "regex", "hook"):
        settings.pop(key, None)
    if multi_label(cfg):  # the teachers vote their label sets: their rules and the none label make the votes
        settings["teacher_label_sets"] = {name: str(teacher_config(cfg, name, spec).teacher.label_sets)
                                          for name, spec in active_teachers(weak)}
        settings["none_label"] = cfg.data.get("none_label")
    else:
        settings.pop("label_sets", None)  # single-label: unused
    return {
        "data": data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))["pool"],
        "labels": list(cfg.data.labels),
        "teachers": {name: teacher_identity(teacher_config(cfg, name, spec)) for name, spec in active_teachers(weak)},
        "lfs": lf_identity(weak),
        "settings": settings,
    } | ({"answers": answers} if (answers := answers_identity(cfg)) else {})


def weak_dir(cfg: DictConfig) -> Path:
    key = stable_hash(weak_identity(cfg))
    return outputs_root(cfg) / "weak" / cfg.data.name / f"{cfg.weak.name}-{key}"


def uses_weak(cfg: DictConfig) -> bool:
    """The student learns from stage=weak's combined labels: `weak` is set and no explicit labels_path."""
    return cfg.get("weak") is not None and not cfg.train.labels_path


def sets_rule(cfg: DictConfig) -> str:
    """Multi-label: the rule that makes the label sets a student learns from, over its whole label file: the
    weak label model's (weak.label_sets) or the teacher's (teacher.label_sets)."""
    return str(cfg.weak.label_sets if uses_weak(cfg) else cfg.teacher.label_sets)


def review_answers(cfg: DictConfig):
    """The person's answers `review.answers` names (review.answers.Answers; empty when none)."""
    from .review.answers import Answers, answer_files, read_answers

    review = cfg.get("review")
    if review is None:
        return Answers()
    return read_answers(answer_files(review.answers, review_dir(cfg)), list(cfg.data.labels))


def answers_identity(cfg: DictConfig) -> dict | None:
    """What of the answers changes a student: the texts it learns gold labels for (and their weight) and
    the random part it leaves out. None without answers, so earlier students keep their names."""
    answers = review_answers(cfg)
    if not len(answers):
        return None
    return {"gold": stable_hash(sorted(zip(answers.texts, answers.gold, answers.parts))),
            "gold_weight": float(cfg.review.gold_weight)}


def student_identity(cfg: DictConfig) -> dict:
    train = OmegaConf.to_container(cfg.train, resolve=True)
    labels = weak_identity(cfg) if uses_weak(cfg) else label_identity(cfg)
    share = holdout(cfg)
    answers = answers_identity(cfg)
    # multi-label: the rule that makes the label sets (and the none label) sets the student's targets;
    # train.thresholds and train.label_balance are multi-label only (single-label names stay as they were)
    # with texts held out (no gold) the sets are made over the whole file, before those are taken out (a rate: rule
    # ranks every text): `sets_over` keeps students whose sets were made after from being reused
    multi = {"multi_label": {"label_sets": sets_rule(cfg), "none_label": cfg.data.get("none_label"),
                             "thresholds": str(cfg.train.thresholds), "label_balance": bool(cfg.train.label_balance),
                             "selection": "map", **({"sets_over": "the whole file"} if share else {})}} \
        if multi_label(cfg) else {}
    return ({"answers": answers} if answers else {}) | multi | {
        "labels": str(cfg.train.labels_path) if cfg.train.labels_path else labels,
        # options left at None (e.g. student.layers) stay out, so adding one keeps earlier students' names
        "student": {k: v for k, v in OmegaConf.to_container(cfg.student, resolve=True).items()
                    if v is not None and k != "hub_id"},  # hub_id names the model, `model` is what is used
        "train": {k: v for k, v in train.items() if k not in TRAIN_EXCLUDE
                  and not (k in TRAIN_NONE_OMITTED and v is None)} | ({"holdout": share} if share else {}),
    }


def holdout(cfg: DictConfig) -> float:
    """The share of the label file kept out of training: train.holdout, else 0.1 when the data has no gold
    (eval then scores the student against the teacher on those texts) and 0 when it has."""
    if cfg.train.get("holdout") is not None:
        return float(cfg.train.holdout)
    return 0.0 if has_gold(cfg.data) else 0.1


def unseen_rows(folder: Path) -> tuple[Path, np.ndarray]:
    """(the label file a student learned from, the rows of it kept out of its training)."""
    labels_path, record = trained_on(folder), folder_meta(folder).get("holdout") or {}
    if not labels_path or not record.get("n_texts"):
        raise DistillError(f"{folder} was trained on every labelled text, so there is no text it has not seen to "
                           f"score it on without gold labels: train it again (train.holdout=0.1 keeps a tenth out; "
                           f"it is the default when the data has no gold labels), or name gold labels "
                           f"(data.label_column)")
    import pyarrow.parquet as pq

    n = pq.ParquetFile(expand(labels_path)).metadata.num_rows
    return expand(labels_path), holdout_rows(n, record["fraction"], record["seed"])


def trained_texts(folder: Path, answers=None) -> set[str]:
    """The texts a student learned from: its label file but the held-out rows, and the review answers it was
    given (`answers`: the review.answers.Answers it was trained with, when any)."""
    import pandas as pd

    path = trained_on(folder)
    seen: set[str] = set()
    if path and expand(path).exists():
        texts = pd.read_parquet(expand(path), columns=["text"])["text"].tolist()
        held = set(unseen_rows(folder)[1].tolist()) if (folder_meta(folder).get("holdout") or {}).get("n_texts") \
            else set()
        seen = {t for i, t in enumerate(texts) if i not in held}
    record = Path(folder) / RECORD_FILE
    if answers is not None and record.is_file() and json.loads(record.read_text()).get("answers"):
        seen |= {t for t, p in zip(answers.texts, answers.parts) if p != "random"}
    return seen


def review_dir(cfg: DictConfig) -> Path:
    """Where stage=review writes this data set's queues (round-1.csv, ...), which a person fills in."""
    return outputs_root(cfg) / "review" / cfg.data.name


def run_name(cfg: DictConfig) -> str:
    key = stable_hash(student_identity(cfg))
    source = f"weak-{cfg.weak.name}" if uses_weak(cfg) else cfg.teacher.name
    return f"{source}-{cfg.student.name}-{cfg.train.targets}-{key}"


def student_dir(cfg: DictConfig) -> Path:
    return outputs_root(cfg) / "students" / cfg.data.name / run_name(cfg)


def eval_dir(cfg: DictConfig) -> Path:
    return outputs_root(cfg) / "eval" / cfg.data.name / run_name(cfg)


def write_json(path: Path, obj) -> None:
    """Write JSON atomically: a crash never leaves a half-written file behind, and two processes writing it at
    once each rename a whole file of their own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def exclusive(folder: Path, doing: str, enabled: bool = True):
    """Hold an advisory lock on `folder` (its `.lock` file) while `doing` it: two runs asking for the same
    artifact at once (a second terminal, parallel sweep jobs) take turns, and the second finds the first's
    finished work. `enabled=False` (the ranks of one distributed training) takes no lock."""
    if not enabled:
        yield
        return
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is %s in %s; waiting for it to finish", doing, folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def expand(path) -> Path:
    return Path(os.path.expanduser(str(path)))


def source_name(cfg: DictConfig) -> str:
    """Who labelled the student's data: the teacher's name, or weak-<preset> under weak supervision."""
    return f"weak-{cfg.weak.name}" if uses_weak(cfg) else cfg.teacher.name


def trained_labels(cfg: DictConfig) -> Path:
    """The label file this config's students learn from, whether or not it exists yet."""
    return weak_dir(cfg) / "pool.parquet" if uses_weak(cfg) else labels_file(cfg)


def find_labels(cfg: DictConfig) -> Path:
    """The label file to learn from: `train.labels_path`, else what stage=label (or weak) wrote for this config."""
    if cfg.train.labels_path:
        path = expand(cfg.train.labels_path)
        if not path.exists():
            raise DistillError(f"train.labels_path: {path} does not exist")
        return path
    if uses_weak(cfg):
        path = weak_dir(cfg) / "pool.parquet"
        if not path.exists():
            raise DistillError(f"no combined labels for weak={cfg.weak.name} at {path}: run `python -m distill "
                               f"stage=weak` with the same data/weak overrides first")
        return path
    path = labels_file(cfg, "pool")
    if not path.exists():
        raise DistillError(f"no teacher labels for this data/teacher at {path}: run `python -m distill stage=label` "
                           f"with the same data/teacher overrides first, or set train.labels_path")
    return path


def record_student(out_dir: Path, labels_path: Path, cfg: DictConfig, **extra) -> None:
    """distill_config.json: the label file and the whole config a student was made with."""
    write_json(Path(out_dir) / RECORD_FILE, {
        "labels_path": str(labels_path), **extra, "config": OmegaConf.to_container(cfg, resolve=True)})


def find_student(cfg: DictConfig, key: str = "eval.student_path") -> Path:
    """The student a stage works on: the folder the setting `key` names, else the one this config's
    stage=train wrote; it must hold a student."""
    explicit = OmegaConf.select(cfg, key)
    path = expand(explicit) if explicit else student_dir(cfg)
    if not is_student(path):
        answered = "" if explicit or answers_identity(cfg) is None else \
            " (your review answers change the student: `distill` retrains it with them)"
        raise DistillError(f"no trained student at {path}{answered}: run `python -m distill stage=train` with the "
                           f"same overrides first, or set {key}")
    return path


def find_students(cfg: DictConfig) -> list[Path]:
    """`eval.students`: this config's student, or all trained on the labels this config's label (or weak)
    stage wrote: every student of one labelling, whatever its model or training settings."""
    if _evaluates_recipe(cfg):
        return recipe_students(cfg)  # every student the recipe made: its intermediate models too
    if cfg.eval.students == EvalStudents.this or cfg.eval.student_path:
        return [find_student(cfg)]
    root = outputs_root(cfg) / "students" / cfg.data.name
    trained = [p for p in sorted(root.glob(f"{source_name(cfg)}-*")) if is_student(p) and is_trained(p)]
    # this labelling's students, then those that learned from labels one of them wrote (a teacher assistant)
    wanted, found = {_resolved(trained_labels(cfg))}, []
    while True:
        new = [p for p in trained if p not in found and _resolved(trained_on(p)) in wanted]
        if not new:
            break
        found += new
        wanted |= _labels_written_by(new, outputs_root(cfg) / "labels" / cfg.data.name)
    found.sort()
    if not found:
        raise DistillError(f"eval.students=all: no trained student under {root} for {source_name(cfg)}; "
                           "run stage=train first")
    return found


def _resolved(path) -> str | None:
    return str(expand(path).resolve()) if path else None


def _labels_written_by(students: list[Path], labels_root: Path) -> set[str]:
    """The label files under `labels_root` that one of `students` wrote as a classifier teacher."""
    folders = {_resolved(p) for p in students}
    written = set()
    for labels in labels_root.glob("*/labels.parquet"):
        teacher = classifier_teacher_of(labels)
        if teacher and _resolved(teacher.get("model")) in folders:
            written.add(_resolved(labels))
    return written


def classifier_teacher_of(labels_path) -> dict | None:
    """The settings of the trained classifier (teacher.kind=classifier: a teacher assistant) that wrote a
    label file, from the meta.json beside it; None when a zero-shot teacher or stage=weak wrote it, or the
    meta.json is missing or unreadable."""
    meta = Path(labels_path).parent / "meta.json" if labels_path else None
    try:
        teacher = json.loads(meta.read_text()).get("teacher") or {} if meta is not None else {}
    except (OSError, ValueError):
        return None
    return teacher if teacher.get("kind") == "classifier" else None


def report_dir(cfg: DictConfig) -> Path:
    """Where stage=eval writes for this config: the student's eval folder, or <source>-all for eval.students=all."""
    if cfg.eval.students == EvalStudents.all and not cfg.eval.student_path:
        return outputs_root(cfg) / "eval" / cfg.data.name / f"{source_name(cfg)}-all"
    if _evaluates_recipe(cfg):  # its own folder: not the one of the student the run would train without it
        key = stable_hash([path.name for path in recipe_students(cfg)])
        return outputs_root(cfg) / "eval" / cfg.data.name / f"{source_name(cfg)}-recipe-{cfg.recipe.name}-{key}"
    return eval_dir(cfg)


def find_metrics(cfg: DictConfig, student: Path, data_name: str) -> Path | None:
    """`hub.metrics_path`, else what stage=eval wrote for this student (its eval folder has the student
    folder's name); None when the student was never evaluated."""
    if cfg.hub.metrics_path:
        path = expand(cfg.hub.metrics_path)
        if not path.is_file():
            raise DistillError(f"hub.metrics_path: {path} does not exist")
        return path
    if cfg.hub.student_path:
        path = outputs_root(cfg) / "eval" / data_name / student.name / "metrics.json"
    else:
        path = eval_dir(cfg) / "metrics.json"
    if path.is_file():
        return path
    # else a comparison (eval.students=all, a recipe's) that measured this folder among others (the newest one)
    found = [p for p in (outputs_root(cfg) / "eval" / data_name).glob("*/metrics.json") if _measures(p, student)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _evaluates_recipe(cfg: DictConfig) -> bool:
    """Whether stage=eval compares the students cfg.recipe made (rather than one named student, or all)."""
    return cfg.get("recipe") is not None and cfg.eval.students == EvalStudents.this and not cfg.eval.student_path


def _measures(metrics_path: Path, student: Path) -> bool:
    models = json.loads(metrics_path.read_text()).get("models", [])
    return any(expand(m.get("model", "")).resolve() == student.resolve() for m in models)


def repo_folder(cfg: DictConfig, repo_id: str) -> Path:
    """Where stage=publish assembles the Hub repo folder."""
    if cfg.hub.out_dir:
        return expand(cfg.hub.out_dir)
    return outputs_root(cfg) / "hub" / repo_id.replace("/", "--")  # '--' never occurs in a repo id


def predictions_path(cfg: DictConfig, input_path: Path) -> Path:
    """Where stage=predict writes: predict.output, else outputs/predictions/<input>.predictions.<ext>."""
    if cfg.predict.output:
        return expand(cfg.predict.output)
    return outputs_root(cfg) / "predictions" / f"{input_path.stem}.predictions{input_path.suffix}"


def predict_student(cfg: DictConfig) -> Path:
    """The student stage=predict runs: predict.student_path as given (a folder or a hub id), else this
    config's trained student."""
    if cfg.predict.student_path:
        return expand(cfg.predict.student_path)
    return find_student(cfg, "predict.student_path")


def pruned_suffix(cfg: DictConfig, short: bool = False) -> str:
    """What the cut was, for the pruned student's folder (ffn768, ffn768-drop1, drop1-assistant-pool-<key>...)
    and, `short`, its name (the labels' teacher without the key: drop1-assistant)."""
    parts = [f"ffn{cfg.prune.ffn_size}"] if cfg.prune.ffn_size is not None else []
    if cfg.prune.drop_layers:
        parts.append(f"drop{cfg.prune.drop_layers}")
    if cfg.prune.labels_path:  # the labels' folder, <teacher>-pool-<key>, says whose labels they are
        folder = expand(cfg.prune.labels_path)
        folder = (folder if folder.is_dir() else folder.parent).resolve().name
        parts.append(folder.rsplit("-pool-", 1)[0] if short else folder)
    return "-".join(parts)


def pruned_dir(cfg: DictConfig) -> Path:
    """Where stage=prune writes: next to the trained student, `<student folder>-<pruned_suffix>`."""
    source = student_dir(cfg)
    return source.with_name(f"{source.name}-{pruned_suffix(cfg)}")


def prune_labels(cfg: DictConfig) -> Path:
    """The label file the cut student is fine-tuned on: prune.labels_path, else the source student's."""
    if not cfg.prune.labels_path:
        return find_labels(cfg)
    path = expand(cfg.prune.labels_path)
    if path.is_dir():
        path = path / "labels.parquet"
    if not path.is_file():
        raise DistillError(f"prune.labels_path: {path} does not exist; run stage=label for those labels first")
    return path


def _json_default(value):
    """numpy scalars as numbers, enums as their value, anything else (paths) as its string."""
    return value.item() if hasattr(value, "item") else getattr(value, "value", str(value))


# --- recipes: a chain of stages that makes a student ------------------------------------------------------

STEP_PRODUCT = {"train": student_dir, "prune": pruned_dir, "label": labels_file}  # what a step of each stage makes
STEP_REF = re.compile(r"(?<!\$)\{([\w-]+)\}")  # `{step}`, not an interpolation `${...}`


def recipe_steps(cfg: DictConfig):
    """(step, its config, what it makes) for each step of cfg.recipe, in order. A step's config is the run's
    own (the overrides it was composed from, `command`) with the step's overrides on top, in which
    `{<step>}` stands for what that earlier step made. Paths are content keys, so this gives the same
    answer before a step runs (to run it) and after (to find what it made); iterate it in step with the
    running, since a later step's key can depend on what an earlier one wrote."""
    from .config import load_config

    if cfg.get("recipe") is None:
        raise DistillError("no recipe is set: e.g. recipe=best (the presets are in distill/conf/recipe/)")
    made: dict[str, str] = {}
    for step in cfg.recipe.steps:
        overrides = [STEP_REF.sub(lambda m: _made_by(m.group(1), made, cfg.recipe.name, step.name), o)
                     for o in step.overrides]
        step_cfg = load_config(list(cfg.command) + overrides)
        product = STEP_PRODUCT[str(step.stage)](step_cfg)
        made[step.name] = str(product)
        yield step, step_cfg, product


def _made_by(earlier: str, made: dict[str, str], recipe: str, step: str) -> str:
    if earlier not in made:
        raise DistillError(f"recipe {recipe}, step {step}: {{{earlier}}} names no earlier step "
                           f"(earlier: {', '.join(made) or 'none'})")
    return made[earlier]


def recipe_students(cfg: DictConfig) -> list[Path]:
    """The students a recipe's steps made (train and prune steps), in order; each must be there."""
    found = [path for step, _, path in recipe_steps(cfg) if str(step.stage) in ("train", "prune")]
    missing = [p for p in found if not is_trained(p)]
    if missing:
        raise DistillError(f"recipe {cfg.recipe.name} has not made {missing[0]} yet: run `distill stage=recipe` "
                           f"(or stage=all) with the same overrides first")
    return found
