//! The `fake-line` binary: runs the fake LINE Messaging API until Ctrl-C / SIGTERM. Configuration comes from an
//! optional JSON or YAML file (`--config`), then command-line flags override it. Prints its URL on stdout once
//! listening; logs are JSON on stderr (`RUST_LOG` filters, default `info`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use fake_line::{Config, FakeLine, Latency, RateLimit};

#[derive(Parser, Debug)]
#[command(
    name = "fake-line",
    about = "A fake of the LINE Messaging API for tests, demos and benchmarks"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "FAKE_LINE_ADDR", default_value = "127.0.0.1:8090")]
    addr: SocketAddr,
    /// JSON (.json) or YAML (.yaml, .yml) file with a fake_line::Config; flags below override it.
    #[arg(long, env = "FAKE_LINE_CONFIG")]
    config: Option<PathBuf>,

    /// Allowed channel `ID:SECRET` (repeatable). Without any, every id + secret gets a token.
    #[arg(long = "channel", value_name = "ID:SECRET")]
    channels: Vec<String>,
    /// Long-lived token `TOKEN:CHANNEL_ID` (repeatable).
    #[arg(long = "long-lived-token", value_name = "TOKEN:CHANNEL_ID")]
    long_lived_tokens: Vec<String>,
    /// Lifetime of issued stateless tokens in seconds (LINE: 900).
    #[arg(long)]
    token_lifetime_secs: Option<u64>,
    /// Key that signs tokens.
    #[arg(long, env = "FAKE_LINE_TOKEN_SECRET")]
    token_secret: Option<String>,

    /// Push requests per second per channel (LINE: 2000).
    #[arg(long)]
    push_rps: Option<u64>,
    /// Multicast requests per second per channel (LINE: 200).
    #[arg(long)]
    multicast_rps: Option<u64>,
    /// Narrowcast requests per hour per channel (LINE: 60).
    #[arg(long)]
    narrowcast_per_hour: Option<u64>,
    /// Broadcast requests per hour per channel (LINE: 60).
    #[arg(long)]
    broadcast_per_hour: Option<u64>,
    /// Requests per second per channel to every other endpoint (LINE: 2000).
    #[arg(long)]
    other_rps: Option<u64>,
    /// Do not enforce rate limits (rates are still tracked).
    #[arg(long)]
    no_rate_limits: bool,

    /// Monthly quota of every channel (default: unlimited).
    #[arg(long)]
    quota: Option<u64>,
    /// Monthly quota of one channel, `ID=N` (repeatable).
    #[arg(long = "channel-quota", value_name = "ID=N")]
    channel_quotas: Vec<String>,
    /// Retry key lifetime in seconds (LINE: 86400).
    #[arg(long)]
    retry_key_ttl_secs: Option<u64>,

    /// Added latency: `N` or `MIN..MAX` milliseconds.
    #[arg(long)]
    latency_ms: Option<String>,
    /// Probability of a 500 without accepting.
    #[arg(long)]
    p_500: Option<f64>,
    /// Probability of hanging without accepting (then dropping the connection).
    #[arg(long)]
    p_timeout: Option<f64>,
    /// Probability of accepting and then dropping the connection without answering.
    #[arg(long)]
    p_lost_response: Option<f64>,
    /// Probability of starting a burst of 429s.
    #[arg(long = "p-429-burst")]
    p_429_burst: Option<f64>,
    /// Length of a 429 burst in milliseconds.
    #[arg(long = "burst-429-ms")]
    burst_429_ms: Option<u64>,
    /// How long a timeout fault hangs before dropping the connection, in milliseconds.
    #[arg(long)]
    timeout_hang_ms: Option<u64>,
    /// Seed of the fault RNG (replayable faults).
    #[arg(long)]
    seed: Option<u64>,

    /// Audience size of broadcasts and narrowcasts.
    #[arg(long)]
    friends_count: Option<u64>,
    /// Append every accepted request to this NDJSON file.
    #[arg(long)]
    records_file: Option<PathBuf>,
    /// Do not keep records in memory (for runs with millions of recipients).
    #[arg(long)]
    no_keep_records: bool,
}

fn load_config(path: &PathBuf) -> Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let config = if is_json {
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
    } else {
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
    };
    Ok(config)
}

fn split_pair<'a>(s: &'a str, sep: char, what: &str) -> Result<(&'a str, &'a str)> {
    match s.split_once(sep) {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a, b)),
        _ => bail!("{what} must look like A{sep}B, got {s:?}"),
    }
}

fn parse_latency(s: &str) -> Result<Latency> {
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (a.trim().parse()?, b.trim().parse()?),
        None => {
            let n = s.trim().parse()?;
            (n, n)
        }
    };
    if min > max {
        bail!("--latency-ms: min > max");
    }
    Ok(Latency { min, max })
}

fn build_config(args: &Args) -> Result<Config> {
    let mut c = match &args.config {
        Some(p) => load_config(p)?,
        None => Config::default(),
    };
    for ch in &args.channels {
        let (id, secret) = split_pair(ch, ':', "--channel")?;
        c.allowed_channels.insert(id.into(), secret.into());
    }
    for t in &args.long_lived_tokens {
        let (token, channel) = split_pair(t, ':', "--long-lived-token")?;
        c.long_lived_tokens.insert(token.into(), channel.into());
    }
    if let Some(v) = args.token_lifetime_secs {
        c.token_lifetime_secs = v;
    }
    if let Some(v) = &args.token_secret {
        c.token_secret = v.clone();
    }
    if let Some(v) = args.push_rps {
        c.rate_limits.push = RateLimit::per_second(v);
    }
    if let Some(v) = args.multicast_rps {
        c.rate_limits.multicast = RateLimit::per_second(v);
    }
    if let Some(v) = args.narrowcast_per_hour {
        c.rate_limits.narrowcast = RateLimit::per_hour(v);
    }
    if let Some(v) = args.broadcast_per_hour {
        c.rate_limits.broadcast = RateLimit::per_hour(v);
    }
    if let Some(v) = args.other_rps {
        c.rate_limits.other = RateLimit::per_second(v);
    }
    if args.no_rate_limits {
        c.rate_limits_enabled = false;
    }
    if let Some(v) = args.quota {
        c.default_quota = Some(v);
    }
    for q in &args.channel_quotas {
        let (id, n) = split_pair(q, '=', "--channel-quota")?;
        c.quotas
            .insert(id.into(), n.parse().context("--channel-quota")?);
    }
    if let Some(v) = args.retry_key_ttl_secs {
        c.retry_key_ttl_secs = v;
    }
    let f = &mut c.faults;
    if let Some(v) = &args.latency_ms {
        f.latency_ms = parse_latency(v)?;
    }
    for (dst, src) in [
        (&mut f.p_500, args.p_500),
        (&mut f.p_timeout, args.p_timeout),
        (&mut f.p_lost_response, args.p_lost_response),
        (&mut f.p_429_burst, args.p_429_burst),
    ] {
        if let Some(p) = src {
            if !(0.0..=1.0).contains(&p) {
                bail!("fault probabilities must be within 0..=1, got {p}");
            }
            *dst = p;
        }
    }
    if let Some(v) = args.burst_429_ms {
        f.burst_429_ms = v;
    }
    if let Some(v) = args.timeout_hang_ms {
        f.timeout_hang_ms = v;
    }
    if args.seed.is_some() {
        f.seed = args.seed;
    }
    if let Some(v) = args.friends_count {
        c.friends_count = v;
    }
    if args.records_file.is_some() {
        c.records_file = args.records_file.clone();
    }
    if args.no_keep_records {
        c.keep_records = false;
    }
    Ok(c)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = build_config(&args)?;
    let fake = FakeLine::start(args.addr, config)
        .await
        .with_context(|| format!("starting on {}", args.addr))?;
    println!("{}", fake.url());
    tracing::info!(url = %fake.url(), "fake-line ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!(stats = %serde_json::to_string(&fake.stats()).unwrap_or_default(), "shutting down");
    fake.shutdown().await;
    Ok(())
}
