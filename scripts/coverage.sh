#!/usr/bin/env bash
# V8 coverage of src/ over the unit tests and the whole acceptance suite, every
# vman process included: the in-process vman of the cucumber workers and each
# `vman serve` child, which run the TypeScript sources here (VMAN_FROM_SOURCES=1:
# a bundle's coverage does not map back to src/ line by line). Settings and the
# gate (90 % of lines, 80 % of branches) are in .c8rc.json. Prints coverage per
# module; HTML and coverage-summary.json in reports/coverage/.
#
#   scripts/coverage.sh              exits non-zero when a test fails or coverage is under the gate
#   scripts/coverage.sh --gate-only  exits non-zero only under the gate (.ci/run: the tests were
#                                    judged by the npm test before it, and write no report files here)
set -uo pipefail
cd "$(dirname "$0")/.."
gate_only=false
[ "${1:-}" = --gate-only ] && gate_only=true
export VMAN_FROM_SOURCES=1
rm -rf reports/coverage reports/coverage-run .cache/v8-coverage
mkdir -p .cache/v8-coverage reports/coverage-run
# Every node process below writes its V8 coverage there, vman's children too.
# The gate is judged after, from the summary, so that a test's failure and the
# gate's stay apart.
export NODE_V8_COVERAGE="$PWD/.cache/v8-coverage"
node scripts/unit-tests.mjs --test-reporter=dot test/*.test.ts >/dev/null; unit=$?
# The suite's own summary is kept; its messages go to reports/coverage-run/ (cucumber.js).
npx cucumber-js --profile coverage --parallel 2 > reports/coverage-run/output.txt 2>&1; acc=$?
unset NODE_V8_COVERAGE
echo "coverage run: unit tests exit $unit, acceptance exit $acc ($(grep -E '^[0-9]+ scenarios' reports/coverage-run/output.txt | tail -1)${VMAN_SUITE_COLD:+, cold})"
tests=$(( unit || acc ))
node scripts/coverage-normalize.mjs .cache/v8-coverage
npx c8 report --check-coverage=false
node scripts/coverage-gate.mjs
gate=$?
if $gate_only; then exit "$gate"; fi
exit $(( tests || gate ))
