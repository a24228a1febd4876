//! Seeded randomized property tests of the four inputs an attacker or a mistake controls, the same ones the
//! cargo-fuzz targets in `fuzz/` cover (`make fuzz`): the push-message decoder, the LINE message validator, the
//! segment SQL pre-parse and the export-file reader. They run in `make test` without cargo-fuzz; each test
//! prints its seed, and `SEGCAST_PROPTEST_SEED=N` replays one.

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use segcast::domain::MAX_BATCH_RECIPIENTS;
use segcast::domain::{
    Batch, BatchId, CampaignId, ChannelId, DeliveryMode, Messages, Recipient, UserId,
};
use segcast::pipeline::batch_wire::decode_push;
use segcast::pipeline::export_file::{LineSplitter, Next, read_all};
use segcast::segment_sql::{TokenKind, check, tokenize};
use serde_json::{Value, json};

fn rng(test: &str) -> StdRng {
    let seed = std::env::var("SEGCAST_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: SEGCAST_PROPTEST_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

fn pick<'a, T>(r: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[r.random_range(0..xs.len())]
}

/// Random bytes, flips, cuts and insertions applied to `base`.
fn mutate(r: &mut StdRng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..r.random_range(1..6) {
        let at = r.random_range(0..=v.len());
        match r.random_range(0..5) {
            0 => v.truncate(at),
            1 if at < v.len() => v[at] = r.random(),
            2 => v.insert(at, *pick(r, b"{}[]\":,\\ 0aU;'\n")),
            3 if at < v.len() => {
                v.remove(at);
            }
            _ => {
                let n = r.random_range(0..8);
                let junk: Vec<u8> = (0..n).map(|_| r.random()).collect();
                v.splice(at..at, junk);
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------------------------
// Segment SQL.

/// The invariants of the pre-parse on any text (also asserted by the fuzz target).
fn sql_invariants(sql: &str) {
    if let Ok(tokens) = tokenize(sql) {
        let mut at = 0;
        for t in &tokens {
            assert!(
                t.start >= at && t.end() <= sql.len() && !t.text.is_empty(),
                "{sql:?}"
            );
            assert!(
                sql[at..t.start].bytes().all(|b| b.is_ascii_whitespace()),
                "{sql:?}"
            );
            at = t.end();
        }
        assert!(
            sql[at..].bytes().all(|b| b.is_ascii_whitespace()),
            "{sql:?}"
        );
    }
    match check(sql) {
        Ok(out) => {
            assert!(sql.contains(out.as_str()));
            assert_eq!(check(&out).as_ref(), Ok(&out), "{sql:?}");
            assert!(
                !tokenize(&out)
                    .unwrap()
                    .iter()
                    .any(|t| t.kind == TokenKind::Symbol && t.text == ";"),
                "{sql:?}"
            );
        }
        Err(e) => assert!(e.field == "sql" && !e.message.is_empty()),
    }
}

const NASTY: &[&str] = &[
    ";",
    "; DROP TABLE t",
    "DELETE FROM t",
    "--",
    "#",
    "/*",
    "*/",
    "'",
    "\"",
    "`",
    "\\",
    "\n",
    "EXPORT DATA",
    "CREATE TEMP FUNCTION",
    "BEGIN",
    "(",
    ")",
    "é",
    "{round}",
];

/// Text for inside a literal or comment: words and the nasty bits.
fn content(r: &mut StdRng) -> String {
    (0..r.random_range(0..6))
        .map(|_| {
            if r.random_bool(0.5) {
                pick(r, NASTY).to_string()
            } else {
                pick(r, &["a", "x y", "42", "SELECT", "user_id", " "]).to_string()
            }
        })
        .collect()
}

/// A literal, quoted identifier or comment that holds `s` (escaped as BigQuery needs).
fn wrapped(r: &mut StdRng, s: &str) -> String {
    let esc = |s: &str, q: char| {
        s.replace('\\', "\\\\")
            .replace(q, &format!("\\{q}"))
            .replace('\n', "\\n")
    };
    match r.random_range(0..9) {
        0 => format!("'{}'", esc(s, '\'')),
        1 => format!("\"{}\"", esc(s, '"')),
        2 => format!("'''{}'''", s.replace('\\', "\\\\").replace('\'', "\\'")),
        3 => format!(
            "\"\"\"{}\"\"\"",
            s.replace('\\', "\\\\").replace('"', "\\\"")
        ),
        4 => format!("b'{}'", esc(s, '\'')),
        5 => format!("r'{}'", s.replace(['\\', '\'', '\n'], "_")),
        6 => format!("`{}`", s.replace(['\\', '`', '\n'], "_")),
        7 => format!("/* {} */", s.replace("*/", "* /")),
        _ => format!("-- {}\n", s.replace('\n', " ")),
    }
}

#[test]
fn segment_sql_pre_parse_never_panics_and_keeps_its_invariants() {
    let mut r = rng("segment_sql_pre_parse_never_panics_and_keeps_its_invariants");
    for _ in 0..3_000 {
        let mut sql = String::new();
        for _ in 0..r.random_range(0..12) {
            match r.random_range(0..4) {
                0 => sql.push_str(pick::<&str>(&mut r, NASTY)),
                1 => {
                    let c = content(&mut r);
                    sql.push_str(&wrapped(&mut r, &c))
                }
                2 => sql.push(char::from(r.random_range(0x20u8..0x7f))),
                _ => sql.push_str(pick::<&str>(
                    &mut r,
                    &["SELECT ", "WITH a AS (", "FROM t ", " ", "1"],
                )),
            }
        }
        sql_invariants(&sql);
        sql_invariants(&String::from_utf8_lossy(&mutate(&mut r, sql.as_bytes())));
    }
}

#[test]
fn hidden_separators_are_not_refusals_and_real_second_statements_always_are() {
    let mut r = rng("hidden_separators_are_not_refusals_and_real_second_statements_always_are");
    for _ in 0..2_000 {
        let mut sql = String::from("SELECT user_id FROM `p.d.t` WHERE true");
        for _ in 0..r.random_range(1..5) {
            let c = content(&mut r);
            let w = wrapped(&mut r, &c);
            if w.starts_with("/*") || w.starts_with("--") {
                sql.push_str(&format!(" {w} "));
            } else {
                sql.push_str(&format!(" AND x != {w}"));
            }
        }
        let accepted = check(&sql).unwrap_or_else(|e| panic!("{sql:?} refused: {}", e.message));
        assert!(sql.starts_with(accepted.as_str()));
        let second = pick(
            &mut r,
            &[
                "DROP TABLE t",
                "DELETE FROM t WHERE true",
                "SELECT 2",
                "EXPORT DATA AS SELECT 1",
            ],
        );
        let sep = pick(&mut r, &[";", "\n;", " -- c\n;", " /* c */ ;"]);
        let two = format!("{sql}{sep} {second}");
        let e = check(&two).expect_err(&two);
        assert!(
            e.message.contains("one statement"),
            "{two:?}: {}",
            e.message
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Push decoder.

fn envelope(data: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "message": {"data": base64::engine::general_purpose::STANDARD.encode(data), "messageId": "7"},
        "subscription": "projects/p/subscriptions/s",
    }))
    .unwrap()
}

fn random_batch(r: &mut StdRng) -> Batch {
    let campaign = CampaignId::parse("c_prop").unwrap();
    let round = r.random_range(1..4);
    let push = r.random_bool(0.5);
    let n = r.random_range(1..40u64);
    let first = r.random_range(0..1_000_000u64);
    Batch {
        id: BatchId::new(&campaign, round, r.random_range(0..3), first),
        campaign_id: campaign,
        round,
        channel_id: ChannelId::parse("1656000001").unwrap(),
        mode: if push {
            DeliveryMode::Push
        } else {
            DeliveryMode::Multicast
        },
        dry_run: r.random_bool(0.2),
        messages: Messages::parse(
            &json!([{"type": "text", "text": if push { "Hi {{name}}" } else { "hello" }}]),
        )
        .unwrap(),
        recipients: (first..first + n)
            .map(|i| Recipient {
                user_id: UserId::parse(&format!("U{i:032x}")).unwrap(),
                attrs: push.then(|| {
                    json!({"name": format!("m{i}")})
                        .as_object()
                        .unwrap()
                        .clone()
                }),
            })
            .collect(),
    }
}

fn accepted_push_invariants(body: &[u8]) {
    if let Ok(p) = decode_push(body) {
        let b = &p.batch;
        assert!((1..=MAX_BATCH_RECIPIENTS).contains(&b.recipients.len()));
        let unique: std::collections::HashSet<_> =
            b.recipients.iter().map(|r| &r.user_id).collect();
        assert_eq!(unique.len(), b.recipients.len());
        assert!(
            b.id.as_str()
                .starts_with(&format!("{}.r{}.", b.campaign_id, b.round))
        );
    }
}

#[test]
fn push_decoder_accepts_what_the_fan_out_makes_and_survives_any_mutation() {
    let mut r = rng("push_decoder_accepts_what_the_fan_out_makes_and_survives_any_mutation");
    for _ in 0..1_500 {
        let b = random_batch(&mut r);
        let data = serde_json::to_vec(&b).unwrap();
        let body = envelope(&data);
        assert_eq!(decode_push(&body).unwrap().batch, b);
        // Mutations of the envelope, and of the batch inside a well-formed envelope.
        accepted_push_invariants(&mutate(&mut r, &body));
        accepted_push_invariants(&envelope(&mutate(&mut r, &data)));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// LINE message validator.

const KEYS: &[&str] = &[
    "type",
    "text",
    "altText",
    "template",
    "actions",
    "uri",
    "label",
    "contents",
    "quickReply",
    "items",
    "action",
    "originalContentUrl",
    "previewImageUrl",
    "packageId",
    "stickerId",
    "layout",
    "body",
    "emojis",
    "sender",
    "columns",
    "data",
];
const TYPES: &[&str] = &[
    "text", "textV2", "image", "video", "audio", "sticker", "location", "imagemap", "template",
    "flex", "buttons", "confirm", "carousel", "uri", "message", "postback", "bubble", "box",
    "action",
];

fn random_json(r: &mut StdRng, depth: u32) -> Value {
    match r.random_range(0..if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(r.random_bool(0.5)),
        2 => json!(r.random_range(-5i64..100_000)),
        3 => json!(pick(r, TYPES)),
        4 => {
            let c = content(r);
            json!(format!(
                "{c}{}",
                pick(
                    r,
                    &[
                        "",
                        "{{name}}",
                        "{{link:sale}}",
                        "{{",
                        "https://example.com/x"
                    ]
                )
            ))
        }
        5 | 6 => Value::Object(
            (0..r.random_range(0..6))
                .map(|_| (pick(r, KEYS).to_string(), random_json(r, depth - 1)))
                .collect(),
        ),
        _ => Value::Array(
            (0..r.random_range(0..6))
                .map(|_| random_json(r, depth - 1))
                .collect(),
        ),
    }
}

#[test]
fn message_validator_never_panics_and_what_it_accepts_renders() {
    let mut r = rng("message_validator_never_panics_and_what_it_accepts_renders");
    let valid = [
        json!([{"type": "text", "text": "Hi {{name}} {{link:sale}}"}]),
        json!([{"type": "image", "originalContentUrl": "https://example.com/a.jpg",
                "previewImageUrl": "https://example.com/p.jpg"}]),
        json!([{"type": "sticker", "packageId": "446", "stickerId": "1988"}]),
    ];
    let attrs = json!({"name": "{{name}}", "n": 1})
        .as_object()
        .unwrap()
        .clone();
    let mut accepted = 0;
    for i in 0..3_000 {
        let v = if i % 3 == 0 {
            // A valid message with one part replaced by random JSON.
            let mut v = pick(&mut r, &valid).clone();
            let key = pick(&mut r, KEYS).to_string();
            v[0][key] = random_json(&mut r, 3);
            v
        } else {
            Value::Array(
                (0..r.random_range(0..7))
                    .map(|_| random_json(&mut r, 4))
                    .collect(),
            )
        };
        let violations = line_spec::validate_messages(&v, &line_spec::Limits::default());
        match Messages::parse(&v) {
            Ok(m) => {
                accepted += 1;
                // Tracked links are validated as the URLs they become, so only plain content must pass as is.
                assert!(
                    violations.is_empty() || v.to_string().contains("{{link:"),
                    "{v}"
                );
                assert!((1..=5).contains(&m.as_slice().len()));
                let _ = (
                    m.render(&attrs),
                    m.placeholders(),
                    m.tracked_links(),
                    m.digest(),
                );
            }
            Err(errs) => assert!(!errs.is_empty() && errs.iter().all(|e| !e.message.is_empty())),
        }
    }
    for v in &valid {
        assert!(Messages::parse(v).is_ok(), "{v}");
    }
    assert!(accepted > 0, "some random messages are valid");
}

// ---------------------------------------------------------------------------------------------------------------
// Export-file reader.

#[test]
fn export_reader_gives_the_same_lines_whatever_the_chunks_and_stays_bounded() {
    let mut r = rng("export_reader_gives_the_same_lines_whatever_the_chunks_and_stays_bounded");
    const MAX: usize = 200;
    for _ in 0..2_000 {
        // A file of recipient lines, blank lines, junk and the odd overlong line.
        let mut file = Vec::new();
        let lines = r.random_range(0..20);
        for i in 0..lines {
            match r.random_range(0..10) {
                0 => file.extend_from_slice(b"  "),
                1 => file.extend_from_slice(&mutate(&mut r, b"{\"user_id\":\"U1\"}")),
                2 if r.random_bool(0.2) => file.extend(std::iter::repeat_n(b'x', MAX + 1)),
                _ => {
                    let u = format!("U{:032x}", r.random::<u64>());
                    file.extend_from_slice(
                        format!("{{\"user_id\":\"{u}\",\"name\":\"n\"}}").as_bytes(),
                    );
                }
            }
            if i + 1 < lines || r.random_bool(0.5) {
                file.push(b'\n');
            }
        }
        let reference: Vec<&[u8]> = {
            let mut parts: Vec<&[u8]> = file.split(|b| *b == b'\n').collect();
            if parts.last().is_some_and(|l| l.is_empty()) {
                parts.pop();
            }
            parts
        };
        let chunk = r.random_range(1..300);
        let mut s = LineSplitter::with_max_line(0, MAX);
        let mut chunks = file.chunks(chunk);
        let mut got: Vec<Vec<u8>> = Vec::new();
        let outcome = loop {
            assert!(s.buffered() <= MAX + chunk);
            match s.next_line() {
                Ok(Next::NeedMore) => match chunks.next() {
                    Some(c) => s.push(c),
                    None => s.finish(),
                },
                Ok(Next::End) => break Ok(()),
                Ok(Next::Line(l)) => got.push(l.to_vec()),
                Err(e) => break Err(e),
            }
        };
        let first_long = reference.iter().position(|l| l.len() > MAX);
        match first_long {
            Some(at) => {
                assert!(outcome.is_err());
                assert_eq!(got.len(), at);
            }
            None => {
                assert!(outcome.is_ok());
                assert_eq!(got.len(), reference.len());
                assert_eq!(s.position(), file.len() as u64);
            }
        }
        for (g, w) in got.iter().zip(&reference) {
            assert_eq!(g.as_slice(), *w);
        }
        // Whatever the chunking, reading the whole file gives the same recipients or the same error.
        let whole = read_all([file.as_slice()], DeliveryMode::Push, MAX);
        let chunked = read_all(file.chunks(chunk), DeliveryMode::Push, MAX);
        assert_eq!(whole.is_ok(), chunked.is_ok());
        if let (Ok(a), Ok(b)) = (whole, chunked) {
            assert_eq!(a, b);
        }
    }
}
