//! The marketer's whole journey through the console's web UI, in real headless Chromium (Debian's `chromium`
//! and `chromium-driver`, installed by `make install`) driven over WebDriver: sign in -> register a channel ->
//! create content (a validation error first, then fixed) -> a segment with its preview -> a campaign -> a test
//! send -> schedule -> watch the progress until it completes -> results with the chart -> the failures CSV.
//!
//! The console runs in-process on the local stack (a [`TestEnv`] with the delivery handler, the log sink and a
//! scheduler loop). The segment holds recipients that fail (two malformed user IDs, one user LINE refuses), so
//! the results and the CSV have failures to show. A PNG of each step goes to
//! `target/test-artifacts/console/` (and `failure.png` + `failure.html` if a step fails).

use anyhow::{Context, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use segcast::http::scheduler_tick::run_loop;
use segcast::line::secrets::ChannelSecrets;
use segcast::pipeline::scheduler::TickOptions;
use segcast_console::{ConsoleApp, ConsoleSettings, router};
use segcast_e2e::{CHANNEL, CHANNEL_SECRET, EnvOptions, TestEnv, free_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const EMAIL: &str = "marketer@example.com";
const PASSWORD: &str = "correct-horse-battery-staple";
/// Well-formed, but LINE says this user does not exist (the fake is told so): a `line_rejected` failure.
const GHOST: &str = "Uffffffffffffffffffffffffffffffff";
const MEMBERS: u64 = 40;
/// The segment: the members, the ghost, and two malformed IDs (`invalid_user_id`).
const TARGETED: u64 = MEMBERS + 3;

/// `assert_eq!` that fails the journey with an error (so the failure screenshot is taken and the browser
/// closed) instead of panicking.
macro_rules! check_eq {
    ($left:expr, $right:expr $(,)?) => {
        check_eq!($left, $right, "")
    };
    ($left:expr, $right:expr, $($msg:tt)+) => {
        // A match keeps the operands' temporaries alive, as in `assert_eq!`.
        match (&$left, &$right) {
            (left, right) => ensure!(
                *left == *right,
                "{}: {} is {:?}, expected {:?}",
                format!($($msg)+),
                stringify!($left),
                left,
                right
            ),
        }
    };
}

/// `target/test-artifacts/console/`, next to the build output this test runs from.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> -> target
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-artifacts/console")
}

/// chromedriver on a free port in its own process group; on drop the whole group (chromedriver and the
/// Chromium it started) is killed, so no browser outlives a failed test.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start(log: &Path) -> anyhow::Result<Self> {
        let chromium = devstack::install::find_chromium().with_context(|| {
            format!(
                "{} and {} are needed: run `make install` (as root it installs Debian's chromium and \
                 chromium-driver)",
                devstack::install::CHROMIUM_BIN,
                devstack::install::CHROMEDRIVER_BIN
            )
        })?;
        let port = free_port();
        use std::os::unix::process::CommandExt as _;
        let child = Command::new(&chromium.driver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", chromium.driver.display()))?;
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/status", driver.url)).await
                && r.status().is_success()
            {
                return Ok(driver);
            }
            if let Some(status) = driver.child.try_wait()? {
                bail!("chromedriver exited ({status}); see {}", log.display());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("chromedriver did not answer on {} within 30s", driver.url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A headless Chromium session with a fresh profile in `profile`.
    async fn session(&self, profile: &Path) -> anyhow::Result<Client> {
        let mut args: Vec<String> = devstack::install::CHROMIUM_FLAGS
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push("--window-size=1366,1600".into());
        args.push("--lang=en-US".into());
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": devstack::install::CHROMIUM_BIN,
                "args": args,
                "prefs": { "intl.accept_languages": "en-US" },
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        // chromedriver listens on loopback over plain HTTP: no TLS connector (nor crypto provider) needed.
        let http = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(http)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .context("opening a Chromium session")?;
        Ok(client)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop (also when the test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("creating a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The browser and where its screenshots go.
struct Browser {
    c: Client,
    base: String,
    dir: PathBuf,
    step: AtomicU32,
}

impl Browser {
    fn css(s: &str) -> Locator<'_> {
        Locator::Css(s)
    }

    async fn shot(&self, name: &str) -> anyhow::Result<()> {
        let step = self.step.fetch_add(1, Ordering::Relaxed) + 1;
        let png = self.c.screenshot().await?;
        let path = self.dir.join(format!("{step:02}-{name}.png"));
        std::fs::write(&path, png).with_context(|| path.display().to_string())?;
        Ok(())
    }

    /// Scrolls `css` into view (for the next screenshot).
    async fn scroll_to(&self, css: &str) -> anyhow::Result<()> {
        self.c
            .execute(
                "const el = document.querySelector(arguments[0]); if (el) el.scrollIntoView({block: 'start'});",
                vec![css.into()],
            )
            .await?;
        Ok(())
    }

    /// Waits until `css` matches a displayed element.
    async fn find(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.wait(
            &format!("{css} to show"),
            Duration::from_secs(30),
            || async move {
                match self.c.find(Self::css(css)).await {
                    Ok(e) if e.is_displayed().await.unwrap_or(false) => Ok(Some(e)),
                    _ => Ok(None),
                }
            },
        )
        .await
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css).await?.click().await?;
        Ok(())
    }

    async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let e = self.find(css).await?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }

    /// Sets a (large) field's value as typing would, firing `input`.
    async fn set_value(&self, css: &str, value: &str) -> anyhow::Result<()> {
        self.find(css).await?;
        self.c
            .execute(
                "const el = document.querySelector(arguments[0]); el.value = arguments[1]; \
                 el.dispatchEvent(new Event('input', {bubbles: true}));",
                vec![css.into(), value.into()],
            )
            .await?;
        Ok(())
    }

    async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.find(css).await?.text().await?.trim().to_owned())
    }

    async fn attr(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        Ok(self.find(css).await?.attr(name).await?)
    }

    /// Waits until `css`'s text satisfies `ok`; returns it.
    async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let what = format!("the text of {css}");
        let last = std::sync::Mutex::new(String::new());
        let (last_seen, ok) = (&last, &ok);
        self.wait(&what, timeout, || async move {
            let Ok(e) = self.c.find(Self::css(css)).await else {
                return Ok(None);
            };
            let t = e.text().await.unwrap_or_default().trim().to_owned();
            *last_seen.lock().unwrap() = t.clone();
            Ok(ok(&t).then_some(t))
        })
        .await
        .with_context(|| format!("last seen: {:?}", last.lock().unwrap()))
    }

    /// Waits until `css`'s attribute `name` satisfies `ok`; returns it.
    async fn wait_attr(
        &self,
        css: &str,
        name: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let last = std::sync::Mutex::new(None::<String>);
        let (last_seen, ok) = (&last, &ok);
        self.wait(&format!("{css}[{name}]"), timeout, || async move {
            let Ok(e) = self.c.find(Self::css(css)).await else {
                return Ok(None);
            };
            let v = e.attr(name).await.ok().flatten();
            *last_seen.lock().unwrap() = v.clone();
            Ok(v.filter(|v| ok(v)))
        })
        .await
        .with_context(|| format!("last seen: {:?}", last.lock().unwrap()))
    }

    async fn wait<T, F, Fut>(&self, what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Option<T>>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = f().await? {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The id at the end of the current `#/<what>/<id>` URL, once the page is there.
    async fn id_in_url(&self, what: &str) -> anyhow::Result<String> {
        let prefix = format!("#/{what}/");
        let prefix = &prefix;
        self.wait(
            &format!("the URL to show a {what} id"),
            Duration::from_secs(30),
            || async move {
                let url = self.c.current_url().await?;
                let frag = url.fragment().map(|f| format!("#{f}")).unwrap_or_default();
                Ok(frag
                    .strip_prefix(prefix.as_str())
                    .filter(|id| !id.is_empty() && *id != "new" && !id.contains('/'))
                    .map(str::to_owned))
            },
        )
        .await
    }

    async fn nav(&self, section: &str) -> anyhow::Result<()> {
        self.click(&format!("#nav-{section}")).await?;
        self.wait_attr(
            &format!("#nav-{section}"),
            "class",
            Duration::from_secs(10),
            |c| c.contains("active"),
        )
        .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketer_runs_a_campaign_end_to_end_in_the_browser() {
    let dir = artifacts_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let env = TestEnv::start_with(EnvOptions {
        fake_line: fake_line::Config {
            nonexistent_users: vec![GHOST.to_owned()],
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let stop = CancellationToken::new();

    // The scheduler, ticking as Cloud Scheduler would (more often).
    let mut tick = TickOptions::new("browser-test-scheduler");
    tick.budget = Duration::from_secs(5);
    tick.poll = Duration::from_millis(200);
    let scheduler = tokio::spawn(run_loop(
        env.ctx.clone(),
        tick,
        Duration::from_millis(300),
        stop.clone(),
    ));

    // The console, in-process, with local sign-in and channel secrets in a private directory.
    let secrets_dir = TempDir::new(&format!("segcast-secrets-{}", env.prefix));
    let settings = ConsoleSettings::from_vars(
        [
            ("SEGCAST_CONSOLE_AUTH", "local"),
            ("SEGCAST_CONSOLE_PASSWORD", PASSWORD),
            ("SEGCAST_CONSOLE_ADMINS", EMAIL),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
        &env.ctx.settings.dataset,
    )
    .unwrap();
    let app = ConsoleApp::new(
        env.ctx.clone(),
        env.line_client.clone(),
        settings,
        Some(ChannelSecrets::Dir(secrets_dir.0.clone())),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console_url = format!("http://{}", listener.local_addr().unwrap());
    let s = stop.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router(app))
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await;
    });

    // The segment's table: MEMBERS users (with a `name`).
    let table = env.users_table("members", MEMBERS).await.unwrap();
    let first_member: String = env
        .ctx
        .gcp
        .bigquery
        .query(
            &format!("SELECT user_id FROM `{table}` WHERE name = 'member1'"),
            &[],
        )
        .await
        .unwrap()[0]
        .get("user_id")
        .unwrap();

    let driver = ChromeDriver::start(&dir.join("chromedriver.log"))
        .await
        .unwrap();
    let profile = TempDir::new(&format!("segcast-chromium-{}", env.prefix));
    let client = driver.session(&profile.0).await.unwrap();
    let b = Browser {
        c: client,
        base: console_url,
        dir: dir.clone(),
        step: AtomicU32::new(0),
    };

    let outcome = journey(&b, &env, &table, &first_member).await;
    if let Err(e) = &outcome {
        let _ = std::fs::write(
            dir.join("failure.html"),
            b.c.source().await.unwrap_or_default(),
        );
        if let Ok(png) = b.c.screenshot().await {
            let _ = std::fs::write(dir.join("failure.png"), png);
        }
        eprintln!(
            "the journey failed: {e:#}\nscreenshots and the page: {}",
            dir.display()
        );
    }
    let _ = b.c.clone().close().await;
    drop(driver);
    drop((profile, secrets_dir));
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    let _ = tokio::time::timeout(Duration::from_secs(60), scheduler).await;
    env.stop().await;
    outcome.unwrap();
}

async fn journey(
    b: &Browser,
    env: &TestEnv,
    table: &str,
    first_member: &str,
) -> anyhow::Result<()> {
    const LONG: Duration = Duration::from_secs(30);

    // 1. Sign in (a wrong password first).
    b.c.goto(&format!("{}/", b.base)).await?;
    b.fill("#signin-email", EMAIL).await?;
    b.fill("#signin-password", "not-the-password").await?;
    b.click("#signin-submit").await?;
    b.wait_text("#banner", LONG, |t| t.contains("wrong email or password"))
        .await
        .context("a wrong password is refused")?;
    b.shot("sign-in-refused").await?;
    b.fill("#signin-password", PASSWORD).await?;
    b.click("#signin-submit").await?;
    b.wait_text("#me-email", LONG, |t| t == EMAIL).await?;
    check_eq!(b.text("#me-role").await?, "admin");
    ensure!(b.find("#nav-users").await.is_ok(), "admins see Users");
    b.find("#campaigns-table, #campaigns-table-empty").await?;
    b.shot("signed-in").await?;

    // 2. Register the channel; its secret is never shown again.
    b.nav("channels").await?;
    b.fill("#channel-id", CHANNEL).await?;
    b.fill("#channel-name", "Autumn shop").await?;
    b.fill("#channel-secret", CHANNEL_SECRET).await?;
    b.click("#channel-save").await?;
    let row = format!("[data-test=channel-row][data-id='{CHANNEL}']");
    b.wait_text(&row, LONG, |t| {
        t.contains("Autumn shop") && t.contains("secret stored")
    })
    .await?;
    check_eq!(
        b.find("#channel-secret")
            .await?
            .prop("value")
            .await?
            .as_deref(),
        Some(""),
        "the secret field is cleared after saving"
    );
    ensure!(
        !b.c.source().await?.contains(CHANNEL_SECRET),
        "the page never shows the channel secret"
    );
    b.wait_text("#flash", LONG, |t| t.contains("secret stored"))
        .await?;
    b.shot("channel-registered").await?;

    // 3. Content: a message template, a mistake (an unclosed placeholder) caught by Validate, then fixed.
    b.nav("contents").await?;
    b.click("#new-content").await?;
    b.fill("#content-name", "Autumn sale").await?;
    b.find("#message-type")
        .await?
        .select_by_value("sticker")
        .await?;
    b.click("#insert-message").await?;
    b.wait_text("#messages-json-status", LONG, |t| t.contains("1 message"))
        .await?;
    b.find("[data-test=preview-item][data-type=sticker]")
        .await?;
    let broken = r#"[
  {"type": "text", "text": "Hi {{name, our autumn sale starts today!"},
  {"type": "sticker", "packageId": "446", "stickerId": "1988"}
]"#;
    b.set_value("#content-messages", broken).await?;
    b.click("#content-validate").await?;
    let error = b
        .wait_text(
            "[data-test=field-error][data-error-field='messages[0].text']",
            LONG,
            |t| t.contains("placeholder"),
        )
        .await
        .context("the validation error is shown next to the messages, naming messages[0].text")?;
    ensure!(error.contains("messages[0].text"), "{error}");
    b.shot("content-validation-error").await?;

    let fixed = r#"[
  {"type": "text", "text": "Hi {{name}}, our autumn sale starts today!"},
  {"type": "sticker", "packageId": "446", "stickerId": "1988"}
]"#;
    b.set_value("#content-messages", fixed).await?;
    b.wait_attr("#delivery-mode", "data-mode", LONG, |m| m == "push")
        .await
        .context("a {{name}} placeholder makes it a push")?;
    let items =
        b.c.find_all(Locator::Css("[data-test=preview-item]"))
            .await?;
    check_eq!(items.len(), 2, "the preview shows both messages");
    ensure!(
        b.text("[data-test=preview-item][data-type=text]")
            .await?
            .contains("Hi {{name}}, our autumn sale")
    );
    b.click("#content-validate").await?;
    b.wait_text("[data-test=validate-delivery]", LONG, |t| t == "push")
        .await?;
    ensure!(
        b.c.find_all(Locator::Css("[data-test=field-error]"))
            .await?
            .is_empty(),
        "the error is gone once fixed"
    );
    b.shot("content-valid").await?;
    b.click("#content-save").await?;
    let content_id = b.id_in_url("contents").await?;
    b.wait_text("#flash", LONG, |t| t.contains("saved")).await?;
    b.wait_text("[data-test=version-row]", LONG, |t| t.contains("v1"))
        .await?;
    b.shot("content-saved").await?;

    // 4. Segment: preview (count, columns, sample), then save.
    b.nav("segments").await?;
    b.click("#new-segment").await?;
    b.fill("#segment-name", "Members and some bad IDs").await?;
    let sql = format!(
        "SELECT user_id, name FROM `{table}`\n\
         UNION ALL SELECT '{GHOST}' AS user_id, 'ghost' AS name\n\
         UNION ALL SELECT 'not-a-user' AS user_id, 'typo' AS name\n\
         UNION ALL SELECT 'U0123' AS user_id, 'short' AS name"
    );
    b.set_value("#segment-sql", &sql).await?;
    b.click("#segment-preview").await?;
    let count = b
        .wait_text("#preview-count", Duration::from_secs(60), |t| !t.is_empty())
        .await?;
    check_eq!(
        count,
        TARGETED.to_string(),
        "the preview counts the recipients"
    );
    let columns = b.text("#preview-columns").await?;
    ensure!(
        columns.contains("user_id") && columns.contains("name"),
        "{columns}"
    );
    let sample = b.c.find_all(Locator::Css("[data-test=sample-row]")).await?;
    ensure!(!sample.is_empty(), "the preview shows sample rows");
    b.scroll_to("#segment-preview-result").await?;
    b.shot("segment-preview").await?;
    b.click("#segment-save").await?;
    let segment_id = b.id_in_url("segments").await?;
    b.wait_text("#flash", LONG, |t| t.contains("saved")).await?;

    // 5. Campaign: a draft sending as soon as it is scheduled, in the browser's time zone.
    b.nav("campaigns").await?;
    b.click("#new-campaign").await?;
    b.fill("#campaign-name", "Autumn sale launch").await?;
    b.find("#campaign-content")
        .await?
        .select_by_value(&content_id)
        .await?;
    b.find("#campaign-segment")
        .await?
        .select_by_value(&segment_id)
        .await?;
    b.find("#campaign-channel")
        .await?
        .select_by_value(CHANNEL)
        .await?;
    let browser_tz =
        b.c.execute(
            "return Intl.DateTimeFormat().resolvedOptions().timeZone;",
            vec![],
        )
        .await?;
    check_eq!(
        b.find("#campaign-tz")
            .await?
            .prop("value")
            .await?
            .as_deref(),
        browser_tz.as_str(),
        "the time zone defaults to the browser's"
    );
    b.click("#campaign-send-now").await?;
    ensure!(!b.find("#campaign-send-at").await?.is_enabled().await?);
    b.shot("campaign-form").await?;
    b.click("#campaign-save").await?;
    let campaign_id = b.id_in_url("campaigns").await?;
    b.wait_attr("#campaign-status", "data-status", LONG, |s| s == "draft")
        .await?;
    check_eq!(b.text("#page-title").await?, "Autumn sale launch");

    // 6. Test send: one member receives it, the ghost does not.
    b.set_value("#test-user-ids", &format!("{first_member}\n{GHOST}"))
        .await?;
    b.click("#test-send").await?;
    b.wait_attr(
        &format!("[data-test=test-send-row][data-user='{first_member}']"),
        "data-delivered",
        LONG,
        |d| d == "true",
    )
    .await?;
    check_eq!(
        b.attr(
            &format!("[data-test=test-send-row][data-user='{GHOST}']"),
            "data-delivered"
        )
        .await?
        .as_deref(),
        Some("false")
    );
    b.scroll_to("#test-send-form").await?;
    b.shot("test-send").await?;
    let received = env.fake().messages_to(first_member);
    check_eq!(received.len(), 1, "LINE got one test push: {received:?}");
    check_eq!(
        received[0].as_array().map(Vec::len),
        Some(2),
        "{received:?}"
    );

    // 7. Schedule, and watch it go.
    b.c.execute("window.scrollTo(0, 0);", vec![]).await?;
    b.click("#action-schedule").await?;
    b.wait_attr("#campaign-status", "data-status", LONG, |s| s != "draft")
        .await?;
    b.find("#progress").await?;
    b.shot("scheduled").await?;
    // A screenshot while it sends (best effort: a small campaign may finish between two polls).
    let shot_running = &AtomicBool::new(false);
    b.wait(
        "the campaign to complete",
        Duration::from_secs(240),
        || async move {
            let status = match b.c.find(Locator::Css("#campaign-status")).await {
                Ok(e) => e
                    .attr("data-status")
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            match status.as_str() {
                "completed" => Ok(Some(())),
                "failed" | "canceled" | "paused" => bail!("the campaign ended up {status}"),
                "extracting" | "fanning_out" | "delivering" | "retrying"
                    if !shot_running.load(Ordering::Relaxed) =>
                {
                    b.scroll_to("#progress-section").await?;
                    b.shot("sending").await?;
                    shot_running.store(true, Ordering::Relaxed);
                    Ok(None)
                }
                _ => Ok(None),
            }
        },
    )
    .await?;
    b.wait_text("#progress-delivered", LONG, |t| t == MEMBERS.to_string())
        .await?;
    check_eq!(b.text("#progress-targeted").await?, TARGETED.to_string());
    check_eq!(b.text("#progress-failed").await?, "3");
    check_eq!(b.text("#progress-percent").await?, "100.0%");
    b.scroll_to("#progress-section").await?;
    b.shot("completed-progress").await?;

    // 8. Results: counts, failures by reason, the chart.
    b.wait_text("#results-targeted", Duration::from_secs(60), |t| {
        t == TARGETED.to_string()
    })
    .await?;
    check_eq!(b.text("#results-delivered").await?, MEMBERS.to_string());
    check_eq!(b.text("#results-failed").await?, "3");
    check_eq!(
        b.text("[data-test=reason-row][data-reason=invalid_user_id] [data-test=reason-count]")
            .await?,
        "2"
    );
    check_eq!(
        b.text("[data-test=reason-row][data-reason=line_rejected] [data-test=reason-count]")
            .await?,
        "1"
    );
    check_eq!(b.text("#results-clicks").await?, "0");
    let delivered_in_chart = b
        .wait_attr("#timeline-chart", "data-total-delivered", LONG, |_| true)
        .await?;
    check_eq!(
        delivered_in_chart,
        MEMBERS.to_string(),
        "the chart adds up to the deliveries"
    );
    let bars =
        b.c.find_all(Locator::Css("#timeline-chart rect.bar-delivered"))
            .await?;
    ensure!(!bars.is_empty(), "the chart has bars");
    b.scroll_to("#results-section").await?;
    b.shot("results-and-chart").await?;

    // 9. The failures CSV, downloaded from the link with the browser's session.
    let href = b
        .find("#failures-csv")
        .await?
        .prop("href")
        .await?
        .context("the CSV link has an href")?;
    ensure!(
        href.ends_with(&format!("/api/campaigns/{campaign_id}/failures.csv")),
        "{href}"
    );
    let cookie = b.c.get_named_cookie("segcast_session").await?;
    let http = reqwest::Client::new();
    let anonymous = http.get(&href).send().await?;
    check_eq!(anonymous.status(), 401, "the CSV needs a session");
    let resp = http
        .get(&href)
        .header(
            reqwest::header::COOKIE,
            format!("segcast_session={}", cookie.value()),
        )
        .send()
        .await?;
    check_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(ct.starts_with("text/csv"), "{ct}");
    let csv = resp.text().await?;
    std::fs::write(b.dir.join("failures.csv"), &csv)?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().context("a header")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no {name} column in {header:?}"))
    };
    let (user_col, reason_col) = (col("user_id")?, col("reason")?);
    let mut rows: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[user_col].to_owned(), f[reason_col].to_owned())
        })
        .collect();
    rows.sort();
    check_eq!(
        rows,
        vec![
            ("U0123".to_owned(), "invalid_user_id".to_owned()),
            (GHOST.to_owned(), "line_rejected".to_owned()),
            ("not-a-user".to_owned(), "invalid_user_id".to_owned()),
        ],
        "{csv}"
    );

    let unit = env
        .fake()
        .stats()
        .units
        .get(&campaign_id)
        .cloned()
        .unwrap_or_default();
    check_eq!(unit.unique, MEMBERS, "LINE accepted each member once");
    check_eq!(unit.duplicates + unit.other_messages, 0);

    // 10. The audit trail: on the campaign's page and in the log.
    let actions: Vec<String> = {
        let mut out = Vec::new();
        for e in
            b.c.find_all(Locator::Css("#campaign-audit [data-test=audit-action]"))
                .await?
        {
            out.push(e.text().await?);
        }
        out
    };
    for a in ["campaign.create", "campaign.test_send", "campaign.schedule"] {
        ensure!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    b.nav("audit").await?;
    b.wait("the audit log to list the journey", LONG, || async move {
        let n =
            b.c.find_all(Locator::Css("#audit-table [data-test=audit-row]"))
                .await?
                .len();
        Ok((n >= 5).then_some(()))
    })
    .await?;
    let actor = b.text("#audit-table [data-test=audit-actor]").await?;
    check_eq!(actor, EMAIL);
    b.click("#audit-table [data-test=audit-diff] summary")
        .await?;
    b.shot("audit-log").await?;
    Ok(())
}
