//! The consume passes of the benches: `iters` batches read by fresh consumer groups
//! from a topic holding `stored` messages (a group reads them once, from the start),
//! timed from the first read to the last commit; and their steps, for benches that
//! interleave two topics.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rustok_iggy::{
    IggyEvent, Subscription, SubscriptionOptions, Transport,
    connector::{
        GroupConsumer, GroupName, IggyConnector, ReceivedMessage, StartPosition, StreamName,
        TopicName,
    },
};

/// A `Subscription<E>` of a fresh group from the start, fetching `batch` at a time.
pub async fn subscribe<E: IggyEvent>(transport: &Transport<E>, batch: usize) -> Subscription<E> {
    let options = SubscriptionOptions {
        batch_size: u32::try_from(batch).expect("a batch size"),
        max_in_flight: 4 * batch,
        ..SubscriptionOptions::default()
    };
    transport
        .subscribe_with(&crate::unique("typed"), StartPosition::Earliest, options)
        .await
        .expect("subscribe")
}

/// The next `count` deliveries of `subscription`, each acknowledged (which commits
/// the group offset).
pub async fn take<E: IggyEvent>(subscription: &mut Subscription<E>, count: u64) {
    for _ in 0..count {
        let delivery = subscription.next().await.expect("open").expect("event");
        black_box(delivery.event());
        delivery.ack().await.expect("ack");
    }
}

/// `iters * batch` events through `Subscription<E>` (fetches of `batch`, decode,
/// header checks, `ack` each).
pub async fn typed<E: IggyEvent>(
    transport: &Transport<E>,
    iters: u64,
    batch: usize,
    stored: u64,
) -> Duration {
    let mut left = iters * batch as u64;
    let mut elapsed = Duration::ZERO;
    while left > 0 {
        let count = left.min(stored);
        let mut subscription = subscribe(transport, batch).await;
        let start = Instant::now();
        take(&mut subscription, count).await;
        elapsed += start.elapsed();
        subscription.close().await.expect("close");
        left -= count;
    }
    elapsed
}

/// A member of a fresh group on `stream`/`topic`, from the start.
pub async fn join(
    connector: &Arc<dyn IggyConnector>,
    (stream, topic): (&StreamName, &TopicName),
) -> Box<dyn GroupConsumer> {
    let group = GroupName::new(crate::unique("raw")).expect("a group name");
    connector
        .join_group(stream, topic, &group, StartPosition::Earliest)
        .await
        .expect("join")
}

/// At least `count` messages through `poll(batch)` on partition 0, one commit per
/// batch; `each` sees every message (decoding it, or nothing).
pub async fn poll(
    member: &dyn GroupConsumer,
    count: u64,
    batch: usize,
    each: &impl Fn(&ReceivedMessage),
) {
    let mut got = 0;
    while got < count {
        let messages = member
            .poll(u32::try_from(batch).expect("a batch size"))
            .await
            .expect("poll");
        messages.iter().for_each(each);
        let last = messages.last().expect("at least one message");
        member.commit(0, last.offset).await.expect("commit");
        got += messages.len() as u64;
        black_box(messages);
    }
}

/// `iters * batch` messages through `GroupConsumer::poll(batch)` with one commit per
/// batch; `each` sees every polled message.
pub async fn raw(
    connector: &Arc<dyn IggyConnector>,
    topic: (&StreamName, &TopicName),
    iters: u64,
    batch: usize,
    stored: u64,
    each: impl Fn(&ReceivedMessage),
) -> Duration {
    let mut left = iters * batch as u64;
    let mut elapsed = Duration::ZERO;
    while left > 0 {
        let count = left.min(stored);
        let member = join(connector, topic).await;
        let start = Instant::now();
        poll(member.as_ref(), count, batch, &each).await;
        elapsed += start.elapsed();
        member.leave().await.expect("leave");
        left -= count;
    }
    elapsed
}
