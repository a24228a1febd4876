//! The console's JSON API against the local stack: bad input is refused naming the field and changes nothing,
//! roles and sign-in are enforced (and IAP's signed header verified), and a campaign goes all the way through
//! the API: channel -> content -> segment preview -> campaign -> approval -> test send -> schedule ->
//! progress -> results -> timeline -> failures CSV -> audit.

use reqwest::{Client, StatusCode};
use segcast_e2e::{CHANNEL, CONSOLE_ADMIN, Console, TestEnv};
use serde_json::{Value, json};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// One LINE text message object.
fn msg(s: &str) -> Value {
    json!({"type": "text", "text": s})
}

async fn call(
    http: &Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("console reachable");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(http: &Client, c: &Console, path: &str, body: Value) -> (StatusCode, Value) {
    call(
        http,
        reqwest::Method::POST,
        format!("{}{path}", c.url),
        Some(body),
    )
    .await
}

async fn put(http: &Client, c: &Console, path: &str, body: Value) -> (StatusCode, Value) {
    call(
        http,
        reqwest::Method::PUT,
        format!("{}{path}", c.url),
        Some(body),
    )
    .await
}

async fn get(http: &Client, c: &Console, path: &str) -> (StatusCode, Value) {
    call(http, reqwest::Method::GET, format!("{}{path}", c.url), None).await
}

/// Asserts a 422 whose `field` is (or starts with) `field`.
fn assert_field(answer: &(StatusCode, Value), field: &str, case: &str) {
    assert_eq!(
        answer.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{case}: {}",
        answer.1
    );
    let f = answer.1["field"].as_str().unwrap_or_default();
    assert!(
        f.starts_with(field),
        "{case}: field {f:?}, expected {field:?}: {}",
        answer.1
    );
    assert!(
        answer.1["error"].as_str().is_some_and(|m| m.len() > 10),
        "{case}: a message a person can act on: {}",
        answer.1
    );
}

async fn count(http: &Client, c: &Console, path: &str) -> usize {
    let (s, v) = get(http, c, path).await;
    assert_eq!(s, StatusCode::OK, "{path}: {v}");
    v.as_array().map(Vec::len).unwrap_or(0)
}

/// Registers the test channel (with the secret the fake LINE accepts), a content and a segment over `n`
/// synthetic users; returns (content id, segment id).
async fn basics(env: &TestEnv, c: &Console, admin: &Client, n: u64) -> (String, String) {
    let table = env.users_table("users", n).await.unwrap();
    let (s, ch) = post(
        admin,
        c,
        "/api/channels",
        json!({"id": CHANNEL, "name": "Main channel", "secret": segcast_e2e::CHANNEL_SECRET}),
    )
    .await;
    assert!(
        s == StatusCode::CREATED || s == StatusCode::CONFLICT,
        "{ch}"
    );
    let (s, content) = post(
        admin,
        c,
        "/api/contents",
        json!({"name": "Winter sale", "messages": [{"type": "text", "text": "Hello {{name}}"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{content}");
    assert_eq!(content["delivery"], "push");
    let (s, segment) = post(
        admin,
        c,
        "/api/segments",
        json!({"name": "Everyone", "sql": format!("SELECT user_id, name FROM `{table}`")}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{segment}");
    (
        content["id"].as_str().unwrap().to_owned(),
        segment["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_saved() {
    let env = TestEnv::start().await.unwrap();
    let c = env.console(&[]).await.unwrap();
    let admin = c.sign_in(CONSOLE_ADMIN).await.unwrap();
    let table = env.users_table("users", 20).await.unwrap();

    // Contents.
    let long = "x".repeat(5001);
    let cases = [
        (
            json!({"name": "", "messages": [msg("hi")]}),
            "name",
            "empty name",
        ),
        (
            json!({"name": "n", "messages": []}),
            "messages",
            "no messages",
        ),
        (
            json!({"name": "n", "messages": "hello"}),
            "messages",
            "messages not an array",
        ),
        (
            json!({"name": "n", "messages": vec![msg("a"); 6]}),
            "messages",
            "6 messages",
        ),
        (
            json!({"name": "n", "messages": [msg(&long)]}),
            "messages[0]",
            "oversized text",
        ),
        (
            json!({"name": "n", "messages": [{"type": "text", "text": ""}]}),
            "messages[0]",
            "empty text",
        ),
        (
            json!({"name": "n", "messages": [{"type": "image", "originalContentUrl": "http://example.com/a.jpg",
                   "previewImageUrl": "not a url"}]}),
            "messages[0]",
            "bad image URLs",
        ),
        (
            json!({"name": "n", "messages": [{"type": "flex", "altText": "x", "contents": {"type": "bubble", "body": "nope"}}]}),
            "messages[0]",
            "malformed flex",
        ),
        (
            json!({"name": "n", "messages": [msg("{{link:shop}}")], "links": {"shop": "javascript:alert(1)"}}),
            "links.shop",
            "bad tracked link",
        ),
    ];
    for (body, field, case) in cases {
        let a = post(&admin, &c, "/api/contents", body.clone()).await;
        assert_field(&a, field, case);
        let v = post(&admin, &c, "/api/contents/validate", body).await;
        assert_field(&v, field, case);
    }
    assert_eq!(
        count(&admin, &c, "/api/contents").await,
        0,
        "no content was saved"
    );

    // Segments: each refused before anything runs (or by BigQuery's dry run), naming `sql`.
    let t = &table;
    let sqls = [
        (String::new(), "empty"),
        (format!("DELETE FROM `{t}` WHERE TRUE"), "DML"),
        (format!("DROP TABLE `{t}`"), "DDL"),
        (
            format!("SELECT user_id FROM `{t}`; DROP TABLE `{t}`"),
            "two statements",
        ),
        ("DECLARE x INT64; SELECT 'U' AS user_id".into(), "scripting"),
        (
            format!("EXPORT DATA OPTIONS(uri='gs://b/*') AS SELECT user_id FROM `{t}`"),
            "EXPORT DATA",
        ),
        (format!("SELECT name FROM `{t}`"), "no user_id column"),
        (
            format!("SELECT CAST(1 AS INT64) AS user_id FROM `{t}`"),
            "user_id not a STRING",
        ),
        (format!("SELEC user_id FROM `{t}`"), "syntax error"),
        (
            "SELECT user_id FROM `other_dataset.users`".into(),
            "outside the allowed datasets",
        ),
        (
            format!("SELECT user_id FROM `{t}` WHERE no_such_column = 1"),
            "unknown column",
        ),
    ];
    for (sql, case) in &sqls {
        let a = post(
            &admin,
            &c,
            "/api/segments",
            json!({"name": "s", "sql": sql}),
        )
        .await;
        assert_field(&a, "sql", case);
        let p = post(&admin, &c, "/api/segments/preview", json!({"sql": sql})).await;
        assert_field(&p, "sql", case);
    }
    assert_eq!(
        count(&admin, &c, "/api/segments").await,
        0,
        "no segment was saved"
    );

    // Campaigns.
    let (content, segment) = basics(&env, &c, &admin, 20).await;
    let campaign = |over: Value| {
        let mut b = json!({"name": "c", "content_id": content, "segment_id": segment, "channel_id": CHANNEL,
                           "time_zone": "Asia/Tokyo"});
        for (k, v) in over.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (
            json!({"send_at": "2020-01-01T10:00"}),
            "send_at",
            "send time in the past",
        ),
        (json!({"send_at": "tomorrow"}), "send_at", "not a time"),
        (
            json!({"time_zone": "Mars/Base"}),
            "time_zone",
            "unknown time zone",
        ),
        (
            json!({"content_id": "ct_nope"}),
            "content_id",
            "unknown content",
        ),
        (
            json!({"segment_id": "sg_nope"}),
            "segment_id",
            "unknown segment",
        ),
        (
            json!({"channel_id": "1999999999"}),
            "channel_id",
            "unknown channel",
        ),
        (
            json!({"quiet_hours": {"start": "25:00", "end": "08:00"}}),
            "quiet_hours.start",
            "bad quiet hours",
        ),
        (json!({"max_rounds": 0}), "max_rounds", "no rounds"),
        (json!({"name": ""}), "name", "no name"),
    ];
    for (over, field, case) in cases {
        assert_field(
            &post(&admin, &c, "/api/campaigns", campaign(over)).await,
            field,
            case,
        );
    }
    assert_eq!(
        count(&admin, &c, "/api/campaigns").await,
        0,
        "no campaign was saved"
    );
    let (s, _) = get(&admin, &c, "/api/campaigns/c_doesnotexist").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "unknown id");
    let (s, _) = post(
        &admin,
        &c,
        "/api/campaigns/c_doesnotexist/schedule",
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "unknown id");

    // Editing a campaign that has run is refused, and changes nothing.
    let (s, created) = post(&admin, &c, "/api/campaigns", campaign(json!({}))).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (s, v) = post(
        &admin,
        &c,
        &format!("/api/campaigns/{id}/schedule"),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("scheduled")),
        "{v}"
    );
    let cid = segcast::domain::CampaignId::parse(&id).unwrap();
    env.run_until(&cid, "s", MINUTE, |c| {
        c.status.is_running() || c.status.is_final()
    })
    .await
    .unwrap();
    let a = put(
        &admin,
        &c,
        &format!("/api/campaigns/{id}"),
        campaign(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(
        a.0,
        StatusCode::CONFLICT,
        "editing a running campaign: {}",
        a.1
    );
    env.run_to_end(&cid, 2 * MINUTE).await.unwrap();
    let (_, after) = get(&admin, &c, &format!("/api/campaigns/{id}")).await;
    assert_eq!(after["name"], "c", "nothing changed");
    // Content a live campaign uses cannot change under it; once it has ended, it can (a new version).
    let (s, v) = put(
        &admin,
        &c,
        &format!("/api/contents/{content}"),
        json!({"name": "Winter sale", "messages": [msg("v2 {{name}}")]}),
    )
    .await;
    assert_eq!((s, v["version"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
    assert_eq!(
        count(&admin, &c, &format!("/api/contents/{content}/versions")).await,
        2
    );

    c.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_roles_and_request_limits_are_enforced() {
    let env = TestEnv::start().await.unwrap();
    let c = env
        .console(&[
            ("SEGCAST_CONSOLE_RATE", "5"),
            ("SEGCAST_CONSOLE_MAX_BODY", "65536"),
        ])
        .await
        .unwrap();
    let anon = Client::new();
    let (s, v) = get(&anon, &c, "/api/campaigns").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = post(
        &anon,
        &c,
        "/api/session",
        json!({"email": CONSOLE_ADMIN, "password": "wrong-password!"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "wrong password");
    let (s, _) = post(
        &anon,
        &c,
        "/api/session",
        json!({"email": "stranger@example.com",
        "password": segcast_e2e::CONSOLE_PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "not a console user");
    // A forged session token (payload changed to another user) is refused.
    let (s, session) = post(
        &anon,
        &c,
        "/api/session",
        json!({"email": CONSOLE_ADMIN,
        "password": segcast_e2e::CONSOLE_PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let token = session["token"].as_str().unwrap();
    let (_, sig) = token.split_once('.').unwrap();
    use base64::Engine;
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"email":"boss@example.com","exp":99999999999}"#);
    let r = anon
        .get(format!("{}/api/me", c.url))
        .bearer_auth(format!("{forged_payload}.{sig}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "forged session");
    let r = anon
        .get(format!("{}/api/me", c.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the real token works as a bearer token"
    );

    c.add_user("viewer@example.com", "viewer").await.unwrap();
    c.add_user("editor@example.com", "editor").await.unwrap();
    let viewer = c.sign_in("viewer@example.com").await.unwrap();
    let editor = c.sign_in("editor@example.com").await.unwrap();
    assert_eq!(
        get(&viewer, &c, "/api/campaigns").await.0,
        StatusCode::OK,
        "viewers read"
    );
    let body = json!({"name": "n", "messages": [msg("hi")]});
    let (s, v) = post(&viewer, &c, "/api/contents", body.clone()).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a viewer cannot create content: {v}"
    );
    assert!(v["error"].as_str().unwrap().contains("editor"), "{v}");
    let (s, _) = post(
        &editor,
        &c,
        "/api/channels",
        json!({"id": "1656000009", "name": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only admins register channels");
    let (s, _) = put(
        &editor,
        &c,
        "/api/users/editor@example.com",
        json!({"role": "admin"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no promoting oneself");
    let (s, _) = put(
        &viewer,
        &c,
        "/api/users/viewer@example.com",
        json!({"role": "nonsense"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Writes must be JSON (a cross-site form cannot send that).
    let r = editor
        .post(format!("{}/api/contents", c.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Bodies over the limit are refused.
    let huge = json!({"name": "n", "messages": [msg(&"y".repeat(100_000))]});
    assert_eq!(
        post(&editor, &c, "/api/contents", huge).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        count(&editor, &c, "/api/contents").await,
        0,
        "nothing saved"
    );
    // Rate limit: 5/s with bursts of 10 per caller; 40 at once must meet 429s, and the next second works.
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(get(&viewer, &c, "/api/me").await.0);
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(limited > 20, "{limited} of 40 limited");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(&viewer, &c, "/api/me").await.0, StatusCode::OK);
    // The spec is served and lists every route.
    let (s, spec) = get(&anon, &c, "/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/campaigns/{id}/schedule",
        "/api/segments/preview",
        "/api/campaigns/{id}/failures.csv",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} in the spec");
    }
    c.stop().await;
    env.stop().await;
}

/// IAP mode: only a valid ES256 JWT from IAP's keys, for this audience, is trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_iap_only_a_verified_signed_header_is_trusted() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    fn key() -> p256::SecretKey {
        loop {
            let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
                .iter()
                .flat_map(|u| u.as_bytes().to_vec())
                .collect();
            if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
                return k;
            }
        }
    }
    let (iap_key, other_key) = (key(), key());
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let point = iap_key.public_key().to_encoded_point(false);
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "iap-1",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwk", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/jwk",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    let audience = "/projects/123/global/backendServices/456";
    let env = TestEnv::start().await.unwrap();
    let c = env
        .console(&[
            ("SEGCAST_CONSOLE_AUTH", "iap"),
            ("SEGCAST_IAP_AUDIENCE", audience),
            ("SEGCAST_IAP_JWKS_URL", &jwks_url),
        ])
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sign = |k: &p256::SecretKey, kid: &str, claims: Value| {
        let pem = k.to_pkcs8_pem(LineEnding::LF).unwrap();
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        encode(
            &h,
            &claims,
            &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let claims = |aud: &str, exp: i64| {
        json!({"email": CONSOLE_ADMIN, "aud": aud, "iss": "https://cloud.google.com/iap",
               "iat": now - 10, "exp": exp, "sub": "accounts.google.com:1"})
    };
    let http = Client::new();
    let me = |jwt: Option<String>, extra: Option<(&'static str, &'static str)>| {
        let mut r = http.get(format!("{}/api/me", c.url));
        if let Some(j) = jwt {
            r = r.header("x-goog-iap-jwt-assertion", j);
        }
        if let Some((k, v)) = extra {
            r = r.header(k, v);
        }
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(
        me(
            Some(sign(&iap_key, "iap-1", claims(audience, now + 600))),
            None
        )
        .await,
        StatusCode::OK
    );
    for (case, jwt) in [
        (
            "wrong audience",
            sign(
                &iap_key,
                "iap-1",
                claims("/projects/123/global/backendServices/999", now + 600),
            ),
        ),
        (
            "expired",
            sign(&iap_key, "iap-1", claims(audience, now - 120)),
        ),
        (
            "signed by another key",
            sign(&other_key, "iap-1", claims(audience, now + 600)),
        ),
        (
            "unknown key id",
            sign(&other_key, "evil", claims(audience, now + 600)),
        ),
        ("not a JWT", "garbage".into()),
    ] {
        assert_eq!(
            me(Some(jwt), None).await,
            StatusCode::UNAUTHORIZED,
            "{case}"
        );
    }
    assert_eq!(me(None, None).await, StatusCode::UNAUTHORIZED, "no header");
    assert_eq!(
        me(
            None,
            Some((
                "x-goog-authenticated-user-email",
                "accounts.google.com:admin@example.com"
            ))
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "IAP's unsigned identity header is not trusted"
    );
    // No local sign-in behind IAP.
    let (s, _) = post(
        &http,
        &c,
        "/api/session",
        json!({"email": CONSOLE_ADMIN, "password": "whatever-long"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    c.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_goes_through_the_api_with_approval_test_send_results_and_export() {
    let fake = fake_line::Config {
        nonexistent_users: Vec::new(),
        ..Default::default()
    };
    let env = TestEnv::start_with(segcast_e2e::EnvOptions {
        fake_line: fake,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = env
        .console(&[("SEGCAST_APPROVAL_THRESHOLD", "100")])
        .await
        .unwrap();
    let admin = c.sign_in(CONSOLE_ADMIN).await.unwrap();
    c.add_user("ed@example.com", "editor").await.unwrap();
    c.add_user("ann@example.com", "approver").await.unwrap();
    let ed = c.sign_in("ed@example.com").await.unwrap();
    let ann = c.sign_in("ann@example.com").await.unwrap();

    // The channel's secret is stored, never shown, never in the audit log.
    let (content, _) = basics(&env, &c, &admin, 10).await;
    let (_, channels) = get(&ed, &c, "/api/channels").await;
    assert_eq!(channels[0]["has_secret"], true);
    let (_, audit) = get(&admin, &c, "/api/audit").await;
    assert!(
        !audit.to_string().contains(segcast_e2e::CHANNEL_SECRET),
        "no secret in the audit log"
    );
    assert!(!channels.to_string().contains(segcast_e2e::CHANNEL_SECRET));

    // A segment of 300 users, 6 of them (every 43rd) with IDs LINE cannot have (they fail as invalid_user_id).
    let table = env.users_table("members", 300).await.unwrap();
    let sql = format!(
        "SELECT IF(MOD(n, 43) = 0, CONCAT('bad-', name), user_id) AS user_id, name \
         FROM (SELECT user_id, name, CAST(SUBSTR(name, 7) AS INT64) AS n FROM `{table}`)"
    );
    let (s, preview) = post(&ed, &c, "/api/segments/preview", json!({"sql": sql})).await;
    assert_eq!(s, StatusCode::OK, "{preview}");
    assert_eq!(preview["count"], 300);
    assert_eq!(preview["sample"].as_array().unwrap().len(), 10);
    assert!(
        preview["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "name")
    );
    let (s, segment) = post(
        &ed,
        &c,
        "/api/segments",
        json!({"name": "Members", "sql": sql}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{segment}");

    let (s, created) = post(
        &ed,
        &c,
        "/api/campaigns",
        json!({"name": "Members push", "content_id": content, "segment_id": segment["id"],
               "channel_id": CHANNEL, "time_zone": "Asia/Tokyo"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // Test send: to the listed user now, outside the campaign.
    let (s, sent) = post(
        &ed,
        &c,
        &format!("/api/campaigns/{id}/test-send"),
        json!({"user_ids": ["U0123456789abcdef0123456789abcdef"], "attrs": {"name": "Tester"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{sent}");
    assert_eq!(sent[0]["delivered"], true, "{sent}");
    let (s, bad) = post(
        &ed,
        &c,
        &format!("/api/campaigns/{id}/test-send"),
        json!({"user_ids": ["nobody"]}),
    )
    .await;
    assert_eq!(
        (s, bad["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("user_ids[0]"))
    );

    // 300 recipients > 100: scheduling asks for approval; nobody approves their own campaign.
    let (s, v) = post(&ed, &c, &format!("/api/campaigns/{id}/schedule"), json!({})).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::ACCEPTED, Some("draft")),
        "{v}"
    );
    assert_eq!(v["approval"]["recipients"], 300);
    let (s, _) = post(&ed, &c, &format!("/api/campaigns/{id}/approve"), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an editor cannot approve");
    c.add_user("ed@example.com", "approver").await.unwrap();
    let (s, v) = post(&ed, &c, &format!("/api/campaigns/{id}/approve"), json!({})).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "not one's own campaign, even as an approver: {v}"
    );
    let (s, v) = post(&ann, &c, &format!("/api/campaigns/{id}/approve"), json!({})).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("scheduled")),
        "{v}"
    );
    assert_eq!(v["approval"]["approved_by"], "ann@example.com");

    // It runs; progress counts recipients; results, timeline and the failures CSV agree with LINE.
    let cid = segcast::domain::CampaignId::parse(&id).unwrap();
    let done = env.run_to_end(&cid, 3 * MINUTE).await.unwrap();
    assert_eq!(done.counts.delivered, 294, "{:?}", done.counts);
    assert_eq!(
        env.fake().stats().recipients_accepted,
        294 + 1,
        "campaign + test send"
    );
    let (_, p) = get(&ed, &c, &format!("/api/campaigns/{id}/progress")).await;
    assert_eq!(
        (
            p["delivered"].as_u64(),
            p["failed"].as_u64(),
            p["status"].as_str()
        ),
        (Some(294), Some(6), Some("completed")),
        "{p}"
    );
    let (_, r) = get(&ed, &c, &format!("/api/campaigns/{id}/results")).await;
    assert_eq!(r["failed_by_reason"]["invalid_user_id"], 6, "{r}");
    assert_eq!(r["is_final"], true);
    let (_, tl) = get(&ed, &c, &format!("/api/campaigns/{id}/timeline")).await;
    let total: i64 = tl
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["delivered"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 294, "the chart adds up: {tl}");
    let csv = ed
        .get(format!("{}/api/campaigns/{id}/failures.csv", c.url))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "user_id,reason,failed_at");
    assert_eq!(lines.len(), 1 + 6, "{csv}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.starts_with("bad-member") && l.contains(",invalid_user_id,")),
        "{csv}"
    );

    // Duplicate -> a new draft; pause, resume and cancel a scheduled one; the audit log has it all.
    let (s, copy) = post(
        &ed,
        &c,
        &format!("/api/campaigns/{id}/duplicate"),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, copy["status"].as_str()),
        (StatusCode::CREATED, Some("draft")),
        "{copy}"
    );
    let copy_id = copy["id"].as_str().unwrap();
    let (s, _) = post(
        &ed,
        &c,
        &format!("/api/campaigns/{copy_id}/resume"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "a draft is not paused");
    let (s, v) = post(
        &ed,
        &c,
        &format!("/api/campaigns/{copy_id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("canceled")),
        "{v}"
    );
    let (_, audit) = get(&ed, &c, &format!("/api/audit?target={id}")).await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "campaign.create",
        "campaign.test_send",
        "campaign.request_approval",
        "campaign.approve",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    let approve = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "campaign.approve")
        .unwrap();
    assert_eq!(
        (
            approve["actor"].as_str(),
            approve["before"]["status"].as_str(),
            approve["after"]["status"].as_str()
        ),
        (Some("ann@example.com"), Some("draft"), Some("scheduled"))
    );
    c.stop().await;
    env.stop().await;
}

/// Runs the `segcast` CLI against the console.
fn cli(
    c: &Console,
    token: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(segcast_e2e::workspace_bin("segcast"));
    cmd.env("SEGCAST_CONSOLE_URL", &c.url)
        .env_remove("SEGCAST_TOKEN")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(t) = token {
        cmd.env("SEGCAST_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("the segcast CLI is built (make build)");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_the_same_api_and_quiet_hours_hold_a_campaign() {
    let env = TestEnv::start().await.unwrap();
    let c = env.console(&[]).await.unwrap();
    let table = env.users_table("users", 5).await.unwrap();
    let (ok, token, err) = cli(
        &c,
        None,
        &["login", "--email", CONSOLE_ADMIN],
        Some(segcast_e2e::CONSOLE_PASSWORD),
    );
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    let t = Some(token.as_str());
    let (ok, _, err) = cli(&c, None, &["campaigns", "list"], None);
    assert!(!ok && err.contains("401"), "no token: {err}");
    let (ok, out, err) = cli(
        &c,
        t,
        &[
            "channels",
            "add",
            "--id",
            CHANNEL,
            "--name",
            "Main",
            "--secret-stdin",
        ],
        Some(segcast_e2e::CHANNEL_SECRET),
    );
    assert!(ok, "{err}");
    assert!(
        !out.contains(segcast_e2e::CHANNEL_SECRET),
        "the secret is not echoed"
    );
    let dir = std::env::temp_dir().join(format!("segcast-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    let bad = dir.join("bad.json");
    std::fs::write(&good, r#"[{"type":"text","text":"Hi from the CLI"}]"#).unwrap();
    std::fs::write(&bad, r#"[{"type":"sticker","packageId":"1"}]"#).unwrap();
    let (ok, _, err) = cli(
        &c,
        t,
        &[
            "contents",
            "create",
            "--name",
            "x",
            "--file",
            bad.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        !ok && err.contains("422") && err.contains("messages[0]"),
        "the field is named: {err}"
    );
    let (ok, out, err) = cli(
        &c,
        t,
        &[
            "contents",
            "create",
            "--name",
            "CLI",
            "--file",
            good.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{err}");
    let content: Value = serde_json::from_str(&out).unwrap();
    let sql = format!("SELECT user_id FROM `{table}`");
    let (ok, out, err) = cli(&c, t, &["segments", "preview", "--sql", &sql], None);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["count"], 5);
    let (ok, out, err) = cli(
        &c,
        t,
        &["segments", "create", "--name", "Five", "--sql", &sql],
        None,
    );
    assert!(ok, "{err}");
    let segment: Value = serde_json::from_str(&out).unwrap();

    // Quiet hours around now (UTC): scheduled, but the scheduler holds it until they end.
    let now = time::OffsetDateTime::now_utc();
    let hhmm = |t: time::OffsetDateTime| format!("{:02}:{:02}", t.hour(), t.minute());
    let quiet = format!(
        "{}-{}",
        hhmm(now - time::Duration::hours(1)),
        hhmm(now + time::Duration::hours(1))
    );
    let (ok, out, err) = cli(
        &c,
        t,
        &[
            "campaigns",
            "create",
            "--name",
            "Quiet",
            "--content",
            content["id"].as_str().unwrap(),
            "--segment",
            segment["id"].as_str().unwrap(),
            "--channel",
            CHANNEL,
            "--time-zone",
            "UTC",
            "--quiet-hours",
            &quiet,
        ],
        None,
    );
    assert!(ok, "{err}");
    let campaign: Value = serde_json::from_str(&out).unwrap();
    let id = campaign["id"].as_str().unwrap();
    let (ok, out, err) = cli(&c, t, &["campaigns", "schedule", id], None);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "scheduled"
    );
    let cid = segcast::domain::CampaignId::parse(id).unwrap();
    let mut opts = segcast::pipeline::scheduler::TickOptions::new("quiet-test");
    opts.budget = Duration::from_secs(1);
    segcast::pipeline::scheduler::tick(&env.ctx, &opts)
        .await
        .unwrap();
    let held = env.get(&cid).await.unwrap();
    assert_eq!(
        held.status,
        segcast::domain::CampaignStatus::Scheduled,
        "held by quiet hours"
    );
    let until = held
        .next_check_at
        .expect("looked at again when quiet hours end");
    let end = now + time::Duration::hours(1);
    assert!(
        (until - end).whole_minutes().abs() <= 1,
        "held until {until}, quiet hours end {end}"
    );
    assert_eq!(
        env.fake().stats().recipients_accepted,
        0,
        "nothing sent in quiet hours"
    );
    let (ok, out, _) = cli(&c, t, &["campaigns", "progress", id], None);
    assert!(ok && out.contains("quiet hours"), "{out}");
    c.stop().await;
    env.stop().await;
}
