"""The command line around Hydra: `distill --help`, `distill --version` and `distill init`.

`distill init FILE --labels a,b` looks at a file of the user's texts (format, columns, rows, empty texts),
picks the text column when it is clear which one it is, and writes ./distill.yaml, the project file every
later `distill` command in that folder starts from (distill/config.py, `project_file`).
"""
from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

import yaml

from .config import PROJECT_FILE, _stem
from .errors import DistillError
from .overrides import groups

STAGES = {
    "all": "label -> train (or the recipe's steps) -> eval in a row (the default)",
    "label": "the teacher labels every text of the pool, keeping each label's probability",
    "train": "a small student learns from the teacher's labels",
    "eval": "teacher and students side by side: quality (with or without gold), speed, size; report.md",
    "review": "texts for you to label (a CSV to fill in): a random sample for estimates, and the doubtful ones",
    "predict": "label a new file (input=FILE) with the student (or the teacher)",
    "recipe": "the steps of a recipe (recipe=fast|balanced|best): the chain of stages that makes a student",
    "prune": "a narrower, faster copy of a trained student (prune.ffn_size=N, prune.drop_layers=K)",
    "weak": "several teachers and keyword/regex rules combined by a label model",
    "publish": "the student as a Hugging Face Hub model repo (hub.repo_id=ORG/NAME)",
}
EXAMPLES = """\
  distill init reviews.csv --labels negative,positive   # your own file: writes ./distill.yaml
  distill                                              # then label -> train -> eval, the report's path at the end
  distill stage=review                                 # texts to check; fill the `gold` column, run `distill` again
  distill stage=predict input=new_reviews.csv          # label new texts with the student

  distill data=file data.pool.path=tickets.jsonl 'data.text_columns=[body]' 'data.labels=[billing,bug,other]'
  distill data=sst2 student=electra-small train.epochs=2          # a benchmark preset, other settings"""
TEXT_NAMES = ("text", "texts", "review", "reviews", "comment", "comments", "message", "body", "content",
              "sentence", "document", "tweet", "post", "answer", "description", "title")


def help_text() -> str:
    presets = groups()
    lines = ["usage: distill [stage=STAGE] [key=value ...]     (Hydra overrides; `distill --cfg job` prints the config)",
             "       distill init FILE --labels a,b [--text COLUMN]",
             "       distill --version | --help | --hydra-help", "", "Turn a zero-shot teacher into a small, fast "
             "classifier of your own texts, with no labelled data.", "", "stages (stage=...):"]
    lines += [f"  {name:<8} {what}" for name, what in STAGES.items()]
    lines += ["", "examples:", EXAMPLES, "", "config groups (group=preset):"]
    lines += [f"  {name:<15} {', '.join(p for p in found if p != 'schema')}"
              for name, found in sorted(presets.items()) if name not in ("hydra",)]
    lines += ["", f"A {PROJECT_FILE} in the working directory (distill init writes one) holds a project's settings; "
              "the command line wins over it.", "Documentation: README.md and docs/ in the source repository."]
    return "\n".join(lines)


def version_text() -> str:
    def of(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"
    return f"distill {of('distill')} (torch {of('torch')}, transformers {of('transformers')})"


# --- distill init ----------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill init", description=(
        f"Look at a file of your texts and write ./{PROJECT_FILE}, which every later distill command in this "
        "folder starts from. Then run `distill` (label -> train -> eval)."))
    parser.add_argument("file", help="csv, tsv, jsonl, parquet, txt (one text a line) or a datasets folder")
    parser.add_argument("--labels", help="label names, comma-separated (e.g. negative,positive)")
    parser.add_argument("--labels-from", help="a text file of label names, one a line (instead of --labels)")
    parser.add_argument("--text", action="append", help="the text column (repeat to join several); "
                        "default: the one column that is clearly the text")
    parser.add_argument("--label-column", help="a column of gold labels, if the file has one (adds accuracy)")
    parser.add_argument("--multi-label", action="store_true",
                        help="a text may carry several labels at once (gold, if any: 'a,b' in one cell)")
    parser.add_argument("--none-label", help="with --multi-label: the label meaning none of the others "
                        "(e.g. neutral): given exactly when no other label is")
    parser.add_argument("--encoding", default="utf-8", help="the file's encoding (default utf-8)")
    parser.add_argument("--name", help="the data set's name in output folders (default: the file's name)")
    parser.add_argument("--force", action="store_true", help=f"overwrite an existing {PROJECT_FILE}")
    return parser


def _choose_text_columns(columns: list[str], frame, given: list[str] | None) -> list[str]:
    if given:
        missing = [c for c in given if c not in columns]
        if missing:
            raise DistillError(f"--text {missing[0]}: no such column (columns: {', '.join(columns)})")
        return given
    if len(columns) == 1:
        return columns
    named = [c for c in columns if str(c).strip().lower() in TEXT_NAMES]
    if len(named) == 1:
        return named
    strings = [c for c in columns if frame[c].dtype == object]
    if strings:  # the column of longest texts, when it is clearly the longest
        lengths = sorted(((frame[c].astype(str).str.len().mean(), c) for c in strings), reverse=True)
        if len(lengths) == 1 or lengths[0][0] > 2 * lengths[1][0]:
            return [lengths[0][1]]
    raise DistillError(f"which column holds the text? columns: {', '.join(map(str, columns))}; "
                       f"name it with --text COLUMN")


def _labels(args) -> list[str]:
    if bool(args.labels) == bool(args.labels_from):
        raise DistillError("give the label names: --labels negative,positive (or --labels-from FILE, one a line)")
    if args.labels_from:
        path = Path(args.labels_from)
        if not path.is_file():
            raise DistillError(f"--labels-from {path}: not found")
        names = [line.strip() for line in path.read_text(encoding=args.encoding).splitlines() if line.strip()]
    else:
        names = [n.strip() for n in args.labels.split(",") if n.strip()]
    if len(names) < 2:
        raise DistillError(f"--labels: {names} is {len(names)} label; a classifier chooses between two or more "
                           f"(for a yes/no question give both, e.g. --labels spam,not_spam)")
    if len(set(names)) != len(names):
        raise DistillError(f"--labels repeats a name: {names}")
    return names


def init(argv: list[str]) -> int:
    """`distill init`: inspect the file, write the project file, say what to run next."""
    from omegaconf import OmegaConf

    from .config import DataConfig
    from .data import describe_file

    args = _parser().parse_args(argv)
    target = Path(PROJECT_FILE)
    if target.exists() and not args.force:
        raise DistillError(f"{target.resolve()} exists already; edit it, or pass --force to write a new one")
    labels = _labels(args)
    cfg = OmegaConf.structured(DataConfig(name=args.name or _stem(args.file), labels=labels,
                                          encoding=args.encoding))
    cfg.pool.path = args.file
    found = describe_file(cfg)  # format, columns, a sample frame
    text_columns = (["text"] if found["format"] == "lines"
                    else _choose_text_columns(found["columns"], found["sample"], args.text))
    if args.label_column and args.label_column not in found["columns"]:
        raise DistillError(f"--label-column {args.label_column}: no such column (columns: "
                           f"{', '.join(map(str, found['columns']))})")
    data = {"pool": {"path": args.file}, "text_columns": text_columns, "labels": labels}
    if args.name:
        data["name"] = args.name
    if args.label_column:
        data["label_column"] = args.label_column
    if args.none_label and not args.multi_label:
        raise DistillError("--none-label is for multi-label data: add --multi-label")
    if args.none_label and args.none_label not in labels:
        raise DistillError(f"--none-label {args.none_label} is not one of the labels {labels}")
    if args.multi_label:
        data["multi_label"] = True
    if args.none_label:
        data["none_label"] = args.none_label
    if args.encoding.lower() not in ("utf-8", "utf8"):
        data["encoding"] = args.encoding
    header = ("# distill project: every distill command run in this folder starts from these settings;\n"
              "# a setting on the command line wins (e.g. distill student=electra-small). Written by distill init.\n")
    body = yaml.safe_dump({"defaults": [{"override /data": "file"}], "data": data}, sort_keys=False,
                          default_flow_style=None, allow_unicode=True)
    target.write_text(header + body, encoding="utf-8")
    cfg.text_columns = text_columns
    if args.label_column:
        cfg.label_column = args.label_column
    rows = describe_rows(cfg)
    print(f"{args.file}: {found['format']}, {rows['n_rows']:,} rows, text from {', '.join(text_columns)}"
          + (f", {rows['n_empty']:,} empty (they will be skipped)" if rows["n_empty"] else "")
          + (f", gold labels in '{args.label_column}'" if args.label_column else ", no gold labels (none needed)"))
    for text in rows["examples"]:
        print(f"  e.g. {text[:100]!r}")
    several = " (several a text)" if args.multi_label else ""
    print(f"labels: {', '.join(labels)}{several}\nwrote {target.resolve()}\n\nnext:\n  distill                 # label -> "
          f"train -> eval, then the report's path\n  distill stage=predict input=NEW_FILE   # label new texts with the student")
    return 0


def describe_rows(cfg) -> dict:
    """Rows, empty texts and three example texts of the file `cfg` names (one pass)."""
    from .data import stream_pool

    pool = stream_pool(cfg, ".")
    examples = []
    for text in pool:
        examples.append(text)
        if len(examples) == 3:
            break
    return {"n_rows": pool.notes["n_rows"], "n_empty": pool.notes["n_empty_skipped"], "examples": examples}


def main_init(argv: list[str]) -> int:
    try:
        return init(argv)
    except DistillError as e:
        print(f"distill: error: {e}", file=sys.stderr)
        return 2
