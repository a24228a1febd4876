//! The LINE message validator: any JSON in, violations or validated `Messages` out (never a panic), and what is
//! accepted can be rendered, hashed and listed without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segcast::domain::Messages;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = line_spec::validate_messages(&value, &line_spec::Limits::default());
    if let Ok(m) = Messages::parse(&value) {
        assert!((1..=5).contains(&m.as_slice().len()));
        let attrs = serde_json::json!({"name": "{{name}}", "n": 1, "x": null});
        let _ = m.render(attrs.as_object().unwrap());
        let _ = (m.placeholders(), m.tracked_links(), m.digest(), m.is_personalized());
    }
});
