//! Arbitrary text as the YAML configuration: `IggyConfig::from_yaml`, with `${VAR}`
//! expansion, and the section-only loader. A configuration that loads must pass the
//! connector's own validation; an error must render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustok_iggy::IggyConfig;

fn check(loaded: Result<IggyConfig, rustok_iggy::config::ConfigError>) {
    match loaded {
        Ok(config) => {
            if let Err(e) = config.connector_config().validate() {
                panic!("a loaded configuration fails validation: {e}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(IggyConfig::from_yaml(text));
    check(IggyConfig::from_yaml_with_env(text, |var| {
        (var == "SET").then(|| "${SET}".to_owned())
    }));
    check(IggyConfig::from_section_yaml(text));
});
