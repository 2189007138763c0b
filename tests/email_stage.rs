#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The email stage's settings as authentik's `EmailStage` (authentik/stages/email/
//! models.py) has them: `token_expiry` as a timedelta or (older blueprints) minutes,
//! `use_global_settings: false` refused by name (authflow mails only through the
//! engine's mailer), unknown templates refused.

use authflow::model::{EmailStage, StageConfig};
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<EmailStage, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

#[test]
fn token_expiry_takes_minutes_or_a_timedelta() {
    assert_eq!(parse(json!({})).unwrap().token_expiry_secs(), 30 * 60);
    assert_eq!(
        parse(json!({"token_expiry": 30}))
            .unwrap()
            .token_expiry_secs(),
        1800
    );
    assert_eq!(
        parse(json!({"token_expiry": "hours=1;minutes=2"}))
            .unwrap()
            .token_expiry_secs(),
        3720
    );
    assert!(parse(json!({"token_expiry": "fortnights=1"})).is_err());
    assert!(parse(json!({"token_expiry": 0})).is_err());
}

#[test]
fn stage_connection_settings_are_refused_by_name() {
    let err = parse(json!({"use_global_settings": false, "host": "smtp.example.com"})).unwrap_err();
    assert!(err.contains("use_global_settings"), "{err}");
    // With global settings the blueprint's connection fields are kept, unused.
    let s = parse(
        json!({"use_global_settings": true, "host": "localhost", "port": 25,
                         "password": "x", "use_tls": false}),
    )
    .unwrap();
    assert_eq!(s.host, "localhost");
}

#[test]
fn templates_are_known_names_or_inline() {
    assert!(parse(json!({"template": "email/account_confirmation.html"})).is_ok());
    assert!(parse(json!({"template": "<a href=\"{{ url }}\">go</a>"})).is_ok());
    let err = parse(json!({"template": "email/custom.html"})).unwrap_err();
    assert!(err.contains("template"), "{err}");
}

#[test]
fn the_stage_round_trips_as_a_stage_config() {
    let config: StageConfig = EmailStage::default().into();
    let v = serde_json::to_value(&config).unwrap();
    assert_eq!(v["kind"], "email");
    assert_eq!(v["token_expiry"], "minutes=30");
    let back: StageConfig = serde_json::from_value(v).unwrap();
    assert!(matches!(back, StageConfig::Email(_)));
}
