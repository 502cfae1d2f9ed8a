#!/usr/bin/env bash
# Assembles what production runs into OUT_DIR: the service and the `muster` CLI as built (each
# workspace package's package.json and dist/), with production dependencies only, installed from
# the lockfile without the network (from the pnpm store the workspace's own install filled).
# infra/Dockerfile runs it; tests/e2e/src/runtime-bundle.test.ts runs it and starts the result.
set -euo pipefail

out=${1:?usage: infra/assemble-runtime.sh OUT_DIR (after pnpm install and pnpm build)}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
cp package.json pnpm-workspace.yaml pnpm-lock.yaml .npmrc "$out/"
for dir in packages/* services/*; do
  [ -f "$dir/package.json" ] || continue
  if [ ! -d "$dir/dist" ]; then
    echo "assemble-runtime: $dir has no dist/; run pnpm build first" >&2
    exit 1
  fi
  mkdir -p "$out/$dir"
  cp "$dir/package.json" "$out/$dir/"
  cp -R "$dir/dist" "$out/$dir/"
done
chmod +x "$out/services/cli/dist/main.js"

cd "$out"
pnpm install --prod --frozen-lockfile --offline --filter '@muster/api...' --filter '@muster/cli...' \
  --reporter=append-only >/dev/null
