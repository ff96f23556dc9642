#!/usr/bin/env python
"""Multi-label teachers on GoEmotions: each teacher's probabilities on the held-out texts, turned into label
sets by each `teacher.label_sets` rule, scored against the gold sets (gold read only here).

Teachers: the default NLI teacher (the shortlist over 28 labels), the full NLI teacher
(teacher.shortlist=off), mpnet and minilm-embed, and the NLI teacher, mpnet and minilm-embed with one plain
sentence a label (experiment=goemotions's descriptions). Every rule is scored without and with neutral as the
"none of these" label (--none), beside the always-neutral baseline. Labelling is the label stage's own (cached, resumable):
a rerun only scores. Writes outputs/bench/multilabel_teachers.{json,md}.

    python scripts/bench_multilabel_teachers.py
    python scripts/bench_multilabel_teachers.py --teachers nli-shortlist,mpnet --rules relative:0.5,top:2
"""
from __future__ import annotations

import argparse
import datetime
import sys

# "-described": one plain sentence a label instead of "This example is {}." (experiment=goemotions's descriptions)
TEACHERS = {"nli-shortlist": [], "nli-full": ["teacher.shortlist=off"], "mpnet": ["teacher=mpnet"],
            "minilm-embed": ["teacher=minilm-embed"],
            "nli-described": ["experiment=goemotions", "teacher=deberta-v3-nli"],
            "mpnet-described": ["experiment=goemotions"],
            "minilm-described": ["experiment=goemotions", "teacher=minilm-embed"]}
KEYS = ("micro_f1", "macro_f1", "subset_accuracy", "cardinality", "map")
RULES = "threshold:0.5,relative:0.5,relative:0.9,top:1,top:2,rate:auto,rate:0.02"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teachers", default=",".join(TEACHERS))
    parser.add_argument("--rules", default=RULES)
    parser.add_argument("--none", default="neutral",
                        help="also score every rule with this data.none_label ('' for none)")
    parser.add_argument("--out", default="outputs/bench/multilabel_teachers.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every teacher (e.g. paths.outputs=...)")
    args = parser.parse_args(argv)
    import os

    import numpy as np

    from distill.config import load_config
    from distill.data import load_heldout
    from distill.evaluation import multilabel as ml
    from distill.evaluation.metrics import markdown_table
    from distill.evaluation.timing import machine, write_bench
    from distill.labelling import label_split
    from distill.labelstore import read_labels

    rows = []
    for name in args.teachers.split(","):
        if name not in TEACHERS:
            raise SystemExit(f"unknown teacher {name}; known: {', '.join(TEACHERS)}")
        cfg = load_config(["data=goemotions", *TEACHERS[name], *args.overrides])
        labels = list(cfg.data.labels)
        held = load_heldout(cfg.data, os.path.expanduser(cfg.paths.data))
        gold = ml.indicators(held.gold, labels)
        texts, probs = read_labels(label_split(cfg, "heldout").path, labels)
        assert len(texts) == len(gold)
        nones = [None] + ([labels.index(args.none)] if args.none else [])
        for rule in args.rules.split(","):
            for none in nones:
                r = ml.report(probs, ml.rule_sets(probs, rule, none=none), gold, labels)
                rows.append({"teacher": name, "rule": rule, "none_label": args.none if none is not None else "",
                             **{k: r[k] for k in KEYS}})
    if args.none:  # the baseline every rule with a none label must beat: always answer it
        always = np.zeros_like(gold)
        always[:, labels.index(args.none)] = 1
        r = ml.report(always.astype(float), always, gold, labels)
        rows.append({"teacher": f"(always {args.none})", "rule": "", "none_label": "", **{k: r[k] for k in KEYS}})
    meta = {"machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "n_texts": len(gold), "gold_cardinality": ml.cardinality(gold), "overrides": args.overrides}
    table = markdown_table(["teacher", "rule", "none label", "micro-F1", "macro-F1", "exact match", "labels a text",
                            "mAP"], [[r["teacher"], r["rule"], r["none_label"], *(r[k] for k in KEYS)] for r in rows])
    write_bench(args.out, {"_meta": meta, "rows": rows},
                f"{table}\n\nGoEmotions, {meta['n_texts']} held-out texts ({meta['gold_cardinality']:.2f} gold labels "
                f"a text), {meta['machine']['cpu_summary']}, {meta['date']}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
