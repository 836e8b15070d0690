//! What the examples share.

use rustok_iggy::IggyConfig;

/// The embedded default, in a temporary data directory removed at shutdown, without
/// the TCP listener and the HTTP endpoint (so that examples run side by side and
/// never clash on a port).
#[must_use]
pub fn demo_config() -> IggyConfig {
    let mut config = IggyConfig::default();
    config.embedded.persistent = false;
    config.embedded.tcp_enabled = false;
    config.embedded.http_enabled = false;
    config
}
