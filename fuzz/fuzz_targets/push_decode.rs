//! The delivery handler's push decoder: a Pub/Sub push body (JSON envelope, base64 data, batch JSON) in, a
//! checked batch or a reason out. Never panics; what it accepts holds up (1..=max distinct recipients, an id
//! of its own campaign and round) and decodes the same after a re-encode.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use segcast::domain::MAX_BATCH_RECIPIENTS;
use segcast::pipeline::batch_wire::decode_push;

fuzz_target!(|data: &[u8]| {
    let Ok(pushed) = decode_push(data) else {
        return;
    };
    let b = &pushed.batch;
    assert!((1..=MAX_BATCH_RECIPIENTS).contains(&b.recipients.len()));
    let unique: std::collections::HashSet<_> = b.recipients.iter().map(|r| &r.user_id).collect();
    assert_eq!(unique.len(), b.recipients.len());
    assert!(b.id.as_str().starts_with(&format!("{}.r{}.", b.campaign_id, b.round)));
    let again = serde_json::to_vec(&serde_json::json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(b).unwrap()),
            "messageId": "1",
        }
    }))
    .unwrap();
    let redecoded = decode_push(&again).expect("a re-encoded accepted batch is accepted");
    assert_eq!(&redecoded.batch, b);
});
