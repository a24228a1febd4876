//! End-to-end test support: a [`TestEnv`] is one isolated segcast deployment on the local emulator stack —
//! its own Datastore namespace, BigQuery dataset, topics and fake LINE server, with the delivery handler and
//! log sink running in-process on port 0 — so tests run side by side on one stack. The demo uses it too.

use anyhow::{Context, bail};
use devstack::{Stack, StackOptions};
use fake_line::FakeLine;
use segcast::catalog::{Channel, Content, Segment};
use segcast::config::Settings;
use segcast::ctx::Ctx;
use segcast::domain::{Campaign, CampaignId, ChannelId, ContentId, Messages, SegmentId};
use segcast::http::delivery_push::{DeliveryApp, router};
use segcast::http::push_auth::PushAuth;
use segcast::line::LineClient;
use segcast::line::access_token::TokenProvider;
use segcast::pipeline::scheduler::{TickOptions, tick};
use segcast::pipeline::{control, log_sink, provision};
use std::sync::OnceLock;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The channel every test sends on (the fake LINE server issues a token for any channel by default).
pub const CHANNEL: &str = "1656000001";
pub const CHANNEL_SECRET: &str = "test-channel-secret-do-not-log";

/// One stack per test process: attached from the environment (`SEGCAST_STACK_PID`, set by sourcing a stack's env
/// file) or started here and stopped when the process exits (its processes die with it).
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        if std::env::var_os("SEGCAST_STACK_PID").is_some() {
            Stack::from_env().expect("attaching to the stack in the environment")
        } else {
            Stack::start_blocking(StackOptions::default()).expect("starting the local stack")
        }
    })
}

/// How to set up a [`TestEnv`].
#[derive(Clone)]
pub struct EnvOptions {
    pub fake_line: fake_line::Config,
    /// Extra settings (environment variable names of [`Settings`]).
    pub settings: Vec<(String, String)>,
    /// Run the delivery handler in this process (else it is expected at `handler_port`, e.g. a child process).
    pub run_services: bool,
    /// The delivery handler's port when it is not run in-process.
    pub handler_port: Option<u16>,
    /// Use this LINE server instead of starting a fake (the demo, pointed at a real or running fake LINE).
    pub line_url: Option<String>,
    /// The LINE channel to send on (default [`CHANNEL`]).
    pub channel: Option<String>,
    /// Run the log sink in this process (else a `segcast-log-sink` child process is expected to).
    pub log_sink: bool,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            fake_line: fake_line::Config::default(),
            settings: Vec::new(),
            run_services: true,
            handler_port: None,
            line_url: None,
            channel: None,
            log_sink: true,
        }
    }
}

impl EnvOptions {
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.settings.push((key.to_owned(), value.to_string()));
        self
    }
}

pub struct TestEnv {
    pub ctx: Ctx,
    pub line: Option<FakeLine>,
    pub line_url: String,
    pub line_client: LineClient,
    pub handler_url: String,
    pub channel: ChannelId,
    pub prefix: String,
    /// The environment the services of this deployment run with (for child processes).
    pub vars: Vec<(String, String)>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl TestEnv {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(EnvOptions::default()).await
    }

    pub async fn start_with(opts: EnvOptions) -> anyhow::Result<Self> {
        let stack = stack();
        let id = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let prefix = format!("t{id}");
        let (line, line_url) = match &opts.line_url {
            Some(url) => (None, url.clone()),
            None => {
                let fake = FakeLine::start("127.0.0.1:0".parse()?, opts.fake_line.clone()).await?;
                let url = fake.url();
                (Some(fake), url)
            }
        };
        let push_token = format!("push-{}", uuid::Uuid::new_v4().simple());
        let mut vars = stack.env_vars();
        vars.extend([
            ("SEGCAST_NAMESPACE".into(), prefix.clone()),
            ("SEGCAST_DATASET".into(), prefix.clone()),
            ("SEGCAST_TOPIC_PREFIX".into(), format!("{prefix}-delivery")),
            ("SEGCAST_LOG_TOPIC".into(), format!("{prefix}-log")),
            ("SEGCAST_CLICK_TOPIC".into(), format!("{prefix}-click")),
            ("SEGCAST_PUSH_TOKEN".into(), push_token),
            ("LINE_API_BASE_URL".into(), line_url.clone()),
            ("SEGCAST_PUSH_BUDGET_SECONDS".into(), "20".into()),
            // Channel secrets registered in the console, read by the handler too.
            (
                "SEGCAST_CHANNEL_SECRETS".into(),
                format!(
                    "dir:{}",
                    std::env::temp_dir()
                        .join(format!("segcast-{prefix}-secrets"))
                        .display()
                ),
            ),
        ]);
        vars.extend(opts.settings.iter().cloned());
        let settings = Settings::from_vars(vars.clone())?;
        let ctx = Ctx::connect(settings.clone()).await?;
        let channel = ChannelId::parse(opts.channel.as_deref().unwrap_or(CHANNEL))?;
        let http = reqwest::Client::builder()
            .timeout(settings.line.request_timeout)
            .build()?;
        let mut token_vars = vec![(
            format!("LINE_CHANNEL_{CHANNEL}_SECRET"),
            CHANNEL_SECRET.to_owned(),
        )];
        token_vars.extend(
            vars.iter()
                .filter(|(k, _)| k.starts_with("LINE_CHANNEL"))
                .cloned(),
        );
        let tokens = TokenProvider::from_vars(http.clone(), &line_url, token_vars);
        let line_client = LineClient::with_tokens(&settings.line, http, tokens);

        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", opts.handler_port.unwrap_or(0))).await?;
        let handler_url = format!("http://{}", listener.local_addr()?);
        // The handler runs here, or a child process listens on this port (so it is free again).
        let listener = opts.run_services.then_some(listener);
        provision::bigquery(&ctx)
            .await
            .context("creating the dataset and tables")?;
        provision::pubsub(&ctx, &handler_url)
            .await
            .context("creating topics and subscriptions")?;
        if let Some(listener) = listener {
            let app = router(DeliveryApp {
                ctx: ctx.clone(),
                line: line_client.clone(),
                auth: PushAuth::from_settings(&settings.delivery)?,
            });
            let s = stop.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { s.cancelled().await })
                    .await;
            }));
        }
        if opts.log_sink {
            for _ in 0..2 {
                tasks.push(tokio::spawn(log_sink::run(ctx.clone(), stop.clone())));
            }
        }
        vars.push((
            format!("LINE_CHANNEL_{channel}_SECRET"),
            CHANNEL_SECRET.to_owned(),
        ));
        Ok(Self {
            ctx,
            line,
            line_url,
            line_client,
            handler_url,
            channel,
            prefix,
            vars,
            stop,
            tasks,
        })
    }

    pub fn fake(&self) -> &FakeLine {
        self.line
            .as_ref()
            .expect("this environment has no fake LINE server")
    }

    /// A BigQuery table `users` in this environment's dataset with `n` synthetic LINE users (and a `name`).
    pub async fn users_table(&self, table: &str, n: u64) -> anyhow::Result<String> {
        let fq = format!("{}.{table}", self.ctx.settings.dataset);
        self.ctx
            .gcp
            .bigquery
            .execute(
                &format!(
                    "CREATE OR REPLACE TABLE `{fq}` AS SELECT CONCAT('U', TO_HEX(MD5(CAST(n AS STRING)))) AS user_id, \
                     CONCAT('member', CAST(n AS STRING)) AS name FROM UNNEST(GENERATE_ARRAY(1, {n})) AS n"
                ),
                &[],
            )
            .await?;
        Ok(fq)
    }

    /// A table of `n` synthetic users and a campaign due now sending `messages` to all of them (the segment
    /// returns `user_id` and `name`, so personalised content can use `{{name}}`).
    pub async fn campaign_for_users(
        &self,
        n: u64,
        messages: serde_json::Value,
        dry_run: bool,
    ) -> anyhow::Result<CampaignId> {
        let table = self.users_table("users", n).await?;
        self.campaign(
            messages,
            &format!("SELECT user_id, name FROM `{table}`"),
            dry_run,
        )
        .await
    }

    /// Registers content, segment and channel, and a campaign due now (scheduled). Returns the campaign id.
    pub async fn campaign(
        &self,
        messages: serde_json::Value,
        segment_sql: &str,
        dry_run: bool,
    ) -> anyhow::Result<CampaignId> {
        self.campaign_with_links(messages, Default::default(), segment_sql, dry_run)
            .await
    }

    /// [`TestEnv::campaign`] with tracked links (`{{link:ID}}` in the messages, `links`: ID -> target URL),
    /// checked against the click settings as campaign creation does.
    pub async fn campaign_with_links(
        &self,
        messages: serde_json::Value,
        links: std::collections::BTreeMap<String, String>,
        segment_sql: &str,
        dry_run: bool,
    ) -> anyhow::Result<CampaignId> {
        self.campaign_on(&self.channel, messages, links, segment_sql, dry_run)
            .await
    }

    /// [`TestEnv::campaign_with_links`] on another LINE channel (its credentials must be in [`TestEnv::vars`]
    /// for child processes: `LINE_CHANNEL_<ID>_SECRET`, e.g. through [`EnvOptions::set`]).
    pub async fn campaign_on(
        &self,
        channel: &ChannelId,
        messages: serde_json::Value,
        links: std::collections::BTreeMap<String, String>,
        segment_sql: &str,
        dry_run: bool,
    ) -> anyhow::Result<CampaignId> {
        let ds = &self.ctx.gcp.datastore;
        let now = OffsetDateTime::now_utc();
        let messages = Messages::parse(&messages).map_err(|e| anyhow::anyhow!("content: {e:?}"))?;
        let content = Content {
            id: ContentId::generate(),
            name: "test content".into(),
            messages,
            links,
            updated_at: now,
            version: 1,
            updated_by: None,
        };
        content
            .check_links(&self.ctx.settings.click)
            .map_err(|e| anyhow::anyhow!("content: {e:?}"))?;
        let segment = Segment {
            id: SegmentId::generate(),
            name: "test segment".into(),
            sql: Segment::parse_sql(segment_sql)?,
            updated_at: now,
            columns: Vec::new(),
            updated_by: None,
        };
        ds.upsert(&content).await?;
        ds.upsert(&segment).await?;
        ds.upsert(&Channel {
            id: channel.clone(),
            name: "test channel".into(),
            has_secret: false,
            updated_at: None,
            updated_by: None,
        })
        .await?;
        let mut campaign = Campaign::draft(
            "test campaign".into(),
            content.id,
            segment.id,
            channel.clone(),
            now,
            now,
        );
        campaign.dry_run = dry_run;
        control::create(&self.ctx, &campaign).await?;
        control::schedule(&self.ctx, &campaign.id).await?;
        Ok(campaign.id)
    }

    pub async fn get(&self, id: &CampaignId) -> anyhow::Result<Campaign> {
        self.ctx
            .gcp
            .datastore
            .get(id.as_str())
            .await?
            .context("campaign vanished")
    }

    /// Ticks a scheduler (named `owner`) until `done(campaign)` or `timeout`.
    pub async fn run_until(
        &self,
        id: &CampaignId,
        owner: &str,
        timeout: Duration,
        done: impl Fn(&Campaign) -> bool,
    ) -> anyhow::Result<Campaign> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut opts = TickOptions::new(owner);
        opts.budget = Duration::from_secs(2);
        opts.poll = Duration::from_millis(200);
        loop {
            let report = tick(&self.ctx, &opts).await?;
            if !report.errors.is_empty() {
                bail!("scheduler errors: {:?}", report.errors);
            }
            let c = self.get(id).await?;
            if done(&c) {
                return Ok(c);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "campaign {id} did not get there in {timeout:?}: it is {} ({:?})",
                    c.status,
                    c.counts
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the campaign to a final state.
    pub async fn run_to_end(&self, id: &CampaignId, timeout: Duration) -> anyhow::Result<Campaign> {
        self.run_until(id, "test-scheduler", timeout, |c| {
            c.status.is_final() && c.completed_at.is_some()
        })
        .await
    }

    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(l) = self.line {
            l.shutdown().await;
        }
    }
}

/// The local sign-in password of test consoles.
pub const CONSOLE_PASSWORD: &str = "console-test-password";
/// The console admin of test consoles (from `SEGCAST_CONSOLE_ADMINS`).
pub const CONSOLE_ADMIN: &str = "admin@example.com";

/// A console serving this environment in-process on port 0 (local sign-in).
pub struct Console {
    pub url: String,
    pub app: segcast_console::ConsoleApp,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Console {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }

    /// Signs in as `email` (who must be the admin or a user added with [`Console::add_user`]); returns a
    /// client that sends the session cookie.
    pub async fn sign_in(&self, email: &str) -> anyhow::Result<reqwest::Client> {
        let http = reqwest::Client::builder().cookie_store(true).build()?;
        let r = http
            .post(format!("{}/api/session", self.url))
            .json(&serde_json::json!({"email": email, "password": CONSOLE_PASSWORD}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("sign-in as {email}: HTTP {}", r.status());
        }
        Ok(http)
    }

    /// Adds a console user with `role`, as the admin.
    pub async fn add_user(&self, email: &str, role: &str) -> anyhow::Result<()> {
        let admin = self.sign_in(CONSOLE_ADMIN).await?;
        let r = admin
            .put(format!("{}/api/users/{email}", self.url))
            .json(&serde_json::json!({"role": role}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("adding {email}: HTTP {}: {}", r.status(), r.text().await?);
        }
        Ok(())
    }
}

impl TestEnv {
    /// Starts a console for this environment. `extra` adds or overrides console settings (e.g.
    /// `SEGCAST_APPROVAL_THRESHOLD`).
    pub async fn console(&self, extra: &[(&str, &str)]) -> anyhow::Result<Console> {
        let mut vars: Vec<(String, String)> = vec![
            ("SEGCAST_CONSOLE_AUTH".into(), "local".into()),
            ("SEGCAST_CONSOLE_PASSWORD".into(), CONSOLE_PASSWORD.into()),
            ("SEGCAST_CONSOLE_ADMINS".into(), CONSOLE_ADMIN.into()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let settings =
            segcast_console::ConsoleSettings::from_vars(vars, &self.ctx.settings.dataset)?;
        let secrets = segcast::line::secrets::ChannelSecrets::from_setting(
            self.ctx.settings.line.channel_secrets.as_deref(),
            &self.ctx.settings.project_id,
        )
        .await?;
        let app = segcast_console::ConsoleApp::new(
            self.ctx.clone(),
            self.line_client.clone(),
            settings,
            secrets,
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let router = segcast_console::router(app.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        Ok(Console {
            url,
            app,
            stop,
            task,
        })
    }
}

/// A free port on loopback (for a child process to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A binary of this workspace, built by `cargo build --workspace --bins` (which `make test` runs first).
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // Test executables live in target/<profile>/deps, binaries in target/<profile>.
    let mut dir = exe.parent().expect("target directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target directory");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// A segcast service as a child process with this deployment's environment; killed (SIGKILL) on drop.
pub struct Service {
    pub child: std::process::Child,
}

impl Service {
    pub fn spawn(env: &TestEnv, bin: &str, extra: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::spawn_logged(env, bin, extra, None)
    }

    /// Like [`Service::spawn`]; with `log` set, its JSON log lines (`RUST_LOG=info`) go to that file.
    pub fn spawn_logged(
        env: &TestEnv,
        bin: &str,
        extra: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        Self::spawn_program(env, &workspace_bin(bin), extra, log)
    }

    /// Like [`Service::spawn_logged`], running the program at `program` (e.g. a copy of a workspace binary).
    pub fn spawn_program(
        env: &TestEnv,
        program: &std::path::Path,
        extra: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut cmd = std::process::Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
            .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null());
        if let Some(path) = log {
            cmd.stderr(std::fs::File::create(path).with_context(|| path.display().to_string())?);
        }
        Ok(Self {
            child: cmd.spawn()?,
        })
    }

    /// The process's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Waits until the service answers `GET /healthz` on `port`.
    pub async fn wait_healthy(&mut self, port: u16, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let url = format!("http://127.0.0.1:{port}/healthz");
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the service exited ({status}) before it was healthy");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the service did not answer {url} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A simple text message.
pub fn text(s: &str) -> serde_json::Value {
    serde_json::json!([{ "type": "text", "text": s }])
}
