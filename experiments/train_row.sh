# Sourced by ablations.sh, recipe.sh and islands.sh: train one row of a small-budget table.
# train_row WORKDIR DATA_DIR [FIT ARGS...]: the `default` preset for 3 epochs (as the tables
# measured it: dropout 0, before the preset took 0.1), log in WORKDIR.log; a finished row is not
# retrained (fit says so), a changed row is refused by fit (other config); on failure prints
# the log's last line and exits with fit's code.
train_row() {
  local work=$1 data=$2 status=0
  shift 2
  python -m training.fit --preset default --data-dir "$data" --workdir "$work" --epochs 3 --quiet \
    --set dropout=0.0 "$@" > "$work.log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 1 "$work.log" >&2
    echo "error: row $(basename "$work") failed (exit $status), see $work.log" >&2
    exit "$status"
  fi
}
