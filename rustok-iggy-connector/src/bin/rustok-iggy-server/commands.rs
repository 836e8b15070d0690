//! The operations subcommands: `backup`, `restore`, `verify` and `migrate`.

use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(feature = "remote")]
use rustok_iggy_connector::RemoteConnectorConfig;
use rustok_iggy_connector::{Secret, backup_data_dir, restore_data_dir, verify_data_dir};

pub(crate) const USAGE: &str = "\
operations (run them with the broker stopped, except backup):
  rustok-iggy-server backup  --data-dir DIR --to DEST
      copy the data directory to DEST (a new directory); while a broker runs on
      DIR the copy is crash-consistent per partition
  rustok-iggy-server restore --from BACKUP --data-dir DIR
      verify BACKUP, then copy it to DIR (a new directory)
  rustok-iggy-server verify  --data-dir DIR
      check every record's checksums; exit status 1 when something is damaged
  rustok-iggy-server migrate --from-data-dir DIR --to HOST:PORT [--to HOST:PORT ...]
                             --username NAME [--password PASSWORD]
                             [--resume-file FILE] [--pool-size N] [--batch N]
                             [--tls] [--tls-domain NAME] [--tls-ca-file FILE]
      copy streams, topics, every event and consumer-group offsets to an Iggy
      server; run it again with the same --resume-file to resume (default
      DIR.migration.json next to DIR); the password may come from IGGY_PASSWORD
      (needs the `remote` feature)

--data-dir defaults to RUSTOK_IGGY_DATA_DIR, else ./data/iggy.
";

/// A parsed subcommand.
#[derive(Debug, PartialEq)]
pub(crate) enum Command {
    Backup { data_dir: PathBuf, to: PathBuf },
    Restore { from: PathBuf, data_dir: PathBuf },
    Verify { data_dir: PathBuf },
    Migrate(Box<Migrate>),
}

/// The options of `migrate`.
#[derive(Debug, PartialEq)]
pub(crate) struct Migrate {
    pub(crate) from_data_dir: PathBuf,
    pub(crate) to: Vec<String>,
    pub(crate) username: String,
    pub(crate) password: Secret,
    pub(crate) resume_file: Option<PathBuf>,
    pub(crate) pool_size: u32,
    pub(crate) batch: u32,
    pub(crate) tls: bool,
    pub(crate) tls_domain: Option<String>,
    pub(crate) tls_ca_file: Option<PathBuf>,
}

/// Flags as `--name value` or `--name=value`.
struct Flags<I: Iterator<Item = String>> {
    args: I,
}

impl<I: Iterator<Item = String>> Flags<I> {
    /// The next flag name and its inline value, if any.
    fn next_flag(&mut self) -> Option<(String, Option<String>)> {
        let flag = self.args.next()?;
        Some(match flag.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (flag, None),
        })
    }

    fn value(&mut self, name: &str, inline: Option<String>, what: &str) -> Result<String, String> {
        inline
            .or_else(|| self.args.next())
            .ok_or_else(|| format!("{name} needs a value ({what})"))
    }
}

fn number(name: &str, text: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "{name} {text:?} is not a number from {} to {}",
                range.start(),
                range.end()
            )
        })
}

/// Parses the arguments after the subcommand name.
pub(crate) fn parse(
    command: &str,
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let default_dir =
        || env("RUSTOK_IGGY_DATA_DIR").map_or_else(|| PathBuf::from("./data/iggy"), PathBuf::from);
    let mut flags = Flags {
        args: args.into_iter(),
    };
    let mut data_dir: Option<PathBuf> = None;
    let mut from: Option<PathBuf> = None;
    let mut to_dir: Option<PathBuf> = None;
    let mut migrate = Migrate {
        from_data_dir: PathBuf::new(),
        to: Vec::new(),
        username: String::new(),
        password: env("IGGY_PASSWORD").map(Secret::new).unwrap_or_default(),
        resume_file: None,
        pool_size: 2,
        batch: 1000,
        tls: false,
        tls_domain: None,
        tls_ca_file: None,
    };
    let mut from_data_dir: Option<PathBuf> = None;
    while let Some((name, inline)) = flags.next_flag() {
        match (command, name.as_str()) {
            ("backup" | "restore" | "verify", "--data-dir") => {
                data_dir = Some(flags.value(&name, inline, "a directory")?.into());
            }
            ("backup", "--to") => {
                to_dir = Some(flags.value(&name, inline, "a new directory")?.into())
            }
            ("restore", "--from") => {
                from = Some(flags.value(&name, inline, "a backup directory")?.into())
            }
            ("migrate", "--from-data-dir") => {
                from_data_dir = Some(flags.value(&name, inline, "a directory")?.into());
            }
            ("migrate", "--to") => migrate.to.push(flags.value(&name, inline, "HOST:PORT")?),
            ("migrate", "--username") => {
                migrate.username = flags.value(&name, inline, "a user name")?
            }
            ("migrate", "--password") => {
                migrate.password = Secret::new(flags.value(&name, inline, "a password")?);
            }
            ("migrate", "--resume-file") => {
                migrate.resume_file = Some(flags.value(&name, inline, "a file")?.into());
            }
            ("migrate", "--pool-size") => {
                migrate.pool_size = number(&name, &flags.value(&name, inline, "1 to 64")?, 1..=64)?;
            }
            ("migrate", "--batch") => {
                migrate.batch = number(
                    &name,
                    &flags.value(&name, inline, "1 to 100000")?,
                    1..=100_000,
                )?;
            }
            ("migrate", "--tls") => migrate.tls = true,
            ("migrate", "--tls-domain") => {
                migrate.tls_domain = Some(flags.value(&name, inline, "a server name")?);
            }
            ("migrate", "--tls-ca-file") => {
                migrate.tls_ca_file = Some(flags.value(&name, inline, "a PEM file")?.into());
            }
            (_, other) => return Err(format!("{command}: unknown option {other:?}\n\n{USAGE}")),
        }
    }
    let missing = |flag: &str| format!("{command} needs {flag}\n\n{USAGE}");
    match command {
        "backup" => Ok(Command::Backup {
            data_dir: data_dir.unwrap_or_else(default_dir),
            to: to_dir.ok_or_else(|| missing("--to DEST"))?,
        }),
        "restore" => Ok(Command::Restore {
            from: from.ok_or_else(|| missing("--from BACKUP"))?,
            data_dir: data_dir.ok_or_else(|| missing("--data-dir DIR"))?,
        }),
        "verify" => Ok(Command::Verify {
            data_dir: data_dir.unwrap_or_else(default_dir),
        }),
        "migrate" => {
            migrate.from_data_dir = from_data_dir.ok_or_else(|| missing("--from-data-dir DIR"))?;
            if migrate.to.is_empty() {
                return Err(missing("--to HOST:PORT"));
            }
            if migrate.username.is_empty() {
                return Err(missing("--username NAME"));
            }
            if migrate.password.is_empty() {
                return Err(missing("--password PASSWORD (or IGGY_PASSWORD)"));
            }
            Ok(Command::Migrate(Box::new(migrate)))
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    }
}

/// Runs a parsed subcommand; prints what it did.
pub(crate) async fn run(command: Command) -> ExitCode {
    match command {
        Command::Backup { data_dir, to } => match backup_data_dir(&data_dir, &to) {
            Ok(summary) => {
                println!(
                    "backup of {} written to {} ({:?}): {} partitions, {} segments, {} bytes, {} messages",
                    data_dir.display(),
                    to.display(),
                    summary.mode,
                    summary.partitions,
                    summary.segments,
                    summary.bytes,
                    summary.messages
                );
                for (topic, offsets) in &summary.next_offsets {
                    println!("  {topic}: next offsets {offsets:?}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("backup failed: {e}")),
        },
        Command::Restore { from, data_dir } => match restore_data_dir(&from, &data_dir) {
            Ok(summary) => {
                println!(
                    "restored {} to {}: {} partitions, {} messages, every record verified",
                    from.display(),
                    data_dir.display(),
                    summary.partitions,
                    summary.messages
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("restore failed: {e}")),
        },
        Command::Verify { data_dir } => match verify_data_dir(&data_dir) {
            Ok(summary) => {
                println!(
                    "{}: {} partitions, {} segments, {} records, {} messages checked",
                    data_dir.display(),
                    summary.partitions,
                    summary.segments,
                    summary.records,
                    summary.messages
                );
                if summary.is_clean() {
                    println!("no damage found");
                    ExitCode::SUCCESS
                } else {
                    for damage in &summary.damage {
                        println!("DAMAGE: {damage}");
                    }
                    ExitCode::FAILURE
                }
            }
            Err(e) => fail(&format!("verify failed: {e}")),
        },
        Command::Migrate(options) => migrate(*options).await,
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("rustok-iggy-server: {message}");
    ExitCode::FAILURE
}

#[cfg(feature = "remote")]
async fn migrate(options: Migrate) -> ExitCode {
    use rustok_iggy_connector::{MigrateOptions, default_progress_file};
    use std::collections::HashMap;
    use std::sync::Mutex;

    let to = RemoteConnectorConfig {
        addresses: options.to,
        username: options.username,
        password: options.password,
        tls_enabled: options.tls,
        tls_domain: options.tls_domain,
        tls_ca_file: options.tls_ca_file,
        pool_size: options.pool_size,
        ..RemoteConnectorConfig::default()
    };
    let progress_file = options
        .resume_file
        .unwrap_or_else(|| default_progress_file(&options.from_data_dir));
    let mut migrate_options = MigrateOptions::new(&options.from_data_dir, to, &progress_file);
    migrate_options.batch_messages = options.batch;
    println!(
        "migrating {} to {} (progress in {})",
        options.from_data_dir.display(),
        migrate_options.to.addresses.join(", "),
        progress_file.display()
    );
    // One line per partition when it completes, and every 100,000 messages.
    let printed: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    let report = rustok_iggy_connector::migrate(&migrate_options, &|p| {
        let key = format!("{}/{} partition {}", p.stream, p.topic, p.partition);
        let mut printed = printed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = printed.entry(key.clone()).or_default();
        if p.copied >= p.total || p.copied / 100_000 > *last / 100_000 {
            println!("  {key}: {} of {} messages", p.copied, p.total);
        }
        *last = p.copied;
    })
    .await;
    match report {
        Ok(report) => {
            println!(
                "migration complete: {} streams, {} topics, {} partitions, {} consumer groups; \
                 {} messages copied now, {} found already sent, {} in all{}",
                report.streams,
                report.topics,
                report.partitions,
                report.groups,
                report.messages_copied,
                report.messages_reconciled,
                report.messages_total,
                if report.resumed { " (resumed)" } else { "" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!(
            "migration failed: {e}\n(run the same command again to resume from {})",
            progress_file.display()
        )),
    }
}

#[cfg(not(feature = "remote"))]
async fn migrate(_: Migrate) -> ExitCode {
    eprintln!(
        "rustok-iggy-server: migrate needs the `remote` feature: \
         cargo install rustok-iggy-connector --features remote (or cargo run --features remote)"
    );
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_command_parses_its_flags() {
        let none = |_: &str| None;
        assert_eq!(
            parse("backup", args(&["--data-dir", "/d", "--to=/b"]), none).unwrap(),
            Command::Backup {
                data_dir: "/d".into(),
                to: "/b".into()
            }
        );
        assert_eq!(
            parse("restore", args(&["--from", "/b", "--data-dir", "/d"]), none).unwrap(),
            Command::Restore {
                from: "/b".into(),
                data_dir: "/d".into()
            }
        );
        let env = |name: &str| (name == "RUSTOK_IGGY_DATA_DIR").then(|| "/env".to_owned());
        assert_eq!(
            parse("verify", args(&[]), env).unwrap(),
            Command::Verify {
                data_dir: "/env".into()
            }
        );
        let password = |name: &str| (name == "IGGY_PASSWORD").then(|| "s3cret".to_owned());
        let Command::Migrate(m) = parse(
            "migrate",
            args(&[
                "--from-data-dir",
                "/d",
                "--to",
                "a:8090",
                "--to=b:8090",
                "--username",
                "admin",
                "--resume-file",
                "/p.json",
                "--pool-size",
                "4",
                "--batch",
                "500",
                "--tls",
            ]),
            password,
        )
        .unwrap() else {
            panic!("not migrate");
        };
        assert_eq!(m.to, vec!["a:8090", "b:8090"]);
        assert_eq!(m.password.expose(), "s3cret");
        assert_eq!((m.pool_size, m.batch, m.tls), (4, 500, true));
        assert_eq!(m.resume_file, Some("/p.json".into()));
    }

    #[test]
    fn mistakes_are_explained() {
        let none = |_: &str| None;
        let err = parse("backup", args(&["--data-dir", "/d"]), none).unwrap_err();
        assert!(err.contains("--to DEST"), "{err}");
        let err = parse("restore", args(&["--from", "/b"]), none).unwrap_err();
        assert!(err.contains("--data-dir"), "{err}");
        let err = parse("verify", args(&["--to", "/x"]), none).unwrap_err();
        assert!(err.contains("unknown option \"--to\""), "{err}");
        let err = parse(
            "migrate",
            args(&["--from-data-dir", "/d", "--to", "a:1", "--username", "u"]),
            none,
        )
        .unwrap_err();
        assert!(err.contains("IGGY_PASSWORD"), "{err}");
        let err = parse("migrate", args(&["--pool-size", "0"]), none).unwrap_err();
        assert!(err.contains("1 to 64"), "{err}");
    }
}
