//! `serve`: the broker until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use rustok_iggy_connector::{EmbeddedConnector, IggyConnector};

use crate::cli::ServeArgs;

/// Waits for Ctrl-C or SIGTERM.
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

/// Runs the broker until a signal, then shuts it down gracefully (pending fsyncs
/// and offsets written, connections closed).
pub(crate) async fn run(args: &ServeArgs) -> ExitCode {
    let config = match args.config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("rustok-iggy-server: {message}");
            return ExitCode::from(2);
        }
    };
    let connector = EmbeddedConnector::new();
    if let Err(e) = connector.connect(&config).await {
        eprintln!(
            "rustok-iggy-server: cannot start: {}",
            rustok_iggy_connector::error_chain(&e)
        );
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
            eprintln!(
                "rustok-iggy-server: shutdown failed: {}",
                rustok_iggy_connector::error_chain(&e)
            );
            ExitCode::FAILURE
        }
    }
}
