#!/usr/bin/env bash
# Runs the benchmark suite of issue 8 (benches/benches/{codec,typed_overhead,
# embedded,tcp,latency}.rs) in bounded time and writes
#   benches/results/summary.md   the figures, the ratios and the targets, all from this run
#   benches/results/chart.svg    throughput and latency per codec and mode
#   benches/results/summary.json the same figures, machine-readable
#
#   scripts/bench.sh                 # the whole suite: about 8 minutes on 2 cores, plus the build
#   scripts/bench.sh --quick         # shorter measurements (criterion's --quick; latency 2 s)
#   scripts/bench.sh codec           # only what matches (a criterion filter; the summary
#                                    # then covers what target/criterion holds)
#
# Criterion keeps its raw output in target/criterion/<group>/ (new/estimates.json);
# the extra figures (encoded sizes, latency percentiles) go to target/criterion/rustok/.
# Data directories of the brokers are on /dev/shm when it is writable
# (RUSTOK_BENCH_TMPDIR overrides), so the figures measure the broker, not the disk.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
criterion_dir="${target}/criterion"
out_dir="benches/results"
benches=(codec typed_overhead embedded tcp latency)

args=()
filtered=false
for arg in "$@"; do
    case "$arg" in
        --quick) args+=(--quick); export RUSTOK_LATENCY_SECONDS="${RUSTOK_LATENCY_SECONDS:-2}" ;;
        -*) args+=("$arg") ;;
        *) args+=("$arg"); filtered=true ;;
    esac
done

bench_flags=()
for bench in "${benches[@]}"; do
    bench_flags+=(--bench "$bench")
done

# Build first, so that the timed part below is only the measurements.
cargo bench -p benches "${bench_flags[@]}" --no-run

if [ "$filtered" = false ]; then
    # A full run starts clean: the summary must not mix figures of two runs.
    for group in codec typed_overhead embedded tcp rustok; do
        rm -rf "${criterion_dir:?}/${group}"
    done
fi

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$(date +%s)"
cargo bench -p benches "${bench_flags[@]}" -- "${args[@]}"
finished="$(date +%s)"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$out_dir"
python3 scripts/bench_summary.py \
    --criterion "$criterion_dir" \
    --out "$out_dir" \
    --seconds "$((finished - started))" \
    --load-before "$load_before" \
    --load-after "$load_after"
echo "wrote ${out_dir}/summary.md, ${out_dir}/summary.json and ${out_dir}/chart.svg ($((finished - started)) s of measurements)"
