#!/usr/bin/env bash
# Fails when gen/ is not what `buf generate` produces from proto/ right now, i.e. someone
# changed a .proto without running `npm run generate` (or edited gen/ by hand).
#
# Regenerates in place, then compares gen/ with the committed tree: tracked changes
# (`git diff`), staged changes and new or deleted files (`git status --porcelain`).
# Run it through `npm run generate:check` (npm puts node_modules/.bin on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

node scripts/write-validate-proto.ts >/dev/null
buf generate

status="$(git status --porcelain --untracked-files=all -- gen)"
if ! git diff --quiet --exit-code -- gen || [ -n "$status" ]; then
  {
    echo "generate:check: gen/ is out of date with proto/."
    echo "Run 'npm run generate' and commit the result. Never edit gen/ by hand."
    echo
    git diff --stat -- gen
    echo "$status"
  } >&2
  exit 1
fi
echo "generate:check: gen/ is up to date."
