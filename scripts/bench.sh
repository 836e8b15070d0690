#!/usr/bin/env bash
# Runs the benchmark suite (benches/benches/{codec,typed_overhead,embedded,tcp,latency,
# paced_publish,batching,pool,single_publish,commits,dedup,schema_header}.rs and the
# allocation count) in bounded time and writes
#   benches/results/summary.md   the figures, the ratios and the targets, all from this run
#                                (with --repeat N: the median of N back-to-back runs of one
#                                invocation, and each ratio's spread over the runs)
#   benches/results/chart.svg    throughput and latency per codec and mode
#   benches/results/summary.json the same figures, machine-readable
#
#   scripts/bench.sh                 # the whole suite: about 8 minutes on 2 cores, plus the build
#   scripts/bench.sh --quick         # shorter measurements (criterion's --quick; latency 2 s)
#   scripts/bench.sh --repeat 3      # three whole runs back to back; the summary gives
#                                    # medians and the min–max of every ratio
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
benches=(codec typed_overhead embedded tcp latency paced_publish batching pool single_publish commits dedup schema_header)
# Criterion groups the benches write (cleared before each run of a full suite).
groups=(codec typed_overhead embedded tcp publish_1000_callers remote_pool_publish single_publish commits dedup schema_header rustok)

args=()
filtered=false
repeat=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) args+=(--quick); export RUSTOK_LATENCY_SECONDS="${RUSTOK_LATENCY_SECONDS:-2}" ;;
        --repeat)
            repeat="${2:?--repeat takes a count}"
            shift
            ;;
        -*) args+=("$1") ;;
        *) args+=("$1"); filtered=true ;;
    esac
    shift
done
case "$repeat" in
    '' | *[!0-9]* | 0) echo "--repeat takes a count of at least 1, not '$repeat'" >&2; exit 2 ;;
esac
if [ "$repeat" -gt 1 ] && [ "$filtered" = true ]; then
    echo "--repeat runs the whole suite; it does not take a filter" >&2
    exit 2
fi

bench_flags=()
for bench in "${benches[@]}"; do
    bench_flags+=(--bench "$bench")
done

# Build first, so that the timed part below is only the measurements.
cargo bench -p benches "${bench_flags[@]}" --no-run
cargo bench -p benches --bench allocations --no-run

clear_groups() {
    for group in "${groups[@]}"; do
        rm -rf "${criterion_dir:?}/${group}"
    done
}

runs_dir="${target}/criterion-runs"
summary_inputs=()
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$(date +%s)"
if [ "$repeat" -eq 1 ]; then
    # A full run starts clean: the summary must not mix figures of two runs.
    [ "$filtered" = true ] || clear_groups
    cargo bench -p benches "${bench_flags[@]}" -- "${args[@]}"
    [ "$filtered" = true ] || cargo bench -p benches --bench allocations
    summary_inputs+=(--criterion "$criterion_dir")
else
    rm -rf "${runs_dir:?}"
    for run in $(seq 1 "$repeat"); do
        echo "== run ${run} of ${repeat}"
        clear_groups
        cargo bench -p benches "${bench_flags[@]}" -- "${args[@]}"
        cargo bench -p benches --bench allocations
        mkdir -p "${runs_dir}/${run}"
        for group in "${groups[@]}"; do
            [ -d "${criterion_dir}/${group}" ] && cp -r "${criterion_dir}/${group}" "${runs_dir}/${run}/"
        done
        summary_inputs+=(--criterion "${runs_dir}/${run}")
    done
fi
finished="$(date +%s)"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$out_dir"
python3 scripts/bench_summary.py \
    "${summary_inputs[@]}" \
    --out "$out_dir" \
    --seconds "$((finished - started))" \
    --load-before "$load_before" \
    --load-after "$load_after"
echo "wrote ${out_dir}/summary.md, ${out_dir}/summary.json and ${out_dir}/chart.svg ($((finished - started)) s of measurements)"
