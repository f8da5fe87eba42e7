#!/usr/bin/env bash
# A time-boxed run of the coverage-guided fuzzers (fuzz_framer.py, then fuzz_numbers.py); fails on a crash.
#   fuzz/run.sh [SECONDS]      (default 45 s in all: two thirds for the stream parser, a third for numbers)
# Throw-away corpora (seeded from fuzz/seeds and fuzz/regressions); crashes go to test-artifacts/fuzz/.
# Skipped, with a note, if INDI_SKIP_FUZZ=1 or atheris is not installed (it has wheels for Linux x86_64 only).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${INDI_FUZZ_SECONDS:-45}}"
python=.venv/bin/python
if [ "${INDI_SKIP_FUZZ:-}" = 1 ]; then
  echo "fuzz: skipped (INDI_SKIP_FUZZ=1)"
  exit 0
fi
if ! "$python" -c "import atheris" 2>/dev/null; then
  echo "fuzz: skipped (atheris is not installed: .venv/bin/pip install atheris)"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p test-artifacts/fuzz
run() {  # target seconds [seed dirs...]
  local target=$1 time=$2
  shift 2
  mkdir -p "$work/$target"
  echo "fuzz: fuzz/$target.py for $time s"
  local status=0
  "$python" "fuzz/$target.py" -max_total_time="$time" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix=test-artifacts/fuzz/ "$work/$target" "$@" > "test-artifacts/fuzz/$target.log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "test-artifacts/fuzz/$target.log" | tr -s ' ' || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "test-artifacts/fuzz/$target.log"
    echo "fuzz: fuzz/$target.py FAILED (status $status); the input is in test-artifacts/fuzz/. Reproduce with:"
    echo "  $python fuzz/$target.py test-artifacts/fuzz/<crash-file>     (see fuzz/README.md)"
    ls -1 test-artifacts/fuzz/ | grep -E '^(crash|timeout|oom|leak|slow-unit)-' || true
    exit 1
  fi
}
run fuzz_framer $(( seconds * 2 / 3 > 1 ? seconds * 2 / 3 : 1 )) fuzz/seeds fuzz/regressions
run fuzz_numbers $(( seconds / 3 > 1 ? seconds / 3 : 1 ))
echo "fuzz: no crash"
