#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for a bounded time each and
# prints how many inputs each one tried.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh segment_recovery
#
# Needs cargo-fuzz (installed from crates.io when missing). It runs on the stable
# toolchain without a sanitizer by default (`-s none`; the project's crates forbid
# `unsafe`, see FUZZ_SANITIZER below); debug assertions (and with them overflow
# checks) are on (`-a`). Inputs that found new coverage are kept
# in fuzz/corpus/<target> (not checked in); fuzz/seeds/<target> holds the checked-in
# seeds (written by `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`).
#
# When a target crashes, libFuzzer saves the input as
# fuzz/artifacts/<target>/crash-<sha1> and this script exits non-zero. To turn it
# into a regression test:
#   1. reproduce:  cargo fuzz run -s none -a <target> fuzz/artifacts/<target>/crash-<sha1>
#   2. minimize:   cargo fuzz tmin -s none -a <target> fuzz/artifacts/<target>/crash-<sha1>
#   3. check the minimized input in as fuzz/regressions/<target>/<what-it-is>
#      the test `every_seed_and_regression_input_passes`
#      (rustok-iggy-storage/tests/fuzz_inputs.rs) replays every file there through
#      the target's checks, so `cargo test` fails until it is fixed (config_yaml: add
#      the text to a test in rustok-iggy/src/config.rs);
#   4. fix the code, and add a focused test that says what was wrong (for the log:
#      rustok-iggy-storage/tests/log.rs); a structured input only means something
#      to the version of the input types that produced it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
# FUZZ_SANITIZER=address runs under AddressSanitizer, for the `unsafe` inside
# dependencies (unsafe-libyaml under the YAML parser, bytes): it needs nightly flags,
# which RUSTC_BOOTSTRAP=1 allows on the stable toolchain; builds take a few minutes.
sanitizer="${FUZZ_SANITIZER:-none}"
if [ "${sanitizer}" != "none" ]; then
    export RUSTC_BOOTSTRAP=1
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# The segment target writes a few files per input: keep them in memory.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

summary=()
status=0
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/${target}"
    seeds="fuzz/seeds/${target}"
    mkdir -p "${corpus}" "${seeds}"
    log="$(mktemp)"
    echo "== ${target}: ${seconds} s"
    set +e
    cargo fuzz run --fuzz-dir fuzz -s "${sanitizer}" -a "${target}" "${corpus}" "${seeds}" -- \
        -max_total_time="${seconds}" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"${log}" 2>&1
    code=$?
    set -e
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "${log}" || true
    if [ "${code}" -ne 0 ]; then
        status=1
        echo "!! ${target} failed (exit ${code}): see fuzz/artifacts/${target}/ and the steps at the top of scripts/fuzz.sh"
        tail -40 "${log}"
    fi
    runs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "${log}" | tail -1 | grep -o '[0-9]*$' || echo '?')"
    summary+=("${target}: ${runs} inputs in ${seconds} s")
    rm -f "${log}"
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "${status}"
