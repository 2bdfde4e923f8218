#!/usr/bin/env bash
# The package as a user installs it: build the wheel, install it into a fresh virtual environment
# (torch from the machine's wheels, the rest from the registry), and run train -> search ->
# export -> report on the digits data from an empty directory, far from this checkout, through
# the console scripts and python -m. Called by `make test`.
#
#   tests/wheel_check.sh                       # all of it
#   WHEEL_VENV=<dir> tests/wheel_check.sh prepare   # only: a fresh venv with torch, at <dir>
#   WHEEL_VENV=<dir> tests/wheel_check.sh           # the check, in that venv (then removed)
#
# `make test` prepares the venv while it sets up its own (both mostly wait on pip), so that
# installing torch twice does not add minutes to CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
DEV_PYTHON=${DEV_PYTHON:-$ROOT/.venv/bin/python}
WHEEL_VENV=${WHEEL_VENV:-}
step() { echo "wheel check ($(date +%T)): $*"; }

fresh_venv() {
  rm -rf "$1"
  "$PYTHON" -m venv "$1"
  "$1/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$1/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1 >/dev/null
  touch "$1/.prepared"
}

if [ "${1:-}" = prepare ]; then
  step "preparing a fresh venv with torch at $WHEEL_VENV"
  fresh_venv "${WHEEL_VENV:?set WHEEL_VENV}"
  exit 0
fi

WORK=$(mktemp -d /tmp/vitnas-wheel.XXXXXX)
trap 'rm -rf "$WORK" ${WHEEL_VENV:+"$WHEEL_VENV"}' EXIT

step "building the wheel"
"$DEV_PYTHON" -m pip wheel -q --no-deps -w "$WORK/dist" "$ROOT" >/dev/null
unzip -l "$WORK"/dist/vitnas-*.whl > "$WORK/wheel-files.txt"  # (grep -q on a pipe: SIGPIPE)
grep -q "supernet/conf/space/swin_digits.yaml" "$WORK/wheel-files.txt"

if [ -n "$WHEEL_VENV" ] && [ -f "$WHEEL_VENV/.prepared" ]; then
  step "installing it into the fresh venv prepared at $WHEEL_VENV"
  BIN=$WHEEL_VENV/bin
else
  step "installing it into a fresh venv"
  fresh_venv "$WORK/venv"
  BIN=$WORK/venv/bin
fi
"$BIN/python" -m pip install -q "$WORK"/dist/vitnas-*.whl >/dev/null

mkdir "$WORK/empty" && cd "$WORK/empty"
export OMP_NUM_THREADS=1
unset PYTHONPATH
where=$("$BIN/python" -c "import supernet; print(supernet.__file__)")
case "$where" in "$ROOT"*) echo "wheel check: imported the checkout ($where)"; exit 1 ;; esac
"$BIN/python" -c "from supernet import SearchSpace; SearchSpace.preset('swin_digits')"
"$BIN/vitnas-train" --help > help.txt  # (not piped into grep -q: under pipefail, a help still
grep -q "train.epochs=60" help.txt     # being written when grep has matched fails the check)

step "train -> search -> export -> report from $PWD"
"$BIN/vitnas-train" data.train_subset=128 train.epochs=1 hydra.run.dir=train >/dev/null
"$BIN/python" -m search supernet=train/supernet.pt budget.flops=2M search.n_trials=4 \
  search.n_workers=2 search.progress=false search.plots_png=false hydra.run.dir=search >/dev/null
"$BIN/vitnas-export" search trial=best out=best onnx=false >/dev/null
"$BIN/vitnas-report" search out=report png=false >/dev/null
"$BIN/python" - <<'PY'
import pandas as pd
from supernet import load_subnet

model = load_subnet("best")
trials = pd.read_csv("search/trials.csv")
assert len(trials) == 4 and (trials["state"] == "COMPLETE").all(), trials
assert type(model).__name__ == "VisionTransformer"
PY
step "ok"
