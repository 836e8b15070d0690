//! The operations subcommands: `backup`, `restore`, `verify` and `migrate`, on the
//! connector's [`ops`](rustok_iggy_connector::ops) module.

use std::process::ExitCode;

use rustok_iggy_connector::ops::{backup_data_dir, restore_data_dir, verify_data_dir};

use crate::cli::{BackupArgs, MigrateArgs, RestoreArgs, VerifyArgs};

/// `backup`; prints what it copied.
pub(crate) fn backup(BackupArgs { data_dir, to }: BackupArgs) -> ExitCode {
    match backup_data_dir(&data_dir, &to) {
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
        Err(e) => fail(&format!(
            "backup failed: {}",
            rustok_iggy_connector::error_chain(&e)
        )),
    }
}

/// `restore`; prints what it restored.
pub(crate) fn restore(RestoreArgs { from, data_dir }: RestoreArgs) -> ExitCode {
    match restore_data_dir(&from, &data_dir) {
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
        Err(e) => fail(&format!(
            "restore failed: {}",
            rustok_iggy_connector::error_chain(&e)
        )),
    }
}

/// `verify`; exit status 1 when something is damaged.
pub(crate) fn verify(VerifyArgs { data_dir }: VerifyArgs) -> ExitCode {
    match verify_data_dir(&data_dir) {
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
        Err(e) => fail(&format!(
            "verify failed: {}",
            rustok_iggy_connector::error_chain(&e)
        )),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("rustok-iggy-server: {message}");
    ExitCode::FAILURE
}

/// `migrate`; prints its progress, one line per partition.
#[cfg(feature = "remote")]
pub(crate) async fn migrate(options: MigrateArgs) -> ExitCode {
    use rustok_iggy_connector::ops::{MigrateOptions, default_progress_file};
    use std::collections::HashMap;
    use std::sync::Mutex;

    // The command line requires both the user and the password of `migrate`.
    let Some(mut to) = options.sign_in.remote_config(options.to) else {
        return fail("migrate needs --username and a password (--password or IGGY_PASSWORD)");
    };
    to.pool_size = options.pool_size;
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
    let report = rustok_iggy_connector::ops::migrate(&migrate_options, &|p| {
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

/// `migrate` without the `remote` feature: an error.
#[cfg(not(feature = "remote"))]
pub(crate) async fn migrate(_: MigrateArgs) -> ExitCode {
    eprintln!(
        "rustok-iggy-server: migrate needs the `remote` feature of rustok-iggy-server \
         (on by default; it was built with --no-default-features)"
    );
    ExitCode::from(2)
}
