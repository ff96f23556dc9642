"""The sources of weak supervision named in `cfg.weak`: teachers, keyword and regex labelling functions, a hook.

A teacher source is a teacher preset (conf/teacher/<preset>.yaml) with the source's own overrides on
top (templates, descriptions, ...), composed into a full config whose `teacher` is that source, so
the label stage's cached, resumable labelling serves it unchanged. A labelling function (LF) votes
one label or abstains: `weak.keywords` and `weak.regex` make one LF per label (`kw_<label>`,
`re_<label>`; an empty list switches one off); `weak.teachers.<name>=null` switches a teacher off, and a
source named `teacher` is the run's own teacher (`teacher=<preset>` with its overrides, e.g. an experiment's);
`weak.hook` names a user's function `module:function` (texts -> label name or None).
"""
from __future__ import annotations

import copy
import importlib
import re
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import CONF_DIR, TeacherConfig
from ..errors import DistillError

ABSTAIN = -1
RUN_TEACHER = "teacher"  # a source of this name (or preset) is the run's own teacher, cfg.teacher


@dataclass
class Source:
    """One column of the vote matrix: a teacher (probabilities) or an LF (a label id or ABSTAIN a text)."""

    name: str
    kind: str  # teacher | keywords | regex | hook
    cfg: Optional[DictConfig] = None  # teacher: the whole config, with `teacher` set to this source
    apply: Optional[Callable[[Sequence[str]], np.ndarray]] = None  # LF: texts -> [N] label ids

    @property
    def is_teacher(self) -> bool:
        return self.kind == "teacher"


def teacher_config(cfg: DictConfig, name: str, spec, where: str | None = None) -> DictConfig:
    """`cfg` with `teacher` replaced by preset `spec.preset` (default: `name`) plus the source's overrides;
    `where` names the setting that asked for it in errors (default weak.teachers.<name>)."""
    where = where or f"weak.teachers.{name}"
    spec = dict(OmegaConf.to_container(spec, resolve=False) if isinstance(spec, DictConfig) else spec or {})
    preset = spec.pop("preset", name)
    path = CONF_DIR / "teacher" / f"{preset}.yaml"
    if preset == RUN_TEACHER and cfg.teacher is not None:
        base = cfg.teacher  # the run's own teacher, as configured (e.g. an experiment's descriptions)
    elif not path.exists():
        have = sorted(p.stem for p in path.parent.glob("*.yaml"))
        hint = (f"; name a preset as the source, set its `preset`, or name it `{RUN_TEACHER}` for the run's "
                f"teacher") if where.startswith("weak.") else ""
        raise DistillError(f"{where}: no teacher preset '{preset}' (available: {', '.join(have)}){hint}")
    else:
        base = OmegaConf.load(path)
    try:
        teacher = OmegaConf.merge(OmegaConf.structured(TeacherConfig), base, spec)
    except OmegaConfBaseException as e:
        raise DistillError(f"{where}: {e.msg if hasattr(e, 'msg') else e}".splitlines()[0]) from e
    if cfg.teacher is not None and cfg.teacher.get("device") is not None and "device" not in spec:
        teacher.device = cfg.teacher.device  # the run's device choice holds for every teacher
    if cfg.teacher is not None and "label_sets" not in spec:
        teacher.label_sets = cfg.teacher.label_sets  # multi-label: every teacher's sets by the run's rule
    out = copy.deepcopy(cfg)
    out.teacher = teacher  # interpolations such as ${paths.models} now resolve against the run's config
    return out


def word_pattern(words: Sequence[str]) -> re.Pattern:
    """Any of the words or phrases, whole words only, case-insensitive."""
    alternatives = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True) if w.strip())
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def compile_patterns(patterns: Sequence[str], where: str) -> re.Pattern:
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    except re.error as e:
        raise DistillError(f"{where}: {e} in {list(patterns)}") from e


def pattern_lf(pattern: re.Pattern, label_id: int) -> Callable[[Sequence[str]], np.ndarray]:
    """An LF that votes `label_id` on texts the pattern matches and abstains elsewhere."""
    def apply(texts: Sequence[str]) -> np.ndarray:
        return np.array([label_id if pattern.search(t) else ABSTAIN for t in texts], dtype=np.int64)
    return apply


def load_hook(ref: str) -> Callable:
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise DistillError(f"weak.hook='{ref}': write it as module:function, e.g. my_lfs:label_texts")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise DistillError(f"weak.hook='{ref}' could not be loaded ({e}); is the module on PYTHONPATH?") from e


def hook_lf(ref: str, labels: list[str]) -> Callable[[Sequence[str]], np.ndarray]:
    """The hook's function as an LF: it returns one label name (or None to abstain) a text."""
    function, index = load_hook(ref), {name: i for i, name in enumerate(labels)}

    def apply(texts: Sequence[str]) -> np.ndarray:
        names = list(function(list(texts)))
        if len(names) != len(texts):
            raise DistillError(f"weak.hook {ref} returned {len(names)} labels for {len(texts)} texts")
        unknown = sorted({str(n) for n in names if n is not None and n not in index})
        if unknown:
            raise DistillError(f"weak.hook {ref} returned unknown label(s) {unknown[:5]}; labels are {labels} "
                               f"(or None to abstain)")
        return np.array([ABSTAIN if n is None else index[n] for n in names], dtype=np.int64)
    return apply


def _per_label(mapping, labels: list[str], key: str) -> dict:
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(labels))
    if unknown:
        raise DistillError(f"{key} names unknown label(s) {unknown}; labels are {labels}")
    return {label: list(mapping[label]) for label in labels if mapping.get(label)}


def build_sources(cfg: DictConfig) -> list[Source]:
    """Every source `cfg.weak` names, teachers first, in config order."""
    weak, labels = cfg.weak, list(cfg.data.labels)
    sources = [Source(name, "teacher", cfg=teacher_config(cfg, name, spec)) for name, spec in active_teachers(weak)]
    for label, words in _per_label(weak.keywords, labels, "weak.keywords").items():
        sources.append(Source(f"kw_{label}", "keywords", apply=pattern_lf(word_pattern(words), labels.index(label))))
    for label, patterns in _per_label(weak.regex, labels, "weak.regex").items():
        pattern = compile_patterns(patterns, f"weak.regex.{label}")
        sources.append(Source(f"re_{label}", "regex", apply=pattern_lf(pattern, labels.index(label))))
    if weak.hook:
        sources.append(Source("hook", "hook", apply=hook_lf(weak.hook, labels)))
    if not sources:
        raise DistillError("weak names no source: set weak.teachers, weak.keywords, weak.regex or weak.hook")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise DistillError(f"weak: two sources share a name in {names}")
    return sources


def active_teachers(weak: DictConfig) -> list[tuple[str, object]]:
    """(name, overrides) of the teacher sources; `weak.teachers.<name>=null` switches one off."""
    return [(name, spec) for name, spec in weak.teachers.items() if spec is not None]


def lf_identity(weak: DictConfig) -> dict:
    """What determines the LFs' votes, for the content key (a hook is keyed by its name only)."""
    return {"keywords": OmegaConf.to_container(weak.keywords), "regex": OmegaConf.to_container(weak.regex),
            "hook": weak.hook}
