"""Load the unlabelled pool and the held-out scoring set described by `cfg.data`.

The pool loader never reads gold labels: for tables it reads only the text columns, for `lines` it never
opens `labels_path`. When no held-out source is given, both loaders split the pool file with the same
seeded permutation, which needs only the row count, so they agree without the pool side seeing labels.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf.errors import MissingMandatoryValue

from distill.config import DataConfig, SourceConfig
from distill.errors import DistillError

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
           ".txt": "lines"}
SHOWN = 5  # offending rows or values quoted in an error message
LOADER_VERSION = 1  # bump when the loaders change what they return, so cached artifacts are not reused


@dataclass
class HeldOut:
    texts: list[str]
    gold: list[str]  # gold label names, mapped through cfg.label_map


# --- where and what to read ---------------------------------------------------------------------------

def _resolve(path: str, data_dir: str | Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path(data_dir).expanduser() / path


def _source_format(source: SourceConfig, role: str) -> str:
    fmt = source.format or FORMATS.get(Path(source.path or "").suffix.lower())
    if fmt not in set(FORMATS.values()) | {"hub"}:
        raise DistillError(f"data.{role}: cannot tell the format of {source.path!r} (format: {fmt}); set "
                           f"data.{role}.format to one of csv, tsv, jsonl, parquet, lines, hub")
    return fmt


def _source_file(source: SourceConfig, role: str, data_dir: str | Path, must_exist: bool = True) -> Path:
    if not source.path:
        raise DistillError(f"data.{role}.path is not set")
    path = _resolve(source.path, data_dir)
    if must_exist and not path.is_file():
        raise DistillError(f"data.{role}.path: {path} does not exist (paths.data={data_dir})")
    return path


def _optional(cfg: DataConfig, key: str):
    """A config value, or None where it is still `???` in the YAML."""
    try:
        return getattr(cfg, key)
    except MissingMandatoryValue:
        return None


def _require_columns(columns: dict[str, str], available: list, where) -> None:
    """`columns` maps the config key that named a column to the column, so the error can name the key."""
    for key, column in columns.items():
        if column not in available:
            raise DistillError(f"{key}: column {column!r} not in {where} (columns: {', '.join(map(str, available))})")


# --- readers: each returns a frame holding only the columns asked for ---------------------------------

def _read_delimited(path: Path, fmt: str, cfg: DataConfig, columns: dict[str, str]) -> pd.DataFrame:
    # SMS Spam texts carry bare `"` characters (and GLUE TSVs are written unquoted): never unquote TSV.
    options = dict(sep="\t" if fmt == "tsv" else ",", quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
                   index_col=False, encoding="utf-8")
    names = list(cfg.column_names) if cfg.column_names else None
    try:
        available = names or list(pd.read_csv(path, nrows=0, **options).columns)
        _require_columns(columns, available, path)
        return pd.read_csv(path, header=None if names else "infer", names=names, usecols=list(set(columns.values())),
                           dtype=str, keep_default_na=False, **options)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DistillError(f"could not parse {path} as {fmt}: {str(e).splitlines()[0]}") from e


def _read_jsonl(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    wanted, seen, rows = list(set(columns.values())), set(), []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DistillError(f"{path} line {number} is not JSON ({e.msg}): expected one object a line") from e
            if not isinstance(record, dict):
                raise DistillError(f"{path} line {number} is not a JSON object: expected one object a line")
            seen.update(record)
            rows.append({c: record.get(c) for c in wanted})  # other keys (gold among them) dropped at once
    _require_columns(columns, sorted(seen), path)
    return pd.DataFrame(rows, columns=wanted)


def _read_parquet(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    available = pq.read_schema(path).names
    _require_columns(columns, available, path)
    return pd.read_parquet(path, columns=list(set(columns.values())))


def _read_hub(cfg: DataConfig, split: str, columns: dict[str, str]) -> pd.DataFrame:
    hub_id = _optional(cfg, "hub_id")
    if not hub_id:
        raise DistillError("data.hub_id is not set: name the Hugging Face dataset to load")
    try:
        import datasets

        dataset = datasets.load_dataset(hub_id, cfg.hub_config, split=split)
    except Exception as e:  # network, missing split, unknown id: all end the same way for the user
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DistillError(f"could not load hub dataset {hub_id} split {split}: {first}; "
                           f"check data.hub_id and your network") from e
    _require_columns(columns, dataset.column_names, f"{hub_id} split {split}")
    dataset = dataset.select_columns(list(set(columns.values())))
    frame = dataset.to_pandas()
    label = columns.get("data.label_column")
    feature = dataset.features.get(label) if label else None
    if isinstance(feature, datasets.ClassLabel) and cfg.label_map is None:
        frame[label] = feature.int2str(frame[label].tolist())  # hub class ids -> their names
    return frame


def _read_lines(path: Path) -> list[str]:
    """One entry a line; only `\\n` ends a line, so texts holding other Unicode breaks stay whole."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip() for line in lines]


# --- from raw columns to texts and gold names ---------------------------------------------------------

def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _gold_str(value) -> str:
    # A label column with a gap is read as floats: 1.0 must still find label_map["1"].
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if _missing(value) else str(value)


def texts_from_frame(frame: pd.DataFrame, columns: list[str], separator: str) -> list[str]:
    """Join the text columns of each row, skipping empty parts (an AG News row may lack a description)."""
    texts = []
    for values in zip(*(frame[c].tolist() for c in columns)):
        parts = [str(v).strip() for v in values if not _missing(v)]
        texts.append(separator.join(p for p in parts if p))
    return texts


def _check_texts(texts: list[str], where, unit: str) -> None:
    if not texts:
        raise DistillError(f"no texts in {where}")
    empty = [i + 1 for i, text in enumerate(texts) if not text]
    if empty:
        shown = ", ".join(map(str, empty[:SHOWN])) + (", ..." if len(empty) > SHOWN else "")
        raise DistillError(f"{len(empty)} empty text(s) in {where} ({unit} {shown}, counting from 1 after any "
                           f"header): fill or remove them, or check data.text_columns")


def gold_names(values: list, cfg: DataConfig, where) -> list[str]:
    """Map raw gold values through data.label_map; every result must be one of data.labels."""
    labels = list(_optional(cfg, "labels") or [])
    if not labels:
        raise DistillError("data.labels is empty: list the label names, in id order (e.g. [negative, positive])")
    mapping = dict(cfg.label_map) if cfg.label_map is not None else {}
    raw = [_gold_str(v) for v in values]
    names = [mapping.get(v, v) for v in raw]
    unknown = [(i + 1, v) for i, (v, name) in enumerate(zip(raw, names)) if name not in labels]
    if unknown:
        row, value = unknown[0]
        raise DistillError(f"gold value {value!r} in {where} (row {row}, {len(unknown)} such rows) is not a label: "
                           f"data.labels is {labels}, data.label_map is {mapping or None}")
    return names


def _table_columns(cfg: DataConfig, role: str, with_gold: bool) -> dict[str, str]:
    """Config key -> column name, for every column a table read needs (the key goes into errors)."""
    many = len(cfg.text_columns) > 1
    columns = {f"data.text_columns[{i}]" if many else "data.text_columns": c for i, c in enumerate(cfg.text_columns)}
    if with_gold:
        if not cfg.label_column:
            raise DistillError(f"data.label_column is not set: scoring needs the gold labels of data.{role}")
        columns["data.label_column"] = cfg.label_column
    return columns


def _read_frame(cfg: DataConfig, source: SourceConfig, fmt: str, role: str, data_dir, columns: dict):
    if fmt == "hub":
        return _read_hub(cfg, source.path, columns), f"{_optional(cfg, 'hub_id')} split {source.path}"
    path = _source_file(source, role, data_dir)
    if fmt in ("csv", "tsv"):
        return _read_delimited(path, fmt, cfg, columns), path
    return (_read_jsonl(path, columns) if fmt == "jsonl" else _read_parquet(path, columns)), path


def _read_source(cfg: DataConfig, source: SourceConfig, role: str, data_dir, with_gold: bool):
    """(texts, raw gold values or None, where): the gold side is read only when asked for."""
    fmt = _source_format(source, role)
    if fmt == "lines":
        path = _source_file(source, role, data_dir)
        texts = _read_lines(path)
        _check_texts(texts, path, "line")
        return texts, _lines_gold(source, role, data_dir, path, len(texts)) if with_gold else None, path
    frame, where = _read_frame(cfg, source, fmt, role, data_dir, _table_columns(cfg, role, with_gold))
    texts = texts_from_frame(frame, list(cfg.text_columns), cfg.text_separator)
    _check_texts(texts, where, "row")
    return texts, frame[cfg.label_column].tolist() if with_gold else None, where


def _lines_gold(source: SourceConfig, role: str, data_dir, text_path: Path, count: int) -> list[str]:
    if not source.labels_path:
        raise DistillError(f"data.{role}.labels_path is not set: a `lines` source needs a labels file to score")
    path = _resolve(source.labels_path, data_dir)
    if not path.is_file():
        raise DistillError(f"data.{role}.labels_path: {path} does not exist")
    gold = _read_lines(path)
    if len(gold) != count:
        raise DistillError(f"{text_path} has {count} lines but {path} has {len(gold)}: one label a text is needed")
    return gold


# --- which rows ---------------------------------------------------------------------------------------

def split_indices(n: int, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """(pool, held-out) row indices of one file, each in file order: the first round(fraction * n)
    rows of a seeded permutation are held out."""
    n_heldout = round(cfg.heldout_fraction * n)
    if not 0 < n_heldout < n:
        raise DistillError(f"data.heldout_fraction={cfg.heldout_fraction} of {n} rows leaves no pool or no "
                           f"held-out set; use a fraction between 0 and 1 or set data.heldout.path")
    order = np.random.default_rng(cfg.seed).permutation(n)
    return np.sort(order[n_heldout:]), np.sort(order[:n_heldout])


def _sample(indices: np.ndarray, size: int | None, seed: int, stream: int, key: str) -> np.ndarray:
    if size is None or size >= len(indices):
        return indices
    if size < 1:
        raise DistillError(f"{key}={size}: must be a positive number of texts, or null for all")
    # One stream a purpose, so the pool sample does not mirror the permutation of the split.
    chosen = np.random.default_rng([seed, stream]).choice(len(indices), size=size, replace=False)
    return indices[np.sort(chosen)]


def _rows(cfg: DataConfig, n: int, role: str) -> tuple[np.ndarray, int]:
    """The rows of this role's file to keep, and how many there were to choose from."""
    pool, heldout = split_indices(n, cfg) if cfg.heldout is None else (np.arange(n), np.arange(n))
    if role == "pool":
        return _sample(pool, cfg.pool_size, cfg.seed, 1, "data.pool_size"), len(pool)
    return _sample(heldout, cfg.heldout_size, cfg.seed, 2, "data.heldout_size"), len(heldout)


# --- public -------------------------------------------------------------------------------------------

def load_pool(cfg: DataConfig, data_dir: str | Path) -> list[str]:
    """The unlabelled pool texts; never reads gold labels."""
    texts, _, where = _read_source(cfg, cfg.pool, "pool", data_dir, with_gold=False)
    rows, available = _rows(cfg, len(texts), "pool")
    note = f" (the other {len(texts) - available} held out)" if cfg.heldout is None else ""
    log.info("pool: %d of %d texts from %s%s", len(rows), available, where, note)
    return [texts[i] for i in rows]


def load_heldout(cfg: DataConfig, data_dir: str | Path) -> HeldOut:
    """Held-out texts with gold label names, for scoring only."""
    source, role = (cfg.pool, "pool") if cfg.heldout is None else (cfg.heldout, "heldout")
    texts, raw_gold, where = _read_source(cfg, source, role, data_dir, with_gold=True)
    gold = gold_names(raw_gold, cfg, where)
    rows, available = _rows(cfg, len(texts), "heldout")
    log.info("heldout: %d of %d texts with gold labels from %s", len(rows), available, where)
    return HeldOut(texts=[texts[i] for i in rows], gold=[gold[i] for i in rows])


def _file_info(path: Path) -> dict:
    if not path.is_file():
        return {"path": str(path), "missing": True}  # reported by the loader that needs it, not here
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256_first_mb": head}


def _source_info(cfg: DataConfig, source: SourceConfig, role: str, data_dir, with_gold: bool) -> dict:
    fmt = _source_format(source, role)
    if fmt == "hub":
        return {"format": fmt, "hub_id": _optional(cfg, "hub_id"), "hub_config": cfg.hub_config, "split": source.path}
    info = {"format": fmt, **_file_info(_source_file(source, role, data_dir, must_exist=False))}
    if with_gold and fmt == "lines" and source.labels_path:
        info["labels"] = _file_info(_resolve(source.labels_path, data_dir))
    return info


def data_fingerprint(cfg: DataConfig, data_dir: str | Path) -> dict:
    """What load_pool and load_heldout read, as JSON: key caches on `["pool"]` or the whole dict.

    Files are identified by size and a sha256 of their first MB (cheap on big files, and a copied data
    folder still matches); a missing file is recorded, not raised, so the pool key needs no scoring files."""
    split = cfg.heldout is None
    texts = {"text_columns": list(cfg.text_columns), "text_separator": cfg.text_separator,
             "column_names": list(cfg.column_names) if cfg.column_names else None, "seed": cfg.seed,
             "heldout_fraction": cfg.heldout_fraction if split else None, "loader": LOADER_VERSION}
    pool = {"source": _source_info(cfg, cfg.pool, "pool", data_dir, with_gold=False),
            "pool_size": cfg.pool_size, **texts}
    heldout_source, role = (cfg.pool, "pool") if split else (cfg.heldout, "heldout")
    heldout = {"source": _source_info(cfg, heldout_source, role, data_dir, with_gold=True),
               "heldout_size": cfg.heldout_size, "label_column": cfg.label_column,
               "labels": list(_optional(cfg, "labels") or []),
               "label_map": dict(cfg.label_map) if cfg.label_map is not None else None, **texts}
    return {"pool": pool, "heldout": heldout}
