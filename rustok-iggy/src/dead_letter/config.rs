//! Where the dead letters of a topic go.

use rustok_iggy_connector::{Retention, TopicName};

/// Where dead letters of a topic go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterConfig {
    /// The dead-letter topic; `<topic>.dlq` by default.
    pub topic: Option<TopicName>,
    /// Its retention. `None` (the default): the dead-letter retention of the
    /// transport ([`crate::TransportOptions::dead_letter_retention`], from
    /// `retention.dlq_max_age_days`) for [`Transport::dead_letters`](crate::Transport::dead_letters), the handler
    /// runner and envelopes; for [`DeadLetters::open`](super::DeadLetters::open), the retention an existing
    /// topic has, and [`DEFAULT_DEAD_LETTER_RETENTION`] for a new one.
    pub retention: Option<Retention>,
}

impl DeadLetterConfig {
    /// The dead-letter topic of `source`: the one named here, else `<source>.dlq`.
    pub(crate) fn topic_of(&self, source: &TopicName) -> TopicName {
        self.topic.clone().unwrap_or_else(|| default_topic(source))
    }
}

/// The retention of a dead-letter topic that nothing else names: 365 days (the
/// default of `retention.dlq_max_age_days`).
pub const DEFAULT_DEAD_LETTER_RETENTION: Retention = Retention {
    max_age: Some(std::time::Duration::from_secs(365 * 86_400)),
    max_size_bytes: None,
};

/// The default dead-letter topic of `topic`: `<topic>.dlq` (cut to fit 255 bytes).
pub(crate) fn default_topic(topic: &TopicName) -> TopicName {
    let mut name = topic.as_str().to_owned();
    while name.len() > 251 {
        name.pop();
    }
    TopicName::new(format!("{name}.dlq")).unwrap_or_else(|_| topic.clone())
}
