//! The command line (clap, derive): every setting has a flag and an environment
//! variable; a flag wins over its variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rustok_iggy_connector::{
    ConnectorConfig, DeduplicationConfig, DurabilityPolicy, EmbeddedConnectorConfig,
    RemoteConnectorConfig, Secret,
};

/// The defaults of the embedded broker, shown in `--help`.
fn defaults() -> EmbeddedConnectorConfig {
    EmbeddedConnectorConfig::default()
}

fn secret(text: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(text))
}

/// Runs the rustok-iggy embedded broker as a standalone Iggy-compatible server.
#[derive(Debug, Parser)]
#[command(
    name = "rustok-iggy-server",
    version,
    about = "Runs the rustok-iggy embedded broker as a standalone Iggy-compatible server",
    long_about = "Runs the rustok-iggy embedded broker as a standalone server speaking the \
Iggy 0.11 binary protocol on TCP (the official iggy SDK and iggy-cli work against it), \
with an HTTP endpoint (/ping, /health, /metrics) on 127.0.0.1. Without a subcommand it \
serves, as `serve` does. Ctrl-C (or SIGTERM) stops it gracefully.\n\n\
Every option has an environment variable (in the list below); an option on the command \
line wins over its variable. Prefer the environment for passwords: command lines are \
visible to other users of the machine.",
    after_help = "Operations (run them with the broker stopped, except backup): backup, \
restore, verify, migrate, schema check. `rustok-iggy-server help <command>` describes each.",
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// The options of `serve`, when no subcommand is given.
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the broker (the default without a subcommand).
    Serve(ServeArgs),
    /// Copy a data directory to DEST, a new directory. While a broker runs on the
    /// directory, the copy is crash-consistent per partition.
    Backup(BackupArgs),
    /// Verify BACKUP, then copy it to a new data directory.
    Restore(RestoreArgs),
    /// Check every record's checksums, offset continuity and the metadata files;
    /// exit status 1 when something is damaged. Refuses a directory a running broker
    /// holds.
    Verify(VerifyArgs),
    /// Copy streams, topics, every event and the group and standalone consumer offsets
    /// to an Iggy server (needs the `remote` feature). Run it again with the same resume file to resume.
    Migrate(Box<MigrateArgs>),
    /// Schema fingerprints: `schema check` compares the ones published on a data
    /// directory's topics with a lock file.
    #[command(subcommand)]
    Schema(SchemaCommand),
}

/// The `schema` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SchemaCommand {
    /// Read every message of every topic and compare its schema fingerprint header
    /// with the lock file (`iggy-schemas.lock`, written by
    /// `rustok_iggy::schema::check_lock`); exit status 1 when a published fingerprint
    /// is not the locked one for its event type and version. Reads a data directory
    /// (`--data-dir`: run it with the broker stopped, or on a backup) or a running
    /// Iggy server (`--server`: polls by offset from the start, writes no consumer
    /// offset).
    Check(Box<SchemaCheckArgs>),
}

/// The options of `schema check`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["data_dir", "server"])))]
pub(crate) struct SchemaCheckArgs {
    /// The lock file
    #[arg(long, value_name = "FILE")]
    pub(crate) lock: PathBuf,
    /// The data directory (or backup) whose topics are read
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// An address of the Iggy server whose topics are read (needs the `remote`
    /// feature); repeat for a cluster
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) server: Vec<String>,
    /// How to sign in (with `--server`)
    #[command(flatten)]
    pub(crate) sign_in: SignInArgs,
}

/// How `migrate` and `schema check --server` sign in to an Iggy server: one set of
/// flags (and the password variable) for both. `migrate` requires the user and the
/// password; `schema check` only with `--server`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Signing in to the Iggy server")]
pub(crate) struct SignInArgs {
    /// User on the Iggy server
    #[arg(long, value_name = "NAME")]
    pub(crate) username: Option<String>,
    /// Its password. Prefer the environment variable: command lines are visible to other users
    #[arg(long, value_name = "PASSWORD", env = "IGGY_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub(crate) password: Option<Secret>,
    /// Connect with TLS
    #[arg(long)]
    pub(crate) tls: bool,
    /// The server name the certificate must have [default: the host of the address]
    #[arg(long, value_name = "NAME")]
    pub(crate) tls_domain: Option<String>,
    /// A PEM file of CA certificates to trust (else the webpki roots)
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_ca_file: Option<PathBuf>,
}

impl SignInArgs {
    /// The remote connector's settings for `addresses`, signed in as these flags say;
    /// `None` without a user or a password.
    pub(crate) fn remote_config(self, addresses: Vec<String>) -> Option<RemoteConnectorConfig> {
        let Self {
            username,
            password,
            tls,
            tls_domain,
            tls_ca_file,
        } = self;
        Some(RemoteConnectorConfig {
            addresses,
            username: username?,
            password: password?,
            tls_enabled: tls,
            tls_domain,
            tls_ca_file,
            ..RemoteConnectorConfig::default()
        })
    }
}

/// When appended data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Policy {
    /// fsync before acknowledging a batch: nothing acknowledged is lost on power loss
    #[value(name = "every_batch")]
    EveryBatch,
    /// fsync at most --fsync-interval-ms after the write (group commit)
    #[value(name = "interval")]
    Interval,
    /// fsync only when a segment is closed and at shutdown
    #[value(name = "never")]
    Never,
}

impl From<DurabilityPolicy> for Policy {
    fn from(policy: DurabilityPolicy) -> Self {
        match policy {
            DurabilityPolicy::EveryBatch => Self::EveryBatch,
            DurabilityPolicy::Interval => Self::Interval,
            DurabilityPolicy::Never => Self::Never,
        }
    }
}

impl From<Policy> for DurabilityPolicy {
    fn from(policy: Policy) -> Self {
        match policy {
            Policy::EveryBatch => Self::EveryBatch,
            Policy::Interval => Self::Interval,
            Policy::Never => Self::Never,
        }
    }
}

/// The options of `serve`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Where the data lives (created if missing)
    #[arg(long, value_name = "DIR", env = "RUSTOK_IGGY_DATA_DIR", default_value_os_t = defaults().data_dir)]
    pub(crate) data_dir: PathBuf,
    /// Address the TCP listener binds; 127.0.0.1 accepts this machine only
    #[arg(long, value_name = "IP", env = "RUSTOK_IGGY_ADDRESS", default_value_t = defaults().tcp_address)]
    pub(crate) address: String,
    /// TCP port of the Iggy binary protocol; 0 picks a free port
    #[arg(long, value_name = "PORT", env = "RUSTOK_IGGY_PORT", default_value_t = defaults().tcp_port)]
    pub(crate) port: u16,
    /// Port of the HTTP endpoint (/ping, /health, /metrics) on 127.0.0.1; 0 picks a free port
    #[arg(long, value_name = "PORT", env = "RUSTOK_IGGY_HTTP_PORT", default_value_t = defaults().http_port)]
    pub(crate) http_port: u16,
    /// No HTTP endpoint
    #[arg(long)]
    pub(crate) no_http: bool,
    /// HTTP connections served at once; past it, new ones wait their turn
    #[arg(long, value_name = "N", env = "RUSTOK_IGGY_HTTP_MAX_CONNECTIONS", default_value_t = defaults().http_max_connections)]
    pub(crate) http_max_connections: u32,
    /// How long one HTTP connection may last (reading its request, writing the answer), in milliseconds
    #[arg(long, value_name = "MS", env = "RUSTOK_IGGY_HTTP_TIMEOUT_MS", default_value_t = defaults().http_timeout_ms)]
    pub(crate) http_timeout_ms: u64,
    /// When appended data is fsynced (every policy survives a killed process; they differ on power loss)
    #[arg(long, value_name = "POLICY", env = "RUSTOK_IGGY_DURABILITY", value_enum, default_value_t = Policy::from(defaults().durability))]
    pub(crate) durability: Policy,
    /// The interval of the `interval` policy, in milliseconds
    #[arg(long, value_name = "MS", env = "RUSTOK_IGGY_FSYNC_INTERVAL_MS", default_value_t = defaults().fsync_interval_ms)]
    pub(crate) fsync_interval_ms: u64,
    /// Segment files roll past this size
    #[arg(long, value_name = "BYTES", env = "RUSTOK_IGGY_SEGMENT_SIZE_BYTES", default_value_t = defaults().segment_size_bytes)]
    pub(crate) segment_size_bytes: u64,
    /// Store every message, also one whose id the partition stored within the last minute
    /// (the Iggy server's default; without it, such a message is a duplicate, not stored again)
    #[arg(long, env = "RUSTOK_IGGY_NO_DEDUPLICATION")]
    pub(crate) no_deduplication: bool,
    /// Name of the root user
    #[arg(long, value_name = "NAME", env = "IGGY_ROOT_USERNAME", default_value_t = defaults().root_username)]
    pub(crate) username: String,
    /// Password of the root user [default: iggy, Iggy's well-known development password:
    /// change it]. Prefer the environment variable: command lines are visible to other users
    #[arg(long, value_name = "PASSWORD", env = "IGGY_ROOT_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub(crate) password: Option<Secret>,
}

impl ServeArgs {
    /// The broker's configuration: persistent, with the TCP listener on.
    ///
    /// # Errors
    /// The configuration's own validation, as text naming the field.
    pub(crate) fn config(&self) -> Result<ConnectorConfig, String> {
        let mut config = ConnectorConfig::default();
        let embedded = &mut config.embedded;
        embedded.data_dir.clone_from(&self.data_dir);
        embedded.tcp_address.clone_from(&self.address);
        embedded.tcp_port = self.port;
        embedded.http_port = self.http_port;
        embedded.http_enabled = !self.no_http;
        embedded.http_max_connections = self.http_max_connections;
        embedded.http_timeout_ms = self.http_timeout_ms;
        embedded.durability = self.durability.into();
        embedded.fsync_interval_ms = self.fsync_interval_ms;
        embedded.segment_size_bytes = self.segment_size_bytes;
        if self.no_deduplication {
            embedded.deduplication = DeduplicationConfig::disabled();
        }
        embedded.root_username.clone_from(&self.username);
        if let Some(password) = &self.password {
            embedded.root_password = password.clone();
        }
        embedded.tcp_enabled = true;
        embedded.persistent = true;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// The options of `backup`.
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The data directory to copy
    #[arg(long, value_name = "DIR", env = "RUSTOK_IGGY_DATA_DIR", default_value_os_t = defaults().data_dir)]
    pub(crate) data_dir: PathBuf,
    /// Where the copy goes: a new directory
    #[arg(long, value_name = "DEST")]
    pub(crate) to: PathBuf,
}

/// The options of `restore`.
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup to restore
    #[arg(long, value_name = "BACKUP")]
    pub(crate) from: PathBuf,
    /// The data directory to create (must not exist; no default, no environment
    /// variable: a restore names its target)
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
}

/// The options of `verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The data directory (or backup) to check
    #[arg(long, value_name = "DIR", env = "RUSTOK_IGGY_DATA_DIR", default_value_os_t = defaults().data_dir)]
    pub(crate) data_dir: PathBuf,
}

/// The options of `migrate`.
#[derive(Debug, Args)]
#[command(
    mut_arg("username", |arg| arg.required(true)),
    mut_arg("password", |arg| arg.required(true))
)]
pub(crate) struct MigrateArgs {
    /// The data directory to copy (stop the broker, or migrate a backup first)
    #[arg(long, value_name = "DIR")]
    pub(crate) from_data_dir: PathBuf,
    /// An address of the Iggy server; repeat for a cluster
    #[arg(long = "to", value_name = "HOST:PORT", required = true)]
    pub(crate) to: Vec<String>,
    /// The progress file that makes a rerun resume [default: DIR.migration.json next to DIR]
    #[arg(long, value_name = "FILE")]
    pub(crate) resume_file: Option<PathBuf>,
    /// Connections to the server
    #[arg(long, value_name = "N", default_value_t = RemoteConnectorConfig::default().pool_size,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) pool_size: u32,
    /// Messages per copied batch
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch: u32,
    /// How to sign in (the user and the password are required)
    #[command(flatten)]
    pub(crate) sign_in: SignInArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Parses with only the given flags. Every assertion below is on a flag given on
    /// the command line, which wins over any variable of the environment the tests
    /// run in (the environment itself is tested in `tests/cli.rs`).
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rustok-iggy-server").chain(args.iter().copied()))
    }

    fn serve(args: &[&str]) -> ServeArgs {
        match parse(args).expect("valid arguments") {
            Cli {
                command: Some(Command::Serve(serve)),
                ..
            } => serve,
            Cli {
                command: None,
                serve,
            } => serve,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default_and_a_subcommand() {
        for args in [&["--port", "0"][..], &["serve", "--port", "0"][..]] {
            let config = serve(args).config().expect("a valid configuration");
            assert_eq!(config.embedded.tcp_port, 0);
            assert!(config.embedded.tcp_enabled && config.embedded.persistent);
        }
    }

    #[test]
    fn durability_and_segments_are_configurable() {
        let config = serve(&[
            "--segment-size-bytes",
            "67108864",
            "--fsync-interval-ms=200",
            "--durability",
            "never",
        ])
        .config()
        .unwrap();
        assert_eq!(config.embedded.durability, DurabilityPolicy::Never);
        assert_eq!(config.embedded.segment_size_bytes, 64 * 1024 * 1024);
        assert_eq!(config.embedded.fsync_interval_ms, 200);
        let config = serve(&["--durability", "every_batch"]).config().unwrap();
        assert_eq!(config.embedded.durability, DurabilityPolicy::EveryBatch);
        let err = parse(&["--durability", "always"]).unwrap_err().to_string();
        assert!(err.contains("every_batch, interval, never"), "{err}");
        let err = serve(&["--segment-size-bytes", "10"]).config().unwrap_err();
        assert!(err.contains("segment_size_bytes"), "{err}");
    }

    #[test]
    fn deduplication_is_on_unless_turned_off() {
        assert!(serve(&[]).config().unwrap().embedded.deduplication.enabled);
        let config = serve(&["--no-deduplication"]).config().unwrap();
        assert_eq!(
            config.embedded.deduplication,
            DeduplicationConfig::disabled()
        );
    }

    #[test]
    fn the_http_endpoint_can_move_or_go() {
        let config = serve(&["--http-port", "0"]).config().unwrap();
        assert!(config.embedded.http_enabled);
        assert_eq!(config.embedded.http_port, 0);
        let config = serve(&["--no-http"]).config().unwrap();
        assert!(!config.embedded.http_enabled);
        let config = serve(&["--http-max-connections", "8", "--http-timeout-ms=2500"])
            .config()
            .unwrap();
        assert_eq!(config.embedded.http_max_connections, 8);
        assert_eq!(config.embedded.http_timeout_ms, 2500);
        let err = serve(&["--http-max-connections", "0"])
            .config()
            .unwrap_err();
        assert!(err.contains("http_max_connections"), "{err}");
        let err = parse(&["--http-port", "x"]).unwrap_err().to_string();
        assert!(err.contains("--http-port"), "{err}");
    }

    #[test]
    fn bad_input_is_explained() {
        let err = parse(&["--port", "http"]).unwrap_err().to_string();
        assert!(err.contains("--port"), "{err}");
        let err = parse(&["--bogus"]).unwrap_err().to_string();
        assert!(err.contains("--bogus"), "{err}");
        let err = parse(&["--password"]).unwrap_err().to_string();
        assert!(err.contains("a value is required"), "{err}");
        let err = serve(&["--password", "x"]).config().unwrap_err();
        assert!(err.contains("root_password"), "{err}");
        let err = parse(&["--port", "0", "verify"]).unwrap_err().to_string();
        assert!(err.contains("cannot be used with"), "{err}");
    }

    #[test]
    fn every_operation_parses_its_flags() {
        let Some(Command::Backup(backup)) = parse(&["backup", "--data-dir", "/d", "--to=/b"])
            .unwrap()
            .command
        else {
            panic!("not backup");
        };
        assert_eq!(
            (backup.data_dir, backup.to),
            ("/d".into(), PathBuf::from("/b"))
        );
        let Some(Command::Restore(restore)) =
            parse(&["restore", "--from", "/b", "--data-dir", "/d"])
                .unwrap()
                .command
        else {
            panic!("not restore");
        };
        assert_eq!(
            (restore.from, restore.data_dir),
            ("/b".into(), PathBuf::from("/d"))
        );
        let Some(Command::Migrate(m)) = parse(&[
            "migrate",
            "--from-data-dir",
            "/d",
            "--to",
            "a:8090",
            "--to=b:8090",
            "--username",
            "admin",
            "--password",
            "s3cret",
            "--resume-file",
            "/p.json",
            "--pool-size",
            "4",
            "--batch",
            "500",
            "--tls",
        ])
        .unwrap()
        .command
        else {
            panic!("not migrate");
        };
        assert_eq!(m.to, vec!["a:8090", "b:8090"]);
        assert_eq!(
            m.sign_in.password.as_ref().map(Secret::expose),
            Some("s3cret")
        );
        assert_eq!((m.pool_size, m.batch, m.sign_in.tls), (4, 500, true));
        assert_eq!(m.resume_file, Some("/p.json".into()));
    }

    #[test]
    fn operation_mistakes_are_explained() {
        let err = parse(&["backup", "--data-dir", "/d"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--to <DEST>"), "{err}");
        let err = parse(&["restore", "--from", "/b"]).unwrap_err().to_string();
        assert!(err.contains("--data-dir <DIR>"), "{err}");
        let err = parse(&["verify", "--to", "/x"]).unwrap_err().to_string();
        assert!(err.contains("--to"), "{err}");
        let err = parse(&["migrate", "--from-data-dir", "/d", "--username", "u"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--to <HOST:PORT>"), "{err}");
        let err = parse(&["migrate", "--pool-size", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("1..=64"), "{err}");
    }
}
