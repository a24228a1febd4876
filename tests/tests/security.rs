//! Security tests on the local stack (issue #7): who may call the push and internal endpoints (shared token and
//! OIDC), segment SQL that is not one read-only query, hostile Pub/Sub pushes (malformed, truncated,
//! oversized, replayed), and secrets in logs, errors and responses. The fake LINE server's stats are the judge
//! of "nothing was sent"; the captured logs of this process and of the services' child processes are the judge
//! of "nothing leaked".

use base64::Engine;
use gcloud_sdk::IdTokenAudience;
use gcloud_sdk::id_token_verify::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use gcloud_sdk::id_token_verify::{IdTokenKeys, IdTokenKeysSource, IdTokenVerifier, JwkSet};
use segcast::catalog::Segment;
use segcast::domain::{
    Batch, BatchId, CampaignId, CampaignStatus, DeliveryMode, Recipient, UserId,
};
use segcast::http::delivery_push::DeliveryApp;
use segcast::http::push_auth::PushAuth;
use segcast::http::scheduler_tick::SchedulerApp;
use segcast::pipeline::batch_wire::MAX_PUSH_BODY;
use segcast::pipeline::scheduler::TickOptions;
use segcast_e2e::{CHANNEL, CHANNEL_SECRET, EnvOptions, Service, TestEnv, free_port, text};
use serde_json::json;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tracing_subscriber::prelude::*;

const MINUTE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------------------
// Log capture: every event of this process (the in-process delivery handler, log sink, fake LINE, scheduler
// ticks), formatted as the services format them, at debug level.

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(self.0.clone())
    }
}

/// Installs the capturing subscriber (once per test binary); every test calls it first.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c = Capture::default();
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("debug"))
            .with(segcast::telemetry::json_layer("security-test", c.clone()))
            .init();
        c
    })
}

/// Everything captured so far.
fn captured() -> String {
    String::from_utf8_lossy(&capture().0.lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

fn user(i: u64) -> UserId {
    UserId::parse(&format!("U{i:032x}")).unwrap()
}

fn push_token(env: &TestEnv) -> String {
    env.vars
        .iter()
        .find(|(k, _)| k == "SEGCAST_PUSH_TOKEN")
        .map(|(_, v)| v.clone())
        .expect("the test environment sets a push token")
}

/// A campaign that exists (scheduled, never ticked here): batches for it are sendable.
async fn sendable_campaign(env: &TestEnv) -> CampaignId {
    env.campaign(
        text("hello"),
        "SELECT 'U00000000000000000000000000000001' AS user_id",
        false,
    )
    .await
    .unwrap()
}

/// A batch of `n` recipients (from user `first`) as the fan-out would make it.
fn batch(env: &TestEnv, id: &CampaignId, first: u64, n: u64) -> Batch {
    Batch {
        id: BatchId::new(id, 1, 0, first),
        campaign_id: id.clone(),
        round: 1,
        channel_id: env.channel.clone(),
        mode: DeliveryMode::Multicast,
        dry_run: false,
        messages: segcast::domain::Messages::parse(&text("hello")).unwrap(),
        recipients: (first..first + n)
            .map(|i| Recipient {
                user_id: user(i),
                attrs: None,
            })
            .collect(),
    }
}

/// A Pub/Sub push body carrying `data`.
fn envelope(data: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "messageId": "1234",
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/s",
    }))
    .unwrap()
}

fn push_body(b: &Batch) -> Vec<u8> {
    envelope(&serde_json::to_vec(b).unwrap())
}

/// Requests that reached the fake LINE's sending endpoints (whatever their answer).
fn sends(env: &TestEnv) -> u64 {
    let stats = env.fake().stats();
    ["push", "multicast", "validate", "narrowcast", "broadcast"]
        .iter()
        .filter_map(|e| stats.requests.get(*e))
        .flat_map(|by_status| by_status.values())
        .sum()
}

/// Serves `router` on a free loopback port; the server stops when the handle is dropped.
struct Served {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(router: axum::Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served { url, task }
}

async fn post(url: &str, auth: Option<&str>, body: Vec<u8>) -> u16 {
    let mut req = reqwest::Client::new().post(url).body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap().status().as_u16()
}

// ---------------------------------------------------------------------------------------------------------------
// Push and internal endpoints: shared token.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_tick_endpoints_refuse_missing_and_wrong_shared_tokens() {
    capture();
    let env = TestEnv::start().await.unwrap();
    let token = push_token(&env);
    let id = sendable_campaign(&env).await;
    let mut tick_opts = TickOptions::new("security-tick");
    tick_opts.budget = Duration::from_secs(1);
    let scheduler = serve(segcast::http::scheduler_tick::router(SchedulerApp {
        ctx: env.ctx.clone(),
        opts: tick_opts,
        auth: PushAuth::from_settings(&env.ctx.settings.delivery).unwrap(),
    }))
    .await;
    let body = push_body(&batch(&env, &id, 0, 3));
    let endpoints = [
        format!("{}/push/delivery", env.handler_url),
        format!("{}/push/dead-letter", env.handler_url),
        format!("{}/tick", scheduler.url),
    ];
    let wrong: Vec<(String, Option<String>)> = vec![
        (String::new(), None),
        ("?token=".into(), None),
        ("?token=wrong-token-0123456789abcdef".into(), None),
        (format!("?token={}", &token[..token.len() - 1]), None),
        (format!("?token={token}x"), None),
        (format!("?token={}", token.to_uppercase()), None),
        (format!("?Token={token}"), None),
        (format!("?xtoken={token}"), None),
        (format!("?other=1&token%3D{token}"), None),
        (
            String::new(),
            Some("Bearer wrong-token-0123456789abcdef".into()),
        ),
        (String::new(), Some("Bearer ".into())),
        (String::new(), Some(format!("Basic {token}"))),
        (String::new(), Some(token.clone())),
        // A wrong query token is not rescued by a right header.
        ("?token=wrong".into(), Some(format!("Bearer {token}"))),
    ];
    for url in &endpoints {
        for (query, header) in &wrong {
            let status = post(&format!("{url}{query}"), header.as_deref(), body.clone()).await;
            assert_eq!(status, 401, "{url}{query} with {header:?}");
        }
    }
    assert_eq!(sends(&env), 0, "a refused push reached LINE");
    let refusals = captured()
        .lines()
        .filter(|l| l.contains("refused: unauthenticated"))
        .count();
    assert!(
        refusals >= wrong.len() * endpoints.len(),
        "each refusal is logged with its reason ({refusals})"
    );
    // The right token, in the query or as a bearer token, is let through: the test could fail.
    let delivery = &endpoints[0];
    assert_eq!(
        post(&format!("{delivery}?token={token}"), None, body.clone()).await,
        204
    );
    assert_eq!(env.fake().stats().recipients_accepted, 3);
    assert_eq!(
        post(&endpoints[2], Some(&format!("Bearer {token}")), Vec::new()).await,
        200
    );
    drop(scheduler);
    // A handler and a scheduler told to stop (SIGTERM) take no new work, even rightly authenticated: 503, so
    // Pub/Sub redelivers the push and Cloud Scheduler's next tick goes elsewhere. Their health check still answers.
    let mut stopping = env.ctx.clone();
    stopping.stopping = tokio_util::sync::CancellationToken::new();
    stopping.stopping.cancel();
    let handler = serve(segcast::http::delivery_push::router(DeliveryApp {
        ctx: stopping.clone(),
        line: env.line_client.clone(),
        auth: PushAuth::from_settings(&env.ctx.settings.delivery).unwrap(),
    }))
    .await;
    let mut tick_opts = TickOptions::new("security-tick-stopping");
    tick_opts.budget = Duration::from_secs(1);
    let scheduler = serve(segcast::http::scheduler_tick::router(SchedulerApp {
        ctx: stopping,
        opts: tick_opts,
        auth: PushAuth::from_settings(&env.ctx.settings.delivery).unwrap(),
    }))
    .await;
    let other = push_body(&batch(&env, &id, 3, 3));
    let push = format!("{}/push/delivery?token={token}", handler.url);
    assert_eq!(post(&push, None, other).await, 503);
    let tick = format!("{}/tick", scheduler.url);
    assert_eq!(
        post(&tick, Some(&format!("Bearer {token}")), Vec::new()).await,
        503
    );
    assert_eq!(
        env.fake().stats().recipients_accepted,
        3,
        "a stopping handler sent nothing"
    );
    let health = reqwest::get(format!("{}/healthz", handler.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    drop((handler, scheduler));
    env.stop().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Push endpoints: OIDC (production). Google's keys are replaced by a local test key, everything else is the
// production verifier.

const AUDIENCE: &str = "https://segcast-delivery.example.run.app/push/delivery";
const PUSH_SA: &str = "segcast-push@example-project.iam.gserviceaccount.com";
const SIGNING_KEY: &str = include_str!("../fixtures/oidc/signing-key.pem");
const FORGER_KEY: &str = include_str!("../fixtures/oidc/forger-key.pem");
const JWKS: &str = include_str!("../fixtures/oidc/jwks.json");

struct LocalKeys(JwkSet);

#[async_trait::async_trait]
impl IdTokenKeysSource for LocalKeys {
    async fn fetch_keys(&self) -> gcloud_sdk::error::Result<IdTokenKeys> {
        Ok(IdTokenKeys::new(self.0.clone(), Duration::from_secs(3600)))
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims() -> serde_json::Value {
    json!({
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "sub": "112233445566778899",
        "email": PUSH_SA,
        "email_verified": true,
        "iat": now() - 10,
        "exp": now() + 3600,
    })
}

fn sign(key_pem: &str, kid: &str, claims: &serde_json::Value) -> String {
    let header = Header {
        kid: Some(kid.to_owned()),
        ..Header::new(Algorithm::RS256)
    };
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn with(mut c: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    c[key] = value;
    c
}

fn b64url(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_pushes_need_a_google_signed_token_for_the_audience_from_the_push_service_account() {
    capture();
    let env = TestEnv::start().await.unwrap();
    let verifier = IdTokenVerifier::with_keys_source(
        IdTokenAudience::new(AUDIENCE.to_owned()),
        LocalKeys(serde_json::from_str(JWKS).unwrap()),
    );
    let app = DeliveryApp {
        ctx: env.ctx.clone(),
        line: env.line_client.clone(),
        auth: PushAuth::Oidc {
            verifier: Arc::new(verifier),
            service_account: PUSH_SA.to_owned(),
        },
    };
    let handler = serve(segcast::http::delivery_push::router(app)).await;
    let url = format!("{}/push/delivery", handler.url);
    let id = sendable_campaign(&env).await;
    let body = push_body(&batch(&env, &id, 0, 2));
    let k = "test-key-1";
    let valid = sign(SIGNING_KEY, k, &claims());
    let tampered = {
        // A valid token whose claims are swapped for another service account's: the signature no longer fits.
        let parts: Vec<&str> = valid.split('.').collect();
        let other = b64url(&with(claims(), "email", json!("attacker@evil.example")));
        format!("{}.{other}.{}", parts[0], parts[2])
    };
    let hs256 = jsonwebtoken::encode(
        &Header {
            kid: Some(k.into()),
            ..Header::new(Algorithm::HS256)
        },
        &claims(),
        &EncodingKey::from_secret(JWKS.as_bytes()),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64url(&json!({"alg": "none", "typ": "JWT", "kid": k})),
        b64url(&claims())
    );
    let cases: Vec<(&str, String)> = vec![
        ("no token", String::new()),
        ("not a JWT", "Bearer not-a-jwt".into()),
        (
            "wrong audience",
            format!(
                "Bearer {}",
                sign(
                    SIGNING_KEY,
                    k,
                    &with(claims(), "aud", json!("https://other.example/push"))
                )
            ),
        ),
        (
            "expired",
            format!(
                "Bearer {}",
                sign(
                    SIGNING_KEY,
                    k,
                    &with(
                        with(claims(), "exp", json!(now() - 600)),
                        "iat",
                        json!(now() - 4200)
                    )
                )
            ),
        ),
        (
            "issued in the future",
            format!(
                "Bearer {}",
                sign(
                    SIGNING_KEY,
                    k,
                    &with(
                        with(claims(), "iat", json!(now() + 600)),
                        "exp",
                        json!(now() + 4200)
                    )
                )
            ),
        ),
        (
            "forged signature",
            format!("Bearer {}", sign(FORGER_KEY, k, &claims())),
        ),
        (
            "unknown key id",
            format!("Bearer {}", sign(FORGER_KEY, "test-key-9", &claims())),
        ),
        ("tampered claims", format!("Bearer {tampered}")),
        (
            "wrong issuer",
            format!(
                "Bearer {}",
                sign(
                    SIGNING_KEY,
                    k,
                    &with(claims(), "iss", json!("https://evil.example"))
                )
            ),
        ),
        (
            "another service account",
            format!(
                "Bearer {}",
                sign(
                    SIGNING_KEY,
                    k,
                    &with(
                        claims(),
                        "email",
                        json!("someone@example-project.iam.gserviceaccount.com")
                    )
                )
            ),
        ),
        (
            "unverified email",
            format!(
                "Bearer {}",
                sign(
                    SIGNING_KEY,
                    k,
                    &with(claims(), "email_verified", json!(false))
                )
            ),
        ),
        (
            "HS256 with the public key set as secret",
            format!("Bearer {hs256}"),
        ),
        ("alg none", format!("Bearer {alg_none}")),
        ("valid token under another scheme", format!("Basic {valid}")),
    ];
    for (what, auth) in &cases {
        let auth = (!auth.is_empty()).then_some(auth.as_str());
        assert_eq!(post(&url, auth, body.clone()).await, 401, "{what}");
    }
    // The valid token only counts in the header: as a query token it is nothing.
    assert_eq!(
        post(&format!("{url}?token={valid}"), None, body.clone()).await,
        401
    );
    assert_eq!(sends(&env), 0, "a refused push reached LINE");
    let logged = captured();
    for reason in [
        "wrong audience",
        "expired",
        "bad signature",
        "not the push service account",
    ] {
        assert!(
            logged
                .lines()
                .any(|l| l.contains("push refused") && l.contains(reason)),
            "no refusal logged with {reason:?}"
        );
    }
    // The valid token passes: the test could fail.
    assert_eq!(
        post(&url, Some(&format!("Bearer {valid}")), body).await,
        204
    );
    assert_eq!(env.fake().stats().recipients_accepted, 2);
    drop(handler);
    env.stop().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Segment SQL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_sql_that_is_not_one_read_only_query_is_refused_before_anything_runs() {
    capture();
    let env = TestEnv::start().await.unwrap();
    let table = env.users_table("users", 20).await.unwrap();
    let count_users = || async {
        env.ctx
            .gcp
            .bigquery
            .query_i64(&format!("SELECT COUNT(*) AS n FROM `{table}`"), &[], "n")
            .await
            .unwrap()
    };
    for (sql, says) in [
        (format!("DELETE FROM `{table}` WHERE true"), "DELETE"),
        (
            format!("UPDATE `{table}` SET name = 'x' WHERE true"),
            "UPDATE",
        ),
        (
            format!("INSERT INTO `{table}` (user_id) VALUES ('U1')"),
            "INSERT",
        ),
        (
            format!(
                "MERGE `{table}` t USING `{table}` s ON false WHEN NOT MATCHED THEN INSERT ROW"
            ),
            "MERGE",
        ),
        (format!("DROP TABLE `{table}`"), "DROP"),
        (
            format!("CREATE OR REPLACE TABLE `{table}` AS SELECT 1 AS x"),
            "CREATE",
        ),
        (format!("TRUNCATE TABLE `{table}`"), "TRUNCATE"),
        (
            format!("SELECT user_id FROM `{table}`; DROP TABLE `{table}`"),
            "one statement",
        ),
        (
            format!("SELECT user_id FROM `{table}` -- all\n; DELETE FROM `{table}` WHERE true"),
            "one statement",
        ),
        (
            format!("SELECT 'a;b' AS x FROM `{table}`; DELETE FROM `{table}` WHERE true"),
            "one statement",
        ),
        (
            format!(
                "EXPORT DATA OPTIONS(uri='gs://b/*.json', format='JSON') AS SELECT * FROM `{table}`"
            ),
            "EXPORT DATA",
        ),
        (
            "CREATE TEMP FUNCTION f(x STRING) AS (x); SELECT f('U1') AS user_id".into(),
            "CREATE TEMP FUNCTION",
        ),
        (
            "DECLARE n INT64 DEFAULT 1; SELECT 'U1' AS user_id".into(),
            "DECLARE",
        ),
        ("BEGIN SELECT 1; END".into(), "BEGIN"),
        ("CALL `p.d.proc`()".into(), "CALL"),
        (
            format!("EXECUTE IMMEDIATE 'DELETE FROM `{table}` WHERE true'"),
            "EXECUTE",
        ),
        (
            format!("SELECT user_id FROM `{table}`) AS segment, (SELECT 1"),
            "never opened",
        ),
        ("SELECT 'unclosed AS user_id".into(), "never closed"),
    ] {
        let e = env.campaign(text("hello"), &sql, false).await.unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with("sql: ") && msg.contains(says),
            "{sql:?}: {msg}"
        );
    }
    // A ';' in a string literal and a trailing comment are not refusals (and the comment does not swallow the
    // parenthesis the segment is spliced before).
    let fine = env
        .campaign(
            text("hello"),
            &format!("SELECT user_id FROM `{table}` WHERE name != 'a;b' -- every member"),
            false,
        )
        .await
        .unwrap();
    let c = env.run_to_end(&fine, 2 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered),
        (CampaignStatus::Completed, 20)
    );
    // A stored segment that was written around the check (an old record, a direct Datastore write) is checked
    // again when the campaign runs: the campaign fails with the reason and BigQuery never sees the SQL.
    let bypass = sendable_campaign(&env).await;
    let campaign = env.get(&bypass).await.unwrap();
    let ds = &env.ctx.gcp.datastore;
    let mut segment: Segment = ds.get(campaign.segment_id.as_str()).await.unwrap().unwrap();
    segment.sql = format!("SELECT user_id FROM `{table}`; DELETE FROM `{table}` WHERE true");
    ds.upsert(&segment).await.unwrap();
    let c = env.run_to_end(&bypass, MINUTE).await.unwrap();
    assert_eq!(c.status, CampaignStatus::Failed);
    assert!(
        c.status_reason
            .as_deref()
            .is_some_and(|r| r.contains("one statement")),
        "{:?}",
        c.status_reason
    );
    assert_eq!(count_users().await, 20, "the DELETE never ran");
    let stats = env.fake().stats();
    assert!(
        !stats.units.contains_key(bypass.as_str()),
        "nothing was sent for it"
    );
    env.stop().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Hostile pushes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_truncated_oversized_and_replayed_pushes_never_reach_line() {
    capture();
    let env = TestEnv::start().await.unwrap();
    let token = push_token(&env);
    let delivery = format!("{}/push/delivery?token={token}", env.handler_url);
    let dead_letter = format!("{}/push/dead-letter?token={token}", env.handler_url);
    let id = sendable_campaign(&env).await;
    let good = batch(&env, &id, 0, 5);
    let good_json = serde_json::to_vec(&good).unwrap();
    let body = push_body(&good);
    let tweak = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = serde_json::to_value(&good).unwrap();
        f(&mut v);
        envelope(&serde_json::to_vec(&v).unwrap())
    };
    let mut nested = String::new();
    for _ in 0..100_000 {
        nested.push('[');
    }
    let other_campaign = CampaignId::generate();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"hello".to_vec()),
        ("empty body", Vec::new()),
        ("truncated envelope", body[..body.len() / 2].to_vec()),
        ("envelope without a message", b"{\"subscription\":\"s\"}".to_vec()),
        ("data not base64", b"{\"message\":{\"data\":\"!!not base64!!\"}}".to_vec()),
        ("no data", b"{\"message\":{\"messageId\":\"1\"}}".to_vec()),
        ("data not JSON", envelope(b"\x00\x01\x02 not json")),
        ("truncated batch", envelope(&good_json[..good_json.len() - 7])),
        ("deeply nested JSON", envelope(nested.as_bytes())),
        ("deeply nested envelope", nested.clone().into_bytes()),
        (
            "deeply nested messages",
            envelope(
                format!(
                    "{{\"id\":\"{id}.r1.f0.o0\",\"campaign_id\":\"{id}\",\"round\":1,\"channel_id\":\"{}\",\
                     \"mode\":\"multicast\",\"recipients\":[],\"messages\":[{nested}",
                    env.channel
                )
                .as_bytes(),
            ),
        ),
        ("no recipients", tweak(&|v| v["recipients"] = json!([]))),
        (
            "invalid user id",
            tweak(&|v| v["recipients"][0]["user_id"] = json!("Unot-a-user")),
        ),
        (
            "duplicate recipients",
            tweak(&|v| v["recipients"][1] = v["recipients"][0].clone()),
        ),
        (
            "too many recipients",
            envelope(&serde_json::to_vec(&batch(&env, &id, 0, 10_001)).unwrap()),
        ),
        (
            "batch id of another campaign",
            tweak(&|v| v["id"] = json!(format!("{other_campaign}.r1.f0.o0"))),
        ),
        ("round 0", tweak(&|v| {
            v["round"] = json!(0);
            v["id"] = json!(format!("{id}.r0.f0.o0"));
        })),
        ("no messages", tweak(&|v| v["messages"] = json!([]))),
        ("invalid message", tweak(&|v| v["messages"] = json!([{"type": "text"}]))),
        (
            "six messages",
            tweak(&|v| v["messages"] = json!(vec![json!({"type": "text", "text": "x"}); 6])),
        ),
        ("unknown mode", tweak(&|v| v["mode"] = json!("broadcast"))),
        ("bad channel id", tweak(&|v| v["channel_id"] = json!("../../admin"))),
        (
            "unknown campaign",
            envelope(
                &serde_json::to_vec(&Batch {
                    id: BatchId::new(&other_campaign, 1, 0, 0),
                    campaign_id: other_campaign.clone(),
                    ..good.clone()
                })
                .unwrap(),
            ),
        ),
        (
            "channel other than the campaign's",
            tweak(&|v| v["channel_id"] = json!("1999999999")),
        ),
    ];
    for (what, bytes) in &cases {
        assert_eq!(post(&delivery, None, bytes.clone()).await, 400, "{what}");
        // From the dead-letter topic: logged and acknowledged, never retried forever, never sent.
        assert_eq!(
            post(&dead_letter, None, bytes.clone()).await,
            204,
            "{what} (dead-lettered)"
        );
    }
    // Over the body limit: 413, or the connection closed on the sender while it is still writing the body
    // (the handler answers as soon as it has read the limit).
    let oversized = envelope(&vec![b' '; MAX_PUSH_BODY]);
    for url in [&delivery, &dead_letter] {
        let sent = reqwest::Client::new()
            .post(url)
            .body(oversized.clone())
            .send()
            .await;
        match sent {
            Ok(r) => assert_eq!(r.status().as_u16(), 413, "oversized to {url}"),
            Err(e) => assert!(e.is_request(), "oversized to {url}: {e}"),
        }
    }
    assert_eq!(sends(&env), 0, "a hostile push reached LINE");
    let health = reqwest::get(format!("{}/healthz", env.handler_url))
        .await
        .unwrap();
    assert!(health.status().is_success(), "the handler is still up");
    // Every refusal is logged with its reason.
    let logged = captured();
    let refused = logged
        .lines()
        .filter(|l| {
            (l.contains("malformed push refused") || l.contains("batch refused"))
                && l.contains("\"reason\"")
        })
        .count();
    let dropped = logged
        .lines()
        .filter(|l| {
            l.contains("dead-lettered") && l.contains("dropped") && l.contains("\"reason\"")
        })
        .count();
    assert!(
        refused >= cases.len(),
        "{refused} refusals logged for {} cases",
        cases.len()
    );
    assert!(
        dropped >= cases.len(),
        "{dropped} drops logged for {} cases",
        cases.len()
    );
    for reason in [
        "recipients",
        "appears twice",
        "not valid LINE messages",
        "does not exist",
        "recursion limit",
    ] {
        assert!(logged.contains(reason), "no refusal logged with {reason:?}");
    }

    // Replays: the same batch delivered again, one after the other and at the same time: LINE sees it once.
    assert_eq!(post(&delivery, None, body.clone()).await, 204);
    let after_first = sends(&env);
    assert_eq!(post(&delivery, None, body.clone()).await, 204);
    assert_eq!(post(&dead_letter, None, body.clone()).await, 204);
    assert_eq!(
        sends(&env),
        after_first,
        "a replay of a done batch reached LINE"
    );
    let twin = push_body(&batch(&env, &id, 100, 5));
    let (a, b, c) = tokio::join!(
        post(&delivery, None, twin.clone()),
        post(&delivery, None, twin.clone()),
        post(&delivery, None, twin.clone())
    );
    assert_eq!((a, b, c), (204, 204, 204));
    let unit = env
        .fake()
        .stats()
        .units
        .get(id.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (unit.unique, unit.duplicates),
        (10, 0),
        "each recipient accepted once"
    );
    env.stop().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Secrets.

/// Where a secret shows in `text`: the channel secret, the push token, or any access token the fake LINE
/// issues (`fl1.` + base64url payload + `.` + signature).
fn leaks(text: &str, secrets: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for s in secrets {
            if line.contains(s) {
                out.push(format!("line {n} holds {s:?}: {line}"));
            }
        }
        let mut rest = line;
        while let Some(i) = rest.find("fl1.") {
            let tail = &rest[i + 4..];
            let token_chars = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .count();
            if token_chars >= 16 {
                out.push(format!("line {n} holds an access token: {line}"));
                break;
            }
            rest = tail;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_access_token_appears_in_logs_errors_or_responses() {
    capture();
    let handler_port = free_port();
    let faults = fake_line::Faults {
        p_500: 0.05,
        p_lost_response: 0.05,
        seed: Some(7),
        ..Default::default()
    };
    let opts = EnvOptions {
        fake_line: fake_line::Config {
            // The fake checks the channel secret, so a token is really exchanged for it.
            allowed_channels: [(CHANNEL.to_owned(), CHANNEL_SECRET.to_owned())].into(),
            faults,
            ..Default::default()
        },
        run_services: false,
        handler_port: Some(handler_port),
        ..Default::default()
    }
    .set("SEGCAST_MULTICAST_BATCH", 100)
    .set("SEGCAST_PUSH_BATCH", 20);
    let env = TestEnv::start_with(opts).await.unwrap();
    let push_token = push_token(&env);
    let secrets = [CHANNEL_SECRET, push_token.as_str()];
    // The check can fail: it finds each kind of secret.
    assert_eq!(leaks(&format!("x {CHANNEL_SECRET} y"), &secrets).len(), 1);
    assert_eq!(leaks(&format!("?token={push_token}"), &secrets).len(), 1);
    let issued = env.fake().issue_token(CHANNEL);
    assert_eq!(leaks(&format!("Bearer {issued}"), &secrets).len(), 1);

    let dir = std::env::temp_dir().join(format!("segcast-security-{}", env.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let (handler_log, scheduler_log) = (dir.join("delivery.log"), dir.join("scheduler.log"));
    let scheduler_port = free_port();
    let debug = ("RUST_LOG", "debug".to_string());
    let mut handler = Service::spawn_logged(
        &env,
        "segcast-delivery",
        &[("PORT", handler_port.to_string()), debug.clone()],
        Some(&handler_log),
    )
    .unwrap();
    let mut scheduler = Service::spawn_logged(
        &env,
        "segcast-scheduler",
        &[
            ("PORT", scheduler_port.to_string()),
            ("SEGCAST_SCHEDULER_LOOP_MS", "300".to_string()),
            debug,
        ],
        Some(&scheduler_log),
    )
    .unwrap();
    handler.wait_healthy(handler_port, MINUTE).await.unwrap();
    scheduler
        .wait_healthy(scheduler_port, MINUTE)
        .await
        .unwrap();

    // A full multicast campaign, a personalised (push) one and a dry run, through the real binaries.
    let table = env.users_table("users", 300).await.unwrap();
    let multicast = env
        .campaign(
            text("hello"),
            &format!("SELECT user_id FROM `{table}`"),
            false,
        )
        .await
        .unwrap();
    let push = env
        .campaign(
            json!([{"type": "text", "text": "Hi {{name}}"}]),
            &format!("SELECT user_id, name FROM `{table}` WHERE name < 'member2'"),
            false,
        )
        .await
        .unwrap();
    let dry = env
        .campaign(text("dry"), &format!("SELECT user_id FROM `{table}`"), true)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + 3 * MINUTE;
    let mut finished = Vec::new();
    for id in [&multicast, &push, &dry] {
        let c = loop {
            let c = env.get(id).await.unwrap();
            if c.completed_at.is_some() {
                break c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} not done: {} {:?}",
                c.status,
                c.counts
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        assert_eq!(
            c.status,
            CampaignStatus::Completed,
            "{id}: {:?}",
            c.status_reason
        );
        finished.push(c);
    }
    assert_eq!(finished[0].counts.delivered, 300);

    // An API response: the scheduler's /tick.
    let tick = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{scheduler_port}/tick"))
        .bearer_auth(&push_token)
        .send()
        .await
        .unwrap();
    assert_eq!(tick.status().as_u16(), 200);
    let tick_body = tick.text().await.unwrap();

    // Error messages: a token refused for a wrong secret, and a send that cannot get a token.
    let wrong_secret = "wrong-channel-secret-must-not-show";
    let http = reqwest::Client::new();
    let tokens = segcast::line::access_token::TokenProvider::from_vars(
        http.clone(),
        &env.line_url,
        [(
            format!("LINE_CHANNEL_{CHANNEL}_SECRET"),
            wrong_secret.to_owned(),
        )],
    );
    let err = tokens.token(&env.channel).await.unwrap_err();
    let err_text = format!("{err:#} {err:?}");
    assert!(err_text.contains("invalid_client"), "{err_text}");
    let bad_client = segcast::line::LineClient::with_tokens(&env.ctx.settings.line, http, tokens);
    let outcome = bad_client
        .send(
            &env.channel,
            segcast::line::Endpoint::Push,
            &json!({"to": user(1).as_str(), "messages": text("x")}),
            uuid::Uuid::new_v4(),
        )
        .await;
    let outcome_text = format!("{outcome:?}");
    tracing::warn!(error = %err_text, outcome = %outcome_text, "security test: token errors");

    // Stored outcomes: campaign entities and every delivery log row.
    let mut stored = String::new();
    for c in &finished {
        stored.push_str(&serde_json::to_string(c).unwrap());
        stored.push('\n');
    }
    for row in env
        .ctx
        .gcp
        .bigquery
        .query(
            &format!(
                "SELECT TO_JSON_STRING(t) AS j FROM `{}.delivery_logs` AS t",
                env.ctx.settings.dataset
            ),
            &[],
        )
        .await
        .unwrap()
    {
        stored.push_str(&row.get::<Option<String>>("j").unwrap().unwrap_or_default());
        stored.push('\n');
    }
    handler.kill();
    scheduler.kill();
    env.stop().await;

    let in_process = captured();
    let handler_text = std::fs::read_to_string(&handler_log).unwrap();
    let scheduler_text = std::fs::read_to_string(&scheduler_log).unwrap();
    // The capture really captured: the services' own lines are there.
    for (name, text, expect) in [
        ("this process", &in_process, "delivery logs written"),
        ("delivery handler", &handler_text, "batch handled"),
        ("scheduler", &scheduler_text, "fan-out complete"),
    ] {
        assert!(
            text.lines().count() > 20 && text.contains(expect),
            "{name}: {} lines captured, none with {expect:?}",
            text.lines().count()
        );
    }
    assert!(stored.lines().count() > 5, "delivery logs were read");
    let mut found = Vec::new();
    for (name, text) in [
        ("this process", in_process.as_str()),
        ("delivery handler", handler_text.as_str()),
        ("scheduler", scheduler_text.as_str()),
        ("/tick response", tick_body.as_str()),
        ("token error", err_text.as_str()),
        ("send outcome", outcome_text.as_str()),
        ("stored outcomes", stored.as_str()),
    ] {
        found.extend(
            leaks(text, &secrets)
                .into_iter()
                .map(|l| format!("{name}: {l}")),
        );
        if text.contains(wrong_secret) {
            found.push(format!("{name} holds the wrong secret"));
        }
    }
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
