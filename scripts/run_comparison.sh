#!/usr/bin/env bash
# The full student comparison behind docs/benchmarks.md (over an hour on 2 CPU cores; the main job is
# scripts/run_main.sh): set up .venv, lay out the real models with ../shared/bin/fetch-models when it is
# there, then on one data set (SST-2 by default):
#   label the pool once -> train the students (the teacher's own DeBERTa-v3 backbone fine-tuned on soft
#   labels, whole, cut to 6 layers, and that one pruned to a half and a third of its feed-forward units: the
#   accurate ones; the whole one then labels a larger pool as a teacher assistant, for a pruned 5-layer one;
#   MiniLM fine-tuned on soft and on hard labels: the fast ones; frozen MiniLM embeddings + logistic
#   regression: the cheap one) -> evaluate the teacher and every student side by side,
#   with ONNX and int8 exports of the fine-tuned ones, into outputs/eval/<data>/<teacher>-all/report.md.
# Extra arguments are Hydra overrides given to every step: bash scripts/run_comparison.sh experiment=ag_news
# (for one configuration alone: python -m distill stage=all ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
FETCH="${DISTILL_SHARED:-../shared}/bin/fetch-models"
if [ -x "$FETCH" ]; then
  PYTHON=.venv/bin/python "$FETCH" >/dev/null
fi
distill() { .venv/bin/python -m distill "$@"; }
distill stage=label "$@"
# Soft targets keep improving past 3 epochs, hard ones overfit (SST-2 dev, MiniLM: soft 0.714 -> 0.796 at
# 6 epochs without early stopping, hard 0.795 -> 0.766); the best checkpoint by teacher agreement is kept.
distill stage=train train.targets=soft train.epochs=6 train.early_stopping_patience=null "$@"
for student in deberta-nli deberta-nli-6l; do  # the teacher's backbone: all 12 layers, and the first 6
  distill stage=train student=$student train.targets=soft train.epochs=6 train.early_stopping_patience=null "$@"
done
# the 6-layer one again with a half and a third of its 1,536 feed-forward units a layer (those most important to
# its loss kept), each fine-tuned 3 more epochs: the fast accurate ones
SIX=(student=deberta-nli-6l train.targets=soft train.epochs=6 train.early_stopping_patience=null)
for units in 768 512; do
  distill stage=prune "${SIX[@]}" prune.ffn_size=$units "$@"
done
# Teacher assistant: the 12-layer student (more accurate than the zero-shot teacher on SST-2, and as int8 ONNX
# ~10x faster at labelling) labels a pool six times larger, and the 6-layer one, cut to 768 units and one or
# two layers fewer, learns from those labels: the fastest students that keep the teacher's accuracy
ASSISTANT=$(.venv/bin/python -m distill.where student student=deberta-nli train.targets=soft train.epochs=6 \
  train.early_stopping_patience=null "$@")
ASSIST=(teacher=assistant "teacher.model=$ASSISTANT" data.pool_size=12000)
distill stage=label "${ASSIST[@]}" "$@"
ASSIST_LABELS=$(.venv/bin/python -m distill.where labels "${ASSIST[@]}" "$@")
for drop in 1 2; do
  distill stage=prune "${SIX[@]}" prune.ffn_size=768 prune.drop_layers=$drop "prune.labels_path=$ASSIST_LABELS" \
    prune.epochs=2 "$@"
done
distill stage=train train.targets=hard "$@"
distill stage=train student=minilm-lr "$@"
distill stage=eval eval.students=all "$@"
