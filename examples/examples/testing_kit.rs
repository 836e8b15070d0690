//! Run with: cargo run -p examples --example testing_kit
//!
//! What an application's own test looks like with the test kit (feature `testing`):
//! a real embedded broker in a temporary directory, the application's handler run
//! by the handler runner with two injected failures, the retry backoffs passed on a
//! paused clock, then checks of what was published, consumed and dead-lettered. In
//! a test, the body of `main` is the body of a `#[tokio::test(start_paused = true)]`.

use std::time::Duration;

use rustok_iggy::prelude::*;
use rustok_iggy::testing::{TestKit, fail_attempts};
use rustok_iggy::{ConsumeOptions, HandlerError, Received, RetryPolicy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "invoices", key = customer)]
struct InvoiceIssued {
    customer: String,
    cents: u64,
}

/// The application's handler: what the test is about.
async fn send_reminder(invoice: Received<InvoiceIssued>) -> Result<(), HandlerError> {
    println!(
        "reminder for {} ({} cents), attempt {}",
        invoice.customer,
        invoice.cents,
        invoice.info().attempt
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kit = TestKit::start().await?;
    let invoices = kit.transport::<InvoiceIssued>().await?;
    for (customer, cents) in [("acme", 1200), ("globex", 300)] {
        let invoice = InvoiceIssued {
            customer: customer.into(),
            cents,
        };
        invoices
            .publish_with(&invoice, &EventMetadata::new().correlation_id("run-1"))
            .await?;
    }

    // Every event fails twice, then the handler runs; the 5 s backoffs take no time.
    let options = ConsumeOptions {
        retry: RetryPolicy::fixed(3, Duration::from_secs(5)),
        ..ConsumeOptions::default()
    };
    let started = tokio::time::Instant::now();
    let runner = tokio::spawn({
        let invoices = invoices.clone();
        async move {
            let handler = fail_attempts(2, send_reminder);
            invoices
                .consume("reminders", options, std::future::pending(), handler)
                .await
        }
    });

    let consumed = kit
        .wait_for_consumed::<InvoiceIssued>("reminders", 2)
        .await?;
    kit.assert_no_dead_letters().await?;
    let published = kit.published::<InvoiceIssued>().await?;
    assert_eq!(published.len(), 2);
    assert!(
        published
            .iter()
            .all(|p| p.metadata.correlation_id.as_deref() == Some("run-1"))
    );
    println!(
        "{consumed} consumed after {:?} on the paused clock; no dead letters",
        started.elapsed()
    );

    // The broker restarts on the same data: events and commits are kept.
    runner.abort();
    kit.restart().await?;
    assert_eq!(kit.published::<InvoiceIssued>().await?.len(), 2);
    assert_eq!(
        kit.wait_for_consumed::<InvoiceIssued>("reminders", 2)
            .await?,
        2
    );
    kit.shutdown().await?;
    Ok(())
}
