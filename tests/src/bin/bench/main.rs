//! `make bench`: segcast's speed and memory on the local stack, with numbers anyone can reproduce.
//!
//! Scenarios (each prints one JSON object on stdout as it ends; all are written to `<out>/results.jsonl`, and
//! a table follows at the end):
//! 1. `multicast`: a campaign to N recipients (default 1,000,000) with the fake LINE at multicast 200 req/s.
//! 2. `push`: personalised content to N recipients (default 100,000) with the fake LINE at push 2,000 req/s.
//!    Both run the release `segcast-scheduler` and `segcast-delivery` binaries as processes (the log sink runs
//!    in this process), time each stage, and chart the requests per second the fake accepted.
//! 3. `memory`: peak RSS of the scheduler and of the delivery handler for each segment size (default 10,000,
//!    1,000,000 and 5,000,000), with LINE's limits lifted so the big segments go fast.
//! 4. `rate_limit_accuracy`: 429s and the most requests in any clock-aligned second, from 1 and 2.
//! 5. `fake_line_capacity`: the fake LINE server's own throughput (it must not be the bottleneck).
//! 6. `click_redirect`: latency and throughput of the click redirect on loopback.
//!
//! A 20,000-recipient multicast warms the emulators up first (not reported; `--no-warmup` skips it).
//! `--quick` (`make bench QUICK=1`) uses small sizes. Sizes are flags: `--multicast N --push N --memory A,B`.

mod chart;
mod cpu;
mod sending;

use clap::Parser;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(about = "segcast benchmarks on the local stack")]
struct Args {
    /// Small sizes: the whole run takes a few minutes.
    #[arg(long)]
    quick: bool,
    /// Recipients of the multicast scenario (default 1,000,000; quick 100,000).
    #[arg(long)]
    multicast: Option<u64>,
    /// Recipients of the push scenario (default 100,000; quick 10,000).
    #[arg(long)]
    push: Option<u64>,
    /// Segment sizes of the memory scenario (default 10000,1000000,5000000; quick 10000,500000,1000000).
    #[arg(long, value_delimiter = ',')]
    memory: Option<Vec<u64>>,
    /// Only these scenarios: multicast, push, memory, rate, capacity, click (rate needs multicast and push).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Skip the warm-up campaign (a 20,000-recipient multicast whose figures are not reported).
    #[arg(long)]
    no_warmup: bool,
    /// Where results, charts and service logs go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

impl Args {
    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == scenario))
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1)
}

/// Rounds to one decimal (or `digits`), for readable JSON.
pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

struct Report {
    file: std::fs::File,
    rows: Vec<(String, String, bool)>,
}

impl Report {
    fn add(&mut self, summary: String, result: Value) -> anyhow::Result<()> {
        println!("{result}");
        writeln!(self.file, "{result}")?;
        let scenario = result["scenario"].as_str().unwrap_or("?").to_owned();
        let pass = result["pass"].as_bool().unwrap_or(false);
        self.rows.push((scenario, summary, pass));
        Ok(())
    }

    fn failed(&mut self, scenario: &str, e: &anyhow::Error) -> anyhow::Result<()> {
        eprintln!("{scenario}: FAILED: {e:#}");
        let result = json!({"scenario": scenario, "error": format!("{e:#}"), "pass": false, "cores": cores()});
        self.add(format!("error: {e:#}"), result)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let quick = args.quick || std::env::var("QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let multicast_n = args
        .multicast
        .unwrap_or(if quick { 100_000 } else { 1_000_000 });
    let push_n = args.push.unwrap_or(if quick { 10_000 } else { 100_000 });
    let memory_sizes = args.memory.clone().unwrap_or(if quick {
        vec![10_000, 500_000, 1_000_000]
    } else {
        vec![10_000, 1_000_000, 5_000_000]
    });
    std::fs::create_dir_all(&args.out)?;
    let mut report = Report {
        file: std::fs::File::create(args.out.join("results.jsonl"))?,
        rows: Vec::new(),
    };
    eprintln!(
        "segcast bench ({} build, {} cores){}: starting the local stack...",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        cores(),
        if quick { ", quick sizes" } else { "" }
    );

    // The emulators are JVM and Python processes started moments ago: their first seconds of work run cold
    // (JIT), which production services do not. A small campaign first, as benchmarks warm up.
    if !args.no_warmup && (args.wants("multicast") || args.wants("push")) {
        eprintln!("== warm-up: a 20,000-recipient multicast (not reported)");
        if let Err(e) = sending::run(sending::Mode::Multicast, 20_000, &args.out).await {
            eprintln!("warm-up failed: {e:#}");
        }
    }
    let mut rate_inputs = Vec::new();
    for (name, mode, n) in [
        ("multicast", sending::Mode::Multicast, multicast_n),
        ("push", sending::Mode::Push, push_n),
    ] {
        if !args.wants(name) {
            continue;
        }
        eprintln!("== {name}: {n} recipients");
        match sending::run(mode, n, &args.out).await {
            Ok(run) => {
                rate_inputs.push(run.rate_accuracy.clone());
                report.add(run.summary(), run.json)?;
            }
            Err(e) => report.failed(name, &e)?,
        }
    }
    if args.wants("rate") && !rate_inputs.is_empty() {
        let pass = rate_inputs.iter().all(|r| r["pass"] == true);
        let summary = rate_inputs
            .iter()
            .map(|r| {
                format!(
                    "{}: max {}/s (limit {}), 429s {}",
                    r["endpoint"].as_str().unwrap_or("?"),
                    r["max_rate_1s"],
                    r["limit"],
                    r["responses_429"]
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        report.add(
            summary,
            json!({"scenario": "rate_limit_accuracy", "endpoints": rate_inputs, "cores": cores(), "pass": pass}),
        )?;
    }
    if args.wants("memory") {
        eprintln!("== memory: segments of {memory_sizes:?}");
        match sending::memory(&memory_sizes, &args.out).await {
            Ok(results) => {
                for (summary, result) in results {
                    report.add(summary, result)?;
                }
            }
            Err(e) => report.failed("memory", &e)?,
        }
    }
    if args.wants("capacity") {
        eprintln!("== fake LINE capacity");
        let secs = if quick { "2" } else { "5" };
        match example("fake_line_capacity", &[("CAPACITY_SECS", secs)]) {
            Ok(v) => {
                let push = v["push_requests_per_s"].as_f64().unwrap_or(0.0);
                let multicast = v["multicast_requests_per_s"].as_f64().unwrap_or(0.0);
                // Not the bottleneck: at least twice LINE's limits (push 2,000/s, multicast 200/s).
                let pass = push >= 4000.0 && multicast >= 400.0;
                let summary = format!(
                    "push {push:.0} req/s, multicast {multicast:.0} req/s (2x the limits needed)"
                );
                let mut v = v;
                v["scenario"] = "fake_line_capacity".into();
                v["cores"] = cores().into();
                v["pass"] = pass.into();
                report.add(summary, v)?;
            }
            Err(e) => report.failed("fake_line_capacity", &e)?,
        }
    }
    if args.wants("click") {
        eprintln!("== click redirect");
        let secs = if quick { "3" } else { "10" };
        match example("click_redirect_bench", &[("BENCH_SECS", secs)]) {
            Ok(mut v) => {
                let summary = format!(
                    "{:.0} redirects/s, p50 {} ms, p99 {} ms",
                    v["redirects_per_s"].as_f64().unwrap_or(0.0),
                    v["p50_ms"],
                    v["p99_ms"]
                );
                v["scenario"] = "click_redirect".into();
                report.add(summary, v)?;
            }
            Err(e) => report.failed("click_redirect", &e)?,
        }
    }

    println!();
    println!("{:<22} {:<5} figures", "scenario", "pass");
    for (scenario, summary, pass) in &report.rows {
        println!(
            "{scenario:<22} {:<5} {summary}",
            if *pass { "yes" } else { "NO" }
        );
    }
    println!("\nresults: {}", args.out.join("results.jsonl").display());
    Ok(())
}

/// Runs an example of the workspace built next to this binary (`cargo build --examples`) and parses the last
/// line it prints as JSON.
fn example(name: &str, env: &[(&str, &str)]) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let path = dir.join("examples").join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --workspace --examples` (make bench does)",
        path.display()
    );
    let out = std::process::Command::new(&path)
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "{name} failed: {}", out.status);
    let text = String::from_utf8(out.stdout)?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("{name} printed no JSON"))?;
    Ok(serde_json::from_str(line)?)
}
