//! `segcast`: the console's command line, for scripts. It uses only the console's JSON API (the same one the
//! web UI uses) and prints its JSON answers; errors go to stderr with the API's message, exit status 1.
//!
//! `SEGCAST_CONSOLE_URL` and `SEGCAST_TOKEN` (from `segcast login`) save repeating `--url` and `--token`.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use std::io::Read;

#[derive(Parser)]
#[command(
    name = "segcast",
    about = "Send LINE messages to BigQuery segments: the console from scripts"
)]
struct Cli {
    /// The console's URL.
    #[arg(
        long,
        env = "SEGCAST_CONSOLE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// A session token from `segcast login` (local sign-in); behind IAP use an IAP-issued token instead.
    #[arg(long, env = "SEGCAST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Signs in (local mode) and prints the token: `export SEGCAST_TOKEN=$(segcast login --email me@x.com)`.
    Login {
        #[arg(long)]
        email: String,
        /// Read from SEGCAST_CONSOLE_PASSWORD, else from stdin.
        #[arg(long, env = "SEGCAST_CONSOLE_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Who the token belongs to.
    Me,
    #[command(subcommand)]
    Channels(Channels),
    #[command(subcommand)]
    Contents(Contents),
    #[command(subcommand)]
    Segments(Segments),
    #[command(subcommand)]
    Campaigns(Campaigns),
    #[command(subcommand)]
    Users(Users),
    /// The audit log (newest first).
    Audit {
        #[arg(long)]
        target: Option<String>,
    },
}

#[derive(Subcommand)]
enum Channels {
    List,
    /// Registers a channel; its secret is read from stdin (never from the command line).
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Read the channel secret from stdin.
        #[arg(long)]
        secret_stdin: bool,
    },
}

#[derive(Subcommand)]
enum Contents {
    List,
    Show {
        id: String,
    },
    /// Creates content from a JSON file holding the messages array.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        file: String,
        /// Tracked links as a JSON file `{"id": "https://..."}`.
        #[arg(long)]
        links: Option<String>,
        /// Also ask LINE's validate endpoint with this channel.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Checks messages without saving.
    Validate {
        #[arg(long)]
        file: String,
        #[arg(long)]
        channel: Option<String>,
    },
    Versions {
        id: String,
    },
}

#[derive(Subcommand)]
enum Segments {
    List,
    /// Count and sample rows of a segment SQL.
    Preview {
        #[arg(long)]
        sql: String,
    },
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        sql: String,
    },
}

#[derive(Subcommand)]
enum Campaigns {
    List,
    Show {
        id: String,
    },
    /// Creates a draft campaign.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        content: String,
        #[arg(long)]
        segment: String,
        #[arg(long)]
        channel: String,
        /// `2026-12-01T10:00` in --time-zone, or RFC 3339; omitted: when scheduled.
        #[arg(long)]
        send_at: Option<String>,
        #[arg(long)]
        time_zone: Option<String>,
        /// Quiet hours as HH:MM-HH:MM (local time), e.g. 21:00-08:00.
        #[arg(long)]
        quiet_hours: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    Schedule {
        id: String,
    },
    Approve {
        id: String,
    },
    Pause {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Resume {
        id: String,
    },
    Cancel {
        id: String,
    },
    Duplicate {
        id: String,
    },
    /// Sends the content now to listed users (not part of the campaign).
    TestSend {
        id: String,
        #[arg(long = "user", required = true)]
        users: Vec<String>,
    },
    /// Live progress; --watch repeats every 2 s until the campaign ends.
    Progress {
        id: String,
        #[arg(long)]
        watch: bool,
    },
    Results {
        id: String,
    },
    /// Failed recipients with reasons, as CSV (to stdout).
    Failures {
        id: String,
    },
}

#[derive(Subcommand)]
enum Users {
    List,
    /// Adds a user or changes their role (viewer, editor, approver, admin).
    Set {
        email: String,
        role: String,
    },
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.request(
            method.clone(),
            format!("{}{path}", self.url.trim_end_matches('/')),
        );
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if method != reqwest::Method::GET {
            req = req.json(&body.unwrap_or_else(|| json!({})));
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the console at {}", self.url))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let v: Value = resp.json().await.unwrap_or_default();
            let msg = v["error"].as_str().unwrap_or("no message");
            let mut extra = String::new();
            for e in v["errors"].as_array().into_iter().flatten().skip(1) {
                extra.push_str(&format!(
                    "\n  {}: {}",
                    e["field"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                ));
            }
            bail!("{status}: {msg}{extra}");
        }
        Ok(resp)
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let resp = self.call(method, path, body).await?;
        Ok(resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.json(reqwest::Method::GET, path, None).await
    }

    /// `POST /api/campaigns/{id}/{action}`: schedule, approve, pause, resume, cancel, duplicate.
    async fn campaign_action(&self, id: &str, action: &str, body: Value) -> anyhow::Result<Value> {
        self.post(
            &format!("/api/campaigns/{}/{action}", percent_encode(id)),
            body,
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.json(reqwest::Method::POST, path, Some(body)).await
    }
}

fn read_json(path: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))
}

fn stdin_line(what: &str) -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    let s = s.trim().to_owned();
    if s.is_empty() {
        bail!("no {what} on stdin");
    }
    Ok(s)
}

async fn run(cli: Cli) -> anyhow::Result<Option<Value>> {
    let api = Api {
        http: reqwest::Client::new(),
        url: cli.url,
        token: cli.token,
    };
    let enc = |s: &str| percent_encode(s);
    Ok(Some(match cli.command {
        Command::Login { email, password } => {
            let password = match password {
                Some(p) => p,
                None => stdin_line("password")?,
            };
            let v = api
                .post(
                    "/api/session",
                    json!({"email": email, "password": password}),
                )
                .await?;
            println!("{}", v["token"].as_str().unwrap_or_default());
            return Ok(None);
        }
        Command::Me => api.get("/api/me").await?,
        Command::Channels(Channels::List) => api.get("/api/channels").await?,
        Command::Channels(Channels::Add {
            id,
            name,
            secret_stdin,
        }) => {
            let secret = if secret_stdin {
                Some(stdin_line("channel secret")?)
            } else {
                None
            };
            api.post(
                "/api/channels",
                json!({"id": id, "name": name, "secret": secret}),
            )
            .await?
        }
        Command::Contents(Contents::List) => api.get("/api/contents").await?,
        Command::Contents(Contents::Show { id }) => {
            api.get(&format!("/api/contents/{}", enc(&id))).await?
        }
        Command::Contents(Contents::Versions { id }) => {
            api.get(&format!("/api/contents/{}/versions", enc(&id)))
                .await?
        }
        Command::Contents(Contents::Create {
            name,
            file,
            links,
            channel,
        }) => {
            let links = links
                .map(|l| read_json(&l))
                .transpose()?
                .unwrap_or_else(|| json!({}));
            api.post(
                "/api/contents",
                json!({"name": name, "messages": read_json(&file)?, "links": links, "channel_id": channel}),
            )
            .await?
        }
        Command::Contents(Contents::Validate { file, channel }) => {
            api.post(
                "/api/contents/validate",
                json!({"name": "check", "messages": read_json(&file)?, "channel_id": channel}),
            )
            .await?
        }
        Command::Segments(Segments::List) => api.get("/api/segments").await?,
        Command::Segments(Segments::Preview { sql }) => {
            api.post("/api/segments/preview", json!({"sql": sql}))
                .await?
        }
        Command::Segments(Segments::Create { name, sql }) => {
            api.post("/api/segments", json!({"name": name, "sql": sql}))
                .await?
        }
        Command::Campaigns(c) => match c {
            Campaigns::List => api.get("/api/campaigns").await?,
            Campaigns::Show { id } => api.get(&format!("/api/campaigns/{}", enc(&id))).await?,
            Campaigns::Create {
                name,
                content,
                segment,
                channel,
                send_at,
                time_zone,
                quiet_hours,
                dry_run,
            } => {
                let quiet = match quiet_hours {
                    None => Value::Null,
                    Some(q) => {
                        let (start, end) = q
                            .split_once('-')
                            .context("--quiet-hours is HH:MM-HH:MM, e.g. 21:00-08:00")?;
                        json!({"start": start, "end": end})
                    }
                };
                api.post(
                    "/api/campaigns",
                    json!({"name": name, "content_id": content, "segment_id": segment, "channel_id": channel,
                           "send_at": send_at, "time_zone": time_zone, "quiet_hours": quiet, "dry_run": dry_run}),
                )
                .await?
            }
            Campaigns::Schedule { id } => api.campaign_action(&id, "schedule", json!({})).await?,
            Campaigns::Approve { id } => api.campaign_action(&id, "approve", json!({})).await?,
            Campaigns::Pause { id, reason } => {
                api.campaign_action(&id, "pause", json!({"reason": reason}))
                    .await?
            }
            Campaigns::Resume { id } => api.campaign_action(&id, "resume", json!({})).await?,
            Campaigns::Cancel { id } => api.campaign_action(&id, "cancel", json!({})).await?,
            Campaigns::Duplicate { id } => api.campaign_action(&id, "duplicate", json!({})).await?,
            Campaigns::TestSend { id, users } => {
                api.post(
                    &format!("/api/campaigns/{}/test-send", enc(&id)),
                    json!({"user_ids": users}),
                )
                .await?
            }
            Campaigns::Progress { id, watch } => loop {
                let v = api
                    .get(&format!("/api/campaigns/{}/progress", enc(&id)))
                    .await?;
                if !watch {
                    break v;
                }
                println!("{v}");
                let status = v["status"].as_str().unwrap_or_default();
                if matches!(status, "completed" | "canceled" | "failed" | "draft") {
                    return Ok(None);
                }
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            },
            Campaigns::Results { id } => {
                api.get(&format!("/api/campaigns/{}/results", enc(&id)))
                    .await?
            }
            Campaigns::Failures { id } => {
                let resp = api
                    .call(
                        reqwest::Method::GET,
                        &format!("/api/campaigns/{}/failures.csv", enc(&id)),
                        None,
                    )
                    .await?;
                print!("{}", resp.text().await?);
                return Ok(None);
            }
        },
        Command::Users(Users::List) => api.get("/api/users").await?,
        Command::Users(Users::Set { email, role }) => {
            api.json(
                reqwest::Method::PUT,
                &format!("/api/users/{}", enc(&email)),
                Some(json!({"role": role})),
            )
            .await?
        }
        Command::Audit { target } => match target {
            Some(t) => api.get(&format!("/api/audit?target={}", enc(&t))).await?,
            None => api.get("/api/audit").await?,
        },
    }))
}

/// Percent-encodes a path segment or query value.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(Some(v)) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Ok(None) => {}
        Err(e) => {
            eprintln!("segcast: {e:#}");
            std::process::exit(1);
        }
    }
}
