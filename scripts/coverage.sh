#!/usr/bin/env bash
# V8 coverage of src/ over the unit tests and the acceptance suite (including
# vman child processes, which inherit NODE_V8_COVERAGE through c8).
# Prints line and branch coverage per module; HTML in reports/coverage/.
set -uo pipefail
cd "$(dirname "$0")/.."
rm -rf reports/coverage .cache/v8-coverage
npx c8 --all --src src --include 'src/**/*.ts' --exclude 'src/**/*.d.ts' \
  --temp-directory .cache/v8-coverage --reports-dir reports/coverage \
  --reporter text --reporter html --reporter json-summary \
  -- bash -c 'npm run --silent test:unit >/dev/null; unit=$?; npx cucumber-js --format summary >/dev/null; acc=$?; echo "unit tests exit $unit, acceptance exit $acc"; exit $(( unit || acc ))'
