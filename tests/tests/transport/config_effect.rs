//! Every field of `events.iggy`, loaded from YAML, takes effect, or is refused, or
//! is warned about (with its path) where it cannot apply. None is parsed and then
//! dropped.
//!
//! `every_field_has_a_check` walks the fields of the configuration (its serialized
//! form) and fails when one has no check below, so a new field needs one. A check
//! observes the effect from outside: the stream and partitions of the created topic,
//! its retention, the codec header of a stored message, the files in the data
//! directory, the listener's address, a refused sign-in, the clients the server
//! counts. Two effects are read from the broker's own log line (the durability
//! policy and its interval: fsyncs leave nothing else to observe without power
//! loss); the SDK's keep-alive interval is only checked to be validated.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use iggy::prelude::SystemClient;
use rustok_iggy::prelude::*;
use rustok_iggy::{
    Codec,
    connector::{ConnectorError, ConnectorMode, EmbeddedConnector, IggyConnector, TopicName},
    dead_letter::DeadLetterConfig,
    envelope::{EventEnvelope, EventTransport, IggyTransport},
};
use rustok_iggy_connector::{RemoteConnector, StartPosition};
use serde::{Deserialize, Serialize};
use tests::wire::WireBroker;
use tests::within;

// ---- the walk ------------------------------------------------------------------------

/// The dotted paths of the leaves of `value` (an empty map is a leaf).
fn leaves(value: &serde_json::Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                let path = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                leaves(item, &path, out);
            }
        }
        _ => {
            out.insert(path.to_owned());
        }
    }
}

#[test]
fn every_field_has_a_check() {
    let value = serde_json::to_value(IggyConfig::default()).unwrap();
    let mut fields = BTreeSet::new();
    leaves(&value, "", &mut fields);
    // Secrets are never written out (they cannot be serialized); they are fields all
    // the same, each with its check.
    for secret in SECRETS {
        assert!(!fields.contains(*secret), "{secret} is written out");
        fields.insert((*secret).to_owned());
    }
    let checked: BTreeSet<String> = checks().iter().map(|(p, _)| (*p).to_owned()).collect();
    let unchecked: Vec<_> = fields.difference(&checked).collect();
    let unknown: Vec<_> = checked.difference(&fields).collect();
    assert!(
        unchecked.is_empty() && unknown.is_empty(),
        "fields without a check: {unchecked:?}; checks of no field: {unknown:?}"
    );
    assert!(fields.len() > 30, "the walk found the fields: {fields:?}");
}

/// The fields that hold a secret: loaded, never serialized.
const SECRETS: &[&str] = &[
    "embedded.root_password",
    "remote.password",
    "remote.personal_access_token",
];

type Check = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every field and the check that proves it is used.
fn checks() -> Vec<(&'static str, Check)> {
    vec![
        ("mode", || Box::pin(mode())),
        ("serialization", || Box::pin(serialization())),
        ("topology.stream_name", || Box::pin(stream_and_partitions())),
        ("topology.domain_partitions", || {
            Box::pin(stream_and_partitions())
        }),
        ("topology.replication_factor", || {
            Box::pin(replication_factor())
        }),
        ("topology.default_topic", || Box::pin(routing())),
        ("topology.routes", || Box::pin(routing())),
        ("topology.system_topics", || Box::pin(system_topics())),
        ("embedded.data_dir", || Box::pin(data_dir())),
        ("embedded.persistent", || Box::pin(not_persistent())),
        ("embedded.durability", || Box::pin(durability())),
        ("embedded.fsync_interval_ms", || Box::pin(fsync_interval())),
        ("embedded.segment_size_bytes", || Box::pin(segment_size())),
        ("embedded.tcp_enabled", || Box::pin(tcp_listener())),
        ("embedded.tcp_address", || Box::pin(tcp_listener())),
        ("embedded.tcp_port", || Box::pin(tcp_listener())),
        ("embedded.http_enabled", || Box::pin(http_endpoint())),
        ("embedded.http_address", || Box::pin(http_endpoint())),
        ("embedded.http_port", || Box::pin(http_endpoint())),
        ("embedded.http_max_connections", || Box::pin(http_limits())),
        ("embedded.http_timeout_ms", || Box::pin(http_limits())),
        ("embedded.tcp_limits.max_connections", || {
            Box::pin(tcp_limits())
        }),
        ("embedded.tcp_limits.max_unauthenticated", || {
            Box::pin(tcp_limits())
        }),
        ("embedded.tcp_limits.first_frame_timeout_ms", || {
            Box::pin(tcp_limits())
        }),
        (
            "embedded.tcp_limits.unauthenticated_idle_timeout_ms",
            || Box::pin(tcp_limits()),
        ),
        ("embedded.tcp_limits.write_timeout_ms", || {
            Box::pin(tcp_limits())
        }),
        ("embedded.tcp_limits.login_queue", || Box::pin(tcp_limits())),
        ("embedded.tcp_limits.max_failed_logins", || {
            Box::pin(tcp_limits())
        }),
        ("embedded.deduplication.enabled", || {
            Box::pin(deduplication())
        }),
        ("embedded.deduplication.max_entries", || {
            Box::pin(deduplication())
        }),
        ("embedded.deduplication.expiry_ms", || {
            Box::pin(deduplication_expiry())
        }),
        ("embedded.root_username", || Box::pin(root_user())),
        ("embedded.root_password", || Box::pin(root_user())),
        ("remote.addresses", || Box::pin(addresses())),
        ("remote.protocol", || Box::pin(protocol())),
        ("remote.username", || Box::pin(credentials())),
        ("remote.password", || Box::pin(credentials())),
        ("remote.personal_access_token", || {
            Box::pin(personal_access_token())
        }),
        ("remote.tls_enabled", || Box::pin(tls())),
        ("remote.tls_ca_file", || Box::pin(tls())),
        ("remote.tls_domain", || Box::pin(tls())),
        ("remote.connect_timeout_ms", || Box::pin(connect_timeout())),
        ("remote.reconnection_retries", || Box::pin(reconnection())),
        ("remote.reconnection_interval_ms", || {
            Box::pin(reconnection())
        }),
        ("remote.heartbeat_interval_ms", || Box::pin(heartbeat())),
        ("remote.pool_size", || Box::pin(pool_size())),
        ("retention.domain_max_age_days", || {
            Box::pin(domain_retention())
        }),
        ("retention.domain_max_size_gb", || {
            Box::pin(domain_retention())
        }),
        (
            "retention.system_max_age_days",
            || Box::pin(system_topics()),
        ),
        ("retention.dlq_max_age_days", || Box::pin(dlq_retention())),
    ]
}

/// Runs the checks of the fields under `prefix`, each once.
async fn run_checks(prefix: &str) {
    let mut done: Vec<Check> = Vec::new();
    for (path, check) in checks() {
        if !path.starts_with(prefix) || done.iter().any(|c| std::ptr::fn_addr_eq(*c, check)) {
            continue;
        }
        eprintln!("checking {path}");
        check().await;
        done.push(check);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mode_and_the_codec_take_effect() {
    run_checks("mode").await;
    run_checks("serialization").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_topology_field_takes_effect_or_is_refused() {
    run_checks("topology.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_embedded_field_takes_effect_or_is_warned_about() {
    run_checks("embedded.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_remote_field_takes_effect_or_is_refused_or_warned_about() {
    run_checks("remote.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retention_field_takes_effect_or_is_warned_about() {
    run_checks("retention.").await;
}

// ---- helpers -------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", key = tenant)]
struct OrderPlaced {
    tenant: String,
    n: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "audit")]
struct AuditLogged {
    what: String,
}

fn order(n: u64) -> OrderPlaced {
    OrderPlaced {
        tenant: "acme".into(),
        n,
    }
}

/// What every log line of this binary wrote (a global subscriber: the checks run on
/// several threads).
fn logs() -> String {
    let buffer = log_buffer();
    let bytes = buffer.lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .try_init()
            .expect("the only global subscriber of this test binary");
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `events.iggy` section `section` (YAML lines, unindented) as a document.
fn document(section: &str) -> String {
    let mut out = String::from("events:\n  transport: iggy\n  iggy:\n");
    for line in section.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn load(section: &str) -> IggyConfig {
    log_buffer();
    IggyConfig::from_yaml_with_env(&document(section), |_| None)
        .unwrap_or_else(|e| panic!("{e}\n{section}"))
}

/// `section` is refused, naming `path` (and why).
fn refused(section: &str, path: &str) -> String {
    let err = IggyConfig::from_yaml_with_env(&document(section), |_| None)
        .map(|_| ())
        .expect_err(section)
        .to_string();
    assert!(
        err.starts_with(&format!("events.iggy.{path}: ")),
        "{path}: {err}"
    );
    err
}

/// `section` loads with a warning about `path`, logged with the full path.
fn warned(section: &str, path: &str) {
    let config = load(section);
    let warnings = config.warnings();
    assert!(
        warnings.iter().any(|w| w.path == path),
        "{path}: no warning in {warnings:?}\n{section}"
    );
    assert!(
        logs().contains(&format!("field=events.iggy.{path}")),
        "{path}: the warning is logged with its path"
    );
}

/// An embedded section in `dir`, listeners off, plus `extra` (`key: value, ...`).
fn embedded(dir: &Path, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(
        "embedded: {{ data_dir: {:?}, tcp_enabled: false, http_enabled: false{extra} }}",
        dir.display().to_string()
    )
}

/// A remote section for `address` as root of the test brokers, plus `extra`.
fn remote(address: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(
        "mode: remote\nremote: {{ addresses: [{address:?}], username: iggy, password: iggy, \
         connect_timeout_ms: 5000{extra} }}"
    )
}

/// A connected remote connector (through [`rustok_iggy::connect`]).
async fn connect(config: &IggyConfig) -> Result<Arc<dyn IggyConnector>, rustok_iggy::Error> {
    within("connect", rustok_iggy::connect(config)).await
}

fn connector_error(error: rustok_iggy::Error) -> ConnectorError {
    match error {
        rustok_iggy::Error::Connector(e) => e,
        other => panic!("not a connector error: {other:?}"),
    }
}

/// Files under `dir` whose name ends with `suffix`.
fn files(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    tests::faults::walk(dir)
        .into_iter()
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect()
}

fn days(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n * 86_400))
}

// ---- mode, serialization -------------------------------------------------------------

async fn mode() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&embedded(dir.path(), ""));
    let connector = connect(&config).await.unwrap();
    assert_eq!(connector.mode(), ConnectorMode::Embedded);
    connector.shutdown().await.unwrap();

    let broker = WireBroker::start().await;
    let config = load(&remote(&broker.address.to_string(), ""));
    let connector = connect(&config).await.unwrap();
    assert_eq!(connector.mode(), ConnectorMode::Remote);
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    orders.publish(&order(1)).await.unwrap();
    // Stored by the server behind the listener.
    let mut stored = 0;
    for partition in 0..orders.partitions() {
        stored += broker
            .connector
            .poll(
                orders.stream(),
                orders.topic(),
                partition,
                StartPosition::Earliest,
                10,
            )
            .await
            .unwrap()
            .len();
    }
    assert_eq!(stored, 1, "the event went to the remote server");
    connector.shutdown().await.unwrap();
    broker.shutdown().await;
}

async fn serialization() {
    for (codec, name) in [(Codec::Postcard, "postcard"), (Codec::Json, "json")] {
        let dir = tempfile::tempdir().unwrap();
        let config = load(&format!(
            "serialization: {name}\ntopology: {{ domain_partitions: 1 }}\n{}",
            embedded(dir.path(), "")
        ));
        assert_eq!(config.serialization, codec);
        let transport = IggyTransport::new(config).await.unwrap();
        transport
            .publish(EventEnvelope::new("x.y", serde_json::json!({"n": 1})))
            .await
            .unwrap();
        let topic = transport.topic_for("x.y").clone();
        let stored = transport
            .connector()
            .poll(
                transport.stream_name(),
                &topic,
                0,
                StartPosition::Earliest,
                1,
            )
            .await
            .unwrap();
        assert_eq!(stored[0].headers.get_str("codec"), Some(name));
        let is_json = serde_json::from_slice::<serde_json::Value>(&stored[0].payload).is_ok();
        assert_eq!(is_json, codec == Codec::Json, "{name} payload");
        transport.shutdown().await.unwrap();
    }
}

// ---- topology ------------------------------------------------------------------------

async fn stream_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "topology: {{ stream_name: shop, domain_partitions: 3 }}\n{}",
        embedded(dir.path(), "")
    ));
    let connector = connect(&config).await.unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    assert_eq!(orders.stream().as_str(), "shop");
    assert_eq!(orders.partitions(), 3);
    let info = connector
        .topic_info(orders.stream(), orders.topic())
        .await
        .unwrap()
        .expect("orders on stream shop");
    assert_eq!(info.partitions, 3);
    // Envelopes too.
    let envelopes = IggyTransport::with_connector(Arc::clone(&connector), config);
    envelopes
        .publish(EventEnvelope::new("x.y", serde_json::json!({})))
        .await
        .unwrap();
    let info = connector
        .topic_info(envelopes.stream_name(), envelopes.topic_for("x.y"))
        .await
        .unwrap()
        .expect("the default topic on stream shop");
    assert_eq!(
        (info.stream.as_str(), info.partitions),
        ("shop", 3),
        "envelopes"
    );
    connector.shutdown().await.unwrap();
}

async fn replication_factor() {
    let err = refused(
        "topology: { replication_factor: 3 }",
        "topology.replication_factor",
    );
    assert!(err.contains("allowed: 1"), "{err}");
    let err = refused(
        "mode: remote\ntopology: { replication_factor: 2 }\nremote: { addresses: [\"127.0.0.1:8090\"] }",
        "topology.replication_factor",
    );
    assert!(err.contains("no per-topic replication factor"), "{err}");
    let config = load("topology: { replication_factor: 1 }");
    assert_eq!(config.topology.replication_factor, 1);
}

async fn routing() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "topology: {{ default_topic: misc, routes: {{ \"order.\": orders }}, domain_partitions: 1 }}\n{}",
        embedded(dir.path(), "")
    ));
    let transport = IggyTransport::new(config).await.unwrap();
    transport
        .publish(EventEnvelope::new("order.placed", serde_json::json!({})))
        .await
        .unwrap();
    transport
        .publish(EventEnvelope::new("user.created", serde_json::json!({})))
        .await
        .unwrap();
    for (topic, event_type) in [("orders", "order.placed"), ("misc", "user.created")] {
        let stored = transport
            .connector()
            .poll(
                transport.stream_name(),
                &TopicName::new(topic).unwrap(),
                0,
                StartPosition::Earliest,
                10,
            )
            .await
            .unwrap();
        assert_eq!(stored.len(), 1, "{topic}");
        assert_eq!(stored[0].headers.get_str("event_type"), Some(event_type));
    }
    transport.shutdown().await.unwrap();
}

async fn system_topics() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "topology: {{ system_topics: [audit] }}\nretention: {{ system_max_age_days: 2, domain_max_age_days: 9 }}\n{}",
        embedded(dir.path(), "")
    ));
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    let connector = connect(&config).await.unwrap();
    let audit = Transport::<AuditLogged>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    let retention = |transport_topic: TopicName| {
        let connector = Arc::clone(&connector);
        let stream = audit.stream().clone();
        async move {
            connector
                .topic_info(&stream, &transport_topic)
                .await
                .unwrap()
                .unwrap()
                .retention
        }
    };
    assert_eq!(retention(audit.topic().clone()).await.max_age, days(2));
    assert_eq!(
        retention(audit.topic().clone()).await.max_size_bytes,
        None,
        "no domain size limit on a system topic"
    );
    assert_eq!(retention(orders.topic().clone()).await.max_age, days(9));
    // Envelopes routed to a system topic get the same.
    let mut envelope_config = config.clone();
    envelope_config
        .topology
        .routes
        .insert("audit.".into(), TopicName::new("audit-envelopes").unwrap());
    envelope_config
        .topology
        .system_topics
        .insert(TopicName::new("audit-envelopes").unwrap());
    let envelopes = IggyTransport::with_connector(Arc::clone(&connector), envelope_config);
    envelopes
        .publish(EventEnvelope::new("audit.login", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(
        retention(TopicName::new("audit-envelopes").unwrap())
            .await
            .max_age,
        days(2)
    );
    connector.shutdown().await.unwrap();
    // Without a system topic the age limit applies to nothing: said at load.
    warned(
        "retention: { system_max_age_days: 7 }",
        "retention.system_max_age_days",
    );
}

// ---- embedded ------------------------------------------------------------------------

async fn data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("here");
    let config = load(&embedded(&data, ""));
    let connector = connect(&config).await.unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    orders.publish(&order(1)).await.unwrap();
    assert!(
        !files(&data, ".log").is_empty(),
        "the segments are in embedded.data_dir"
    );
    connector.shutdown().await.unwrap();
}

async fn not_persistent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("unused");
    let section = embedded(&data, "persistent: false");
    let config = load(&section);
    let connector = connect(&config).await.unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    orders.publish(&order(1)).await.unwrap();
    assert!(!data.exists(), "a temporary directory is used instead");
    connector.shutdown().await.unwrap();
    warned(&section, "embedded.data_dir");
}

async fn durability() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&embedded(dir.path(), "durability: every_batch"));
    let connector = connect(&config).await.unwrap();
    let line = format!("data_dir={} durability=EveryBatch", dir.path().display());
    assert!(logs().contains(&line), "the broker opened with `{line}`");
    connector.shutdown().await.unwrap();
}

async fn fsync_interval() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&embedded(dir.path(), "fsync_interval_ms: 250"));
    let connector = connect(&config).await.unwrap();
    let line = format!(
        "data_dir={} durability=Interval(250ms)",
        dir.path().display()
    );
    assert!(logs().contains(&line), "the broker opened with `{line}`");
    connector.shutdown().await.unwrap();
    refused(
        &embedded(dir.path(), "fsync_interval_ms: 0"),
        "embedded.fsync_interval_ms",
    );
    warned(
        &embedded(dir.path(), "durability: never, fsync_interval_ms: 250"),
        "embedded.fsync_interval_ms",
    );
}

async fn segment_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "topology: {{ domain_partitions: 1 }}\n{}",
        embedded(dir.path(), "segment_size_bytes: 4096")
    ));
    let connector = connect(&config).await.unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    for n in 0..40 {
        orders.publish(&order(n)).await.unwrap();
    }
    assert!(
        files(dir.path(), ".log").len() > 1,
        "segments roll at 4 KiB: {:?}",
        files(dir.path(), ".log")
    );
    connector.shutdown().await.unwrap();
}

async fn tcp_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "embedded: {{ data_dir: {:?}, http_enabled: false, tcp_enabled: true, tcp_address: 127.0.0.2, tcp_port: 0 }}",
        dir.path().display().to_string()
    ));
    let broker = EmbeddedConnector::new();
    broker.connect(&config.connector_config()).await.unwrap();
    let address = broker.tcp_address().expect("embedded.tcp_enabled");
    assert_eq!(
        address.ip().to_string(),
        "127.0.0.2",
        "embedded.tcp_address"
    );
    assert_ne!(address.port(), 8090, "embedded.tcp_port 0 is a free port");
    let client = load(&remote(&address.to_string(), ""));
    let connector = connect(&client).await.expect("the listener answers");
    connector.shutdown().await.unwrap();
    broker.shutdown().await.unwrap();

    let off = load(&embedded(dir.path(), ""));
    let broker = EmbeddedConnector::new();
    broker.connect(&off.connector_config()).await.unwrap();
    assert_eq!(broker.tcp_address(), None, "embedded.tcp_enabled: false");
    broker.shutdown().await.unwrap();
    warned(
        &embedded(dir.path(), "tcp_address: 127.0.0.3"),
        "embedded.tcp_address",
    );
    warned(&embedded(dir.path(), "tcp_port: 9999"), "embedded.tcp_port");
}

/// `http_max_connections: 1` serves one connection at a time and `http_timeout_ms` ends
/// one that sends nothing: a `GET /ping` behind a silent connection is answered only
/// after the server cut the silent one.
async fn http_limits() {
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "embedded: {{ data_dir: {:?}, tcp_enabled: false, http_enabled: true, http_port: 0, http_max_connections: 1, http_timeout_ms: 300 }}",
        dir.path().display().to_string()
    ));
    let broker = EmbeddedConnector::new();
    broker.connect(&config.connector_config()).await.unwrap();
    let address = broker.http_address().expect("the HTTP endpoint is on");
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let cut = Arc::clone(&cut);
        tokio::spawn(async move {
            let mut byte = [0u8; 1];
            let read = silent.read(&mut byte).await;
            assert!(
                matches!(read, Ok(0) | Err(_)),
                "embedded.http_timeout_ms: the silent connection is closed, not answered"
            );
            cut.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    // Give the server the silent connection first: it is accepted before the ping.
    tokio::task::yield_now().await;
    let pong = within(
        "GET /ping behind a silent connection",
        reqwest::Client::new()
            .get(format!("http://{address}/ping"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(pong.status(), 200);
    // 300 ms against the 10 s default: the silent connection is cut long before 5 s
    // only when the configured timeout took effect.
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("embedded.http_timeout_ms: the silent connection is cut after 300 ms")
        .unwrap();
    assert!(
        cut.load(std::sync::atomic::Ordering::SeqCst),
        "embedded.http_max_connections: 1 answered the ping only after the silent connection ended"
    );
    broker.shutdown().await.unwrap();
    refused(
        &format!(
            "embedded: {{ data_dir: {:?}, http_max_connections: 0 }}",
            dir.path().display().to_string()
        ),
        "embedded.http_max_connections",
    );
}

/// `tcp_limits` is read from YAML: `first_frame_timeout_ms: 300` closes a connection
/// that sends nothing long before the 10 s default, and each of its fields set to 0
/// is refused with its path (the listener's effect of every limit is in the
/// `wire_limits` binary).
/// Publishes `order(n)` with event id `id`; whether the broker had it already.
async fn publish_id(orders: &Transport<OrderPlaced>, n: u64, id: u128) -> bool {
    let metadata = EventMetadata {
        event_id: Some(uuid::Uuid::from_u128(id)),
        ..EventMetadata::default()
    };
    orders
        .publish_with(&order(n), &metadata)
        .await
        .unwrap()
        .duplicate
}

async fn deduplication() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "topology: {{ domain_partitions: 1 }}\n{}",
        embedded(dir.path(), "deduplication: { max_entries: 2 }")
    ));
    let connector = connect(&config).await.unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    for id in 1..=3 {
        assert!(!publish_id(&orders, id as u64, id).await);
    }
    assert!(
        publish_id(&orders, 3, 3).await,
        "embedded.deduplication.enabled: an id stored already is a duplicate"
    );
    assert!(
        !publish_id(&orders, 1, 1).await,
        "embedded.deduplication.max_entries: 2 ids are remembered, 1 was pushed out"
    );
    connector.shutdown().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "topology: {{ domain_partitions: 1 }}\n{}",
        embedded(dir.path(), "deduplication: { enabled: false }")
    ));
    let connector = connect(&config).await.unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    assert!(!publish_id(&orders, 1, 1).await);
    assert!(
        !publish_id(&orders, 1, 1).await,
        "embedded.deduplication.enabled: false stores every message"
    );
    connector.shutdown().await.unwrap();
    refused(
        &embedded(dir.path(), "deduplication: { max_entries: 0 }"),
        "embedded.deduplication.max_entries",
    );
    warned(
        &embedded(
            dir.path(),
            "deduplication: { enabled: false, max_entries: 5 }",
        ),
        "embedded.deduplication.max_entries",
    );
}

async fn deduplication_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "topology: {{ domain_partitions: 1 }}\n{}",
        embedded(dir.path(), "deduplication: { expiry_ms: 20 }")
    ));
    let connector = connect(&config).await.unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    assert!(!publish_id(&orders, 1, 1).await);
    // Under the default (60 s) this would not end within the bound.
    within("embedded.deduplication.expiry_ms: the id expires", async {
        while publish_id(&orders, 1, 1).await {
            tokio::task::yield_now().await;
        }
    })
    .await;
    connector.shutdown().await.unwrap();
    warned(
        &embedded(
            dir.path(),
            "deduplication: { enabled: false, expiry_ms: 5 }",
        ),
        "embedded.deduplication.expiry_ms",
    );
}

async fn tcp_limits() {
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "embedded: {{ data_dir: {:?}, http_enabled: false, tcp_enabled: true, tcp_port: 0, tcp_limits: {{ first_frame_timeout_ms: 300 }} }}",
        dir.path().display().to_string()
    ));
    let broker = EmbeddedConnector::new();
    broker.connect(&config.connector_config()).await.unwrap();
    let address = broker.tcp_address().expect("the TCP listener is on");
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte))
        .await
        .expect(
            "embedded.tcp_limits.first_frame_timeout_ms: the silent connection is cut after 300 ms",
        );
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "embedded.tcp_limits.first_frame_timeout_ms: the silent connection is closed, not answered"
    );
    broker.shutdown().await.unwrap();
    for field in [
        "max_connections",
        "max_unauthenticated",
        "first_frame_timeout_ms",
        "unauthenticated_idle_timeout_ms",
        "write_timeout_ms",
        "login_queue",
        "max_failed_logins",
    ] {
        refused(
            &format!(
                "embedded: {{ data_dir: {:?}, tcp_limits: {{ {field}: 0 }} }}",
                dir.path().display().to_string()
            ),
            &format!("embedded.tcp_limits.{field}"),
        );
    }
}

async fn http_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "embedded: {{ data_dir: {:?}, tcp_enabled: false, http_enabled: true, http_address: 127.0.0.2, http_port: 0 }}",
        dir.path().display().to_string()
    ));
    let broker = EmbeddedConnector::new();
    broker.connect(&config.connector_config()).await.unwrap();
    let address = broker.http_address().expect("embedded.http_enabled");
    assert_eq!(
        address.ip().to_string(),
        "127.0.0.2",
        "embedded.http_address"
    );
    assert_ne!(address.port(), 3000, "embedded.http_port 0 is a free port");
    let pong = within(
        "GET /ping",
        reqwest::Client::new()
            .get(format!("http://{address}/ping"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(pong.status(), 200);
    broker.shutdown().await.unwrap();

    let broker = EmbeddedConnector::new();
    broker
        .connect(&load(&embedded(dir.path(), "")).connector_config())
        .await
        .unwrap();
    assert_eq!(broker.http_address(), None, "embedded.http_enabled: false");
    broker.shutdown().await.unwrap();
    warned(
        &embedded(dir.path(), "http_address: 127.0.0.3"),
        "embedded.http_address",
    );
    warned(
        &embedded(dir.path(), "http_port: 9999"),
        "embedded.http_port",
    );
}

async fn root_user() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "embedded: {{ data_dir: {:?}, http_enabled: false, tcp_enabled: true, tcp_port: 0, root_username: admin, root_password: s3cret-root }}",
        dir.path().display().to_string()
    ));
    let broker = EmbeddedConnector::new();
    broker.connect(&config.connector_config()).await.unwrap();
    let address = broker.tcp_address().unwrap().to_string();
    let mut client = load(&remote(&address, ""));
    client.remote.username = "admin".into();
    client.remote.password = rustok_iggy::connector::Secret::new("s3cret-root");
    connect(&client)
        .await
        .expect("the configured root user signs in")
        .shutdown()
        .await
        .unwrap();
    let default_root = load(&remote(&address, ""));
    let err = connector_error(connect(&default_root).await.unwrap_err());
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    broker.shutdown().await.unwrap();
    warned(
        &embedded(dir.path(), "root_username: admin"),
        "embedded.root_username",
    );
    warned(
        &embedded(dir.path(), "root_password: other"),
        "embedded.root_password",
    );
}

// ---- remote --------------------------------------------------------------------------

async fn addresses() {
    let broker = WireBroker::start().await;
    // Port 1 refuses connections: the next address is tried.
    let config = load(&format!(
        "mode: remote\nremote: {{ addresses: [\"127.0.0.1:1\", {:?}], username: iggy, password: iggy, connect_timeout_ms: 2000 }}",
        broker.address.to_string()
    ));
    let connector = RemoteConnector::new();
    within("connect", connector.connect(&config.connector_config()))
        .await
        .unwrap();
    assert_eq!(
        connector.server_address().unwrap(),
        broker.address.to_string()
    );
    connector.shutdown().await.unwrap();
    broker.shutdown().await;
}

async fn protocol() {
    let broker = WireBroker::start().await;
    let address = broker.address.to_string();
    refused(&remote(&address, "protocol: http"), "remote.protocol");
    // QUIC goes to the SDK's QUIC client: the TCP listener does not answer it.
    let config = load(
        &remote(&address, "protocol: quic")
            .replace("connect_timeout_ms: 5000", "connect_timeout_ms: 500"),
    );
    assert!(connect(&config).await.is_err(), "no QUIC server here");
    let config = load(&remote(&address, "protocol: tcp"));
    connect(&config).await.unwrap().shutdown().await.unwrap();
    broker.shutdown().await;
}

async fn credentials() {
    let broker = WireBroker::start().await;
    let address = broker.address.to_string();
    let wrong = load(&remote(&address, "").replace("password: iggy", "password: nope"));
    let err = connector_error(connect(&wrong).await.unwrap_err());
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    let wrong = load(&remote(&address, "").replace("username: iggy", "username: nobody"));
    let err = connector_error(connect(&wrong).await.unwrap_err());
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    connect(&load(&remote(&address, "")))
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    broker.shutdown().await;
}

async fn personal_access_token() {
    let broker = WireBroker::start().await;
    let address = broker.address.to_string();
    // Correct user name and password, but the token is what signs in.
    let section = remote(&address, "personal_access_token: not-a-token");
    let err = connector_error(connect(&load(&section)).await.unwrap_err());
    assert!(
        matches!(err, ConnectorError::Auth { .. }) && err.to_string().contains("token"),
        "{err:?}"
    );
    warned(&section, "remote.password");
    warned(&section, "remote.username");
    broker.shutdown().await;
}

async fn tls() {
    let broker = WireBroker::start().await;
    let address = broker.address.to_string();
    // The test listener speaks plain TCP: with TLS on, no session.
    let config = load(
        &remote(&address, "tls_enabled: true, tls_domain: localhost")
            .replace("connect_timeout_ms: 5000", "connect_timeout_ms: 1000"),
    );
    assert!(
        connect(&config).await.is_err(),
        "TLS against a plain listener"
    );
    warned(
        &remote(&address, "tls_ca_file: /etc/ssl/ca.pem"),
        "remote.tls_ca_file",
    );
    warned(
        &remote(&address, "tls_domain: example.org"),
        "remote.tls_domain",
    );
    broker.shutdown().await;
}

async fn connect_timeout() {
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let config =
        load(&remote(&address, "").replace("connect_timeout_ms: 5000", "connect_timeout_ms: 300"));
    let err = connector_error(connect(&config).await.unwrap_err());
    assert!(err.to_string().contains("within 300ms"), "{err}");
    refused(
        &remote(&address, "").replace("connect_timeout_ms: 5000", "connect_timeout_ms: 0"),
        "remote.connect_timeout_ms",
    );
    drop(silent);
}

async fn reconnection() {
    let dir = tempfile::tempdir().unwrap();
    let broker_config = |port: u16| {
        let mut config = tests::embedded_config(dir.path());
        config.embedded.tcp_enabled = true;
        config.embedded.tcp_address = "127.0.0.1".into();
        config.embedded.tcp_port = port;
        config
    };
    let broker = EmbeddedConnector::new();
    broker.connect(&broker_config(0)).await.unwrap();
    let address = broker.tcp_address().unwrap();
    let reconnecting = connect(&load(&remote(
        &address.to_string(),
        "reconnection_retries: 100, reconnection_interval_ms: 20",
    )))
    .await
    .unwrap();
    let once = connect(&load(&remote(
        &address.to_string(),
        "reconnection_retries: 0",
    )))
    .await
    .unwrap();
    broker.shutdown().await.unwrap();
    let restarted = EmbeddedConnector::new();
    restarted
        .connect(&broker_config(address.port()))
        .await
        .unwrap();
    within(
        "the reconnecting connector answers again",
        reconnecting.ping(Duration::from_secs(10)),
    )
    .await
    .expect("reconnected");
    assert!(
        once.ping(Duration::from_secs(2)).await.is_err(),
        "remote.reconnection_retries: 0 does not reconnect"
    );
    reconnecting.shutdown().await.unwrap();
    drop(once);
    restarted.shutdown().await.unwrap();
    warned(
        &remote(
            &address.to_string(),
            "reconnection_retries: 0, reconnection_interval_ms: 5",
        ),
        "remote.reconnection_interval_ms",
    );
}

async fn heartbeat() {
    let broker = WireBroker::start().await;
    let address = broker.address.to_string();
    refused(
        &remote(&address, "heartbeat_interval_ms: 0"),
        "remote.heartbeat_interval_ms",
    );
    // Handed to the SDK, which pings at that interval.
    let config = load(&remote(&address, "heartbeat_interval_ms: 100"));
    assert_eq!(config.remote.heartbeat_interval_ms, 100);
    connect(&config).await.unwrap().shutdown().await.unwrap();
    broker.shutdown().await;
}

async fn pool_size() {
    let broker = WireBroker::start().await;
    let observer = broker.client().await;
    let before = observer.get_stats().await.unwrap().clients_count;
    let connector = connect(&load(&remote(&broker.address.to_string(), "pool_size: 3")))
        .await
        .unwrap();
    let during = observer.get_stats().await.unwrap().clients_count;
    assert_eq!(during - before, 3, "remote.pool_size connections");
    connector.shutdown().await.unwrap();
    refused(
        &remote(&broker.address.to_string(), "pool_size: 0"),
        "remote.pool_size",
    );
    broker.shutdown().await;
}

// ---- retention -----------------------------------------------------------------------

async fn domain_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "retention: {{ domain_max_age_days: 3, domain_max_size_gb: 2 }}\n{}",
        embedded(dir.path(), "")
    ));
    let connector = connect(&config).await.unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    let retention = connector
        .topic_info(orders.stream(), orders.topic())
        .await
        .unwrap()
        .unwrap()
        .retention;
    assert_eq!(retention.max_age, days(3));
    assert_eq!(retention.max_size_bytes, Some(2_000_000_000));
    // Envelope topics too.
    let envelopes = IggyTransport::with_connector(Arc::clone(&connector), config);
    envelopes
        .publish(EventEnvelope::new("x.y", serde_json::json!({})))
        .await
        .unwrap();
    let retention = connector
        .topic_info(envelopes.stream_name(), envelopes.topic_for("x.y"))
        .await
        .unwrap()
        .unwrap()
        .retention;
    assert_eq!(retention.max_age, days(3));
    connector.shutdown().await.unwrap();
}

async fn dlq_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(&format!(
        "retention: {{ dlq_max_age_days: 40 }}\n{}",
        embedded(dir.path(), "")
    ));
    let connector = connect(&config).await.unwrap();
    let orders = Transport::<OrderPlaced>::from_config(Arc::clone(&connector), &config)
        .await
        .unwrap();
    let letters = orders
        .dead_letters(&DeadLetterConfig::default())
        .await
        .unwrap();
    let retention = connector
        .topic_info(orders.stream(), letters.topic())
        .await
        .unwrap()
        .unwrap()
        .retention;
    assert_eq!(retention.max_age, days(40));
    let envelopes = IggyTransport::with_connector(Arc::clone(&connector), config);
    let topic = TopicName::new("domain").unwrap();
    let letters = envelopes
        .dead_letters(&topic, &DeadLetterConfig::default())
        .await
        .unwrap();
    let retention = connector
        .topic_info(envelopes.stream_name(), letters.topic())
        .await
        .unwrap()
        .unwrap()
        .retention;
    assert_eq!(retention.max_age, days(40), "envelopes' dead letters");
    connector.shutdown().await.unwrap();
}
