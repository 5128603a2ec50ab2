//! The sample `ttlcask.toml` at the repo root parses and holds exactly the defaults.

use ttlcask::config::{self, AkkaConfig, Limits, LogFormat, MetricsAccess};

#[test]
fn sample_config_parses_and_matches_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ttlcask.toml");
    let file = config::read_file(&path).expect("ttlcask.toml parses");
    assert_eq!(file.listen.as_deref(), Some(config::DEFAULT_LISTEN));
    assert_eq!(
        file.data_dir.as_deref(),
        Some(std::path::Path::new(config::DEFAULT_DATA_DIR))
    );
    assert_eq!(file.durability.as_deref(), Some("always"));
    assert_eq!(
        file.segment_size.map(|s| s.segment_size()),
        Some(Ok(ttlcask_engine::DEFAULT_SEGMENT_SIZE))
    );
    assert_eq!(file.recovery, Some(config::Recovery::Salvage));
    assert_eq!(file.dev, Some(false));
    assert_eq!(file.log.as_deref(), Some("info"));
    assert_eq!(file.log_format, Some(LogFormat::Text));
    assert_eq!(file.metrics_access, Some(MetricsAccess::Local));
    assert_eq!(
        format!("{:?}", file.limits),
        format!("{:?}", Limits::default())
    );
    let akka = file.akka.resolve(AkkaConfig::default()).expect("akka");
    assert_eq!(format!("{akka:?}"), format!("{:?}", AkkaConfig::default()));
}
