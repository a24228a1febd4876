//! Click tracking end to end (issue #8): tracked links in a delivered campaign are clicked through the real
//! redirect (as a browser would, without following the redirect), the clicks flow Pub/Sub -> BigQuery, and
//! the stats SQL, the CSV export and LINE's own numbers say exactly what happened. Plus the redirect's
//! defences: forged, expired, tampered and wrong-key tokens, open-redirect attempts, and shedding when
//! Pub/Sub cannot keep up.

use fake_line::Interaction;
use futures::future::BoxFuture;
use segcast::click::analytics;
use segcast::click::insight::{self, Count, InsightState};
use segcast::click::link_signature::{Claims, Keys, unix_now};
use segcast::domain::{CampaignId, CampaignStatus, UserId};
use segcast::http::click_redirect::{
    self as click_redirect, BufferOptions, ClickApp, ClickBuffer, ClickPublisher,
    CountingPublisher, StaticLinks, Targets,
};
use segcast_e2e::{EnvOptions, Service, TestEnv, free_port};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);
/// base64url of the 32 bytes `0123456789abcdef0123456789abcdef`.
const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";
const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const LINE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari Line/13.20.0";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A redirect served in-process on `listener`; stopped (and its buffer flushed) by `stop`.
struct Redirect {
    url: String,
    app: ClickApp,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Redirect {
    fn serve(listener: tokio::net::TcpListener, app: ClickApp, stop: CancellationToken) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let s = stop.clone();
        let router = click_redirect::router(app.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        Self {
            url,
            app,
            stop,
            tasks: vec![server],
        }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// The first `http` URL in a message text.
fn first_url(text: &str) -> String {
    let start = text.find("http").expect("a URL in the message");
    text[start..].split_whitespace().next().unwrap().to_owned()
}

async fn get(http: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = http.get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

async fn assert_redirects_to(
    http: &reqwest::Client,
    url: &str,
    target: &str,
    headers: &[(&str, &str)],
) {
    let r = get(http, url, headers).await;
    assert_eq!(r.status(), 302, "{url}");
    assert_eq!(r.headers()["location"], target, "{url}");
}

/// Users of a `users_table`, ordered by their number.
async fn user_ids(env: &TestEnv, table: &str) -> Vec<String> {
    let rows = env
        .ctx
        .gcp
        .bigquery
        .query(
            &format!("SELECT user_id FROM `{table}` ORDER BY CAST(SUBSTR(name, 7) AS INT64)"),
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<String>("user_id").unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_links_are_clicked_through_the_redirect_and_counted_in_bigquery() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let env = TestEnv::start_with(
        EnvOptions::default()
            .set("SEGCAST_CLICK_KEYS", format!("k1:{KEY_B64}"))
            .set("SEGCAST_CLICK_BASE_URL", &base),
    )
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let (app, flusher) =
        click_redirect::from_settings(&env.ctx.settings, BufferOptions::default(), stop.clone())
            .await
            .unwrap();
    let mut redirect = Redirect::serve(listener, app, stop);
    redirect.tasks.push(flusher);
    let http = no_redirects();
    let bq = &env.ctx.gcp.bigquery;

    // Push (personalised) content with two tracked links, one in text and one in a uri action.
    let sale = "https://shop.example.com/sale?utm_source=line&x=1";
    let faq = "https://shop.example.com/faq";
    let push_table = env.users_table("users_push", 30).await.unwrap();
    let push = env
        .campaign_with_links(
            json!([
                {"type": "text", "text": "Hi {{name}}, sale: {{link:sale}}"},
                {"type": "template", "altText": "menu", "template": {"type": "buttons", "text": "Questions?",
                  "actions": [{"type": "uri", "label": "FAQ", "uri": "{{link:faq}}"}]}}
            ]),
            BTreeMap::from([("sale".into(), sale.into()), ("faq".into(), faq.into())]),
            &format!("SELECT user_id, name FROM `{push_table}`"),
            false,
        )
        .await
        .unwrap();
    // Multicast (same for everyone) content: its links cannot carry a recipient.
    let mc_target = "https://shop.example.com/multicast";
    let mc_table = env.users_table("users_mc", 15).await.unwrap();
    let multicast = env
        .campaign_with_links(
            json!([{"type": "text", "text": "Sale: {{link:sale}}"}]),
            BTreeMap::from([("sale".into(), mc_target.into())]),
            &format!("SELECT user_id FROM `{mc_table}`"),
            false,
        )
        .await
        .unwrap();
    for id in [&push, &multicast] {
        let c = env.run_to_end(id, 2 * MINUTE).await.unwrap();
        assert_eq!(c.status, CampaignStatus::Completed, "{id}");
    }

    // What LINE received: each push recipient's own signed links, on the click domain.
    let users = user_ids(&env, &push_table).await;
    let keys = Keys::single("k1", KEY);
    let mut sale_urls = Vec::new();
    let mut faq_urls = Vec::new();
    for u in &users {
        // (The multicast campaign's users are the first 15 of these: its one-message request is not this one.)
        let got: Vec<_> = env
            .fake()
            .messages_to(u)
            .into_iter()
            .filter(|m| m.as_array().unwrap().len() == 2)
            .collect();
        assert_eq!(got.len(), 1, "one push request to {u}");
        let messages = got[0].as_array().unwrap();
        let text = messages[0]["text"].as_str().unwrap();
        assert!(!text.contains("{{"), "{text}");
        let url = first_url(text);
        assert!(url.starts_with(&format!("{base}/c/")), "{url}");
        let claims = keys
            .verify(url.rsplit('/').next().unwrap(), unix_now())
            .unwrap();
        assert_eq!(claims.campaign, push);
        assert_eq!(
            claims.recipient.as_ref().map(|r| r.as_str()),
            Some(u.as_str())
        );
        assert!(claims.expires_at > unix_now() + 89 * 86_400);
        sale_urls.push(url);
        let uri = messages[1]["template"]["actions"][0]["uri"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(uri.starts_with(&format!("{base}/c/")));
        faq_urls.push(uri);
    }
    let mc_users = user_ids(&env, &mc_table).await;
    let multicast_text = |u: &str| -> String {
        let got: Vec<_> = env
            .fake()
            .messages_to(u)
            .into_iter()
            .filter(|m| m.as_array().unwrap().len() == 1)
            .collect();
        assert_eq!(got.len(), 1, "one multicast request to {u}");
        got[0][0]["text"].as_str().unwrap().to_owned()
    };
    let mc_text = multicast_text(&mc_users[0]);
    let mc_url = first_url(&mc_text);
    let mc_claims = keys
        .verify(mc_url.rsplit('/').next().unwrap(), unix_now())
        .unwrap();
    assert_eq!(
        (mc_claims.campaign.clone(), mc_claims.recipient),
        (multicast.clone(), None)
    );
    // Everyone of the multicast got the same URL.
    assert_eq!(multicast_text(&mc_users[14]), mc_text);

    // Clicks, as browsers make them (the redirect's 302 is not followed).
    let line_ua = [("user-agent", LINE_UA)];
    for (i, url) in sale_urls.iter().enumerate().take(10) {
        let geo = [
            ("user-agent", LINE_UA),
            ("x-client-geo-location", "JP,Tokyo"),
        ];
        assert_redirects_to(
            &http,
            url,
            sale,
            if i == 0 { &geo[..] } else { &line_ua[..] },
        )
        .await;
    }
    assert_redirects_to(&http, &sale_urls[0], sale, &line_ua).await; // double tap: logged, not counted
    assert_redirects_to(&http, &faq_urls[1], faq, &line_ua).await;
    assert_redirects_to(
        &http,
        &sale_urls[2],
        sale,
        &[("user-agent", "facebookexternalhit/1.1")],
    )
    .await; // bot
    let head = http.head(&sale_urls[3]).send().await.unwrap(); // a link check: redirected, not a click
    assert_eq!(head.status(), 302);
    for _ in 0..3 {
        assert_redirects_to(&http, &mc_url, mc_target, &line_ua).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_redirects_to(&http, &sale_urls[4], sale, &line_ua).await; // a second click, 6 s later: counts

    // The click rows reach BigQuery through the click topic and the sink.
    let deadline = tokio::time::Instant::now() + MINUTE;
    loop {
        let n = bq
            .query_i64(
                &format!(
                    "SELECT COUNT(*) AS n FROM `{}.click_logs`",
                    env.ctx.dataset()
                ),
                &[],
                "n",
            )
            .await
            .unwrap();
        if n == 17 {
            break;
        }
        assert!(n < 17, "{n} click rows");
        assert!(
            tokio::time::Instant::now() < deadline,
            "click rows: {n} of 17"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rows = bq
        .query(
            &format!(
                "SELECT country, user_agent_class FROM `{}.click_logs` WHERE recipient = @r ORDER BY clicked_at",
                env.ctx.dataset()
            ),
            &[segcast::gcp::bigquery::Param::Str("r", users[0].clone())],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].get::<Option<String>>("country").unwrap().as_deref(),
        Some("JP")
    );
    assert_eq!(
        rows[0]
            .get::<Option<String>>("user_agent_class")
            .unwrap()
            .as_deref(),
        Some("line")
    );

    // Per campaign: 30 delivered; 14 rows of which 12 count (double tap and bot do not); 10 clickers.
    let s = analytics::campaign_clicks(&env.ctx, &push).await.unwrap();
    assert_eq!(
        (s.delivered, s.clicks, s.raw_clicks, s.unique_clickers),
        (30, 12, 14, Some(10))
    );
    assert!((s.ctr.unwrap() - 10.0 / 30.0).abs() < 1e-9, "{s:?}");
    assert!(
        (s.clicks_per_delivered.unwrap() - 0.4).abs() < 1e-9,
        "{s:?}"
    );
    // Per link.
    let links = analytics::link_clicks(&env.ctx, &push).await.unwrap();
    let by_link: HashMap<String, _> = links
        .into_iter()
        .map(|l| (l.link_id.clone().unwrap(), l))
        .collect();
    assert_eq!(
        (
            by_link["sale"].clicks,
            by_link["sale"].raw_clicks,
            by_link["sale"].unique_clickers
        ),
        (11, 13, Some(10))
    );
    assert_eq!(
        (
            by_link["faq"].clicks,
            by_link["faq"].raw_clicks,
            by_link["faq"].unique_clickers
        ),
        (1, 1, Some(1))
    );
    assert!((by_link["faq"].ctr.unwrap() - 1.0 / 30.0).abs() < 1e-9);
    // Multicast: clicks, but no unique clickers and no CTR (never faked).
    let m = analytics::campaign_clicks(&env.ctx, &multicast)
        .await
        .unwrap();
    assert_eq!(
        (
            m.delivered,
            m.clicks,
            m.raw_clicks,
            m.unique_clickers,
            m.ctr
        ),
        (15, 3, 3, None, None)
    );
    assert!((m.clicks_per_delivered.unwrap() - 0.2).abs() < 1e-9);
    // Over time: every counted click in some hour.
    let hours = analytics::clicks_over_time(&env.ctx, &push).await.unwrap();
    assert_eq!(hours.iter().map(|h| h.1).sum::<i64>(), 12, "{hours:?}");

    // Per segment and per content across campaigns.
    for id in [&push, &multicast] {
        analytics::record_campaign(&env.ctx, &env.get(id).await.unwrap())
            .await
            .unwrap();
    }
    let push_c = env.get(&push).await.unwrap();
    for (groups, key) in [
        (
            analytics::segment_clicks(&env.ctx).await.unwrap(),
            push_c.segment_id.to_string(),
        ),
        (
            analytics::content_clicks(&env.ctx).await.unwrap(),
            push_c.content_id.to_string(),
        ),
    ] {
        assert_eq!(groups.len(), 2, "{groups:?}");
        let g = groups.iter().find(|g| g.id == key).unwrap();
        assert_eq!(
            (g.campaigns, g.delivered, g.clicks, g.unique_clickers),
            (1, 30, 12, 10)
        );
        assert!((g.ctr.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        let other = groups.iter().find(|g| g.id != key).unwrap();
        assert_eq!(
            (
                other.delivered,
                other.clicks,
                other.unique_clickers,
                other.ctr
            ),
            (15, 3, 0, None)
        );
    }

    // The CSV export: one line per recipient, with their outcome and counted clicks.
    let mut csv = Vec::new();
    let n = segcast::click::export::write_csv(&env.ctx, &push, &mut csv)
        .await
        .unwrap();
    assert_eq!(n, 30);
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "campaign_id,recipient,outcome,reason,outcome_at,clicks,links_clicked,first_click_at,last_click_at"
    );
    let line_of = |u: &str| -> Vec<String> {
        lines
            .iter()
            .find(|l| l.contains(u))
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(line_of(&users[0])[2..3], ["delivered".to_owned()]);
    assert_eq!(line_of(&users[0])[5..7], ["1".to_owned(), "1".to_owned()]); // double tap counted once
    assert_eq!(line_of(&users[1])[5..7], ["2".to_owned(), "2".to_owned()]); // sale + faq
    assert_eq!(line_of(&users[4])[5..7], ["2".to_owned(), "1".to_owned()]); // sale twice, 6 s apart
    assert_eq!(line_of(&users[29])[5..7], ["0".to_owned(), "0".to_owned()]);
    assert_eq!(line_of(&users[29])[7], "");

    // LINE's own numbers, from what the fake's users did: 22 opened the push campaign, 5 tapped its link.
    for (i, u) in users.iter().enumerate().take(22) {
        assert!(
            env.fake()
                .interact(push.as_str(), u, Interaction::Impression)
        );
        if i < 5 {
            let click = Interaction::Click {
                seq: 1,
                url: sale_urls[i].clone(),
            };
            assert!(env.fake().interact(push.as_str(), u, click));
        }
    }
    assert_eq!(
        insight::refresh_due(&env.ctx, &env.line_client)
            .await
            .unwrap(),
        2
    );
    let p = insight::stored(&env.ctx, &push).await.unwrap().unwrap();
    assert_eq!(
        (p.state, p.unique_impression, p.unique_click),
        (InsightState::Reported, Count::Value(22), Count::Value(5))
    );
    // 15 recipients: LINE says nothing, and that is what is stored (not zero).
    let m = insight::stored(&env.ctx, &multicast)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (m.state, m.unique_impression, m.unique_click),
        (
            InsightState::TooFewToReport,
            Count::TooFewToReport,
            Count::TooFewToReport
        )
    );
    // At most once an hour per campaign.
    assert_eq!(
        insight::refresh_due(&env.ctx, &env.line_client)
            .await
            .unwrap(),
        0
    );

    assert_eq!(redirect.app.buffer.stats.shed.load(Ordering::Relaxed), 0);
    redirect.shutdown().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redirect_binary_serves_clicks_and_exits_cleanly_on_sigterm() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let env = TestEnv::start_with(
        EnvOptions::default()
            .set("SEGCAST_CLICK_KEYS", format!("k1:{KEY_B64}"))
            .set("SEGCAST_CLICK_BASE_URL", &base),
    )
    .await
    .unwrap();
    let target = "https://shop.example.com/binary";
    let id = env
        .campaign_with_links(
            json!([{"type": "text", "text": "Now: {{link:now}}"}]),
            BTreeMap::from([("now".into(), target.into())]),
            "SELECT 'U0123456789abcdef0123456789abcdef' AS user_id",
            false,
        )
        .await
        .unwrap();
    env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    let text = env.fake().messages_to(USER)[0][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = first_url(&text);
    assert!(url.starts_with(&format!("{base}/c/")), "{url}");

    let mut svc = Service::spawn(
        &env,
        "segcast-click-redirect",
        &[("PORT", port.to_string())],
    )
    .unwrap();
    let http = no_redirects();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the redirect did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..5 {
        assert_redirects_to(&http, &url, target, &[("user-agent", LINE_UA)]).await;
    }
    assert_404(&http, &format!("{base}/c/nope")).await;
    // SIGTERM (what Cloud Run sends): it stops, publishes what it holds, and exits 0.
    let pid = svc.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = svc.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    let deadline = tokio::time::Instant::now() + MINUTE;
    loop {
        let s = analytics::campaign_clicks(&env.ctx, &id).await.unwrap();
        if s.raw_clicks == 5 {
            // One recipient, multicast: clicks counted, nobody attributed.
            assert_eq!((s.delivered, s.clicks, s.unique_clickers), (1, 5, None));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_content_is_refused_where_links_cannot_be_signed() {
    let env = TestEnv::start().await.unwrap();
    let err = env
        .campaign_with_links(
            json!([{"type": "text", "text": "Sale: {{link:sale}}"}]),
            BTreeMap::from([("sale".into(), "https://shop.example.com/".into())]),
            "SELECT 'U0123456789abcdef0123456789abcdef' AS user_id",
            false,
        )
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("SEGCAST_CLICK_KEYS"), "{err:#}");
    env.stop().await;
}

// --- The redirect's defences (no emulator needed: fixed targets, a counting publisher). ---

const CAMPAIGN: &str = "c_defence";
const TARGET: &str = "https://shop.example.com/ok";
const USER: &str = "U0123456789abcdef0123456789abcdef";

struct Local {
    redirect: Redirect,
    keys: Keys,
    http: reqwest::Client,
}

async fn local(publisher: Arc<dyn ClickPublisher>, opts: BufferOptions) -> Local {
    let keys = Keys::single("k1", KEY);
    let links = StaticLinks(HashMap::from([
        ((CAMPAIGN.to_owned(), "ok".to_owned()), TARGET.to_owned()),
        (
            (CAMPAIGN.to_owned(), "bad".to_owned()),
            "javascript:alert(1)".to_owned(),
        ),
    ]));
    let stop = CancellationToken::new();
    let (buffer, flusher) = ClickBuffer::start(publisher, opts, stop.clone());
    let app = ClickApp {
        keys: keys.clone(),
        targets: Arc::new(Targets::new(Arc::new(links))),
        buffer,
        refused: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut redirect = Redirect::serve(listener, app, stop);
    redirect.tasks.push(flusher);
    Local {
        redirect,
        keys,
        http: no_redirects(),
    }
}

fn claims(link: &str, expires_at: u64) -> Claims {
    Claims {
        campaign: CampaignId::parse(CAMPAIGN).unwrap(),
        link: link.into(),
        recipient: Some(UserId::parse(USER).unwrap()),
        expires_at,
    }
}

/// Rewrites one field of a token's payload, keeping its MAC (what a tamperer can do without the key).
fn tamper(token: &str, field: usize, value: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = b64.decode(token).unwrap();
    let (payload, tag) = bytes.split_at(bytes.len() - 16);
    let mut fields: Vec<String> = std::str::from_utf8(payload)
        .unwrap()
        .split('|')
        .map(str::to_owned)
        .collect();
    fields[field] = value.to_owned();
    let mut out = fields.join("|").into_bytes();
    out.extend_from_slice(tag);
    b64.encode(out)
}

async fn assert_404(http: &reqwest::Client, url: &str) {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 404, "{url}");
    assert!(r.headers().get("location").is_none(), "{url}");
    assert_eq!(r.text().await.unwrap(), "Not found\n", "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_tampered_and_wrong_key_tokens_get_a_plain_404() {
    let publisher = Arc::new(CountingPublisher::default());
    let l = local(publisher.clone(), BufferOptions::default()).await;
    let base = &l.redirect.url;
    let far = unix_now() + 86_400;
    let good = l.keys.sign(&claims("ok", far));
    assert_redirects_to(&l.http, &format!("{base}/c/{good}"), TARGET, &[]).await;

    // Expired (a second ago).
    let expired = l.keys.sign(&claims("ok", unix_now() - 1));
    assert_404(&l.http, &format!("{base}/c/{expired}")).await;
    // Signed with another key under our key id, and with a key id we do not have.
    let forged = Keys::single("k1", b"an-attacker-key-an-attacker-key!").sign(&claims("ok", far));
    assert_404(&l.http, &format!("{base}/c/{forged}")).await;
    let wrong_kid = Keys::single("k9", KEY).sign(&claims("ok", far));
    assert_404(&l.http, &format!("{base}/c/{wrong_kid}")).await;
    // Each field changed without re-signing: key id, campaign, link, recipient (changed and removed), expiry.
    for (field, value) in [
        (0, "k2"),
        (1, "c_other"),
        (2, "bad"),
        (3, "Uffffffffffffffffffffffffffffffff"),
        (3, ""),
        (4, "99999999999"),
    ] {
        assert_404(
            &l.http,
            &format!("{base}/c/{}", tamper(&good, field, value)),
        )
        .await;
    }
    // Truncated, extended, garbage.
    assert_404(&l.http, &format!("{base}/c/{}", &good[..good.len() - 2])).await;
    assert_404(&l.http, &format!("{base}/c/{good}AA")).await;
    assert_404(&l.http, &format!("{base}/c/{}", "A".repeat(400))).await;

    // Only the valid click was logged.
    assert_eq!(
        l.redirect.app.buffer.stats.accepted.load(Ordering::Relaxed),
        1
    );
    assert_eq!(l.redirect.app.refused.load(Ordering::Relaxed), 12);
    l.redirect.shutdown().await;
    assert_eq!(
        publisher.0.load(Ordering::Relaxed),
        1,
        "flushed at shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_redirects_anywhere_but_the_registered_target() {
    let l = local(
        Arc::new(CountingPublisher::default()),
        BufferOptions::default(),
    )
    .await;
    let base = &l.redirect.url;
    let far = unix_now() + 86_400;
    let good = l.keys.sign(&claims("ok", far));
    for path in [
        "//evil.com",
        "//evil.com/c/x",
        "/c/..%2f",
        "/c/..%2F..%2Fevil.com",
        "/c/%2F%2Fevil.com",
        "/https://evil.com",
        "/c/",
        "/c",
        "/",
        "/redirect?url=https://evil.com",
    ] {
        assert_404(&l.http, &format!("{base}{path}")).await;
    }
    // A valid token with a destination smuggled into the query or path: the registered target, or nothing.
    assert_redirects_to(
        &l.http,
        &format!("{base}/c/{good}?url=https://evil.com&next=//evil.com"),
        TARGET,
        &[],
    )
    .await;
    assert_404(&l.http, &format!("{base}/c/{good}/https://evil.com")).await;
    assert_404(&l.http, &format!("{base}/c/{good}%2F%2Fevil.com")).await;
    // A correctly signed token for a link that is not registered, and for a registered target that is not a
    // web URL.
    assert_404(
        &l.http,
        &format!("{base}/c/{}", l.keys.sign(&claims("unregistered", far))),
    )
    .await;
    assert_404(
        &l.http,
        &format!("{base}/c/{}", l.keys.sign(&claims("bad", far))),
    )
    .await;
    // The Host header does not matter either.
    let r = l
        .http
        .get(format!("{base}/c/{good}"))
        .header("host", "evil.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], TARGET);
    let health = l.http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    l.redirect.shutdown().await;
}

/// A publisher that does not answer until released (Pub/Sub being very slow).
struct Stuck {
    release: Arc<tokio::sync::Notify>,
    published: std::sync::atomic::AtomicU64,
}

impl ClickPublisher for Stuck {
    fn publish(&self, messages: Vec<Vec<u8>>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.release.notified().await;
            self.release.notify_one(); // stay released
            self.published
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_pubsub_is_stuck_clicks_are_shed_and_redirects_stay_fast() {
    let release = Arc::new(tokio::sync::Notify::new());
    let publisher = Arc::new(Stuck {
        release: release.clone(),
        published: Default::default(),
    });
    let opts = BufferOptions {
        capacity: 10,
        batch: 1,
        attempts: 1,
    };
    let l = local(publisher.clone(), opts).await;
    let url = format!(
        "{}/c/{}",
        l.redirect.url,
        l.keys.sign(&claims("ok", unix_now() + 86_400))
    );
    let started = std::time::Instant::now();
    for _ in 0..50 {
        let t = std::time::Instant::now();
        assert_redirects_to(&l.http, &url, TARGET, &[]).await;
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a redirect waited for Pub/Sub"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let stats = l.redirect.app.buffer.stats.clone();
    let (accepted, shed) = (
        stats.accepted.load(Ordering::Relaxed),
        stats.shed.load(Ordering::Relaxed),
    );
    assert_eq!(accepted + shed, 50);
    // At most the buffer plus the one batch the publisher holds.
    assert!(accepted <= 11, "accepted {accepted}");
    assert!(shed >= 39, "shed {shed}");
    // Pub/Sub recovers; shutdown flushes everything that was buffered.
    release.notify_one();
    l.redirect.shutdown().await;
    assert_eq!(publisher.published.load(Ordering::Relaxed), accepted);
    assert_eq!(stats.published.load(Ordering::Relaxed), accepted);
}
