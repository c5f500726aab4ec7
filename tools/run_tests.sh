#!/usr/bin/env bash
# Runs the linters (ruff check, ruff format --check, mypy: one "lint" check), the unit tests (pytest, no master)
# and every rostest suite in test/integration/, then prints one closing line "N passed, N failed" over all of
# them. Usage: run_tests.sh [all|lint|unit|integration]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
what="${1:-all}"
# Property tests run derandomized here (test/unit/conftest.py): the same examples on every run, as under CI.
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"

export ROS_HOME; ROS_HOME="$(mktemp -d /tmp/intradp-test-ros.XXXXXX)"
export ROS_LOG_DIR="$ROS_HOME/log"
trap 'rm -rf "$ROS_HOME"' EXIT

passed=0; failed=0; skipped=0

if [ "$what" = all ] || [ "$what" = lint ]; then
  # One check: passes when all three tools pass (configured in pyproject.toml); each one runs even after a failure.
  echo "[test] lint (ruff check ., ruff format --check ., mypy)"
  lint_ok=1
  ruff check . || { echo "[test] ruff check failed"; lint_ok=0; }
  ruff format --check . || { echo "[test] ruff format --check failed (run: ruff format .)"; lint_ok=0; }
  mypy || { echo "[test] mypy failed"; lint_ok=0; }
  if [ $lint_ok -eq 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

if [ "$what" = all ] || [ "$what" = unit ]; then
  echo "[test] unit tests (pytest test/unit)"
  junit="$ROS_HOME/unit.xml"
  python -m pytest -q -p no:cacheprovider --junitxml="$junit" test/unit
  rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then echo "[test] unit tests failed (pytest exit $rc)"; fi
  read -r t f e s < <(python tools/junit_counts.py "$junit")
  passed=$((passed + t - f - e - s)); failed=$((failed + f + e)); skipped=$((skipped + s))
  if [ $rc -ne 0 ] && [ $rc -ne 5 ] && [ $((f + e)) -eq 0 ]; then failed=$((failed + 1)); fi
fi

if [ "$what" = all ] || [ "$what" = integration ]; then
  shopt -s nullglob
  suites=(test/integration/*.test)
  echo "[test] ${#suites[@]} rostest suites (test/integration)"
  for suite in "${suites[@]}"; do
    name="$(basename "$suite" .test)"
    echo "[test] rostest $name"
    results="$ROS_HOME/rostest-$name"
    mkdir -p "$results"
    # Without --text rostest writes JUnit results (with --text it writes none); the test node's own output
    # is in $ROS_LOG_DIR. rosunit-*.xml holds the test cases, rostest-*.xml only the wrapper.
    ROS_TEST_RESULTS_DIR="$results" timeout --kill-after=10 900 rostest intradp_ros "$(basename "$suite")"
    rc=$?
    counts=$(python tools/junit_counts.py "$results"/intradp_ros/rosunit-*.xml 2>/dev/null || echo "0 0 0 0")
    read -r t f e s <<<"$counts"
    if [ $rc -ne 0 ]; then
      echo "[test] rostest $name exited $rc"
      python tools/junit_counts.py --failures "$results"/intradp_ros/rosunit-*.xml 2>/dev/null
      [ $((f + e)) -eq 0 ] && f=$((f + 1))
    fi
    passed=$((passed + t - f - e - s)); failed=$((failed + f + e)); skipped=$((skipped + s))
  done
fi

echo
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
