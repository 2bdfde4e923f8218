#!/usr/bin/env bash
# The benchmark suite: several hours on 2 CPU cores, most of it the banded ranking (see README
# "Results" for each benchmark's wall time). Trained supernets and training runs are cached in
# runs/bench/ (delete it to measure from scratch); tables and plots go to results/benchmarks/,
# wall times to results/benchmarks/wall_times.csv.
#   bench/run_all.sh                  # with .venv/bin/python, or PYTHON=python bench/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD OMP_NUM_THREADS=1

"$PYTHON" bench/cost_model.py --n 200       # analytic vs counted FLOPs/params, every preset
"$PYTHON" bench/ranking.py --seeds 0 1 2 3 4 --band-seeds 5 3  # two budget bands (hours)
"$PYTHON" bench/ranking.py --bands 8.9M --epochs 36 --seeds 0 1 2 --keep  # 36-epoch references
"$PYTHON" bench/search_quality.py           # searched vs DeiT-style baseline, 2 budgets x 3 seeds
"$PYTHON" bench/families.py                 # ViT vs Swin at equal MACs, searched vs designed (hours)
"$PYTHON" bench/sample_efficiency.py        # hypervolume vs trials: nsga2, tpe, random x 3 seeds
# Timing-sensitive: run on an otherwise idle machine.
env -u OMP_NUM_THREADS "$PYTHON" bench/speed.py   # all cores in one process
