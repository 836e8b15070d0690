//! `IggyConfig` loads the YAML shape of the original design documents.

use rustok_iggy::{Codec, ConfigError, ConnectorMode, IggyConfig};

/// The example of the rustok-iggy README in `shared/seeds/003_*.txt`, verbatim.
const SEEDS_EXAMPLE: &str = r#"
events:
  transport: iggy
  iggy:
    mode: embedded  # or "remote"
    serialization: json  # or "bincode"
    topology:
      stream_name: rustok
      domain_partitions: 8
      replication_factor: 1
    embedded:
      data_dir: ./data/iggy
      tcp_port: 8090
      http_port: 3000
    remote:
      addresses:
        - "127.0.0.1:8090"
      protocol: tcp
      username: rustok
      password: ${IGGY_PASSWORD}
      tls_enabled: false
    retention:
      domain_max_age_days: 30
      domain_max_size_gb: 10
      system_max_age_days: 7
      dlq_max_age_days: 365
"#;

#[test]
fn the_seeds_example_loads_verbatim() {
    let config = IggyConfig::from_yaml_with_env(SEEDS_EXAMPLE, |var| {
        (var == "IGGY_PASSWORD").then(|| "from-env".to_owned())
    })
    .unwrap();
    assert_eq!(config.mode, ConnectorMode::Embedded);
    assert_eq!(config.serialization, Codec::Json);
    assert_eq!(config.topology.stream_name.as_str(), "rustok");
    assert_eq!(config.topology.domain_partitions, 8);
    assert_eq!(config.embedded.data_dir.to_str(), Some("./data/iggy"));
    assert_eq!(config.embedded.tcp_port, 8090);
    assert_eq!(config.remote.addresses, vec!["127.0.0.1:8090".to_owned()]);
    assert_eq!(config.remote.password.expose(), "from-env");
    assert_eq!(config.retention.domain_max_age_days, Some(30));
    assert_eq!(config.retention.dlq_max_age_days, Some(365));
    assert!(
        !format!("{config:?}").contains("from-env"),
        "secrets stay out of Debug"
    );
    // What cannot take effect in this document is said at load.
    let warned: Vec<String> = config.warnings().into_iter().map(|w| w.path).collect();
    assert_eq!(warned, ["retention.system_max_age_days", "remote"]);
}

#[test]
fn a_missing_secret_names_the_variable_and_the_field() {
    let err = IggyConfig::from_yaml_with_env(SEEDS_EXAMPLE, |_| None).unwrap_err();
    assert!(
        matches!(err, ConfigError::MissingEnv { ref var, ref path } if var == "IGGY_PASSWORD" && path == "events.iggy.remote.password"),
        "{err}"
    );
}

#[test]
fn wrong_values_name_the_field_and_allowed_values() {
    let yaml = SEEDS_EXAMPLE.replace("mode: embedded", "mode: cluster");
    let err = IggyConfig::from_yaml_with_env(&yaml, |_| Some("x".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "events.iggy.mode: unknown variant `cluster`, expected `embedded` or `remote`"
        ),
        "{err}"
    );
    let yaml = SEEDS_EXAMPLE.replace("protocol: tcp", "protocol: udp");
    let err = IggyConfig::from_yaml_with_env(&yaml, |_| Some("x".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("events.iggy.remote.protocol: unknown variant `udp`"),
        "{err}"
    );
    assert!(err.contains("`tcp`, `quic`, `http`"), "{err}");
    let err = IggyConfig::from_yaml("other: 1").unwrap_err();
    assert!(matches!(err, ConfigError::MissingSection));
}
