//! Run with: cargo run -p examples --example dead_letter
//!
//! A handler that fails for some events: they are retried with backoff, then written
//! to the dead-letter topic `invoices.dlq` with the reason; after a fix they are
//! re-driven to the original topic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::{
    HandlerError, RetryPolicy, connect, consume::ConsumeOptions, dead_letter::DeadLetterConfig,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "invoices", key = customer)]
struct InvoiceIssued {
    customer: String,
    amount_cents: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = examples::demo_config();
    let connector = connect(&config).await?;
    let invoices = Transport::<InvoiceIssued>::new(
        connector.clone(),
        TransportOptions {
            partitions: 1,
            ..TransportOptions::default()
        },
    )
    .await?;
    for (customer, amount_cents) in [("acme", 1200), ("globex", -500), ("acme", 800)] {
        invoices
            .publish(&InvoiceIssued {
                customer: customer.into(),
                amount_cents,
            })
            .await?;
    }

    let fixed = Arc::new(AtomicBool::new(false));
    let run = |label: &'static str, expected: usize| {
        let invoices = invoices.clone();
        let fixed = Arc::clone(&fixed);
        async move {
            let settled = Arc::new(Notify::new());
            let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let stop = {
                let (settled, count) = (Arc::clone(&settled), Arc::clone(&count));
                async move {
                    while count.load(Ordering::SeqCst) < expected {
                        settled.notified().await;
                    }
                }
            };
            let options = ConsumeOptions {
                retry: RetryPolicy {
                    max_attempts: 3,
                    initial_backoff: Duration::from_millis(50),
                    ..RetryPolicy::default()
                },
                ..ConsumeOptions::default()
            };
            invoices
                .consume("accounting", options, stop, move |invoice| {
                    let (fixed, settled, count) =
                        (Arc::clone(&fixed), Arc::clone(&settled), Arc::clone(&count));
                    async move {
                        let result = if invoice.amount_cents < 0 && !fixed.load(Ordering::SeqCst) {
                            println!(
                                "  [{label}] attempt {}: invoice of {} for {} refused",
                                invoice.info().attempt,
                                invoice.customer,
                                invoice.amount_cents
                            );
                            Err(HandlerError::retryable(format!(
                                "negative amount {}",
                                invoice.amount_cents
                            )))
                        } else {
                            println!(
                                "  [{label}] booked {} cents for {}",
                                invoice.amount_cents, invoice.customer
                            );
                            Ok(())
                        };
                        if result.is_ok() || invoice.info().attempt >= 3 {
                            count.fetch_add(1, Ordering::SeqCst);
                            settled.notify_one();
                        }
                        result
                    }
                })
                .await
        }
    };

    let report = run("first run", 3).await?;
    println!(
        "first run: {} booked, {} retries, {} dead-lettered",
        report.handled, report.retried, report.dead_lettered
    );

    let dead_letters = invoices.dead_letters(&DeadLetterConfig::default()).await?;
    for letter in dead_letters.list(10).await? {
        println!(
            "dead letter in {}: event {} from {}:{}@{} after {} attempts: {}",
            dead_letters.topic(),
            letter.event_id,
            letter.original_topic,
            letter.original_partition,
            letter.original_offset,
            letter.attempts,
            letter.error
        );
    }

    fixed.store(true, Ordering::SeqCst);
    let redriven = dead_letters.redrive(|_| true).await?;
    println!(
        "the handler was fixed; re-driven {redriven} event(s) to {}",
        invoices.topic()
    );
    let report = run("after re-drive", 1).await?;
    println!("second run: {} booked", report.handled);
    connector.shutdown().await?;
    Ok(())
}
