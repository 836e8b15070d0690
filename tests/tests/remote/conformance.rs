//! One conformance suite for both connectors.
//!
//! Every case below runs three times (see `tests::conformance`):
//! - `embedded::*`: `EmbeddedConnector` in process;
//! - `remote_listener::*`: `RemoteConnector` (the official `iggy` SDK) against an
//!   embedded broker's TCP listener on `127.0.0.1:0`;
//! - `remote_external::*`: `RemoteConnector` against the server at
//!   `IGGY_TEST_ADDRESS` (with `IGGY_TEST_USERNAME` / `IGGY_TEST_PASSWORD`); prints
//!   "skipped" when the variable is unset.

mod connection;
mod groups;
mod messages;
mod topology;

use connection::*;
use groups::*;
use messages::*;
use topology::*;

macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        /// `EmbeddedConnector`, in process.
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    tests::conformance::run(tests::conformance::Target::Embedded, super::$case).await;
                }
            )+
        }
        /// `RemoteConnector` against an embedded broker's TCP listener.
        mod remote_listener {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    tests::conformance::run(tests::conformance::Target::Listener, super::$case).await;
                }
            )+
        }
        /// `RemoteConnector` against `IGGY_TEST_ADDRESS` (skipped when unset).
        mod remote_external {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    tests::conformance::run(tests::conformance::Target::External, super::$case).await;
                }
            )+
        }
    };
}

conformance!(
    publish_and_consume_keep_the_order_of_each_key,
    batch_publish_appends_contiguously,
    group_members_split_the_partitions_and_rebalance_when_one_leaves,
    dropping_a_member_leaves_the_group,
    commits_follow_acks_and_a_restarted_consumer_gets_the_unacked_again,
    replay_reads_from_first_offset_and_timestamp_without_moving_group_offsets,
    topology_is_created_and_a_mismatch_is_reported,
    retention_is_updated_on_an_existing_topic,
    unknown_targets_are_typed_errors,
    shutdown_wakes_waiters_and_ends_the_connector,
    a_new_group_starts_where_it_was_asked_to,
    wrong_password_is_an_auth_error,
    a_personal_access_token_signs_in,
    unreachable_addresses_are_connection_errors_within_the_timeout,
    tls_settings_that_cannot_work_are_configuration_errors,
);
