"""teacher=auto: pick the teacher most likely to be right on the user's texts, without gold.

Every candidate teacher (`teacher.candidates`, presets of conf/teacher/) labels the same seeded sample of
the pool (`teacher.sample` texts, through the per-text label cache, so the chosen teacher never labels
them twice). A one-coin Dawid-Skene label model over their votes estimates each one's accuracy from how
they agree with each other; the highest estimate wins. Answers from stage=review, where there are any,
anchor the label model on real labels. The choice, with its table (estimated accuracy, agreement, how well
each separates the labels, seconds a text), is kept under <outputs>/teacher-choice/, so every later stage
and rerun uses the same teacher at no cost, and `cfg.teacher` becomes that candidate's config.

Limit (measured in docs/benchmarks.md): agreement cannot rank two candidates when every other candidate is
close to random, because a random voter agrees with both alike.
"""
from __future__ import annotations

import copy
import itertools
import logging
import os
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .. import artifacts
from ..config import TeacherConfig
from ..data import data_fingerprint, stream_pool
from ..errors import DistillError
from ..evaluation.metrics import markdown_table
from ..labelling import local_teacher
from ..labelstore import TextCache, label_texts, read_labels
from .labelmodel import DawidSkene, one_hot
from .sources import teacher_config

log = logging.getLogger(__name__)
VERSION = 2  # of the comparison: a change to how it chooses makes a new choice file
# The auto teacher's settings every candidate shares when the user set them (the prompts and label names
# apply to every prompted teacher); a candidate's own preset holds the rest.
SHARED = ("template", "templates", "descriptions", "descriptions_file", "label_text", "multi_label", "max_length",
          "shortlist", "ranker")


def is_auto(cfg: DictConfig) -> bool:
    teacher = cfg.get("teacher")
    return teacher is not None and _kind(teacher) == "auto"


def _kind(teacher: DictConfig) -> str:
    return str(getattr(teacher.kind, "value", teacher.kind))


def wanted(cfg: DictConfig) -> bool:
    """teacher=auto, or a prompted single-label teacher over `teacher.auto_from` labels or more: over many labels
    the NLI teacher is near random where a sentence encoder is not (0-2% against 10-61% right on the
    28-, 32- and 77-label sets of docs/benchmarks.md), so by default it is compared first."""
    if is_auto(cfg):
        return True
    from ..teachers import TEACHERS

    teacher, data = cfg.get("teacher"), cfg.get("data")
    if teacher is None or teacher.get("auto_from") is None or teacher.multi_label or data is None:
        return False
    kind = TEACHERS.get(_kind(teacher))
    if kind is None or not kind.PROMPTED or OmegaConf.is_missing(data, "labels"):
        return False
    return len(data.labels) >= int(teacher.auto_from)


def candidate_config(cfg: DictConfig, name: str) -> DictConfig:
    """The run's config with `teacher` the candidate preset `name`, plus what the user set on the auto teacher."""
    if name == "auto":
        raise DistillError("teacher.candidates names 'auto': list teacher presets, e.g. [deberta-v3-nli, mpnet]")
    given = OmegaConf.to_container(cfg.teacher, resolve=True)
    raw = OmegaConf.to_container(cfg.teacher, resolve=False)  # compared unresolved: the default ranker is an interpolation
    defaults = OmegaConf.to_container(OmegaConf.structured(TeacherConfig), resolve=False)
    spec = {key: given[key] for key in SHARED if key in raw and raw[key] != defaults.get(key)}
    out = teacher_config(cfg, name, spec, where=f"teacher.candidates ({name})")
    if _kind(out.teacher) == "auto":
        raise DistillError(f"teacher.candidates: preset '{name}' is itself teacher=auto")
    return out


def choice_dir(cfg: DictConfig, candidates: dict[str, DictConfig]) -> "os.PathLike":
    identity = {"version": VERSION, "data": data_fingerprint(cfg.data, os.path.expanduser(cfg.paths.data))["pool"],
                "labels": list(cfg.data.labels), "sample": int(cfg.teacher.sample),
                "candidates": {name: artifacts.teacher_identity(c) for name, c in candidates.items()}}
    answers = artifacts.answers_identity(cfg)
    if answers:
        identity["answers"] = answers
    return artifacts.outputs_root(cfg) / "teacher-choice" / cfg.data.name / artifacts.stable_hash(identity)


def resolve(cfg: DictConfig) -> DictConfig:
    """`cfg` with its teacher replaced, in place, by the chosen candidate (made now or read back) where a choice
    is `wanted`: teacher=auto, or the configured teacher over many labels (itself one of the candidates); any
    other teacher is left as it is."""
    if not wanted(cfg):
        return cfg
    if cfg.teacher.multi_label:
        raise DistillError("teacher=auto compares single-label teachers; with teacher.multi_label=true name the "
                           "teacher (e.g. teacher=deberta-v3-nli)")
    names = list(cfg.teacher.candidates)
    if len(set(names)) != len(names) or (is_auto(cfg) and len(names) < 2):
        raise DistillError(f"teacher.candidates={names}: name at least two different teacher presets")
    if int(cfg.teacher.sample) < 20:
        raise DistillError(f"teacher.sample={cfg.teacher.sample}: compare the candidates on at least 20 texts")
    if is_auto(cfg):
        candidates = {name: candidate_config(cfg, name) for name in names}
    else:  # the configured teacher, as configured, against the other candidates
        own = str(cfg.teacher.name)
        candidates = {own: copy.deepcopy(cfg)} | {n: candidate_config(cfg, n) for n in names if n != own}
        if len(candidates) < 2:
            return cfg
        log.info("%d labels: teacher %s is first compared with %s on %d texts, without gold (teacher.auto_from=%d; "
                 "teacher.auto_from=null keeps it as it is)", len(cfg.data.labels), own,
                 ", ".join(n for n in candidates if n != own), int(cfg.teacher.sample), int(cfg.teacher.auto_from))
        names = list(candidates)
    folder = choice_dir(cfg, candidates)
    path = folder / "choice.json"
    with artifacts.exclusive(folder, "choosing the teacher"):
        if path.exists():
            choice = _read(path)
            log.info("teacher: %s, chosen before without gold (%s)", choice["chosen"], folder / "choice.md")
        else:
            choice = compare(cfg, candidates, folder)
            artifacts.write_json(path, choice)
            (folder / "choice.md").write_text(render(choice))
            log.info("%d teachers compared on %d texts of the pool (%s):\n%s", len(names), choice["n_texts"],
                     folder / "choice.md", render(choice))
    if choice["chosen"] not in candidates:
        raise DistillError(f"{path} names teacher {choice['chosen']}, not one of {names}; delete it to choose again")
    cfg.teacher = candidates[choice["chosen"]].teacher
    cfg.teacher.chosen_by = str(folder / "choice.md")
    return cfg


def chosen_line(teacher: DictConfig) -> str | None:
    """For the report: which teacher was chosen without gold, against which, and where the table is."""
    where = teacher.get("chosen_by")
    if not where:
        return None
    choice = _read(Path(where).with_name("choice.json"))
    others = ", ".join(r["teacher"] for r in choice["candidates"] if r["teacher"] != choice["chosen"])
    return f"The teacher, {choice['chosen']}, was compared with {others} without gold and {choice['why']} ({where})."


def _read(path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise DistillError(f"{path} is not a readable teacher choice ({e}); delete it to choose again") from e


def sample_texts(cfg: DictConfig) -> list[str]:
    """A seeded sample of `teacher.sample` pool texts (the whole pool when it is smaller)."""
    pool = stream_pool(cfg.data, os.path.expanduser(cfg.paths.data))
    n = len(pool)
    if n == 0:
        raise DistillError("teacher=auto: the pool has no texts to compare the teachers on")
    keep = np.zeros(n, dtype=bool)
    keep[np.random.default_rng(cfg.data.seed).choice(n, min(int(cfg.teacher.sample), n), replace=False)] = True
    return list(itertools.compress(pool, keep.tolist()))


def compare(cfg: DictConfig, candidates: dict[str, DictConfig], folder) -> dict:
    """Label the sample with every candidate, estimate each one's accuracy, and choose."""
    labels = list(cfg.data.labels)
    texts, known = sample_with_answers(cfg, sample_texts(cfg), labels)
    probs, rows = {}, []
    for name, c in candidates.items():
        log.info("teacher choice: %s labels %d sample texts", name, len(texts))
        cache = TextCache(artifacts.label_cache(c), len(labels)) if c.label.cache else None
        start = time.perf_counter()
        done = label_texts(texts, lambda c=c: local_teacher(c, len(texts)), folder / name,
                           {"texts": artifacts.stable_hash(texts), "labels": labels,
                            "teacher": artifacts.teacher_identity(c)}, c.label.shard_size, cache=cache)
        seconds = time.perf_counter() - start
        _, probs[name] = read_labels(done.path, labels)
        fresh = len(texts) - done.meta.get("n_from_cache", 0)
        rows.append({"teacher": name, "model": str(c.teacher.model),
                     "separation_lift": (done.meta.get("separation") or {}).get("lift"),
                     "seconds_per_text": seconds / fresh if fresh and not done.cached else None})
    return choose(rows, probs, len(labels), known=known)


def sample_with_answers(cfg: DictConfig, texts: list[str], labels: list[str]) -> tuple[list[str], np.ndarray | None]:
    """The sample plus every text a person labelled in stage=review, and each one's label id (-1: not
    labelled), or None without answers: the candidates are then also compared on real labels."""
    answers = artifacts.review_answers(cfg)
    if not len(answers):
        return texts, None
    given, seen = answers.by_text(), set(texts)
    texts = texts + [t for t in dict.fromkeys(answers.texts) if t not in seen]
    index = {name: i for i, name in enumerate(labels)}
    return texts, np.array([index.get(given.get(t), -1) for t in texts])


def choose(rows: list[dict], probs: dict[str, np.ndarray], k: int, known: np.ndarray | None = None) -> dict:
    """The comparison: each candidate's estimated accuracy (one-coin Dawid-Skene over the argmax votes), its
    agreement with each other candidate, and the one chosen.

    The class prior is held uniform. A prior learned from the votes (their majority, or EM) takes on the class
    skew that two related candidates share (two sentence encoders over the same prompts, both calling most
    texts one label) and then credits both; on the six label sets of scripts/bench_teacher_choice.py the
    uniform prior chose the best candidate on five, the majority's prior on four (docs/benchmarks.md)."""
    names = [r["teacher"] for r in rows]
    ids = np.stack([probs[name].argmax(1) for name in names], axis=1)
    model = DawidSkene(k, one_coin=True, class_prior=np.ones(k)).fit(one_hot(ids, k), known=known)
    estimated = model.accuracies()
    agreement = {a: {b: round(float((ids[:, i] == ids[:, j]).mean()), 4) for j, b in enumerate(names) if j != i}
                 for i, a in enumerate(names)}
    for row, acc in zip(rows, estimated):
        row["estimated_accuracy"] = round(float(acc), 4)
        row["agreement"] = agreement[row["teacher"]]
    best = int(np.argmax(estimated))
    chosen = names[best]
    others = ", ".join(f"{n} {a:.2f}" for n, a in zip(names, estimated) if n != chosen)
    anchor = f", anchored on {int((known >= 0).sum())} reviewed answers" if known is not None else " without gold"
    why = (f"chose {chosen}: its estimated accuracy, {estimated[best]:.2f}, is the highest "
           f"(label model over {len(ids)} texts{anchor}; {others})")
    return {"version": VERSION, "chosen": chosen, "why": why, "n_texts": int(len(ids)),
            "n_known": int((known >= 0).sum()) if known is not None else 0, "candidates": rows}


def render(choice: dict) -> str:
    rows = [[("**" + r["teacher"] + "**") if r["teacher"] == choice["chosen"] else r["teacher"],
             r["estimated_accuracy"], ", ".join(f"{b} {v:.2f}" for b, v in r["agreement"].items()),
             r["separation_lift"], r["seconds_per_text"]] for r in choice["candidates"]]
    table = markdown_table(["teacher", "estimated accuracy (no gold)", "agrees with", "separation lift",
                            "seconds a text"], rows)
    return f"{table}\n\n{choice['why']}.\n"
