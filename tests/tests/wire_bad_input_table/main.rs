//! The bad-input table of the Iggy TCP listener.
//!
//! Each test sends one family of bad input from an attacking connection while a
//! *bystander* connection, logged in before the attack, waits. Every test ends with
//! `Bench::check` (in `tests::wire::table`): the broker still accepts connections and
//! logins, the bystander still gets answers within `ANSWER_TIMEOUT`, and the seeded
//! data is intact.
//!
//! | family                    | test                                                            |
//! |---------------------------|-----------------------------------------------------------------|
//! | wrong size field          | `frames::wrong_size_fields`                                     |
//! | frame over the maximum    | `frames::frames_over_the_maximum`                               |
//! | disconnect mid-frame      | `frames::disconnects_mid_frame`                                 |
//! | unknown command code      | `commands::unknown_command_codes_and_operations`                |
//! | truncated body            | `commands::truncated_bodies_of_every_command`                   |
//! | invalid UTF-8 name        | `names::invalid_utf8_names_and_identifiers`                     |
//! | out-of-range ids          | `ids::out_of_range_ids`                                         |
//! | commands before login     | `auth::every_command_before_login`, `auth::forged_sessions`     |
//! | wrong password            | `auth::wrong_passwords_and_tokens`,                             |
//! |                           | `auth::a_storm_of_failed_logins_is_bounded`                     |
//! | slow client (pings)       | `slow_clients::a_slow_client_flooding_pings_is_throttled`       |
//! | slow client (polls)       | `slow_clients::a_slow_client_polling_without_reading_is_bounded`|
//!
//! Each test prints `bad inputs tried: N`; the README sums them.
//!
//! A test binary of its own, whose tests run one at a time (the bench holds a lock):
//! some of them measure the resident memory of this process, which other tests'
//! buffers would disturb.

mod auth;
mod commands;
mod frames;
mod ids;
mod names;
mod slow_clients;
