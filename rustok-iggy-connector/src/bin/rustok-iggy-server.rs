//! `rustok-iggy-server`: the embedded broker as a standalone process, speaking the
//! Iggy 0.11 binary protocol on TCP (the official `iggy` SDK and `iggy-cli` work
//! against it).
//!
//! ```text
//! rustok-iggy-server [serve] [--data-dir DIR] [--address IP] [--port PORT]
//!                            [--username NAME] [--password PASSWORD]
//! rustok-iggy-server backup  --data-dir DIR --to DEST
//! rustok-iggy-server restore --from BACKUP --data-dir DIR
//! rustok-iggy-server verify  --data-dir DIR
//! rustok-iggy-server migrate --from-data-dir DIR --to HOST:PORT --username NAME ...
//! ```
//!
//! The operations subcommands are described in `commands.rs` and `docs/`.
//!
//! Every flag has an environment variable: `RUSTOK_IGGY_DATA_DIR` (default
//! `./data/iggy`), `RUSTOK_IGGY_ADDRESS` (default `127.0.0.1`), `RUSTOK_IGGY_PORT`
//! (default 8090; 0 picks a free port), `IGGY_ROOT_USERNAME` (default `iggy`) and
//! `IGGY_ROOT_PASSWORD` (default `iggy` — change it). Prefer the environment for
//! the password: command lines are visible to other users of the machine. Flags
//! win over the environment. Ctrl-C (or SIGTERM) stops the server gracefully.

#[path = "rustok-iggy-server/commands.rs"]
mod commands;

use std::process::ExitCode;

use rustok_iggy_connector::{
    ConnectorConfig, DurabilityPolicy, EmbeddedConnector, IggyConnector, Secret,
};

const USAGE: &str = "\
usage: rustok-iggy-server [serve] [--data-dir DIR] [--address IP] [--port PORT] [--username NAME] [--password PASSWORD]
       rustok-iggy-server backup|restore|verify|migrate ... (see below)

Runs the rustok-iggy embedded broker as a standalone Iggy-compatible server.

options (environment variable in brackets):
  --data-dir DIR       where the data lives [RUSTOK_IGGY_DATA_DIR] (default ./data/iggy)
  --address IP         address to listen on [RUSTOK_IGGY_ADDRESS] (default 127.0.0.1)
  --port PORT          TCP port, 0 = any free port [RUSTOK_IGGY_PORT] (default 8090)
  --http-port PORT     port of the HTTP endpoint (/ping, /health, /metrics) on
                       127.0.0.1, 0 = any free port [RUSTOK_IGGY_HTTP_PORT]
                       (default 3000)
  --no-http            no HTTP endpoint
  --durability POLICY  every_batch | interval | never [RUSTOK_IGGY_DURABILITY]
                       (default interval: fsync at most --fsync-interval-ms
                       after the write; every_batch: before acknowledging)
  --fsync-interval-ms N
                       the interval of `interval` [RUSTOK_IGGY_FSYNC_INTERVAL_MS]
                       (default 1000)
  --segment-size-bytes N
                       segment files roll past this size
                       [RUSTOK_IGGY_SEGMENT_SIZE_BYTES] (default 1073741824)
  --username NAME      root user name [IGGY_ROOT_USERNAME] (default iggy)
  --password PASSWORD  root password [IGGY_ROOT_PASSWORD] (default iggy: change it;
                       prefer the environment variable, command lines are visible)
  -h, --help           this help
  -V, --version        the version
";

fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ConnectorConfig>, String> {
    let mut config = ConnectorConfig::default();
    let embedded = &mut config.embedded;
    if let Some(dir) = env("RUSTOK_IGGY_DATA_DIR") {
        embedded.data_dir = dir.into();
    }
    if let Some(address) = env("RUSTOK_IGGY_ADDRESS") {
        embedded.tcp_address = address;
    }
    if let Some(port) = env("RUSTOK_IGGY_PORT") {
        embedded.tcp_port = port
            .parse()
            .map_err(|_| format!("RUSTOK_IGGY_PORT={port:?} is not a port number (0 to 65535)"))?;
    }
    if let Some(port) = env("RUSTOK_IGGY_HTTP_PORT") {
        embedded.http_port = port.parse().map_err(|_| {
            format!("RUSTOK_IGGY_HTTP_PORT={port:?} is not a port number (0 to 65535)")
        })?;
    }
    if let Some(policy) = env("RUSTOK_IGGY_DURABILITY") {
        embedded.durability = durability("RUSTOK_IGGY_DURABILITY", &policy)?;
    }
    if let Some(ms) = env("RUSTOK_IGGY_FSYNC_INTERVAL_MS") {
        embedded.fsync_interval_ms = number("RUSTOK_IGGY_FSYNC_INTERVAL_MS", &ms)?;
    }
    if let Some(bytes) = env("RUSTOK_IGGY_SEGMENT_SIZE_BYTES") {
        embedded.segment_size_bytes = number("RUSTOK_IGGY_SEGMENT_SIZE_BYTES", &bytes)?;
    }
    if let Some(username) = env("IGGY_ROOT_USERNAME") {
        embedded.root_username = username;
    }
    if let Some(password) = env("IGGY_ROOT_PASSWORD") {
        embedded.root_password = Secret::new(password);
    }
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (flag.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value ({what})"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "-V" | "--version" => {
                println!("rustok-iggy-server {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--data-dir" => embedded.data_dir = value("a directory")?.into(),
            "--address" => embedded.tcp_address = value("an IP address")?,
            "--port" => {
                let port = value("a port number")?;
                embedded.tcp_port = port
                    .parse()
                    .map_err(|_| format!("--port {port:?} is not a port number (0 to 65535)"))?;
            }
            "--http-port" => {
                let port = value("a port number")?;
                embedded.http_port = port.parse().map_err(|_| {
                    format!("--http-port {port:?} is not a port number (0 to 65535)")
                })?;
            }
            "--no-http" => embedded.http_enabled = false,
            "--durability" => {
                embedded.durability = durability(&name, &value("every_batch, interval or never")?)?;
            }
            "--fsync-interval-ms" => {
                embedded.fsync_interval_ms = number(&name, &value("milliseconds")?)?;
            }
            "--segment-size-bytes" => {
                embedded.segment_size_bytes = number(&name, &value("bytes")?)?;
            }
            "--username" => embedded.root_username = value("a user name")?,
            "--password" => embedded.root_password = Secret::new(value("a password")?),
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    embedded.tcp_enabled = true;
    embedded.persistent = true;
    config.validate().map_err(|e| e.to_string())?;
    Ok(Some(config))
}

fn durability(name: &str, text: &str) -> Result<DurabilityPolicy, String> {
    match text {
        "every_batch" => Ok(DurabilityPolicy::EveryBatch),
        "interval" => Ok(DurabilityPolicy::Interval),
        "never" => Ok(DurabilityPolicy::Never),
        other => Err(format!(
            "{name} {other:?} is not a durability policy; allowed: every_batch, interval, never"
        )),
    }
}

fn number(name: &str, text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{name} {text:?} is not a whole number"))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    match args.peek().map(String::as_str) {
        Some(name @ ("backup" | "restore" | "verify" | "migrate")) => {
            let name = name.to_owned();
            args.next();
            if args.peek().is_some_and(|a| a == "-h" || a == "--help") {
                print!("{}", commands::USAGE);
                return ExitCode::SUCCESS;
            }
            return match commands::parse(&name, args, |name| std::env::var(name).ok()) {
                Ok(command) => commands::run(command).await,
                Err(message) => {
                    eprintln!("rustok-iggy-server: {message}");
                    ExitCode::from(2)
                }
            };
        }
        Some("serve") => {
            args.next();
        }
        _ => {}
    }
    let config = match parse(args, |name| std::env::var(name).ok()) {
        Ok(Some(config)) => config,
        Ok(None) => {
            if std::env::args().any(|a| a == "-h" || a == "--help") {
                print!("{USAGE}\n{}", commands::USAGE);
            }
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("rustok-iggy-server: {message}");
            return ExitCode::from(2);
        }
    };
    let connector = EmbeddedConnector::new();
    if let Err(e) = connector.connect(&config).await {
        eprintln!("rustok-iggy-server: cannot start: {e}");
        return ExitCode::FAILURE;
    }
    let Some(address) = connector.tcp_address() else {
        eprintln!("rustok-iggy-server: the TCP listener did not start");
        return ExitCode::FAILURE;
    };
    println!(
        "rustok-iggy-server listening on {address} (data in {}); Ctrl-C to stop",
        config.embedded.data_dir.display()
    );
    if let Some(http) = connector.http_address() {
        println!("rustok-iggy-server: HTTP endpoint on http://{http} (/ping, /health, /metrics)");
    }
    if config.embedded.root_password.expose() == "iggy" {
        eprintln!(
            "rustok-iggy-server: warning: the root password is the default `iggy`; set IGGY_ROOT_PASSWORD"
        );
    }
    shutdown_signal().await;
    println!("rustok-iggy-server: stopping");
    match connector.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rustok-iggy-server: shutdown failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = |name: &str| match name {
            "RUSTOK_IGGY_PORT" => Some("9000".to_owned()),
            "IGGY_ROOT_PASSWORD" => Some("from-env".to_owned()),
            _ => None,
        };
        let config = parse(
            args(&["--port", "0", "--data-dir=/tmp/x", "--username", "admin"]),
            env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.embedded.tcp_port, 0);
        assert_eq!(config.embedded.root_username, "admin");
        assert_eq!(config.embedded.root_password.expose(), "from-env");
        assert_eq!(config.embedded.data_dir, std::path::PathBuf::from("/tmp/x"));
    }

    #[test]
    fn durability_and_segments_are_configurable() {
        let env = |name: &str| (name == "RUSTOK_IGGY_DURABILITY").then(|| "never".to_owned());
        let config = parse(
            args(&[
                "--segment-size-bytes",
                "67108864",
                "--fsync-interval-ms=200",
            ]),
            env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.embedded.durability, DurabilityPolicy::Never);
        assert_eq!(config.embedded.segment_size_bytes, 64 * 1024 * 1024);
        assert_eq!(config.embedded.fsync_interval_ms, 200);
        let none = |_: &str| None;
        let config = parse(args(&["--durability", "every_batch"]), none)
            .unwrap()
            .unwrap();
        assert_eq!(config.embedded.durability, DurabilityPolicy::EveryBatch);
        let err = parse(args(&["--durability", "always"]), none).unwrap_err();
        assert!(err.contains("every_batch, interval, never"), "{err}");
        let err = parse(args(&["--segment-size-bytes", "10"]), none).unwrap_err();
        assert!(err.contains("segment_size_bytes"), "{err}");
    }

    #[test]
    fn the_http_endpoint_can_move_or_go() {
        let none = |_: &str| None;
        let config = parse(args(&["--http-port", "0"]), none).unwrap().unwrap();
        assert!(config.embedded.http_enabled);
        assert_eq!(config.embedded.http_port, 0);
        let config = parse(args(&["--no-http"]), none).unwrap().unwrap();
        assert!(!config.embedded.http_enabled);
        let env = |name: &str| (name == "RUSTOK_IGGY_HTTP_PORT").then(|| "9100".to_owned());
        assert_eq!(
            parse(args(&[]), env).unwrap().unwrap().embedded.http_port,
            9100
        );
        assert!(
            parse(args(&["--http-port", "x"]), none)
                .unwrap_err()
                .contains("--http-port")
        );
    }

    #[test]
    fn bad_input_is_explained() {
        let none = |_: &str| None;
        assert!(
            parse(args(&["--port", "http"]), none)
                .unwrap_err()
                .contains("--port")
        );
        assert!(
            parse(args(&["--bogus"]), none)
                .unwrap_err()
                .contains("--bogus")
        );
        assert!(
            parse(args(&["--password"]), none)
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse(args(&["--password", "x"]), none)
                .unwrap_err()
                .contains("root_password")
        );
        assert!(parse(args(&["--help"]), none).unwrap().is_none());
    }
}
