//! End-to-end tests of the delivery pipeline on the local emulator stack: each test is its own deployment
//! (namespace, dataset, topics, fake LINE server) on one shared stack. The fake LINE server's records are the
//! judge: a recipient accepted twice for a campaign is a duplicate.

use fake_line::Faults;
use segcast::domain::{Batch, BatchId, CampaignStatus, DeliveryMode, Recipient, UserId};
use segcast::pipeline::records::{BatchDone, FanoutCheckpoint};
use segcast::pipeline::{claim, control};
use segcast_e2e::{CHANNEL, EnvOptions, TestEnv, text};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn personalised() -> serde_json::Value {
    serde_json::json!([{ "type": "text", "text": "Hi {{name}}, your coupon is ready." }])
}

/// An environment whose fake LINE answers every send with 429, and whose pushes give up after `budget_s`.
async fn rate_limited_env(budget_s: u64) -> TestEnv {
    let faults = Faults {
        p_429_burst: 1.0,
        burst_429_ms: 100,
        ..Faults::default()
    };
    let opts = EnvOptions {
        fake_line: fake_line::Config {
            faults,
            ..Default::default()
        },
        ..Default::default()
    }
    .set("SEGCAST_PUSH_BUDGET_SECONDS", budget_s);
    TestEnv::start_with(opts).await.unwrap()
}

/// A 20,000-recipient campaign sending slowly (500-recipient batches at 5 multicast requests/s), driven until
/// LINE has accepted 2,000 of them.
async fn slow_campaign_under_way(opts: EnvOptions) -> (TestEnv, segcast::domain::CampaignId) {
    let opts = opts
        .set("SEGCAST_MULTICAST_BATCH", 500)
        .set("SEGCAST_LINE_MULTICAST_RATE", 5);
    let env = TestEnv::start_with(opts).await.unwrap();
    let id = env
        .campaign_for_users(20_000, text("hello"), false)
        .await
        .unwrap();
    env.run_until(&id, "s", 2 * MINUTE, |_| {
        env.fake().stats().recipients_accepted >= 2_000
    })
    .await
    .unwrap();
    (env, id)
}

/// Asserts the fake LINE server accepted each of `expected` recipients exactly once for the campaign.
fn assert_delivered_once(env: &TestEnv, campaign: &str, expected: u64) {
    let stats = env.fake().stats();
    let unit = stats.units.get(campaign).cloned().unwrap_or_default();
    assert_eq!(
        unit.unique, expected,
        "recipients LINE accepted for {campaign}"
    );
    assert_eq!(
        unit.duplicates + unit.other_messages,
        0,
        "recipients LINE accepted twice for {campaign}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multicast_campaign_reaches_every_target_once_and_counts_add_up() {
    let env = TestEnv::start().await.unwrap();
    let id = env
        .campaign_for_users(3_000, text("hello"), false)
        .await
        .unwrap();
    let c = env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    assert_eq!(c.status, CampaignStatus::Completed);
    assert_eq!(
        (c.counts.targeted, c.counts.delivered, c.counts.failed),
        (3_000, 3_000, 0)
    );
    assert_eq!(c.round, 1);
    assert_delivered_once(&env, id.as_str(), 3_000);
    // One batch, sent in requests of at most 500 recipients: 6 multicast requests, no push.
    let stats = env.fake().stats();
    assert_eq!(stats.responses("multicast", 200), 6);
    assert_eq!(stats.responses("push", 200), 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personalised_content_goes_by_push_rendered_per_recipient() {
    let env = TestEnv::start().await.unwrap();
    let id = env
        .campaign_for_users(300, personalised(), false)
        .await
        .unwrap();
    let c = env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered),
        (CampaignStatus::Completed, 300)
    );
    let stats = env.fake().stats();
    assert_eq!(stats.responses("push", 200), 300);
    assert_eq!(stats.responses("multicast", 200), 0);
    assert_delivered_once(&env, id.as_str(), 300);
    // Each recipient got a different (rendered) message.
    let hashes: std::collections::HashSet<String> = env
        .fake()
        .deliveries()
        .iter()
        .map(|r| r.messages_sha256.clone())
        .collect();
    assert_eq!(hashes.len(), 300);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_null_and_malformed_user_ids_are_counted_and_never_sent() {
    let env = TestEnv::start().await.unwrap();
    let table = env.users_table("users", 100).await.unwrap();
    let segment = format!(
        "SELECT user_id FROM `{table}` UNION ALL SELECT user_id FROM `{table}` WHERE name < 'member3' \
         UNION ALL SELECT CAST(NULL AS STRING) AS user_id UNION ALL SELECT 'not-a-user' AS user_id \
         UNION ALL SELECT 'not-a-user' AS user_id UNION ALL SELECT 'U0123' AS user_id \
         UNION ALL SELECT 'UABCDEF0123456789ABCDEF0123456789' AS user_id"
    );
    let id = env.campaign(text("hello"), &segment, false).await.unwrap();
    let c = env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    // 100 distinct valid; invalid: NULL, 'not-a-user', 'U0123', the upper-case one.
    assert_eq!(c.counts.targeted, 104);
    assert_eq!(c.counts.invalid, 4);
    assert_eq!(c.counts.delivered, 100);
    assert_eq!(c.counts.failed_by_reason.get("invalid_user_id"), Some(&4));
    assert_eq!(c.counts.delivered + c.counts.failed, c.counts.targeted);
    assert_delivered_once(&env, id.as_str(), 100);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_validates_and_sends_nothing() {
    // Two batches (1,000 + 500), so that validation per batch shows.
    let env = TestEnv::start_with(EnvOptions::default().set("SEGCAST_MULTICAST_BATCH", 1000))
        .await
        .unwrap();
    let id = env
        .campaign_for_users(1_500, text("hello"), true)
        .await
        .unwrap();
    let c = env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered, c.counts.failed),
        (CampaignStatus::Completed, 1_500, 0)
    );
    let stats = env.fake().stats();
    assert_eq!(stats.recipients_accepted, 0, "a dry run sends nothing");
    assert!(
        stats.responses("validate", 200) >= 2,
        "validate was called per batch: {:?}",
        stats.requests
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_racing_claim_once_and_deliver_once() {
    let env = TestEnv::start().await.unwrap();
    let id = env
        .campaign_for_users(5_000, text("hello"), false)
        .await
        .unwrap();
    // Racing claims: exactly one of many concurrent claims wins.
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let ctx = env.ctx.clone();
            let id = id.clone();
            tokio::spawn(async move {
                claim::claim(&ctx, &id, &format!("racer-{i}"), MINUTE)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claims = Vec::new();
    for r in racers {
        claims.push(r.await.unwrap());
    }
    let winners: Vec<_> = claims.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    let winner = winners[0].lease.clone().unwrap().owner;
    claim::release(&env.ctx, &id, &winner).await.unwrap();
    // Two schedulers driving the campaign at the same time.
    let (a, b) = tokio::join!(
        env.run_until(&id, "scheduler-a", 2 * MINUTE, |c| c.completed_at.is_some()),
        env.run_until(&id, "scheduler-b", 2 * MINUTE, |c| c.completed_at.is_some()),
    );
    let c = a.unwrap();
    b.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered),
        (CampaignStatus::Completed, 5_000)
    );
    assert_delivered_once(&env, id.as_str(), 5_000);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_500s_timeouts_and_429_bursts_still_deliver_each_recipient_once() {
    let faults = Faults {
        seed: Some(7),
        p_500: 0.05,
        p_timeout: 0.02,
        p_lost_response: 0.05,
        p_429_burst: 0.005,
        burst_429_ms: 300,
        timeout_hang_ms: 3_000,
        ..Faults::default()
    };
    let opts = EnvOptions {
        fake_line: fake_line::Config {
            faults,
            ..Default::default()
        },
        ..Default::default()
    }
    .set("SEGCAST_LINE_TIMEOUT_MS", 1_000);
    let env = TestEnv::start_with(opts).await.unwrap();
    let id = env
        .campaign_for_users(1_000, personalised(), false)
        .await
        .unwrap();
    let c = env.run_to_end(&id, 4 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered, c.counts.failed),
        (CampaignStatus::Completed, 1_000, 0)
    );
    assert_delivered_once(&env, id.as_str(), 1_000);
    let stats = env.fake().stats();
    assert!(
        stats.faults.lost_response > 0 && stats.faults.error_500 > 0,
        "faults were injected: {:?}",
        stats.faults
    );
    assert!(
        stats.retry_key_conflicts > 0,
        "lost responses were retried with the same key and answered 409"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_quota_pauses_the_campaign_and_it_resumes_when_raised() {
    let fake = fake_line::Config {
        quotas: [(CHANNEL.to_owned(), 2_500)].into(),
        ..Default::default()
    };
    let opts = EnvOptions {
        fake_line: fake,
        ..Default::default()
    }
    .set("SEGCAST_MULTICAST_BATCH", 500);
    let env = TestEnv::start_with(opts).await.unwrap();
    let id = env
        .campaign_for_users(5_000, text("hello"), false)
        .await
        .unwrap();
    let c = env
        .run_until(&id, "s", 2 * MINUTE, |c| c.status == CampaignStatus::Paused)
        .await
        .unwrap();
    assert_eq!(c.status_reason.as_deref(), Some("quota_exhausted"));
    // Nothing more goes out while paused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = env.fake().stats().recipients_accepted;
    assert_eq!(accepted, 2_500, "sent up to the quota and no further");
    assert!(
        !control::parked(&env.ctx.gcp.datastore, &id)
            .await
            .unwrap()
            .is_empty(),
        "unsent batches are parked"
    );
    // The operator raises the quota and resumes.
    env.fake().set_quota(CHANNEL, None);
    let before_resume = time::OffsetDateTime::now_utc();
    control::resume(&env.ctx, &id).await.unwrap();
    // A handler that saw the quota error before the resume but writes its pause after it (a slow, contended
    // Datastore transaction) must not pause the campaign again.
    let ds = &env.ctx.gcp.datastore;
    let after_late_write = segcast::catalog::change_campaign(ds, id.as_str(), |c| {
        c.pause_for_quota(before_resume, env.ctx.clock.now());
        Ok(())
    })
    .await
    .unwrap();
    assert_ne!(
        after_late_write.status,
        CampaignStatus::Paused,
        "a quota error older than the resume does not pause"
    );
    assert_ne!(env.get(&id).await.unwrap().status, CampaignStatus::Paused);
    let c = env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered),
        (CampaignStatus::Completed, 5_000)
    );
    assert_delivered_once(&env, id.as_str(), 5_000);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_batches_and_resume_delivers_the_rest_once() {
    let (env, id) = slow_campaign_under_way(EnvOptions::default()).await;
    control::pause(&env.ctx, &id, "marketer paused")
        .await
        .unwrap();
    // Batches already past their status check finish: at most 20 pushes in flight (10 subscriptions x 2),
    // waiting for slots at 5 requests/s.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let at_pause = env.fake().stats().recipients_accepted;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        env.fake().stats().recipients_accepted,
        at_pause,
        "nothing is sent while paused"
    );
    assert!(at_pause < 20_000);
    control::resume(&env.ctx, &id).await.unwrap();
    let c = env.run_to_end(&id, 3 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered),
        (CampaignStatus::Completed, 20_000)
    );
    assert_delivered_once(&env, id.as_str(), 20_000);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_campaign_settles_every_target_as_delivered_or_canceled() {
    let opts = EnvOptions::default()
        .set("SEGCAST_PUSH_BUDGET_SECONDS", 4)
        .set("SEGCAST_ACK_DEADLINE_SECONDS", 10);
    let (env, id) = slow_campaign_under_way(opts).await;
    control::cancel(&env.ctx, &id, Duration::from_secs(10))
        .await
        .unwrap();
    let c = env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    assert_eq!(c.status, CampaignStatus::Canceled);
    let sent = env
        .fake()
        .stats()
        .units
        .get(id.as_str())
        .cloned()
        .unwrap_or_default();
    assert!(sent.unique < 20_000, "cancel stopped the sending");
    assert_eq!(
        c.counts.delivered, sent.unique,
        "segcast's count equals LINE's"
    );
    assert_eq!(
        c.counts
            .failed_by_reason
            .get("canceled")
            .copied()
            .unwrap_or(0),
        20_000 - sent.unique
    );
    assert_eq!(c.counts.delivered + c.counts.failed, c.counts.targeted);
    assert_eq!(sent.duplicates, 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_rate_limited_past_the_budget_go_out_in_a_diff_retry_round() {
    // Every request answers 429 for the first seconds: the handler backs off until its budget ends and logs the
    // recipients as retryable; the EXCEPT DISTINCT diff sends them in round 2 once LINE takes requests again.
    let env = rate_limited_env(2).await;
    let id = env
        .campaign_for_users(2_000, text("hello"), false)
        .await
        .unwrap();
    env.run_until(&id, "s", 2 * MINUTE, |c| c.round == 2)
        .await
        .unwrap();
    env.fake().set_faults(Faults::default());
    let c = env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered, c.counts.failed),
        (CampaignStatus::Completed, 2_000, 0)
    );
    assert!(c.round >= 2, "it took a diff-retry round");
    assert_delivered_once(&env, id.as_str(), 2_000);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_are_bounded_and_what_is_left_fails_with_retries_exhausted() {
    let env = rate_limited_env(1).await;
    let id = env
        .campaign_for_users(500, text("hello"), false)
        .await
        .unwrap();
    let c = env.run_to_end(&id, 3 * MINUTE).await.unwrap();
    assert_eq!(c.status, CampaignStatus::Completed);
    assert_eq!(c.round, c.max_rounds);
    assert_eq!(c.counts.delivered, 0);
    assert_eq!(
        c.counts.failed_by_reason.get("retries_exhausted"),
        Some(&500)
    );
    assert_eq!(env.fake().stats().recipients_accepted, 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_done_batch_is_acknowledged_without_sending() {
    let env = TestEnv::start().await.unwrap();
    let id = env
        .campaign_for_users(1_000, text("hello"), false)
        .await
        .unwrap();
    env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    let done: Vec<BatchDone> = env
        .ctx
        .gcp
        .datastore
        .query_eq(
            "campaign_id",
            segcast::gcp::datastore::Indexed::Str(id.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    let requests_before = env.fake().stats().requests.clone();
    // Pub/Sub delivers the done batch again.
    let batch = Batch {
        id: BatchId::new(&id, 1, 0, 0),
        campaign_id: id.clone(),
        round: 1,
        channel_id: env.channel.clone(),
        mode: DeliveryMode::Multicast,
        dry_run: false,
        messages: segcast::domain::Messages::parse(&text("hello")).unwrap(),
        recipients: vec![Recipient {
            user_id: UserId::parse("Uc4ca4238a0b923820dcc509a6f75849b").unwrap(),
            attrs: None,
        }],
    };
    assert_eq!(batch.id.as_str(), done[0].batch_id);
    let topic = env.ctx.settings.delivery_topic(0);
    env.ctx
        .gcp
        .pubsub
        .publish(&topic, serde_json::to_vec(&batch).unwrap(), &[])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.fake().stats().requests,
        requests_before,
        "no request reached LINE"
    );
    let ckpt: FanoutCheckpoint = env
        .ctx
        .gcp
        .datastore
        .get(&FanoutCheckpoint::key_for(&id, 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ckpt.batches, ckpt.recipients, ckpt.done), (1, 1_000, true));
    assert_delivered_once(&env, id.as_str(), 1_000);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_mid_fan_out_is_resumed_by_another_without_resending_or_skipping() {
    use segcast_e2e::{Service, free_port};
    let opts = EnvOptions::default()
        .set("SEGCAST_MULTICAST_BATCH", 100)
        .set("SEGCAST_FANOUT_RATE", 100);
    let env = TestEnv::start_with(opts).await.unwrap();
    let id = env
        .campaign_for_users(30_000, text("hello"), false)
        .await
        .unwrap();
    let sched = |port: u16| {
        let extra = [
            ("PORT", port.to_string()),
            ("SEGCAST_SCHEDULER_LOOP_MS", "300".to_string()),
            ("SEGCAST_LEASE_SECONDS", "3".to_string()),
            ("SEGCAST_TICK_BUDGET_SECONDS", "20".to_string()),
        ];
        Service::spawn(&env, "segcast-scheduler", &extra).unwrap()
    };
    let mut first = sched(free_port());
    let key = FanoutCheckpoint::key_for(&id, 1);
    let ds = env.ctx.gcp.datastore.clone();
    let deadline = tokio::time::Instant::now() + MINUTE;
    loop {
        let ckpt: Option<FanoutCheckpoint> = ds.get(&key).await.unwrap();
        if ckpt.is_some_and(|c| c.batches >= 100 && !c.done) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fan-out did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill(); // kill -9 in the middle of the fan-out
    let killed_at: FanoutCheckpoint = ds.get(&key).await.unwrap().unwrap();
    assert!(!killed_at.done);
    let _second = sched(free_port());
    // Only the second scheduler process drives the campaign now; the test just watches.
    let deadline = tokio::time::Instant::now() + 2 * MINUTE;
    let c = loop {
        let c = env.get(&id).await.unwrap();
        if c.completed_at.is_some() {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not completed: {} {:?}",
            c.status,
            c.counts
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (c.status, c.counts.delivered),
        (CampaignStatus::Completed, 30_000)
    );
    let ckpt: FanoutCheckpoint = ds.get(&key).await.unwrap().unwrap();
    assert_eq!(
        ckpt.resumed_at.len(),
        1,
        "resumed once, from the checkpoint"
    );
    assert!(
        ckpt.resumed_at[0] >= 50,
        "resumed from where it was, not from the start: {:?}",
        ckpt.resumed_at
    );
    assert_eq!(
        (ckpt.batches, ckpt.recipients),
        (300, 30_000),
        "each batch counted once across the two runs"
    );
    assert_delivered_once(&env, id.as_str(), 30_000);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_killed_between_line_accepting_and_acking_never_causes_a_second_acceptance() {
    use segcast_e2e::{Service, free_port};
    let port = free_port();
    let faults = Faults {
        latency_ms: fake_line::Latency::fixed(400),
        ..Faults::default()
    };
    let opts = EnvOptions {
        fake_line: fake_line::Config {
            faults,
            ..Default::default()
        },
        run_services: false,
        handler_port: Some(port),
        ..Default::default()
    }
    // 16 requests at a time of 400 ms: the 400 recipients take ~10 s, so the kill below lands mid-batch even on a
    // loaded machine (with 64 at a time they could all be accepted before the test saw the first 50).
    .set("SEGCAST_BATCH_CONCURRENCY", 16);
    let env = TestEnv::start_with(opts).await.unwrap();
    let id = env
        .campaign_for_users(400, personalised(), false)
        .await
        .unwrap();
    let handler =
        || Service::spawn(&env, "segcast-delivery", &[("PORT", port.to_string())]).unwrap();
    let mut first = handler();
    // Drive extraction and fan-out, then wait until LINE has accepted some pushes of unfinished batches.
    env.run_until(&id, "s", MINUTE, |c| c.status == CampaignStatus::Delivering)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + MINUTE;
    while env.fake().stats().recipients_accepted < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill(); // kill -9: requests accepted by LINE, batches neither logged nor acked
    let accepted_at_kill = env.fake().stats().recipients_accepted;
    assert!(accepted_at_kill < 400, "killed mid-batch");
    let _second = handler(); // Pub/Sub redelivers the unacked batches to the new handler
    let c = env.run_to_end(&id, 3 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered),
        (CampaignStatus::Completed, 400)
    );
    assert_delivered_once(&env, id.as_str(), 400);
    assert!(
        env.fake().stats().retry_key_conflicts > 0,
        "the redelivered batches repeated accepted retry keys (409)"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_delivers_the_content_to_listed_users_now_and_leaves_the_campaign_alone() {
    let env = TestEnv::start().await.unwrap();
    let id = env
        .campaign_for_users(10, personalised(), false)
        .await
        .unwrap();
    control::pause(&env.ctx, &id, "not yet").await.ok();
    let me = UserId::parse("U0123456789abcdef0123456789abcdef").unwrap();
    let attrs = serde_json::json!({"name": "Aki"})
        .as_object()
        .unwrap()
        .clone();
    let results = control::test_send(
        &env.ctx.gcp.datastore,
        &env.line_client,
        &id,
        std::slice::from_ref(&me),
        &attrs,
    )
    .await
    .unwrap();
    assert!(results[0].delivered, "{results:?}");
    let records = env.fake().deliveries();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].recipients, vec![me.to_string()]);
    assert_eq!(
        records[0].unit, None,
        "test sends stay out of the campaign's LINE statistics"
    );
    assert_eq!(env.get(&id).await.unwrap().counts.delivered, 0);
    // Too many users, or none, is refused before anything is sent.
    let many: Vec<UserId> = (0..21).map(|_| me.clone()).collect();
    assert!(
        control::test_send(&env.ctx.gcp.datastore, &env.line_client, &id, &many, &attrs)
            .await
            .is_err()
    );
    assert!(
        control::test_send(&env.ctx.gcp.datastore, &env.line_client, &id, &[], &attrs)
            .await
            .is_err()
    );
    assert_eq!(env.fake().deliveries().len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_redelivered_after_a_crash_into_429s_past_its_budget_never_resends_accepted_recipients()
 {
    // A handler is killed after LINE accepted part of its batches. The batches come back while LINE answers
    // every send 429 for longer than a push's budget: the accepted requests' retries meet 429s too, which
    // says nothing about the earlier attempt with the same retry key. They must not be logged `retryable`
    // (a diff-retry round would send them again, with new keys): they stay unknown until LINE answers them.
    use segcast_e2e::{Service, free_port};
    let port = free_port();
    let faults = Faults {
        latency_ms: fake_line::Latency::fixed(400),
        ..Faults::default()
    };
    let opts = EnvOptions {
        fake_line: fake_line::Config {
            faults,
            ..Default::default()
        },
        run_services: false,
        handler_port: Some(port),
        ..Default::default()
    }
    .set("SEGCAST_PUSH_BUDGET_SECONDS", 3)
    // 16 requests at a time of 400 ms: the 400 recipients take ~10 s, so the kill below lands mid-batch even on a
    // loaded machine (with 64 at a time they could all be accepted before the test saw the first 50).
    .set("SEGCAST_BATCH_CONCURRENCY", 16);
    let env = TestEnv::start_with(opts).await.unwrap();
    let id = env
        .campaign_for_users(400, personalised(), false)
        .await
        .unwrap();
    let handler =
        || Service::spawn(&env, "segcast-delivery", &[("PORT", port.to_string())]).unwrap();
    let mut first = handler();
    env.run_until(&id, "s", MINUTE, |c| c.status == CampaignStatus::Delivering)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + MINUTE;
    while env.fake().stats().recipients_accepted < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill(); // kill -9: accepted requests neither logged nor acked
    let accepted_at_kill = env.fake().stats().recipients_accepted;
    assert!(accepted_at_kill < 400, "killed mid-batch");
    // A 429 storm longer than the push budget, while Pub/Sub redelivers to a new handler.
    env.fake().set_faults(Faults {
        p_429_burst: 1.0,
        burst_429_ms: 100,
        ..Faults::default()
    });
    let _second = handler();
    let storm_end = tokio::time::Instant::now() + Duration::from_secs(10);
    env.run_until(&id, "s", MINUTE, |_| {
        tokio::time::Instant::now() >= storm_end
    })
    .await
    .unwrap();
    env.fake().set_faults(Faults::default());
    let c = env.run_to_end(&id, 3 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered, c.counts.failed),
        (CampaignStatus::Completed, 400, 0)
    );
    assert_delivered_once(&env, id.as_str(), 400);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_left_retrying_by_a_killed_scheduler_goes_on_to_its_next_round() {
    // A scheduler moves a settled round to `retrying`, exports the owed recipients, then moves the campaign to
    // the next round's fan-out. Killed in between (or paused there and resumed), it leaves the campaign in
    // `retrying`: the next scheduler must carry on from there.
    let env = rate_limited_env(2).await;
    let id = env
        .campaign_for_users(2_000, text("hello"), false)
        .await
        .unwrap();
    env.run_until(&id, "s", 2 * MINUTE, |c| {
        c.status == CampaignStatus::Delivering
    })
    .await
    .unwrap();
    // What the killed scheduler left: `retrying`, round 1, its lease gone.
    env.ctx
        .gcp
        .datastore
        .update::<segcast::domain::Campaign, _>(id.as_str(), |c| {
            Ok(c.map(|mut c| {
                c.status = CampaignStatus::Retrying;
                c.lease = None;
                c
            }))
        })
        .await
        .unwrap();
    env.run_until(&id, "another-scheduler", 2 * MINUTE, |c| c.round == 2)
        .await
        .unwrap();
    env.fake().set_faults(Faults::default());
    let c = env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered, c.counts.failed),
        (CampaignStatus::Completed, 2_000, 0)
    );
    assert_delivered_once(&env, id.as_str(), 2_000);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_whose_batches_pub_sub_lost_is_re_driven() {
    // The round's batches are published, then lost by Pub/Sub: here the delivery subscriptions are deleted and
    // created again with their backlog gone (an operator's re-apply; the emulator also gives up pushing a message
    // whose push target was gone for a while). A round that stops progressing is re-driven: its batches that
    // are not done are published again, and the campaign completes, each recipient once.
    use segcast::pipeline::provision;
    use segcast_e2e::{Service, free_port};
    let port = free_port();
    let opts = EnvOptions {
        run_services: false,
        handler_port: Some(port),
        ..Default::default()
    }
    .set("SEGCAST_MULTICAST_BATCH", 500)
    .set("SEGCAST_REDRIVE_SECONDS", 5);
    let env = TestEnv::start_with(opts).await.unwrap();
    let id = env
        .campaign_for_users(2_000, text("hello"), false)
        .await
        .unwrap();
    env.run_until(&id, "s", MINUTE, |c| c.status == CampaignStatus::Delivering)
        .await
        .unwrap();
    let emulator = env
        .vars
        .iter()
        .find(|(k, _)| k == "PUBSUB_EMULATOR_HOST")
        .map(|(_, v)| v.clone())
        .unwrap();
    let http = reqwest::Client::new();
    for i in 0..env.ctx.settings.delivery_topics {
        let sub = env
            .ctx
            .gcp
            .pubsub
            .subscription_path(&env.ctx.settings.delivery_subscription(i));
        let r = http
            .delete(format!("http://{emulator}/v1/{sub}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "deleting {sub}: {}", r.status());
    }
    provision::pubsub(&env.ctx, &env.handler_url).await.unwrap();
    let _handler = Service::spawn(&env, "segcast-delivery", &[("PORT", port.to_string())]).unwrap();
    let c = env.run_to_end(&id, 2 * MINUTE).await.unwrap();
    assert_eq!(
        (c.status, c.counts.delivered, c.counts.failed),
        (CampaignStatus::Completed, 2_000, 0)
    );
    assert_delivered_once(&env, id.as_str(), 2_000);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_batches_beyond_what_one_datastore_response_holds_are_all_found() {
    // A big campaign paused (or out of quota) while its batches keep arriving parks many of them, each with its
    // recipients: 60 multicast batches of 2,000 are ~6 MB, more than one Datastore response may hold (4 MB).
    // The scheduler must still find every one to re-publish on resume (it read them in one query, failed every
    // tick, and the campaign never resumed).
    use segcast::pipeline::records::ParkedBatch;
    let env = TestEnv::start().await.unwrap();
    let id = env
        .campaign_for_users(10, text("hello"), false)
        .await
        .unwrap();
    let ds = &env.ctx.gcp.datastore;
    for b in 0..60u64 {
        let recipients = (0..2_000u64)
            .map(|n| Recipient {
                user_id: UserId::parse(&format!("U{:032x}", b * 2_000 + n)).unwrap(),
                attrs: None,
            })
            .collect();
        let batch = Batch {
            id: BatchId::new(&id, 1, 0, b * 2_000),
            campaign_id: id.clone(),
            round: 1,
            channel_id: env.channel.clone(),
            mode: DeliveryMode::Multicast,
            dry_run: false,
            messages: segcast::domain::Messages::parse(&text("hello")).unwrap(),
            recipients,
        };
        ds.upsert(&ParkedBatch { batch }).await.unwrap();
    }
    let parked = control::parked(ds, &id).await.unwrap();
    assert_eq!(parked.len(), 60);
    assert_eq!(control::parked_ids(ds, &id).await.unwrap().len(), 60);
    env.stop().await;
}
