//! The broker of the load test, in its own process so that its memory can be read
//! from `/proc/<pid>/status`: opens an `EmbeddedConnector` in the directory given as
//! the first argument with its Iggy TCP listener on `127.0.0.1:0` (root `iggy` /
//! `iggy`, default durability), prints `listening <address>`, and serves until its
//! standard input is closed (the test drops its end, or dies); then it shuts down
//! cleanly and prints `stopped`.
//!
//! Other tests use it as a broker process of their own too:
//!
//! - a second argument is a file with a JSON [`ConnectorConfig`] to start from (its
//!   data directory and listener address are replaced as above);
//! - `LOAD_BROKER_NOFILE=N` lowers the process's open-file limit to `N` first (a
//!   broker with a small file-descriptor budget).

use std::io::{Read, Write};

use rustok_iggy_connector::{ConnectorConfig, EmbeddedConnector, IggyConnector};

#[tokio::main]
async fn main() {
    if let Ok(limit) = std::env::var("LOAD_BROKER_NOFILE") {
        let limit: u64 = limit.parse().expect("LOAD_BROKER_NOFILE is a number");
        let current = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(limit),
                maximum: current.maximum,
            },
        )
        .expect("lower the open-file limit");
    }
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: load-broker DATA_DIR [CONFIG.json]");
    let mut config = match args.next() {
        Some(path) => {
            let json = std::fs::read_to_string(&path).expect("the configuration file");
            let mut config: ConnectorConfig =
                serde_json::from_str(&json).expect("a JSON connector configuration");
            config.embedded.data_dir = dir.into();
            config.embedded.persistent = true;
            config
        }
        None => ConnectorConfig::embedded(dir),
    };
    config.embedded.tcp_enabled = true;
    config.embedded.tcp_address = "127.0.0.1".to_owned();
    config.embedded.tcp_port = 0;
    let connector = EmbeddedConnector::new();
    connector.connect(&config).await.expect("the broker opens");
    let address = connector.tcp_address().expect("the listener is on");
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening {address}").expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    // Serve until stdin reaches its end.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await
    .expect("the stdin watcher");
    connector.shutdown().await.expect("clean shutdown");
    println!("stopped");
}
