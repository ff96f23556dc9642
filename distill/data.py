"""Load the unlabelled pool and the held-out scoring set described by `cfg.data`.

The pool loader never reads gold labels: for tables it reads only the text columns, for `lines` it never
opens `labels_path`. When no held-out source is given, both loaders split the pool file with the same
seeded permutation, which needs only the row count, so they agree without the pool side seeing labels.

The pool is streamed (`stream_pool`): a first pass over the file counts and checks the texts, and each
iteration reads the file again, chunk by chunk, keeping only the selected rows. What is held is one
chunk and one bool a row, so a pool of millions of texts costs a few MB.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
from omegaconf.errors import MissingMandatoryValue

from distill.config import DataConfig, EmptyTexts, SourceConfig
from distill.errors import DistillError

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
           ".pq": "parquet", ".txt": "lines"}
TABLES = ("csv", "tsv", "jsonl", "parquet")  # formats with columns (predict reads and writes these)
SHOWN = 5  # offending rows or values quoted in an error message
LOADER_VERSION = 1  # bump when the loaders change what they return, so cached artifacts are not reused
CHUNK_ROWS = 10_000  # rows a streaming reader holds at once


@dataclass
class HeldOut:
    texts: list[str]
    gold: list  # gold label names, mapped through cfg.label_map; multi-label: a list of names a text
    rows: np.ndarray | None = field(default=None, compare=False, repr=False)  # their rows in the file, from 0


@dataclass
class Pool:
    """The pool texts in `load_pool` order, read from the source again on each iteration.

    Only which rows to keep is held (one bool a source row), never the texts."""

    n_texts: int
    keep: np.ndarray = field(repr=False)
    chunks: Callable[[], Iterator[list[str]]] = field(repr=False)  # a new pass over every row's text
    where: str = ""
    notes: dict = field(default_factory=dict)  # rows read and skipped (empty texts, ...), for the label meta

    @property
    def rows(self) -> np.ndarray:
        """The file row (counting from 0, after any header) of each text, in order."""
        return np.flatnonzero(self.keep)

    def __len__(self) -> int:
        return self.n_texts

    def __iter__(self) -> Iterator[str]:
        start = 0
        for texts in self.chunks():
            yield from itertools.compress(texts, self.keep[start:start + len(texts)].tolist())
            start += len(texts)
        if start != len(self.keep):
            raise DistillError(f"{self.where} changed while it was read ({len(self.keep)} rows at first, "
                               f"{start} now); run again")


# --- where and what to read ---------------------------------------------------------------------------

def _resolve(path: str, data_dir: str | Path) -> Path:
    """A data path: absolute as given; a relative one from the working directory when it is there, else
    under `paths.data` (where the benchmark presets' files live)."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return Path(data_dir).expanduser() / path


def _not_found(key: str, given: str, data_dir) -> str:
    """`key: <path> not found (...)`, naming where it was looked for (paths.data only where it exists)."""
    where = f"in the working directory {Path.cwd()}"
    if Path(data_dir).expanduser().is_dir():
        where += f" or under paths.data={data_dir}"
    return f"{key}: {given} not found {where}"


def _is_dataset_dir(path: Path) -> bool:
    """A folder written by `datasets`' save_to_disk (a Dataset or a DatasetDict)."""
    return (path / "dataset_info.json").is_file() or (path / "state.json").is_file() or \
        (path / "dataset_dict.json").is_file()


def _source_format(source: SourceConfig, role: str, data_dir=".") -> str:
    fmt = source.format
    if fmt is None and source.path and _is_dataset_dir(_resolve(source.path, data_dir)):
        fmt = "datasets"
    fmt = fmt or FORMATS.get(Path(source.path or "").suffix.lower())
    if fmt not in set(FORMATS.values()) | {"hub", "datasets"}:
        raise DistillError(f"data.{role}: cannot tell the format of {source.path!r} (format: {fmt}); set "
                           f"data.{role}.format to one of csv, tsv, jsonl, parquet, lines (one text a line), "
                           f"datasets (a save_to_disk folder), hub")
    return fmt


def _source_file(source: SourceConfig, role: str, data_dir: str | Path, must_exist: bool = True) -> Path:
    if not source.path:
        raise DistillError(f"data.{role}.path is not set")
    path = _resolve(source.path, data_dir)
    if must_exist and not (path.is_file() or (path.is_dir() and _is_dataset_dir(path))):
        if path.is_dir():
            raise DistillError(f"data.{role}.path: {path} is a folder but not a saved `datasets` dataset "
                               f"(Dataset.save_to_disk writes one); name a file instead")
        hint = "; to label a file of your own: distill init FILE --labels a,b" if role == "pool" else ""
        raise DistillError(_not_found(f"data.{role}.path", source.path, data_dir) + hint)
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


# --- readers: whole frames for the held-out set, {column: values} chunks for the pool -----------------
# Both read only the columns asked for; a chunk reader starts a new pass over the file each call.

def decode_error(path, e: UnicodeDecodeError, encoding: str, key: str = "data.encoding") -> DistillError:
    """A file that is not in the configured encoding: say where, and which setting names the encoding."""
    byte = e.object[e.start:e.start + 1] if isinstance(e.object, (bytes, bytearray)) else b""
    return DistillError(f"{path} is not {encoding} text (byte {bytes(byte)!r} at byte {e.start}): set {key} to "
                        f"the file's encoding, e.g. {key}=latin-1 (or cp1252, utf-16)")


@contextmanager
def _parse_errors(path: Path, fmt: str, encoding: str = "utf-8"):
    """Whatever a reader raises on a broken file becomes one line naming the file and the format."""
    try:
        yield
    except DistillError:
        raise
    except UnicodeDecodeError as e:
        raise decode_error(path, e, encoding) from e
    except pd.errors.EmptyDataError as e:
        raise DistillError(f"{path} is empty: no header and no rows to read as {fmt}") from e
    except (pd.errors.ParserError, ValueError, OSError) as e:  # pyarrow's errors derive from these
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DistillError(f"could not read {path} as {fmt} ({type(e).__name__}: {first}); is it a {fmt} "
                           f"file? Set data.pool.format (or data.heldout.format) if its extension misleads") from e


def delimited_options(fmt: str, encoding: str = "utf-8") -> dict:
    """read_csv's arguments for a csv or tsv file, the same for every reader of user files."""
    # SMS Spam texts carry bare `"` characters (and GLUE TSVs are written unquoted): never unquote TSV.
    return dict(sep="\t" if fmt == "tsv" else ",", quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
                index_col=False, encoding=encoding)


def _delimited_options(path: Path, fmt: str, cfg: DataConfig, columns: dict[str, str]) -> dict:
    """read_csv arguments for the asked-for columns, checked against the header (or data.column_names)."""
    options = delimited_options(fmt, cfg.encoding)
    names = list(cfg.column_names) if cfg.column_names else None
    available = names or list(pd.read_csv(path, nrows=0, **options).columns)
    _require_columns(columns, available, path)
    return dict(options, header=None if names else "infer", names=names, usecols=list(set(columns.values())),
                dtype=str, keep_default_na=False)


def _read_delimited(path: Path, fmt: str, cfg: DataConfig, columns: dict[str, str]) -> pd.DataFrame:
    with _parse_errors(path, fmt, cfg.encoding):
        return pd.read_csv(path, **_delimited_options(path, fmt, cfg, columns))


def _delimited_chunks(path: Path, fmt: str, cfg: DataConfig, columns: dict[str, str]) -> Iterator[dict]:
    with _parse_errors(path, fmt, cfg.encoding):
        with pd.read_csv(path, chunksize=CHUNK_ROWS, **_delimited_options(path, fmt, cfg, columns)) as reader:
            yield from map(_column_lists, reader)


def _jsonl_records(path: Path, wanted: list[str], seen: set, encoding: str = "utf-8") -> Iterator[dict]:
    """The asked-for keys of each object (None where absent); every key met is added to `seen`."""
    with _parse_errors(path, "jsonl", encoding), open(path, encoding=encoding) as f:
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
            yield {c: record.get(c) for c in wanted}  # other keys (gold among them) dropped at once


def _read_jsonl(path: Path, columns: dict[str, str], encoding: str = "utf-8") -> pd.DataFrame:
    wanted, seen = list(set(columns.values())), set()
    rows = list(_jsonl_records(path, wanted, seen, encoding))
    _require_columns(columns, sorted(seen), path)
    return pd.DataFrame(rows, columns=wanted)


def _jsonl_chunks(path: Path, columns: dict[str, str], encoding: str = "utf-8") -> Iterator[dict]:
    wanted, seen = list(set(columns.values())), set()
    records = _jsonl_records(path, wanted, seen, encoding)
    while rows := list(itertools.islice(records, CHUNK_ROWS)):
        yield {c: [row[c] for row in rows] for c in wanted}
    _require_columns(columns, sorted(seen), path)  # a column only counts as missing once every line was seen


def _read_parquet(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    with _parse_errors(path, "parquet"):
        available = pq.read_schema(path).names
        _require_columns(columns, available, path)
        return pd.read_parquet(path, columns=list(set(columns.values())))


def _parquet_chunks(path: Path, columns: dict[str, str]) -> Iterator[dict]:
    import pyarrow.parquet as pq

    with _parse_errors(path, "parquet"), pq.ParquetFile(path) as file:
        _require_columns(columns, file.schema_arrow.names, path)
        for batch in file.iter_batches(batch_size=CHUNK_ROWS, columns=list(set(columns.values()))):
            yield _column_lists(batch.to_pandas())


def _hub_dataset(cfg: DataConfig, split: str, columns: dict[str, str]):
    """The asked-for columns of a hub split: a memory-mapped Arrow table, not loaded into memory."""
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
    return dataset.select_columns(list(set(columns.values())))


def _read_hub(cfg: DataConfig, split: str, columns: dict[str, str]) -> pd.DataFrame:
    import datasets

    dataset = _hub_dataset(cfg, split, columns)
    frame = dataset.to_pandas()
    label = columns.get("data.label_column")
    feature = dataset.features.get(label) if label else None
    if isinstance(feature, datasets.ClassLabel) and not cfg.label_map:
        frame[label] = feature.int2str(frame[label].tolist())  # hub class ids -> their names
    return frame


def _disk_dataset(path: Path, columns: dict[str, str]):
    """The asked-for columns of a folder saved by `datasets` (a Dataset, or the `train` or only split of a
    DatasetDict), memory-mapped."""
    import datasets

    with _parse_errors(path, "datasets"):
        dataset = datasets.load_from_disk(str(path))
    if isinstance(dataset, datasets.DatasetDict):
        splits = list(dataset)
        if len(splits) != 1 and "train" not in splits:
            raise DistillError(f"{path} holds the splits {splits}: save the one to label on its own "
                               f"(dataset['<split>'].save_to_disk(...)) and name that folder")
        dataset = dataset["train" if "train" in splits else splits[0]]
    _require_columns(columns, dataset.column_names, path)
    return dataset.select_columns(list(set(columns.values())))


def _hub_chunks(dataset) -> Iterator[dict]:
    for table in dataset.with_format("arrow").iter(batch_size=CHUNK_ROWS):
        yield _column_lists(table.to_pandas())


def _column_lists(frame: pd.DataFrame) -> dict[str, list]:
    return {c: frame[c].tolist() for c in frame.columns}


def _line_chunks(path: Path, encoding: str = "utf-8") -> Iterator[list[str]]:
    """One entry a line, CHUNK_ROWS at a time; only `\\n` ends a line, so texts holding other Unicode breaks
    stay whole."""
    with _parse_errors(path, "lines", encoding), open(path, encoding=encoding, newline="\n") as f:
        while lines := [line.rstrip() for line in itertools.islice(f, CHUNK_ROWS)]:
            yield lines


def _read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    return [line for lines in _line_chunks(path, encoding) for line in lines]


# --- whole tables, every column: files to predict on -------------------------------------------------

def file_format(path: Path, key: str = "predict") -> str:
    """The table format of `path`, from its extension; `key` names who asked, in the error."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt not in TABLES:
        known = sorted(ext for ext, f in FORMATS.items() if f in TABLES)
        raise DistillError(f"{key}: cannot tell the format of {path} from its extension; use one of {', '.join(known)}")
    return fmt


def read_frames(path: Path, fmt: str, chunk_rows: int = CHUNK_ROWS, key: str = "predict",
                encoding: str = "utf-8") -> Iterator[pd.DataFrame]:
    """Every column of a table, `chunk_rows` rows at a time; csv/tsv cells as text, an empty cell missing."""
    try:
        if fmt in ("csv", "tsv"):
            yield from pd.read_csv(path, chunksize=chunk_rows, dtype=str, keep_default_na=False, na_values=[""],
                                   **delimited_options(fmt, encoding))
        elif fmt == "jsonl":
            yield from pd.read_json(path, lines=True, chunksize=chunk_rows, dtype=False, encoding=encoding)
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    except DistillError:
        raise
    except UnicodeDecodeError as e:
        raise decode_error(path, e, encoding) from e
    except Exception as e:  # pandas and pyarrow raise many types on a corrupt file
        raise DistillError(f"{key}: could not read {path} as {fmt} ({type(e).__name__}: "
                           f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from e


def describe_file(cfg: DataConfig, data_dir: str | Path = ".") -> dict:
    """{"format", "columns", "sample": the first rows as a frame (None for a text file)} of the pool file."""
    fmt = _source_format(cfg.pool, "pool", data_dir)
    if fmt == "hub":
        raise DistillError("a hub data set is described by its own page, not by distill init")
    path = _source_file(cfg.pool, "pool", data_dir)
    if fmt == "lines":
        return {"format": fmt, "columns": ["text"], "sample": None}
    if fmt == "datasets":
        import datasets

        with _parse_errors(path, fmt):
            dataset = datasets.load_from_disk(str(path))
        dataset = dataset["train" if "train" in dataset else list(dataset)[0]] if isinstance(dataset, dict) else dataset
        sample = dataset.select(range(min(200, len(dataset)))).to_pandas()
    else:
        sample = next(read_frames(path, fmt, 200, key="data.pool.path", encoding=cfg.encoding), None)
    if sample is None or sample.empty:
        raise DistillError(f"{path} has no rows")
    return {"format": fmt, "columns": [str(c) for c in sample.columns], "sample": sample}


def count_rows(path: Path, fmt: str) -> int | None:
    """The rows of a table when known without reading it all (parquet's metadata), else None."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:
            return None
    return None  # counting a text file costs a full read; a progress bar counts up instead


# --- from raw columns to texts and gold names ---------------------------------------------------------

def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _gold_str(value) -> str:
    # A label column with a gap is read as floats: 1.0 must still find label_map["1"].
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if _missing(value) else str(value)


def join_texts(columns: list[list], separator: str) -> list[str]:
    """Join the text columns of each row, skipping empty parts (an AG News row may lack a description)."""
    texts = []
    for values in zip(*columns):
        parts = [str(v).strip() for v in values if not _missing(v)]
        texts.append(separator.join(p for p in parts if p))
    return texts


def texts_from_frame(frame: pd.DataFrame, columns: list[str], separator: str) -> list[str]:
    return join_texts([frame[c].tolist() for c in columns], separator)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _WholeFileDtypes:
    """Renders numbers in chunks as a whole-file read would.

    pandas holds a column of ints with a gap (or ints mixed with floats) as float64, so a whole-file read
    turns 1 into "1.0", where a chunk without a gap would give "1". The dtype pandas picks depends only on
    which kinds of value a column holds, so the first pass keeps one value of each kind, and later passes
    turn ints into floats in the columns that one value of each kind makes float64.
    """

    def __init__(self):
        self.examples: dict[str, dict] = {}
        self.floats: set[str] | None = None  # known once a first pass is complete

    def observe(self, chunk: dict[str, list]) -> dict[str, list]:
        for column, values in chunk.items():
            seen = self.examples.setdefault(column, {})
            for value in values:
                # Ints count by range too: beyond int64 pandas keeps them as objects.
                kind = (value < -2**63, value < 0, value >= 2**63, value >= 2**64) if _is_int(value) else type(value)
                seen.setdefault(kind, value)
        return chunk

    def settle(self) -> None:
        self.floats = {c for c, seen in self.examples.items()  # built as _read_jsonl builds its frame
                       if pd.DataFrame([{c: v} for v in seen.values()], columns=[c])[c].dtype.kind == "f"}

    def apply(self, chunk: dict[str, list]) -> dict[str, list]:
        return {c: [float(v) if _is_int(v) else v for v in values] if c in self.floats else values
                for c, values in chunk.items()}


def _present(chunks: Iterable[list[str]], where, unit: str, cfg: DataConfig,
             min_words: int = 0) -> tuple[np.ndarray, int]:
    """(one bool a row: does it hold a text, of at least `min_words` words?; the number of empty rows).
    Empty or blank rows are skipped and counted, or with data.empty_texts=error refused, naming the first
    of them (counting from 1, after any header)."""
    flags, empty, first = [], 0, []
    for texts in chunks:
        for text in texts:
            if not text:
                empty += 1
                if len(first) < SHOWN:
                    first.append(len(flags) + 1)
            flags.append(bool(text) and (min_words <= 0 or len(text.split()) >= min_words))
    present = np.asarray(flags, dtype=bool)
    if not len(present):
        raise DistillError(f"no texts in {where}: the file has no rows (after its header)")
    shown = ", ".join(map(str, first)) + (", ..." if empty > SHOWN else "")
    if empty == len(present):
        raise DistillError(f"every text in {where} is empty ({len(present)} {unit}s): check data.text_columns "
                           f"(it names {list(cfg.text_columns)})")
    if empty and cfg.empty_texts == EmptyTexts.error:
        raise DistillError(f"{empty} empty text(s) in {where} ({unit} {shown}, counting from 1 after any "
                           f"header): fill or remove them, or set data.empty_texts=skip")
    if empty:
        log.warning("%s: %d empty or blank text(s) skipped (%s %s, counting from 1 after any header); "
                    "data.empty_texts=error refuses them instead", where, empty, unit, shown)
    return present, empty


def gold_names(values: list, cfg: DataConfig, where, present: np.ndarray | None = None) -> list[str]:
    """Map raw gold values through data.label_map; every result (of a row `present`: with a text) must be
    one of data.labels."""
    labels = list(_optional(cfg, "labels") or [])
    if not labels:
        raise DistillError("data.labels is empty: list the label names, in id order (e.g. [negative, positive])")
    mapping = dict(cfg.label_map or {})
    raw = [_gold_str(v) for v in values]
    names = [mapping.get(v, v) for v in raw]
    unknown = [(i + 1, v) for i, (v, name) in enumerate(zip(raw, names))
               if name not in labels and (present is None or present[i])]
    if unknown:
        row, value = unknown[0]
        if not value.strip():
            fix = "give that row its label, or remove it"
        elif mapping:
            fix = f"data.label_map is {mapping}"
        else:
            # Hydra reads {3: x} with an int key (no quoted keys), so a number goes in the dotted form
            example = (f"+data.label_map.{value}={labels[0]}" if value.isdigit() else
                       f"+data.label_map={{{value}: {labels[0]}}}")
            fix = f"map it to one with data.label_map, e.g. '{example}'"
        raise DistillError(f"gold value {value!r} in {where} (row {row}, {len(unknown)} such rows) is not a label: "
                           f"data.labels is {labels}; {fix}")
    return names


def gold_sets(values: list, cfg: DataConfig, where, present: np.ndarray | None = None) -> list[list[str]]:
    """Multi-label gold: each value a set of labels ("4,27" split on data.label_separator, or a list from a
    JSONL/parquet column), each member mapped through data.label_map and checked against data.labels; an
    empty value is an empty set."""
    labels = list(_optional(cfg, "labels") or [])
    mapping = dict(cfg.label_map or {})
    sets = []
    for i, value in enumerate(values):
        if isinstance(value, (list, tuple, np.ndarray)):
            parts = [_gold_str(v) for v in value]
        else:
            parts = [p.strip() for p in _gold_str(value).split(cfg.label_separator)]
        names = [mapping.get(p, p) for p in parts if p]
        unknown = [n for n in names if n not in labels]
        if unknown and (present is None or present[i]):
            raise DistillError(f"gold value {unknown[0]!r} in {where} (row {i + 1}, in {value!r}) is not a label: "
                               f"data.labels is {labels}, data.label_map is {mapping or None}")
        sets.append(list(dict.fromkeys(names)))
    return sets


def pool_gold(cfg: DataConfig, data_dir: str | Path) -> list[str]:
    """The gold label names of every row of the pool's source file (a label file's `row` indexes them): for
    benchmarks that play the person answering a review queue. Never used in a run."""
    raw = _read_source(cfg, cfg.pool, "pool", data_dir, with_gold=True)[1]
    return [name if name in cfg.labels else None for name in
            (dict(cfg.label_map or {}).get(v, v) for v in map(_gold_str, raw))]


def has_gold(cfg: DataConfig) -> bool:
    """Does the data name gold labels to score against (a label column, or a `lines` labels file)? Without
    them every pool text is labelled and nothing is held out; eval reports what is known without gold."""
    source = cfg.pool if cfg.heldout is None else cfg.heldout
    if (source.format or FORMATS.get(Path(source.path or "").suffix.lower())) == "lines":
        return bool(source.labels_path)
    return bool(cfg.label_column)


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
    if fmt == "datasets":
        return _disk_dataset(path, columns).to_pandas(), path
    return (_read_jsonl(path, columns, cfg.encoding) if fmt == "jsonl" else _read_parquet(path, columns)), path


def _read_source(cfg: DataConfig, source: SourceConfig, role: str, data_dir, with_gold: bool):
    """(texts, raw gold values or None, where): the gold side is read only when asked for."""
    fmt = _source_format(source, role, data_dir)
    if fmt == "lines":
        path = _source_file(source, role, data_dir)
        texts = _read_lines(path, cfg.encoding)
        return texts, _lines_gold(source, role, data_dir, path, len(texts), cfg.encoding) if with_gold else None, path
    frame, where = _read_frame(cfg, source, fmt, role, data_dir, _table_columns(cfg, role, with_gold))
    texts = texts_from_frame(frame, list(cfg.text_columns), cfg.text_separator)
    return texts, frame[cfg.label_column].tolist() if with_gold else None, where


def _text_chunks(cfg: DataConfig, source: SourceConfig, role: str, data_dir):
    """(a function starting a new pass over every row's text, a chunk at a time; where; the unit errors count).

    Reads only the text columns. The first complete pass learns how a whole-file read would render
    numbers (see _WholeFileDtypes); later passes render them so.
    """
    fmt = _source_format(source, role, data_dir)
    if fmt == "lines":
        path = _source_file(source, role, data_dir)
        return partial(_line_chunks, path, cfg.encoding), path, "line"
    columns = _table_columns(cfg, role, with_gold=False)
    if fmt == "hub":
        dataset = _hub_dataset(cfg, source.path, columns)  # loaded once, read on each pass
        read, where = partial(_hub_chunks, dataset), f"{_optional(cfg, 'hub_id')} split {source.path}"
    elif fmt == "datasets":
        where = _source_file(source, role, data_dir)
        read = partial(_hub_chunks, _disk_dataset(where, columns))
    else:
        where = _source_file(source, role, data_dir)
        if fmt in ("csv", "tsv"):
            read = partial(_delimited_chunks, where, fmt, cfg, columns)
        elif fmt == "jsonl":
            read = partial(_jsonl_chunks, where, columns, cfg.encoding)
        else:
            read = partial(_parquet_chunks, where, columns)
    dtypes = _WholeFileDtypes()

    def chunks() -> Iterator[list[str]]:
        learning = dtypes.floats is None
        for chunk in read():
            chunk = dtypes.observe(chunk) if learning else dtypes.apply(chunk)
            yield join_texts([chunk[c] for c in cfg.text_columns], cfg.text_separator)
        if learning:
            dtypes.settle()
    return chunks, where, "row"


def _lines_gold(source: SourceConfig, role: str, data_dir, text_path: Path, count: int,
                encoding: str = "utf-8") -> list[str]:
    if not source.labels_path:
        raise DistillError(f"data.{role}.labels_path is not set: a `lines` source needs a labels file to score")
    path = _resolve(source.labels_path, data_dir)
    if not path.is_file():
        raise DistillError(_not_found(f"data.{role}.labels_path", source.labels_path, data_dir))
    gold = _read_lines(path, encoding)
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


def _split(cfg: DataConfig) -> bool:
    """Is the held-out set split off the pool file? Only when that file holds the gold labels to score."""
    return cfg.heldout is None and has_gold(cfg)


def _rows(cfg: DataConfig, n: int, role: str, present: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The rows of this role's file to keep (among those `present`: with a text), and how many there were
    to choose from."""
    if _split(cfg):
        pool, heldout = split_indices(n, cfg)
    else:  # a held-out file of its own, or no gold at all: the whole file is the pool
        pool = heldout = np.arange(n)
    chosen = pool if role == "pool" else heldout
    if present is not None:
        chosen = chosen[present[chosen]]
        if not len(chosen):
            raise DistillError(f"no {role} text is left: data.pool_min_words={cfg.pool_min_words} or empty "
                               f"texts remove them all")
    if role == "pool":
        return _sample(chosen, cfg.pool_size, cfg.seed, 1, "data.pool_size"), len(chosen)
    return _sample(chosen, cfg.heldout_size, cfg.seed, 2, "data.heldout_size"), len(chosen)


# --- public -------------------------------------------------------------------------------------------

def stream_pool(cfg: DataConfig, data_dir: str | Path) -> Pool:
    """The unlabelled pool texts, streamed; never reads gold labels.

    A first pass counts the rows and finds the empty ones (skipped and counted, see data.empty_texts),
    before any labelling; iterating the Pool reads the file again and yields the selected texts in file
    order (`Pool.rows` gives each one's row in the file)."""
    chunks, where, unit = _text_chunks(cfg, cfg.pool, "pool", data_dir)
    min_words = getattr(cfg, "pool_min_words", 0) or 0
    present, empty = _present(chunks(), where, unit, cfg, min_words)
    n = len(present)
    rows, available = _rows(cfg, n, "pool", present)
    keep = np.zeros(n, dtype=bool)
    keep[rows] = True
    note = f" (the other {n - len(split_indices(n, cfg)[0])} held out, with gold)" if _split(cfg) else ""
    note += f" with >= {min_words} words" if min_words > 0 else ""
    note += f"; {empty} empty text(s) skipped" if empty else ""
    log.info("pool: %d of %d texts from %s%s", len(rows), available, where, note)
    return Pool(n_texts=len(rows), keep=keep, chunks=chunks, where=str(where),
                notes={"n_rows": n, "n_empty_skipped": empty})


def load_pool(cfg: DataConfig, data_dir: str | Path) -> list[str]:
    """The unlabelled pool texts as a list (`stream_pool` holds none of them)."""
    return list(stream_pool(cfg, data_dir))


def load_heldout(cfg: DataConfig, data_dir: str | Path) -> HeldOut:
    """Held-out texts with gold label names, for scoring only (empty texts skipped and counted)."""
    if not has_gold(cfg):
        raise DistillError("this data has no gold labels to score against (data.label_column is not set); "
                           "name a column of gold labels with data.label_column, or a file with data.heldout.path")
    source, role = (cfg.pool, "pool") if cfg.heldout is None else (cfg.heldout, "heldout")
    texts, raw_gold, where = _read_source(cfg, source, role, data_dir, with_gold=True)
    present, _ = _present([texts], where, "line" if _source_format(source, role, data_dir) == "lines" else "row", cfg)
    gold = (gold_sets if cfg.multi_label else gold_names)(raw_gold, cfg, where, present)
    rows, available = _rows(cfg, len(texts), "heldout", present)
    log.info("heldout: %d of %d texts with gold labels from %s", len(rows), available, where)
    return HeldOut(texts=[texts[i] for i in rows], gold=[gold[i] for i in rows], rows=rows)


def _file_info(path: Path) -> dict:
    if path.is_dir() and _is_dataset_dir(path):  # a save_to_disk folder: its files' names and sizes
        files = sorted(p for p in path.rglob("*") if p.is_file())
        listing = [(str(p.relative_to(path)), p.stat().st_size) for p in files]
        return {"path": str(path.resolve()), "files": hashlib.sha256(repr(listing).encode()).hexdigest()}
    if not path.is_file():
        return {"path": str(path), "missing": True}  # reported by the loader that needs it, not here
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size,
            "sha256": _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)}


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """The whole file's sha256 (about 1 s a GB), once per process and file version (size, mtime): an edit
    anywhere in the file changes it, so labels of an edited file are never served from the cache."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _source_info(cfg: DataConfig, source: SourceConfig, role: str, data_dir, with_gold: bool) -> dict:
    fmt = _source_format(source, role, data_dir)
    if fmt == "hub":
        return {"format": fmt, "hub_id": _optional(cfg, "hub_id"), "hub_config": cfg.hub_config, "split": source.path}
    info = {"format": fmt, **_file_info(_source_file(source, role, data_dir, must_exist=False))}
    if with_gold and fmt == "lines" and source.labels_path:
        info["labels"] = _file_info(_resolve(source.labels_path, data_dir))
    return info


def data_fingerprint(cfg: DataConfig, data_dir: str | Path) -> dict:
    """What load_pool and load_heldout read, as JSON: key caches on `["pool"]` or the whole dict.

    Files are identified by path, size and the sha256 of their whole content (an edit anywhere counts);
    a missing file is recorded, not raised, so the pool key needs no scoring files."""
    split = _split(cfg)
    texts = {"text_columns": list(cfg.text_columns), "text_separator": cfg.text_separator,
             "column_names": list(cfg.column_names) if cfg.column_names else None, "seed": cfg.seed,
             "heldout_fraction": cfg.heldout_fraction if split else None, "loader": LOADER_VERSION}
    if cfg.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):  # only when set: existing keys stay
        texts["encoding"] = cfg.encoding
    pool = {"source": _source_info(cfg, cfg.pool, "pool", data_dir, with_gold=False),
            "pool_size": cfg.pool_size, **texts}
    if getattr(cfg, "pool_min_words", 0):  # only when set, so existing labellings keep their keys
        pool["pool_min_words"] = cfg.pool_min_words
    heldout_source, role = (cfg.pool, "pool") if cfg.heldout is None else (cfg.heldout, "heldout")
    heldout = {"source": _source_info(cfg, heldout_source, role, data_dir, with_gold=True),
               "heldout_size": cfg.heldout_size, "label_column": cfg.label_column,
               "labels": list(_optional(cfg, "labels") or []),
               "label_map": dict(cfg.label_map) if cfg.label_map else None, **texts}
    return {"pool": pool, "heldout": heldout}
