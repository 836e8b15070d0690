//! The binary, run as a user runs it: help, the environment, bad input, a graceful
//! stop. Every run starts from an empty environment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rustok-iggy-server"));
    command.env_clear();
    command
}

fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

#[test]
fn help_lists_every_option_with_its_variable_and_hides_password_values() {
    let (output, help, _) = run(server()
        .arg("--help")
        .env("IGGY_ROOT_PASSWORD", "root-secret-value"));
    assert!(output.status.success());
    for expected in [
        "--data-dir",
        "RUSTOK_IGGY_DATA_DIR",
        "--address",
        "RUSTOK_IGGY_ADDRESS",
        "--port",
        "RUSTOK_IGGY_PORT",
        "--http-port",
        "RUSTOK_IGGY_HTTP_PORT",
        "--no-http",
        "RUSTOK_IGGY_HTTP_MAX_CONNECTIONS",
        "RUSTOK_IGGY_HTTP_TIMEOUT_MS",
        "--durability",
        "every_batch",
        "RUSTOK_IGGY_DURABILITY",
        "--fsync-interval-ms",
        "RUSTOK_IGGY_FSYNC_INTERVAL_MS",
        "--segment-size-bytes",
        "RUSTOK_IGGY_SEGMENT_SIZE_BYTES",
        "--no-deduplication",
        "RUSTOK_IGGY_NO_DEDUPLICATION",
        "--username",
        "IGGY_ROOT_USERNAME",
        "--password",
        "IGGY_ROOT_PASSWORD",
        "backup",
        "restore",
        "verify",
        "migrate",
        "[default: 8090]",
    ] {
        assert!(
            help.contains(expected),
            "--help lacks {expected:?}:\n{help}"
        );
    }
    assert!(!help.contains("root-secret-value"), "{help}");

    let (output, help, _) = run(server()
        .args(["help", "migrate"])
        .env("IGGY_PASSWORD", "remote-secret-value"));
    assert!(output.status.success());
    for expected in ["--from-data-dir", "--to", "--resume-file", "IGGY_PASSWORD"] {
        assert!(
            help.contains(expected),
            "help migrate lacks {expected:?}:\n{help}"
        );
    }
    assert!(!help.contains("remote-secret-value"), "{help}");
}

#[test]
fn a_flag_wins_over_its_environment_variable() {
    let work = tempfile::tempdir().unwrap();
    let from_env = work.path().join("from-env");
    let from_flag = work.path().join("from-flag");
    let (_, stdout, stderr) = run(server()
        .arg("verify")
        .env("RUSTOK_IGGY_DATA_DIR", &from_env));
    let said = stdout + &stderr;
    assert!(said.contains(&*from_env.to_string_lossy()), "{said}");
    let (_, stdout, stderr) = run(server()
        .args(["verify", "--data-dir"])
        .arg(&from_flag)
        .env("RUSTOK_IGGY_DATA_DIR", &from_env));
    let said = stdout + &stderr;
    assert!(said.contains(&*from_flag.to_string_lossy()), "{said}");
    assert!(!said.contains(&*from_env.to_string_lossy()), "{said}");
}

#[test]
fn bad_input_exits_with_status_2_and_names_the_option() {
    for (args, env, expected) in [
        (&["--port", "http"][..], None, "--port"),
        (&["--durability", "always"][..], None, "every_batch"),
        (&[][..], Some(("RUSTOK_IGGY_PORT", "http")), "--port"),
        (&["--bogus"][..], None, "--bogus"),
        (
            &["--segment-size-bytes", "10"][..],
            None,
            "segment_size_bytes",
        ),
        (&["backup"][..], None, "--to <DEST>"),
        (&["migrate", "--pool-size", "0"][..], None, "--pool-size"),
    ] {
        let mut command = server();
        command.args(args);
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let (output, _, stderr) = run(&mut command);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Serves on free ports with the password from the environment, and stops cleanly on
/// SIGTERM.
#[test]
fn serve_starts_and_stops_gracefully_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut child = server()
        .args(["--port", "0", "--http-port", "0", "--data-dir"])
        .arg(data.path())
        .env("IGGY_ROOT_PASSWORD", "a-long-root-password")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    assert!(first.contains("listening on 127.0.0.1:"), "{first}");
    assert!(first.contains(&*data.path().to_string_lossy()), "{first}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopping")), "{rest:?}");
}

mod schema {
    //! `schema check` on a data directory written by typed transports.

    use std::path::Path;

    use rustok_iggy::schema::{LockMode, TypeSchemas, check_lock_with, schemas};
    use rustok_iggy::{
        IggyEvent,
        connector::{ConnectorConfig, EmbeddedConnector, IggyConnector},
    };
    use rustok_iggy::{Transport, TransportOptions};
    use serde::{Deserialize, Serialize};

    use super::{run, server};

    mod locked {
        use super::*;

        #[derive(Serialize, Deserialize, IggyEvent)]
        #[iggy(topic = "orders", event_type = "order", codec = "postcard")]
        pub(super) struct Order {
            pub(super) quantity: u32,
            pub(super) price: u32,
        }
    }

    /// Version 1 with its fields swapped: a deploy that forgot the version bump.
    mod drifted {
        use super::*;

        #[derive(Serialize, Deserialize, IggyEvent)]
        #[iggy(topic = "orders", event_type = "order", codec = "postcard")]
        pub(super) struct Order {
            pub(super) price: u32,
            pub(super) quantity: u32,
        }
    }

    async fn publish<E: IggyEvent>(data_dir: &Path, event: E) {
        let connector = std::sync::Arc::new(EmbeddedConnector::new());
        connector
            .connect(&ConnectorConfig::embedded(data_dir))
            .await
            .unwrap();
        let transport = Transport::<E>::new(connector.clone(), TransportOptions::default())
            .await
            .unwrap();
        transport.publish(&event).await.unwrap();
        connector.shutdown().await.unwrap();
    }

    fn check(lock: &Path, data_dir: &Path) -> (bool, String, String) {
        let (output, stdout, stderr) = run(server()
            .args(["schema", "check", "--lock"])
            .arg(lock)
            .arg("--data-dir")
            .arg(data_dir));
        (output.status.success(), stdout, stderr)
    }

    #[tokio::test]
    async fn schema_check_reports_published_fingerprints_that_differ_from_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let lock = dir.path().join("iggy-schemas.lock");
        check_lock_with(
            &lock,
            &[TypeSchemas::current::<locked::Order>()],
            LockMode::Update,
        )
        .unwrap();
        let good = schemas::<locked::Order>().unwrap()[0]
            .fingerprint
            .to_string();
        let bad = schemas::<drifted::Order>().unwrap()[0]
            .fingerprint
            .to_string();

        publish(
            &data_dir,
            locked::Order {
                quantity: 1,
                price: 2,
            },
        )
        .await;
        let (ok, stdout, stderr) = check(&lock, &data_dir);
        assert!(ok, "{stdout}{stderr}");
        assert!(
            stdout.contains(&format!("fingerprint {good} (1 messages)")),
            "{stdout}"
        );
        assert!(
            stdout.contains("every published fingerprint matches"),
            "{stdout}"
        );

        publish(
            &data_dir,
            drifted::Order {
                price: 2,
                quantity: 1,
            },
        )
        .await;
        let (ok, stdout, stderr) = check(&lock, &data_dir);
        assert!(!ok, "a mismatch exits with a failure: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!("MISMATCH  rustok/orders: \"order\" version 1 published with fingerprint {bad} (1 messages); the lock has {good}")),
            "{stdout}"
        );
    }

    /// Runs `schema check --server` on a thread of its own, so the broker of the
    /// calling runtime keeps serving meanwhile.
    async fn check_server(lock: &Path, address: String) -> (Option<i32>, String, String) {
        let lock = lock.to_owned();
        tokio::task::spawn_blocking(move || {
            let (output, stdout, stderr) = run(server()
                .args(["schema", "check", "--lock"])
                .arg(&lock)
                .args(["--server", &address, "--username", "iggy"])
                .env("IGGY_PASSWORD", "iggy"));
            (output.status.code(), stdout, stderr)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn schema_check_reads_a_running_servers_topics_over_tcp() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ConnectorConfig::embedded(dir.path().join("data"));
        config.embedded.tcp_enabled = true;
        config.embedded.tcp_address = "127.0.0.1".into();
        config.embedded.tcp_port = 0;
        let broker = std::sync::Arc::new(EmbeddedConnector::new());
        broker.connect(&config).await.unwrap();
        let address = broker.tcp_address().unwrap().to_string();
        let transport =
            Transport::<locked::Order>::new(broker.clone(), TransportOptions::default())
                .await
                .unwrap();
        for quantity in 0..3 {
            transport
                .publish(&locked::Order { quantity, price: 2 })
                .await
                .unwrap();
        }
        let good = schemas::<locked::Order>().unwrap()[0]
            .fingerprint
            .to_string();
        let bad = schemas::<drifted::Order>().unwrap()[0]
            .fingerprint
            .to_string();

        let lock = dir.path().join("iggy-schemas.lock");
        check_lock_with(
            &lock,
            &[TypeSchemas::current::<locked::Order>()],
            LockMode::Update,
        )
        .unwrap();
        let (code, stdout, stderr) = check_server(&lock, address.clone()).await;
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert!(
            stdout.contains(&format!(
                "ok        rustok/orders: \"order\" version 1 fingerprint {good} (3 messages)"
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains("every published fingerprint matches"),
            "{stdout}"
        );

        // A lock that says version 1 has the other field order.
        let changed = dir.path().join("changed.lock");
        check_lock_with(
            &changed,
            &[TypeSchemas::current::<drifted::Order>()],
            LockMode::Update,
        )
        .unwrap();
        let (code, stdout, stderr) = check_server(&changed, address).await;
        assert_eq!(code, Some(1), "{stdout}{stderr}");
        assert!(
            stdout.contains(&format!("MISMATCH  rustok/orders: \"order\" version 1 published with fingerprint {good} (3 messages); the lock has {bad}")),
            "{stdout}"
        );

        broker.shutdown().await.unwrap();
    }

    #[test]
    fn schema_check_needs_exactly_one_source_and_the_servers_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("iggy-schemas.lock");
        std::fs::write(&lock, "").unwrap();
        for (args, expected) in [
            (&[][..], "--data-dir <DIR>"),
            (
                &["--data-dir", "/d", "--server", "127.0.0.1:1"][..],
                "cannot be used with",
            ),
            (&["--server", "127.0.0.1:1"][..], "needs --username"),
        ] {
            let (output, _, stderr) = run(server()
                .args(["schema", "check", "--lock"])
                .arg(&lock)
                .args(args));
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
        }
        let (output, _, stderr) = run(server()
            .args(["schema", "check", "--lock"])
            .arg(&lock)
            .args(["--server", "127.0.0.1:1", "--username", "iggy"])
            .env("IGGY_PASSWORD", "iggy"));
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("schema check failed"), "{stderr}");
    }

    #[test]
    fn schema_check_refuses_a_missing_lock_file_or_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("iggy-schemas.lock");
        let (ok, _, stderr) = check(&lock, dir.path());
        assert!(!ok);
        assert!(stderr.contains("cannot access the lock file"), "{stderr}");
        std::fs::write(&lock, "").unwrap();
        let (ok, _, stderr) = check(&lock, &dir.path().join("missing"));
        assert!(!ok);
        assert!(stderr.contains("is not a data directory"), "{stderr}");
    }
}
