"""Check command-line overrides against the schema before Hydra runs, for one-line errors with a fix.

Hydra would reject these too, but with a multi-line message that suggests `+key=value`, which the
typed schema refuses as well. Here: unknown keys (with the closest valid name), unknown presets of a
config group (with the available ones) and values of the wrong simple type.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from enum import Enum
from pathlib import Path
from typing import Optional

from .config import CONF_DIR, Config

SWEEP_MARKERS = (",", "${", "(", "[", "{")  # sweeps, interpolations, sweep functions, lists: Hydra's job


def config_dirs(argv: list[str]) -> list[Path]:
    """The folders presets are read from: the package's conf/, and those the command line adds with
    --config-dir / -cd DIR or hydra.searchpath=[file://DIR, ...] (pkg:// entries are not looked into)."""
    dirs, it = [CONF_DIR], iter(argv)
    for arg in it:
        if arg in ("--config-dir", "-cd"):
            dirs.append(Path(next(it, "")))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
        elif arg.lstrip("+").startswith("hydra.searchpath="):
            entries = arg.split("=", 1)[1].strip("[]").split(",")
            dirs += [Path(e.strip().strip("'\"")[len("file://"):]) for e in entries
                     if e.strip().strip("'\"").startswith("file://")]
    return [d.expanduser() for d in dirs]


def groups(argv: list[str] | None = None) -> dict[str, list[str]]:
    """Config groups and their presets, read from conf/ and from the folders the command line adds."""
    found: dict[str, set] = {}
    for root in config_dirs(argv or []):
        for d in (root.iterdir() if root.is_dir() else []):
            if d.is_dir():
                found.setdefault(d.name, set()).update(p.stem for p in d.glob("*.yaml"))
    return {name: sorted(presets) for name, presets in found.items()}


def _unwrap(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) is typing.Union and len(args) == 1 else tp


def _field_type(key: str) -> tuple[Optional[type], Optional[str]]:
    """The schema type of a dotted key, or (None, error message) when a part of it is unknown."""
    cls, walked = Config, []
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return None, None  # inside a dict or list: any key is fine
        hints = typing.get_type_hints(cls)
        if part not in hints:
            where = ".".join(walked) or "the top level"
            close = difflib.get_close_matches(part, list(hints), n=1)
            hint = f"did you mean '{'.'.join(walked + close)}'? " if close else ""
            return None, (f"unknown config key '{key}': {hint}({where} has: {', '.join(hints)}); "
                          f"`python -m distill --cfg job` prints the whole config")
        cls, walked = _unwrap(hints[part]), walked + [part]
    return cls, None


def _type_problem(key: str, value: str, tp) -> Optional[str]:
    if any(m in value for m in SWEEP_MARKERS) or value in ("null", "???"):
        return None
    if isinstance(tp, type) and issubclass(tp, Enum):
        ok = [m.value for m in tp]
        return None if value in ok else f"{key}={value}: must be one of {', '.join(ok)}"
    casts = {int: int, float: float}
    if tp is bool:
        ok = value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0")
        return None if ok else f"{key}={value}: expected true or false"
    if tp in casts:
        try:
            casts[tp](value)
        except ValueError:
            return f"{key}={value}: expected {'an integer' if tp is int else 'a number'}"
    return None


def check_overrides(argv: list[str]) -> Optional[str]:
    """The first problem found in the `key=value` arguments, or None."""
    presets = groups(argv)
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key.startswith("hydra"):
            continue
        if key in presets:
            unknown = [v for v in value.split(",") if v and v not in presets[key] and v != "null"]
            if unknown and not any(m in value for m in ("(", "${")):
                return (f"unknown {key} preset '{unknown[0]}' (available: {', '.join(presets[key])}); "
                        f"presets live in {CONF_DIR / key}/, or in <DIR>/{key}/ with --config-dir DIR")
            continue
        tp, problem = _field_type(key)
        problem = problem or (tp is not None and _type_problem(key, value, tp))
        if problem:
            return problem
    return None
