//! A slow disk under the embedded broker, made with its fault-injection seam
//! (`embedded.fault_fsync_delay`: every fsync of the broker's storage sleeps first,
//! on the thread that runs it). The application's runtime keeps its pace, the HTTP
//! endpoint answers, concurrent `every_batch` publishes share fsyncs, and each one
//! is acknowledged only after an fsync that covers it.
//!
//! Assertions are about order, never wall-clock budgets: while every publisher still
//! waits for its first fsync, the runtime's ticker ticks and `/ping` answers. How late
//! they are is measured in `benches/benches/slow_disk.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustok_iggy_connector::{
    DurabilityPolicy, EmbeddedConnector, IggyConnector, OutgoingMessage, PublishRequest,
};
use tests::{create_topic, embedded_config, names, open_embedded, partition_metric, within};
use tokio::sync::watch;

/// The injected fsync delay.
const DELAY: Duration = Duration::from_millis(400);
const PUBLISHERS: usize = 4;
const PUBLISHES_EACH: usize = 3;

/// A 1 ms ticker on the caller's runtime until `stop` changes: how many ticks it saw
/// before the first publish was acknowledged (`acked`), and in all.
fn ticker(
    mut stop: watch::Receiver<bool>,
    acked: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64)> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        let (mut before_ack, mut ticks) = (0u64, 0u64);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    ticks += 1;
                    if !acked.load(Ordering::SeqCst) {
                        before_ack += 1;
                    }
                }
                _ = stop.changed() => return (before_ack, ticks),
            }
        }
    })
}

/// The data fsyncs of partition 0 of `s/t`, from `/metrics`.
async fn fsyncs(connector: &EmbeddedConnector) -> Option<f64> {
    let address = connector.http_address().expect("the endpoint is on");
    partition_metric(address, "rustok_iggy_partition_fsyncs_total", ("s", "t", 0)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fsync_stalls_neither_the_runtime_nor_the_http_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.embedded.durability = DurabilityPolicy::EveryBatch;
    config.embedded.http_enabled = true;
    config.embedded.http_port = 0;
    let (stream, topic) = names("s", "t");
    // The topic is made on a fast disk; the broker is then reopened on a slow one.
    let connector = open_embedded(&config).await;
    create_topic(connector.as_ref(), &stream, &topic, 1).await;
    within("shutdown", connector.shutdown()).await.unwrap();
    config.embedded.fault_fsync_delay = DELAY;
    let connector = open_embedded(&config).await;
    let base = format!("http://{}", connector.http_address().unwrap());
    let fsyncs_before = fsyncs(&connector).await;

    let (stop, stopped) = watch::channel(false);
    // Set when the first publish is acknowledged, so before it every publisher waits on
    // the slow disk.
    let acked = Arc::new(AtomicBool::new(false));
    let ticks = ticker(stopped.clone(), Arc::clone(&acked));
    // Four publishers on one partition, each waiting for its acknowledgement.
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let connector: Arc<EmbeddedConnector> = Arc::clone(&connector);
            let (stream, topic) = (stream.clone(), topic.clone());
            let acked = Arc::clone(&acked);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for i in 0..PUBLISHES_EACH {
                    let request = PublishRequest::new(stream.clone(), topic.clone())
                        .partition(0)
                        .message(OutgoingMessage::new(format!("{p}-{i}").into_bytes()));
                    let started = Instant::now();
                    connector.publish(request).await.expect("publish");
                    acked.store(true, Ordering::SeqCst);
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    // Pings while the publishers wait on the slow disk.
    let pinger = {
        let base = base.clone();
        let mut stopped = stopped.clone();
        let acked = Arc::clone(&acked);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut before_ack, mut answered) = (0u32, 0u32);
            while !*stopped.borrow_and_update() {
                let reply = client.get(format!("{base}/ping")).send().await.unwrap();
                assert_eq!(reply.text().await.unwrap(), "pong\n");
                if !acked.load(Ordering::SeqCst) {
                    before_ack += 1;
                }
                answered += 1;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stopped.changed() => {}
                }
            }
            (before_ack, answered)
        })
    };

    let mut latencies = Vec::new();
    for publisher in publishers {
        latencies.extend(within("publishers", publisher).await.unwrap());
    }
    stop.send_replace(true);
    let (ticked_before_ack, ticked) = within("ticker", ticks).await.unwrap();
    let (pings_before_ack, pings) = within("pinger", pinger).await.unwrap();
    let fsyncs_after = fsyncs(&connector).await;
    connector.shutdown().await.unwrap();

    let publishes = (PUBLISHERS * PUBLISHES_EACH) as u64;
    eprintln!(
        "fsync delay {DELAY:?}: {ticked_before_ack} of {ticked} ticks and \
         {pings_before_ack} of {pings} pings before the first acknowledgement, \
         publish latencies {latencies:?}, \
         fsyncs {fsyncs_before:?} -> {fsyncs_after:?}"
    );
    assert!(
        latencies.iter().all(|&l| l >= DELAY),
        "every publish is acknowledged after an fsync that covers it: {latencies:?}"
    );
    assert!(
        ticked_before_ack > 1,
        "the runtime's ticker runs while every publisher waits on the slow disk"
    );
    assert!(
        pings_before_ack > 0,
        "GET /ping answers while every publisher waits on the slow disk"
    );
    let (Some(before), Some(after)) = (fsyncs_before, fsyncs_after) else {
        panic!("/metrics counts the fsyncs of each partition");
    };
    let fsyncs = (after - before) as u64;
    assert!(
        fsyncs < publishes / 2,
        "concurrent publishes share fsyncs: {fsyncs} fsyncs for {publishes} publishes"
    );
}
