#!/usr/bin/env bash
# Fails when a crate of the workspace has an import cycle between its modules.
# Needs cargo-modules (not installed by CI: it builds rust-analyzer, about 15 minutes
# on 2 cores):  cargo install cargo-modules@0.27.0 --locked
# With --edges, prints every module edge of each crate first (what docs/module-graph.md
# is made from).
set -euo pipefail
cd "$(dirname "$0")/.."
extra=()
[ "${1:-}" = --edges ] && extra=(--edges)
status=0
check() {
    local crate=$1
    shift
    local out
    out=$(cargo modules dependencies -p "$crate" "$@" --all-features \
        --no-externs --no-sysroot --no-owns 2>/dev/null |
        python3 scripts/module_cycles.py "$crate/src" "${extra[@]}")
    echo "== $crate"
    echo "$out"
    grep -q '^0 cycle(s)$' <<<"$out" || status=1
}
check rustok-iggy --lib
check rustok-iggy-connector --lib
check rustok-iggy-storage --lib
check rustok-iggy-derive --lib
check rustok-iggy-server --bin rustok-iggy-server
exit "$status"
