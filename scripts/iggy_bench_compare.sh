#!/usr/bin/env bash
# iggy-bench (the Iggy project's own benchmark) with one pinned producer, then one pinned
# consumer, against a real iggy-server and rustok-iggy-server, alternating, fresh data on
# /dev/shm each time, batches of 1000 (1000 batches), 100 B then 1 KB. rustok-iggy-server
# runs with --no-deduplication: iggy-bench sends one batch object again and again (the same
# message ids), and the Iggy server stores duplicates by default.
#   IGGY_SRC=/path/to/iggy RUSTOK_SERVER=target/release/rustok-iggy-server ROUNDS=2 scripts/iggy_bench_compare.sh
set -u
IGGY_SRC=${IGGY_SRC:?set IGGY_SRC to a built apache/iggy checkout (see DEVELOPERS notes in README)}
IGGY=$IGGY_SRC/target/release
RUSTOK=${RUSTOK_SERVER:-target/release/rustok-iggy-server}
rounds=${ROUNDS:-2}
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
start_real() {
    rm -rf /dev/shm/real && mkdir -p /dev/shm/real
    (cd "$IGGY_SRC" && IGGY_SYSTEM_PATH=/dev/shm/real IGGY_HTTP_ENABLED=false IGGY_QUIC_ENABLED=false \
        IGGY_WEBSOCKET_ENABLED=false IGGY_TCP_ADDRESS=127.0.0.1:8090 \
        exec $IGGY/iggy-server --with-default-root-credentials > /tmp/real-server.log 2>&1) &
    echo $! > /tmp/server.pid; wait_port 8090
}
start_rustok() {
    rm -rf /dev/shm/rustok && mkdir -p /dev/shm/rustok
    IGGY_ROOT_PASSWORD=iggy $RUSTOK serve --data-dir /dev/shm/rustok --port 8090 --no-http --no-deduplication > /tmp/rustok-server.log 2>&1 &
    echo $! > /tmp/server.pid; wait_port 8090
}
stop() { kill "$(cat /tmp/server.pid)" 2>/dev/null; wait "$(cat /tmp/server.pid)" 2>/dev/null; sleep 1; }
bench() { # kind size role-flag
    $IGGY/iggy-bench -m "$2" -P 1000 -b 1000 "$1" --streams 1 "$3" 1 tcp --server-address 127.0.0.1:8090 2>&1 |
        grep -E "Total throughput|total throughput|Throughput" | tail -1
}
for size in 100 1000; do
    for round in $(seq 1 "$rounds"); do
        for server in real rustok; do
            "start_$server" || { echo "$server did not start"; continue; }
            p=$(bench pinned-producer "$size" --producers)
            c=$(bench pinned-consumer "$size" --consumers)
            stop
            echo "size=$size round=$round server=$server producer: $p"
            echo "size=$size round=$round server=$server consumer: $c"
        done
    done
done
