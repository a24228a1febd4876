//! The sending scenarios (a whole campaign through the real services, timed stage by stage) and the memory
//! scenario (the same run at growing segment sizes, watching the services' peak RSS).

use crate::{chart, cores, cpu, round};
use segcast::domain::{Campaign, CampaignStatus};
use segcast_e2e::{CHANNEL, EnvOptions, Service, TestEnv, free_port, text};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Multicast,
    Push,
}

impl Mode {
    fn endpoint(self) -> &'static str {
        match self {
            Mode::Multicast => "multicast",
            Mode::Push => "push",
        }
    }
    /// LINE's per-channel limit for the endpoint (requests per second).
    fn limit(self) -> u64 {
        match self {
            Mode::Multicast => 200,
            Mode::Push => 2000,
        }
    }
    fn messages(self) -> Value {
        match self {
            Mode::Multicast => text("This week's sale starts now: 20% off everything."),
            Mode::Push => text("Hello {{name}}, this week's sale starts now: 20% off for you."),
        }
    }
}

pub struct SendRun {
    pub json: Value,
    pub rate_accuracy: Value,
}

/// Sending stages shorter than this are not judged on efficiency (see [`run`]).
const MIN_JUDGED_SENDING_S: f64 = 3.0;

impl SendRun {
    pub fn summary(&self) -> String {
        let j = &self.json;
        let unjudged = |target: &str| {
            if j[target].is_null() {
                " (not judged at this size)"
            } else {
                ""
            }
        };
        format!(
            "{} recipients in {}s due->completed; sending {}s at {} req/s = efficiency {}{}; fan-out {} recipients/s{}",
            j["recipients"],
            j["wall_s"],
            j["stages_s"]["sending"],
            j["line_requests_per_s"],
            j["efficiency"],
            unjudged("efficiency_target"),
            j["fanout_recipients_per_s"],
            unjudged("fanout_target_recipients_per_s"),
        )
    }
}

/// The services of one run as processes, with their JSON logs in files.
struct Services {
    scheduler: Service,
    handler: Service,
    /// Held for its lifetime: the delivery logs' way into BigQuery, its own process as in production (so its
    /// CPU work does not delay the fake LINE server's clock in this process).
    _log_sink: Service,
    scheduler_log: std::path::PathBuf,
}

impl Services {
    async fn start(
        env: &TestEnv,
        handler_port: u16,
        out: &Path,
        name: &str,
    ) -> anyhow::Result<Self> {
        // Settings given to the bench (`SEGCAST_MULTICAST_BATCH=5000 make bench`, say) reach the services: for
        // trying a setting against the same scenario.
        // (Not the stack's own variables, which name this run's topics, dataset and so on.)
        let tuning: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                k.starts_with("SEGCAST_")
                    && !k.starts_with("SEGCAST_STACK")
                    && !["SEGCAST_KEEP_STACKS", "SEGCAST_LOCAL_DIR"].contains(&k.as_str())
                    && !env.vars.iter().any(|(own, _)| own == k)
            })
            .collect();
        let with_tuning = |own: Vec<(&'static str, String)>| -> Vec<(&str, String)> {
            own.into_iter()
                .chain(tuning.iter().map(|(k, v)| (k.as_str(), v.clone())))
                .collect()
        };
        let mut handler = Service::spawn_logged(
            env,
            "segcast-delivery",
            &with_tuning(vec![("PORT", handler_port.to_string())]),
            Some(&out.join(format!("{name}-delivery.log"))),
        )?;
        handler
            .wait_healthy(handler_port, Duration::from_secs(20))
            .await?;
        let log_sink = Service::spawn_logged(
            env,
            "segcast-log-sink",
            &with_tuning(vec![("PORT", free_port().to_string())]),
            Some(&out.join(format!("{name}-log-sink.log"))),
        )?;
        let scheduler_log = out.join(format!("{name}-scheduler.log"));
        let scheduler = Service::spawn_logged(
            env,
            "segcast-scheduler",
            &with_tuning(vec![
                ("PORT", free_port().to_string()),
                ("SEGCAST_SCHEDULER_LOOP_MS", "200".into()),
            ]),
            Some(&scheduler_log),
        )?;
        Ok(Self {
            scheduler,
            handler,
            _log_sink: log_sink,
            scheduler_log,
        })
    }

    /// Waits for the campaign to complete, noting when each status was first seen and the peak RSS of both.
    async fn watch(
        &mut self,
        env: &TestEnv,
        campaign: &segcast::domain::CampaignId,
        t0: Instant,
    ) -> anyhow::Result<Watched> {
        let mut seen = BTreeMap::new();
        let (mut sched_kb, mut handler_kb) = (0u64, 0u64);
        let deadline = Duration::from_secs(1800);
        loop {
            sched_kb = sched_kb.max(self.scheduler.peak_rss_kb().unwrap_or(0));
            handler_kb = handler_kb.max(self.handler.peak_rss_kb().unwrap_or(0));
            let c = env.get(campaign).await?;
            seen.entry(c.status.as_str())
                .or_insert_with(|| t0.elapsed().as_secs_f64());
            if c.status.is_final() && c.completed_at.is_some() {
                anyhow::ensure!(
                    c.status == CampaignStatus::Completed,
                    "campaign ended {}: {:?}",
                    c.status,
                    c.status_reason
                );
                return Ok(Watched {
                    campaign: c,
                    seen,
                    scheduler_peak_kb: sched_kb,
                    handler_peak_kb: handler_kb,
                });
            }
            anyhow::ensure!(
                c.status != CampaignStatus::Paused,
                "campaign paused: {:?}",
                c.status_reason
            );
            anyhow::ensure!(
                t0.elapsed() < deadline,
                "campaign did not complete in {deadline:?}: {} {:?}",
                c.status,
                c.counts
            );
            if let Some(status) = self.scheduler.child.try_wait()? {
                anyhow::bail!("the scheduler exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Numeric fields of the scheduler's first log line with `message`.
    fn log_fields(&self, message: &str) -> serde_json::Map<String, Value> {
        std::fs::read_to_string(&self.scheduler_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == message)
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    }
}

struct Watched {
    campaign: Campaign,
    seen: BTreeMap<&'static str, f64>,
    scheduler_peak_kb: u64,
    handler_peak_kb: u64,
}

/// Per-second counts as one value per second from 0, the seconds without requests as 0.
fn dense(points: &[(u64, u64)]) -> Vec<u64> {
    let len = points.iter().map(|p| p.0 + 1).max().unwrap_or(0);
    let mut v = vec![0; len as usize];
    for &(s, n) in points {
        v[s as usize] += n;
    }
    v
}

fn ms_field(m: &serde_json::Map<String, Value>, key: &str) -> Option<f64> {
    m.get(key).and_then(Value::as_f64).map(|v| v / 1000.0)
}

/// One sending scenario: `n` recipients by `mode` through the release services, the fake at LINE's limits.
pub async fn run(mode: Mode, n: u64, out: &Path) -> anyhow::Result<SendRun> {
    let name = mode.endpoint();
    let handler_port = free_port();
    let env = TestEnv::start_with(EnvOptions {
        fake_line: fake_line::Config {
            // Per-recipient duplicate detection stays on; the per-request record list is not needed.
            keep_records: false,
            ..fake_line::Config::default()
        },
        run_services: false,
        log_sink: false,
        handler_port: Some(handler_port),
        ..EnvOptions::default()
    })
    .await?;
    let setup = Instant::now();
    let id = env.campaign_for_users(n, mode.messages(), false).await?;
    eprintln!(
        "   {n} synthetic users and the campaign set up in {:.1}s",
        setup.elapsed().as_secs_f64()
    );
    let mut services = Services::start(&env, handler_port, out, name).await?;
    let t0 = Instant::now();
    let t0_wall = OffsetDateTime::now_utc();
    let cpu_before = cpu::snapshot();
    let watched = services.watch(&env, &id, t0).await?;
    let cpu_s = cpu::seconds_between(&cpu_before, &cpu::snapshot());
    let c = &watched.campaign;
    let completed_at = c.completed_at.expect("checked by watch");
    let wall_s = (completed_at - t0_wall).as_seconds_f64();

    let stats = env.fake().stats();
    let timeline = stats
        .timeline
        .get(CHANNEL)
        .and_then(|m| m.get(name))
        .cloned()
        .unwrap_or_default();
    let unit = stats.units.get(id.as_str()).cloned().unwrap_or_default();
    let duplicates = unit.duplicates + unit.other_messages;
    let sending_s = (timeline.last_ms.saturating_sub(timeline.first_ms)) as f64 / 1000.0;
    // Requests after the first, over the time from the first to the last: the rate actually held.
    let rate = if sending_s > 0.0 {
        (timeline.accepted.saturating_sub(1)) as f64 / sending_s
    } else {
        0.0
    };
    let efficiency = rate / mode.limit() as f64;
    let t0_ms = (t0_wall.unix_timestamp_nanos() / 1_000_000) as u64;
    let completed_ms = (completed_at.unix_timestamp_nanos() / 1_000_000) as u64;

    let extract = services.log_fields("segment extracted and exported");
    let fanout = services.log_fields("fan-out complete");
    let settled = services.log_fields("last round settled: final counts read");
    let stats_s = ms_field(&settled, "stats_ms").unwrap_or(0.0);
    let fanout_s = ms_field(&fanout, "elapsed_ms").unwrap_or(0.0);
    let log_landing_s = (completed_ms.saturating_sub(timeline.last_ms)) as f64 / 1000.0 - stats_s;
    let fanout_rps = if fanout_s > 0.0 {
        n as f64 / fanout_s
    } else {
        0.0
    };
    let max_rate = stats.max_rate(name);
    let responses_429 = stats.responses(name, 429);

    let points: Vec<(u64, u64)> = timeline
        .per_second
        .iter()
        .map(|[s, n]| (s - timeline.first_ms / 1000, *n))
        .collect();
    let svg = chart::requests_per_second_svg(
        &format!("{name}: {n} recipients, LINE {name} requests per second"),
        &points,
        mode.limit(),
    );
    std::fs::write(out.join(format!("{name}.svg")), svg)?;

    let wall_target = (mode == Mode::Multicast && n >= 1_000_000).then_some(60.0);
    // A quick run's sending stage is over in a second or two, mostly the pipeline filling (the first batches are
    // still being published and handled): its rate says little about the rate held, so it is not judged.
    let efficiency_target = (sending_s >= MIN_JUDGED_SENDING_S).then_some(0.95);
    // The fan-out target is for the full-size campaign: a small one is mostly its fixed start-up (reading the
    // campaign and content, opening the first file, the first checkpoint).
    let fanout_target = (mode == Mode::Multicast && n >= 1_000_000).then_some(200_000.0);
    let checks = [
        ("all delivered", unit.unique == n),
        ("no duplicates", duplicates == 0),
        (
            "efficiency >= 0.95",
            efficiency_target.is_none_or(|t| efficiency >= t),
        ),
        ("never over the limit", max_rate <= mode.limit()),
        (
            "due->completed within target",
            wall_target.is_none_or(|t| wall_s <= t),
        ),
        (
            "fan-out >= 200,000 recipients/s",
            fanout_target.is_none_or(|t| fanout_rps >= t),
        ),
    ];
    let failed: Vec<&str> = checks.iter().filter(|c| !c.1).map(|c| c.0).collect();
    let rate_accuracy = json!({
        "endpoint": name,
        "limit": mode.limit(),
        "max_rate_1s": max_rate,
        "responses_429": responses_429,
        "pass": max_rate <= mode.limit() && responses_429 == 0,
    });
    let json = json!({
        "scenario": name,
        "recipients": n,
        "cores": cores(),
        "wall_s": round(wall_s, 1),
        "wall_target_s": wall_target,
        "stages_s": {
            "extract": ms_field(&extract, "snapshot_ms").map(|v| round(v, 2)),
            "export": ms_field(&extract, "export_ms").map(|v| round(v, 2)),
            "fan_out": round(fanout_s, 2),
            // Where the fan-out's time went: reading and cutting the export files (overlapped, a few files
            // ahead), encoding the batches, and waiting for Pub/Sub to confirm publishes before a checkpoint.
            "fan_out_read": ms_field(&fanout, "read_ms").map(|v| round(v, 2)),
            "fan_out_encode": ms_field(&fanout, "encode_ms").map(|v| round(v, 2)),
            "fan_out_publish_wait": ms_field(&fanout, "publish_wait_ms").map(|v| round(v, 2)),
            "first_request_after_due": round(timeline.first_ms.saturating_sub(t0_ms) as f64 / 1000.0, 2),
            "sending": round(sending_s, 2),
            "log_landing": round(log_landing_s, 2),
            "stats": round(stats_s, 2),
        },
        "status_first_seen_s": watched.seen.iter().map(|(k, v)| (k.to_string(), json!(round(*v, 1)))).collect::<serde_json::Map<_, _>>(),
        "line_requests": timeline.accepted,
        "line_requests_per_s": round(rate, 1),
        "limit_per_s": mode.limit(),
        "efficiency": round(efficiency, 3),
        "efficiency_target": efficiency_target,
        "fanout_target_recipients_per_s": fanout_target,
        "recipients_per_s_sending": round(unit.unique as f64 / sending_s.max(0.001), 0),
        "fanout_recipients_per_s": round(fanout_rps, 0),
        "delivered": unit.unique,
        "duplicates": duplicates,
        "segcast_delivered": c.counts.delivered,
        "max_rate_1s": max_rate,
        "responses_429": responses_429,
        "scheduler_peak_rss_mb": round(watched.scheduler_peak_kb as f64 / 1024.0, 1),
        "handler_peak_rss_mb": round(watched.handler_peak_kb as f64 / 1024.0, 1),
        "cpu_s_by_component": cpu_s,
        "chart": format!("{name}.svg"),
        // Requests LINE (the fake) accepted in each clock second from the first request's: the chart's data.
        "requests_per_second": dense(&points),
        "failed_checks": failed,
        "pass": failed.is_empty(),
    });
    drop(services);
    env.stop().await;
    Ok(SendRun {
        json,
        rate_accuracy,
    })
}

/// Peak RSS of the scheduler and the delivery handler for each segment size. LINE's limits are lifted (fake
/// and client) so that millions of recipients take seconds, not minutes: memory depends on the segment
/// size and the batches in flight, not on the rate.
pub async fn memory(sizes: &[u64], out: &Path) -> anyhow::Result<Vec<(String, Value)>> {
    const TARGET_MB: f64 = 64.0;
    let mut results = Vec::new();
    let mut peaks = Vec::new();
    let mut batch = 1u64;
    for &n in sizes {
        let handler_port = free_port();
        let env = TestEnv::start_with(
            EnvOptions {
                fake_line: fake_line::Config {
                    keep_records: false,
                    rate_limits_enabled: false,
                    ..fake_line::Config::default()
                },
                run_services: false,
                log_sink: false,
                handler_port: Some(handler_port),
                ..EnvOptions::default()
            }
            .set("SEGCAST_LINE_MULTICAST_RATE", 1_000_000),
        )
        .await?;
        let id = env
            .campaign_for_users(n, Mode::Multicast.messages(), false)
            .await?;
        batch = env.ctx.settings.delivery.multicast_batch as u64;
        let mut services = Services::start(&env, handler_port, out, &format!("memory-{n}")).await?;
        let t0 = Instant::now();
        let watched = services.watch(&env, &id, t0).await?;
        anyhow::ensure!(
            watched.campaign.counts.delivered == n,
            "delivered {} of {n}",
            watched.campaign.counts.delivered
        );
        let sched = watched.scheduler_peak_kb as f64 / 1024.0;
        let handler = watched.handler_peak_kb as f64 / 1024.0;
        peaks.push((n, sched, handler));
        let pass = sched <= TARGET_MB && handler <= TARGET_MB;
        results.push((
            format!("{n} recipients: scheduler {sched:.1} MB, handler {handler:.1} MB"),
            json!({
                "scenario": "memory",
                "recipients": n,
                "scheduler_peak_rss_mb": round(sched, 1),
                "handler_peak_rss_mb": round(handler, 1),
                "target_mb": TARGET_MB,
                "elapsed_s": round(t0.elapsed().as_secs_f64(), 1),
                "cores": cores(),
                "pass": pass,
            }),
        ));
        drop(services);
        env.stop().await;
    }
    if peaks.len() >= 2 {
        let (first, last) = (peaks[0], peaks[peaks.len() - 1]);
        // Both processes hold a bounded window of batches, and a segment of fewer batches than that never fills
        // it, so flatness is judged from the first size that does. The handler holds the batches in flight, at
        // most 2 per subscription with the Pub/Sub emulator (20 for 10 topics); the scheduler holds the batches
        // read ahead and the publishes not yet confirmed, at most two checkpoint groups
        // (2 x CHECKPOINT_EVERY batches).
        // (A baseline is always smaller than the last size: if only the last fills the window, judge from the
        // smallest, the strict reading.)
        let filling = |batches: u64| {
            peaks
                .iter()
                .find(|p| p.0 >= batches * batch && p.0 < last.0)
                .copied()
                .unwrap_or(first)
        };
        let full_s = filling(2 * segcast::pipeline::fanout::CHECKPOINT_EVERY);
        let full = filling(20);
        let growth_s = last.1 - full_s.1;
        let growth_h = last.2 - full.2;
        // Flat: a segment many times bigger costs at most a few MB more (allocator noise).
        let flat = growth_s <= 8.0 && growth_h <= 8.0;
        let all_under = peaks.iter().all(|p| p.1 <= TARGET_MB && p.2 <= TARGET_MB);
        results.push((
            format!(
                "scheduler {} -> {} recipients {growth_s:+.1} MB; handler {} -> {} {growth_h:+.1} MB (smallest: scheduler {:.1}, handler {:.1} MB)",
                full_s.0, last.0, full.0, last.0, first.1, first.2
            ),
            json!({
                "scenario": "memory_flatness",
                "smallest_recipients": first.0,
                "smallest_scheduler_peak_rss_mb": round(first.1, 1),
                "smallest_handler_peak_rss_mb": round(first.2, 1),
                "scheduler_from_recipients": full_s.0,
                "to_recipients": last.0,
                "scheduler_growth_mb": round(growth_s, 1),
                "handler_from_recipients": full.0,
                "handler_growth_mb": round(growth_h, 1),
                "note": "growth is judged from the first size that fills each process's bounded window: the handler's batches in flight (at most 20 with the emulator), the scheduler's unconfirmed publishes (at most 2 x CHECKPOINT_EVERY batches)",
                "cores": cores(),
                "pass": flat && all_under,
            }),
        ));
    }
    Ok(results)
}
