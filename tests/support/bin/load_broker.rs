//! The broker of the load test, in its own process so that its memory can be read
//! from `/proc/<pid>/status`: opens an `EmbeddedConnector` in the directory given as
//! the first argument with its Iggy TCP listener on `127.0.0.1:0` (root `iggy` /
//! `iggy`, default durability), prints `listening <address>`, and serves until its
//! standard input is closed (the test drops its end, or dies); then it shuts down
//! cleanly and prints `stopped`.

use std::io::{Read, Write};

use rustok_iggy_connector::{ConnectorConfig, EmbeddedConnector, IggyConnector};

#[tokio::main]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: load-broker DATA_DIR");
    let mut config = ConnectorConfig::embedded(dir);
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
