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
