//! `rustok-iggy-server`: the rustok-iggy embedded broker as a standalone process,
//! speaking the Iggy 0.11 binary protocol on TCP (the official `iggy` SDK and
//! `iggy-cli` work against it), with the operations on its data directory.
//!
//! ```text
//! rustok-iggy-server [serve] [--data-dir DIR] [--address IP] [--port PORT] ...
//! rustok-iggy-server backup  --data-dir DIR --to DEST
//! rustok-iggy-server restore --from BACKUP --data-dir DIR
//! rustok-iggy-server verify  --data-dir DIR
//! rustok-iggy-server migrate --from-data-dir DIR --to HOST:PORT --username NAME ...
//! rustok-iggy-server schema check --lock iggy-schemas.lock (--data-dir DIR | --server HOST:PORT --username NAME)
//! ```
//!
//! `rustok-iggy-server --help` (and `help <command>`) lists every option with its
//! environment variable and default. This crate is only the command line: the broker
//! is `rustok-iggy-connector`'s `EmbeddedConnector`, and the operations are its
//! `ops` module (they work on the broker's internals, so they live beside it).

mod cli;
mod ops;
mod schema;
mod serve;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, SchemaCommand};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve::run(&cli.serve).await,
        Some(Command::Serve(args)) => serve::run(&args).await,
        Some(Command::Backup(args)) => ops::backup(args),
        Some(Command::Restore(args)) => ops::restore(args),
        Some(Command::Verify(args)) => ops::verify(args),
        Some(Command::Migrate(args)) => ops::migrate(*args).await,
        Some(Command::Schema(SchemaCommand::Check(args))) => schema::check(*args).await,
    }
}
