//! `make chaos`: segcast's invariants under random faults, at scale, on the local stack.
//!
//! Two campaigns run at the same time on two LINE channels — a multicast (default 200,000 recipients) and a
//! personalised push (default 20,000) — through real `segcast-scheduler`, `segcast-delivery` and
//! `segcast-log-sink` processes, while this driver, following a plan drawn from a seed (printed first;
//! `--seed N` / `make chaos SEED=N` replays it):
//! - makes the fake LINE answer 500s (2%), time out (1%), lose responses after accepting (1%), refuse
//!   everything with 429 in bursts (and once for longer than a push's time budget, so a diff-retry round is
//!   needed), and run out of the multicast channel's monthly quota part-way; once the campaign has paused for
//!   it, the quota is raised and the campaign resumed;
//! - kill -9s and restarts the scheduler mid-export, mid-fan-out, while delivering (and while a diff-retry
//!   round is prepared, when there is one), the delivery handler at least 6 times, and the log sink twice;
//! - takes the handler down for 10-30 s (Pub/Sub's push target gone), and pauses and resumes the push
//!   campaign.
//!
//! Then it judges each campaign from the fake's records and segcast's per-recipient outcomes in BigQuery, and
//! ends with one JSON line: `{"seed":N,"campaigns":[{"campaign":..,"targeted":..,"delivered":..,
//! "duplicates":..,"missing":..,"failed_by_reason":{..},"counts_equal":true,..},..],"chaos":{..},..}`.
//! It exits 1 when a campaign has a duplicate, a missing recipient, counts that differ, or did not complete.
//!
//! The fan-out is paced (`--fanout-rate`, batches per second) so that faults land during every stage, not
//! after a fan-out of a few seconds; the scheduler's lease is 10 s so a killed scheduler's campaigns are taken
//! over sooner; a stalled round is re-driven after 30 s (`--redrive-s`), since the Pub/Sub emulator gives up
//! pushing a message after a few seconds of failures. Everything else runs with segcast's defaults (LINE's rate
//! limits enforced by the fake).

mod judge;
mod plan;

use anyhow::Context;
use clap::Parser;
use plan::Plan;
use segcast::domain::{Campaign, CampaignStatus, ChannelId};
use segcast::pipeline::control;
use segcast_e2e::{CHANNEL, CHANNEL_SECRET, EnvOptions, Service, TestEnv, free_port, text};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// The push campaign's channel (the multicast one sends on [`CHANNEL`]).
const PUSH_CHANNEL: &str = "1656000002";

#[derive(Parser)]
#[command(
    about = "segcast under faults: two campaigns, random crashes and LINE errors, judged at the end"
)]
struct Args {
    /// The seed of the plan (default: drawn from the clock; printed first either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Recipients of the multicast campaign.
    #[arg(long, default_value_t = 200_000)]
    multicast: u64,
    /// Recipients of the personalised push campaign (on a second channel).
    #[arg(long, default_value_t = 20_000)]
    push: u64,
    /// Fan-out pace in batches per second per campaign (0: unpaced).
    #[arg(long, default_value_t = 10)]
    fanout_rate: u32,
    /// `SEGCAST_REDRIVE_SECONDS` of the scheduler: a round stalled this long is re-driven (the Pub/Sub emulator
    /// stops retrying a push that failed for more than a few seconds, e.g. while the handler was down).
    #[arg(long, default_value_t = 30)]
    redrive_s: u64,
    /// Give up (and fail) when the campaigns have not completed after this many seconds.
    #[arg(long, default_value_t = 1500)]
    timeout_s: u64,
    /// Where the services' logs, the event log and the result go.
    #[arg(long, default_value = "chaos-results")]
    out: PathBuf,
}

/// One of the services this driver runs, kills and restarts.
struct Proc {
    name: &'static str,
    program: PathBuf,
    /// The port it must listen on (the handler's is fixed: the push subscriptions point there).
    port: Option<u16>,
    extra: Vec<(&'static str, String)>,
    svc: Option<Service>,
    /// Down on purpose until then.
    down_until: Option<Instant>,
    starts: u32,
    kills: u32,
    unexpected_exits: u32,
}

impl Proc {
    fn start(&mut self, env: &TestEnv, logs: &Path) -> anyhow::Result<()> {
        self.starts += 1;
        let port = self.port.unwrap_or_else(free_port);
        let mut extra: Vec<(&str, String)> = vec![("PORT", port.to_string())];
        extra.extend(self.extra.iter().map(|(k, v)| (*k, v.clone())));
        let log = logs.join(format!("{}-{}.log", self.name, self.starts));
        self.svc = Some(Service::spawn_program(
            env,
            &self.program,
            &extra,
            Some(&log),
        )?);
        self.down_until = None;
        Ok(())
    }

    /// kill -9; restarted by [`Proc::tend`] after `down`.
    fn kill(&mut self, down: Duration) {
        if let Some(mut s) = self.svc.take() {
            s.kill();
            self.kills += 1;
        }
        self.down_until = Some(Instant::now() + down);
    }

    fn is_up(&self) -> bool {
        self.svc.is_some()
    }

    /// Restarts it when its time down is over, or when it died on its own (counted: nothing should).
    fn tend(&mut self, env: &TestEnv, logs: &Path, events: &mut Events) -> anyhow::Result<()> {
        if let Some(s) = &mut self.svc
            && let Some(status) = s.child.try_wait()?
        {
            self.unexpected_exits += 1;
            events.note(&format!(
                "{} exited on its own ({status}): restarting",
                self.name
            ));
            self.svc = None;
            self.down_until = Some(Instant::now());
        }
        if self.svc.is_none() && self.down_until.is_some_and(|t| Instant::now() >= t) {
            self.start(env, logs)?;
            events.note(&format!("{} restarted", self.name));
        }
        Ok(())
    }
}

/// What happened when, on stderr and in `<out>/events.log`.
struct Events {
    t0: Instant,
    file: std::fs::File,
}

impl Events {
    fn note(&mut self, what: &str) {
        use std::io::Write;
        let line = format!("[{:7.1}s] {what}", self.t0.elapsed().as_secs_f64());
        eprintln!("{line}");
        let _ = writeln!(self.file, "{line}");
    }
}

/// Counts of what the driver did, for the result.
#[derive(Default)]
struct Done {
    scheduler_kills: Vec<String>,
    handler_kills: u32,
    handler_down_s: Option<u64>,
    sink_kills: u32,
    quota_pauses: u32,
    quota_resumed: bool,
    marketer_pause: Option<String>,
    windows_429: Vec<u64>,
}

fn copy_binaries(out: &Path) -> anyhow::Result<PathBuf> {
    // Copies, so that a rebuild of the workspace during the run cannot swap a binary under a restart.
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the driver's directory")?;
    let bin = out.join("bin");
    std::fs::create_dir_all(&bin)?;
    for name in ["segcast-scheduler", "segcast-delivery", "segcast-log-sink"] {
        let from = dir.join(name);
        anyhow::ensure!(
            from.exists(),
            "{} is missing: build the workspace's binaries first (make chaos does)",
            from.display()
        );
        std::fs::copy(&from, bin.join(name)).with_context(|| from.display().to_string())?;
    }
    Ok(bin)
}

fn stage_of(c: &Campaign) -> &'static str {
    c.status.as_str()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 / 1000) % 1_000_000
    });
    println!("chaos seed {seed} (replay: make chaos SEED={seed})");
    eprintln!(
        "segcast chaos: seed {seed}, multicast {} + push {} recipients, fan-out {} batches/s",
        args.multicast, args.push, args.fanout_rate
    );
    let plan = Plan::new(seed, args.multicast);
    std::fs::create_dir_all(&args.out)?;
    let logs = args.out.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    std::fs::write(
        args.out.join("plan.json"),
        serde_json::to_string_pretty(&plan)?,
    )?;
    let bin = copy_binaries(&args.out)?;
    let mut events = Events {
        t0: Instant::now(),
        file: std::fs::File::create(args.out.join("events.log"))?,
    };
    events.note("starting the local stack and the deployment");

    let handler_port = free_port();
    let env = TestEnv::start_with(
        EnvOptions {
            fake_line: fake_line::Config {
                faults: plan.faults.clone(),
                quotas: [(CHANNEL.to_owned(), plan.quota)].into(),
                ..fake_line::Config::default()
            },
            run_services: false,
            handler_port: Some(handler_port),
            log_sink: false,
            ..EnvOptions::default()
        }
        .set("SEGCAST_FANOUT_RATE", args.fanout_rate)
        .set("SEGCAST_REDRIVE_SECONDS", args.redrive_s)
        .set(
            &format!("LINE_CHANNEL_{PUSH_CHANNEL}_SECRET"),
            CHANNEL_SECRET,
        ),
    )
    .await?;
    let ctx = env.ctx.clone();
    let multicast_table = env.users_table("users_multicast", args.multicast).await?;
    let push_table = env.users_table("users_push", args.push).await?;
    let mc = env
        .campaign_on(
            &env.channel,
            text("Chaos sale: 20% off everything this week."),
            Default::default(),
            &format!("SELECT user_id FROM `{multicast_table}`"),
            false,
        )
        .await?;
    let pc = env
        .campaign_on(
            &ChannelId::parse(PUSH_CHANNEL)?,
            text("Hi {{name}}, your chaos coupon is ready."),
            Default::default(),
            &format!("SELECT user_id, name FROM `{push_table}`"),
            false,
        )
        .await?;
    let total = (args.multicast + args.push) as f64;
    events.note(&format!(
        "campaigns: multicast {mc} ({} recipients, channel {CHANNEL}, quota {}), push {pc} ({} recipients, channel {PUSH_CHANNEL})",
        args.multicast, plan.quota, args.push
    ));

    let proc = |name, program: &str, port, extra| Proc {
        name,
        program: bin.join(program),
        port,
        extra,
        svc: None,
        down_until: None,
        starts: 0,
        kills: 0,
        unexpected_exits: 0,
    };
    let mut sink = proc("log-sink", "segcast-log-sink", None, vec![]);
    let mut handler = proc("delivery", "segcast-delivery", Some(handler_port), vec![]);
    let mut scheduler = proc(
        "scheduler",
        "segcast-scheduler",
        None,
        vec![
            ("SEGCAST_SCHEDULER_LOOP_MS", "200".into()),
            ("SEGCAST_LEASE_SECONDS", "10".into()),
        ],
    );
    sink.start(&env, &logs)?;
    handler.start(&env, &logs)?;
    if let Some(s) = handler.svc.as_mut() {
        s.wait_healthy(handler_port, Duration::from_secs(30))
            .await?;
    }
    scheduler.start(&env, &logs)?;
    events.note("services up: scheduler, delivery handler, log sink");

    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.timeout_s);
    let mut done = Done::default();
    // Progress of each planned event.
    let mut sched_next = 0usize; // index into plan.scheduler_kills
    let mut stage_seen: BTreeMap<&'static str, Instant> = BTreeMap::new();
    let mut handler_next = 0usize;
    let mut handler_down_started: Option<Instant> = None;
    let mut sink_next = 0usize;
    let mut burst_next = 0usize;
    let mut window_until: Option<Instant> = None;
    let mut fault_k = 1u64;
    let mut storm_done = false;
    let mut quota_seen: Option<Instant> = None;
    let mut pause_state: Option<Instant> = None; // resume at
    let mut pause_done = false;
    let mut last_status = (String::new(), String::new());
    let finished = loop {
        let (cm, cp) = tokio::join!(env.get(&mc), env.get(&pc));
        let (cm, cp) = (cm?, cp?);
        let stats = env.fake().stats();
        let progress = stats.unique_recipients as f64 / total;
        let push_accepted = stats.units.get(pc.as_str()).map_or(0, |u| u.unique);
        let status = (
            format!("{}/{}", cm.status, cm.round),
            format!("{}/{}", cp.status, cp.round),
        );
        if status != last_status {
            events.note(&format!(
                "multicast {} {}, push {} {} (LINE accepted {:.1}%)",
                status.0,
                cm.status_reason.as_deref().unwrap_or(""),
                status.1,
                cp.status_reason.as_deref().unwrap_or(""),
                progress * 100.0
            ));
            last_status = status;
        }
        for c in [&cm, &cp] {
            stage_seen.entry(stage_of(c)).or_insert_with(Instant::now);
        }
        let both_done = [&cm, &cp]
            .iter()
            .all(|c| c.status.is_final() && c.completed_at.is_some());
        if both_done {
            break true;
        }
        if Instant::now() >= deadline {
            events.note("timed out waiting for the campaigns to complete");
            break false;
        }

        // Scheduler kills, stage by stage. A stage the run never reaches (a diff-retry round) is skipped once
        // a later stage is seen; `retrying` stays armed to the end.
        while sched_next < plan.scheduler_kills.len() {
            let k = &plan.scheduler_kills[sched_next];
            let at_stage = [&cm, &cp].iter().any(|c| stage_of(c) == k.stage);
            if let Some(seen) = stage_seen.get(k.stage)
                && scheduler.is_up()
                && Instant::now() >= *seen + Duration::from_millis(k.delay_ms)
            {
                let what = format!(
                    "{} (multicast {}, push {})",
                    k.stage,
                    stage_of(&cm),
                    stage_of(&cp)
                );
                scheduler.kill(Duration::from_millis(k.restart_ms));
                events.note(&format!(
                    "kill -9 scheduler: {what}; restart in {} ms",
                    k.restart_ms
                ));
                done.scheduler_kills.push(what);
                sched_next += 1;
                continue;
            }
            let passed = match k.stage {
                "extracting" | "fanning_out" => [&cm, &cp].iter().all(|c| {
                    matches!(
                        c.status,
                        CampaignStatus::Delivering
                            | CampaignStatus::Retrying
                            | CampaignStatus::Completed
                    )
                }),
                _ => false,
            };
            if passed && !at_stage && !stage_seen.contains_key(k.stage) {
                events.note(&format!(
                    "scheduler kill at {} skipped: stage not seen",
                    k.stage
                ));
                sched_next += 1;
                continue;
            }
            break;
        }

        // Handler kills (kill -9, restart soon) and the long outage.
        if handler_next < plan.handler_kills.len() && handler.is_up() {
            let (at, restart_ms) = plan.handler_kills[handler_next];
            if progress >= at {
                handler.kill(Duration::from_millis(restart_ms));
                done.handler_kills += 1;
                handler_next += 1;
                events.note(&format!(
                    "kill -9 delivery handler #{handler_next} at {:.1}%; restart in {restart_ms} ms",
                    progress * 100.0
                ));
            }
        }
        if handler_down_started.is_none() && handler.is_up() && progress >= plan.handler_down.0 {
            let secs = plan.handler_down.1;
            handler.kill(Duration::from_secs(secs));
            handler_down_started = Some(Instant::now());
            done.handler_down_s = Some(secs);
            events.note(&format!(
                "delivery handler down for {secs} s at {:.1}% (push target gone)",
                progress * 100.0
            ));
        }
        // Log sink kills.
        if sink_next < plan.sink_kills.len() && sink.is_up() {
            let (at, restart_ms) = plan.sink_kills[sink_next];
            if progress >= at {
                sink.kill(Duration::from_millis(restart_ms));
                done.sink_kills += 1;
                sink_next += 1;
                events.note(&format!(
                    "kill -9 log sink at {:.1}%; restart in {restart_ms} ms",
                    progress * 100.0
                ));
            }
        }

        // 429 windows: short bursts, and one storm longer than a push's budget.
        if let Some(until) = window_until {
            if Instant::now() >= until {
                fault_k += 1;
                env.fake().set_faults(plan.base(fault_k));
                window_until = None;
                events.note("429 window over");
            }
        } else if burst_next < plan.bursts.len() && progress >= plan.bursts[burst_next].0 {
            let ms = plan.bursts[burst_next].1;
            burst_next += 1;
            fault_k += 1;
            env.fake().set_faults(plan.all_429(fault_k));
            window_until = Some(Instant::now() + Duration::from_millis(ms));
            done.windows_429.push(ms);
            events.note(&format!("LINE answers 429 to everything for {ms} ms"));
        } else if !storm_done && progress >= plan.storm.0 {
            storm_done = true;
            fault_k += 1;
            env.fake().set_faults(plan.all_429(fault_k));
            window_until = Some(Instant::now() + Duration::from_millis(plan.storm.1));
            done.windows_429.push(plan.storm.1);
            events.note(&format!(
                "LINE answers 429 to everything for {} ms (longer than a push's budget)",
                plan.storm.1
            ));
        }

        // The quota: when the campaign has paused for it, raise it and resume after a while.
        if cm.status == CampaignStatus::Paused
            && cm.status_reason.as_deref() == Some("quota_exhausted")
        {
            match quota_seen {
                None => {
                    quota_seen = Some(Instant::now());
                    done.quota_pauses += 1;
                    events.note(&format!(
                        "multicast campaign paused: quota exhausted (LINE used {} of {})",
                        stats.quota.get(CHANNEL).map_or(0, |q| q.used),
                        plan.quota
                    ));
                }
                Some(t) if t.elapsed().as_secs_f64() >= plan.quota_wait_s => {
                    env.fake().set_quota(CHANNEL, None);
                    match control::resume(&ctx, &mc).await {
                        Ok(_) => {
                            done.quota_resumed = true;
                            quota_seen = None;
                            events.note("quota raised; multicast campaign resumed");
                        }
                        Err(e) => events.note(&format!("resume failed (will retry): {e:#}")),
                    }
                }
                Some(_) => {}
            }
        }

        // The marketer pauses the push campaign, and resumes it.
        if !pause_done
            && pause_state.is_none()
            && push_accepted as f64 >= plan.pause.0 * args.push as f64
        {
            match control::pause(&ctx, &pc, "chaos: marketer pause").await {
                Ok(_) => {
                    pause_state = Some(Instant::now() + Duration::from_secs(plan.pause.1));
                    done.marketer_pause = Some(format!(
                        "paused in {} at {push_accepted} accepted, for {} s",
                        stage_of(&cp),
                        plan.pause.1
                    ));
                    events.note(&format!(
                        "marketer pauses the push campaign ({}) for {} s",
                        stage_of(&cp),
                        plan.pause.1
                    ));
                }
                Err(e) => {
                    pause_done = true;
                    done.marketer_pause = Some(format!("not paused: {e:#}"));
                    events.note(&format!("marketer pause refused: {e:#}"));
                }
            }
        }
        if let Some(at) = pause_state
            && Instant::now() >= at
        {
            match control::resume(&ctx, &pc).await {
                Ok(_) => {
                    pause_state = None;
                    pause_done = true;
                    events.note("marketer resumes the push campaign");
                }
                Err(e) => events.note(&format!("resume failed (will retry): {e:#}")),
            }
        }

        for p in [&mut scheduler, &mut handler, &mut sink] {
            p.tend(&env, &logs, &mut events)?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed_s = t0.elapsed().as_secs_f64();
    if window_until.is_some() {
        env.fake().set_faults(plan.base(fault_k + 1));
    }
    events.note(if finished {
        "both campaigns completed; judging"
    } else {
        "judging what there is"
    });
    drop(scheduler.svc.take());
    drop(handler.svc.take());
    drop(sink.svc.take());

    let stats = env.fake().stats();
    let accepted = judge::accepted_by_campaign(&env);
    let mut verdicts = Vec::new();
    for (id, mode) in [(&mc, "multicast"), (&pc, "push")] {
        let c = env.get(id).await?;
        verdicts.push(judge::judge(&env, &c, mode, accepted.get(id.as_str())).await?);
    }
    let dead_lettered = count_in_logs(&logs, "delivery-", "\"dead_lettered\":true");
    let chaos = json!({
        "scheduler_kills": done.scheduler_kills,
        "scheduler_starts": scheduler.starts,
        "handler_kills": done.handler_kills + u32::from(done.handler_down_s.is_some()),
        "handler_down_s": done.handler_down_s,
        "handler_starts": handler.starts,
        "log_sink_kills": done.sink_kills,
        "unexpected_exits": scheduler.unexpected_exits + handler.unexpected_exits + sink.unexpected_exits,
        "quota": plan.quota,
        "quota_pauses": done.quota_pauses,
        "quota_resumed": done.quota_resumed,
        "marketer_pause": done.marketer_pause,
        "windows_429_ms": done.windows_429,
        "line_500": stats.faults.error_500,
        "line_timeouts": stats.faults.timeout,
        "line_lost_responses": stats.faults.lost_response,
        "line_429_rate": stats.rate_limited,
        "line_429_quota": stats.quota_exceeded,
        "line_409_retry_key": stats.retry_key_conflicts,
        "dead_lettered_pushes": dead_lettered,
    });
    let pass = finished && verdicts.iter().all(judge::Verdict::pass);
    let campaigns: Vec<String> = verdicts.iter().map(judge::Verdict::to_json).collect();
    let line = judge::ordered(&[
        ("seed", seed.to_string()),
        ("campaigns", format!("[{}]", campaigns.join(","))),
        ("chaos", chaos.to_string()),
        (
            "elapsed_s",
            json!((elapsed_s * 10.0).round() / 10.0).to_string(),
        ),
        ("pass", pass.to_string()),
    ]);
    std::fs::write(args.out.join("result.json"), format!("{line}\n"))?;
    events.note(&format!(
        "{}: logs and events in {}",
        if pass { "PASS" } else { "FAIL" },
        args.out.display()
    ));
    env.stop().await;
    println!("{line}");
    if !pass {
        std::process::exit(1);
    }
    Ok(())
}

/// Lines containing `needle` in the log files whose names start with `prefix`.
fn count_in_logs(dir: &Path, prefix: &str, needle: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|t| t.lines().filter(|l| l.contains(needle)).count() as u64)
        .sum()
}
