//! Every environment variable segcast's services read: one table of (name, default, meaning, who reads it).
//!
//! Settings are parsed from it in one place ([`super`]); the README's settings table and infra-check's list of
//! the variables terraform may set are both checked against it by tests, so a variable cannot exist in the
//! code without being documented, or be set in terraform without being read.

use std::collections::HashMap;

/// A service (one binary) that reads settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Scheduler,
    Delivery,
    LogSink,
    ClickRedirect,
    Console,
}

impl Service {
    pub const ALL: &'static [Service] = &[
        Service::Scheduler,
        Service::Delivery,
        Service::LogSink,
        Service::ClickRedirect,
        Service::Console,
    ];
}

/// One environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    /// The default as the README states it; `None` when unset means "off" or "absent".
    pub default: Option<&'static str>,
    pub meaning: &'static str,
    /// The services that read it (parse it into their settings; the common settings are parsed by all, so a
    /// deployment may share them).
    pub read_by: &'static [Service],
    /// The services that refuse to start without it.
    pub required_by: &'static [Service],
}

use Service::*;
const ALL: &[Service] = Service::ALL;
const PUSHED: &[Service] = &[Scheduler, Delivery];
const NONE: &[Service] = &[];

const fn var(
    name: &'static str,
    default: Option<&'static str>,
    meaning: &'static str,
    read_by: &'static [Service],
) -> Var {
    Var {
        name,
        default,
        meaning,
        read_by,
        required_by: NONE,
    }
}

const fn required(
    name: &'static str,
    meaning: &'static str,
    read_by: &'static [Service],
    required_by: &'static [Service],
) -> Var {
    Var {
        name,
        default: None,
        meaning,
        read_by,
        required_by,
    }
}

/// A LINE channel's credentials, one pair of variables per channel ID (`LINE_CHANNEL_1656000001_SECRET`).
pub const CHANNEL_SECRET_PATTERN: (&str, &str) = ("LINE_CHANNEL_", "_SECRET");
pub const CHANNEL_TOKEN_PATTERN: (&str, &str) = ("LINE_CHANNEL_", "_TOKEN");

/// Every variable, in the README's order.
pub const VARS: &[Var] = &[
    required("GOOGLE_CLOUD_PROJECT", "the Google Cloud project", ALL, ALL),
    required(
        "SEGCAST_BUCKET",
        "bucket for segment exports",
        ALL,
        &[Scheduler],
    ),
    var("SEGCAST_DATASET", Some("segcast"), "BigQuery dataset", ALL),
    var(
        "SEGCAST_NAMESPACE",
        None,
        "Datastore namespace (the default namespace when unset)",
        ALL,
    ),
    var(
        "SEGCAST_DELIVERY_TOPICS",
        Some("10"),
        "N, the number of delivery topics",
        ALL,
    ),
    var(
        "SEGCAST_TOPIC_PREFIX",
        Some("segcast-delivery"),
        "delivery topic names: <prefix>-0 .. <prefix>-<N-1>",
        ALL,
    ),
    var(
        "SEGCAST_LOG_TOPIC",
        Some("segcast-delivery-log"),
        "delivery-log topic",
        ALL,
    ),
    var(
        "SEGCAST_MULTICAST_BATCH",
        Some("4000"),
        "recipients per multicast batch",
        ALL,
    ),
    var(
        "SEGCAST_PUSH_BATCH",
        Some("200"),
        "recipients per push (personalised) batch",
        ALL,
    ),
    var(
        "SEGCAST_LINE_MULTICAST_RATE",
        Some("200"),
        "multicast requests/s kept to per channel",
        ALL,
    ),
    var(
        "SEGCAST_LINE_PUSH_RATE",
        Some("2000"),
        "push requests/s kept to per channel",
        ALL,
    ),
    var(
        "SEGCAST_ACK_DEADLINE_SECONDS",
        Some("60"),
        "delivery subscriptions' ack deadline",
        ALL,
    ),
    var(
        "SEGCAST_PUSH_BUDGET_SECONDS",
        Some("30"),
        "a push's working time (shorter than the ack deadline)",
        ALL,
    ),
    var(
        "SEGCAST_BATCH_CONCURRENCY",
        Some("64"),
        "LINE requests one batch may have in flight",
        ALL,
    ),
    var(
        "SEGCAST_FANOUT_RATE",
        Some("0"),
        "batches/s the fan-out publishes at most (0 = unlimited)",
        ALL,
    ),
    var(
        "SEGCAST_LINE_TIMEOUT_MS",
        Some("10000"),
        "LINE request timeout",
        ALL,
    ),
    var(
        "SEGCAST_REDRIVE_SECONDS",
        Some("600"),
        "a round not growing this long is re-driven",
        ALL,
    ),
    var(
        "SEGCAST_TICK_BUDGET_SECONDS",
        Some("50"),
        "scheduler: work per tick",
        &[Scheduler],
    ),
    var(
        "SEGCAST_LEASE_SECONDS",
        Some("30"),
        "scheduler: campaign lease",
        &[Scheduler],
    ),
    var(
        "SEGCAST_SCHEDULER_LOOP_MS",
        None,
        "scheduler: also tick on its own this often (local use)",
        &[Scheduler],
    ),
    var(
        "SEGCAST_CLICK_TOPIC",
        Some("click-logs"),
        "click-log topic",
        ALL,
    ),
    var(
        "SEGCAST_CLICK_KEYS",
        None,
        "click-link signing keys kid:base64url-key,... (a secret)",
        ALL,
    ),
    var(
        "SEGCAST_CLICK_BASE_URL",
        None,
        "public base URL of the click domain",
        ALL,
    ),
    var(
        "SEGCAST_CLICK_TOKEN_TTL_DAYS",
        Some("90"),
        "how long tracked links keep working",
        ALL,
    ),
    var(
        "SEGCAST_CLICK_BUFFER",
        Some("100000"),
        "click redirect: clicks buffered before shedding",
        &[ClickRedirect],
    ),
    var("PORT", Some("8080"), "HTTP port (Cloud Run sets it)", ALL),
    var(
        "SEGCAST_PUSH_TOKEN",
        None,
        "local push authentication (a secret)",
        PUSHED,
    ),
    var(
        "SEGCAST_PUSH_AUDIENCE",
        None,
        "production OIDC push authentication: the audience",
        PUSHED,
    ),
    var(
        "SEGCAST_PUSH_SERVICE_ACCOUNT",
        None,
        "production OIDC push authentication: the signer",
        PUSHED,
    ),
    var(
        "LINE_API_BASE_URL",
        Some("https://api.line.me"),
        "LINE API",
        ALL,
    ),
    var(
        "LINE_CHANNEL_ID",
        None,
        "one channel's ID (with LINE_CHANNEL_SECRET or LINE_CHANNEL_TOKEN)",
        ALL,
    ),
    var("LINE_CHANNEL_SECRET", None, "that channel's secret", ALL),
    var(
        "LINE_CHANNEL_TOKEN",
        None,
        "that channel's long-lived access token",
        ALL,
    ),
    var(
        "SEGCAST_CHANNEL_SECRETS",
        None,
        "where console-registered channel secrets live: secret-manager or dir:<path>",
        ALL,
    ),
    required(
        "SEGCAST_CONSOLE_AUTH",
        "console: iap or local",
        &[Console],
        &[Console],
    ),
    var(
        "SEGCAST_IAP_AUDIENCE",
        None,
        "console behind IAP: the backend's audience",
        &[Console],
    ),
    var(
        "SEGCAST_IAP_JWKS_URL",
        None,
        "console behind IAP: IAP's keys",
        &[Console],
    ),
    var(
        "SEGCAST_CONSOLE_PASSWORD",
        None,
        "console, local sign-in: the shared password (a secret)",
        &[Console],
    ),
    var(
        "SEGCAST_CONSOLE_SESSION_KEY",
        None,
        "console, local sign-in: session signing key (a secret)",
        &[Console],
    ),
    var(
        "SEGCAST_CONSOLE_SESSION_HOURS",
        Some("12"),
        "console, local sign-in: session length",
        &[Console],
    ),
    var(
        "SEGCAST_CONSOLE_ADMINS",
        None,
        "console: emails that are admins",
        &[Console],
    ),
    var(
        "SEGCAST_APPROVAL_THRESHOLD",
        Some("100000"),
        "console: recipients over which a second user approves",
        &[Console],
    ),
    var(
        "SEGCAST_SEGMENT_DATASETS",
        None,
        "console: datasets segment SQL may read (segcast's when unset)",
        &[Console],
    ),
    var(
        "SEGCAST_SEGMENT_MAX_BYTES",
        Some("100000000000"),
        "console: bytes a segment may scan",
        &[Console],
    ),
    var(
        "SEGCAST_CONSOLE_RATE",
        Some("20"),
        "console: requests/s per caller",
        &[Console],
    ),
    var(
        "SEGCAST_CONSOLE_MAX_BODY",
        Some("262144"),
        "console: largest request body in bytes",
        &[Console],
    ),
    var(
        "PUBSUB_EMULATOR_HOST",
        None,
        "Pub/Sub emulator (anonymous credentials)",
        ALL,
    ),
    var("DATASTORE_EMULATOR_HOST", None, "Datastore emulator", ALL),
    var("STORAGE_EMULATOR_HOST", None, "Cloud Storage emulator", ALL),
    var("BIGQUERY_EMULATOR_HOST", None, "BigQuery emulator", ALL),
    var("RUST_LOG", Some("info"), "log filter", ALL),
];

/// The entry for `name`, if it is a variable segcast reads (channel credential patterns included).
pub fn lookup(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name == name)
}

/// Whether `name` is a per-channel credential (`LINE_CHANNEL_<ID>_SECRET` / `_TOKEN`).
pub fn is_channel_credential(name: &str) -> bool {
    channel_of(name).is_some()
}

/// The channel ID of a per-channel credential variable, and whether it is a secret (else a token).
pub fn channel_of(name: &str) -> Option<(&str, bool)> {
    let rest = name.strip_prefix(CHANNEL_SECRET_PATTERN.0)?;
    let (id, secret) = match rest.strip_suffix(CHANNEL_SECRET_PATTERN.1) {
        Some(id) => (id, true),
        None => (rest.strip_suffix(CHANNEL_TOKEN_PATTERN.1)?, false),
    };
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some((id, secret))
}

/// The environment (or a test's variables), trimmed, empty values as unset. Reading a name that is not in
/// [`VARS`] is a bug in segcast, caught by its tests (debug builds assert it).
#[derive(Debug, Clone, Default)]
pub struct Vars(HashMap<String, String>);

impl Vars {
    /// The process's environment: the one place segcast reads it.
    pub fn from_env() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k, v.trim().to_owned()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        )
    }

    /// The value of `name`, when set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(
            lookup(name).is_some(),
            "{name} is read but not in config::vars::VARS: add it (name, default, meaning)"
        );
        self.0.get(name).map(String::as_str)
    }

    /// Every per-channel credential set: (channel ID, is a secret, value).
    pub fn channel_credentials(&self) -> impl Iterator<Item = (&str, bool, &str)> {
        self.0
            .iter()
            .filter_map(|(k, v)| channel_of(k).map(|(id, secret)| (id, secret, v.as_str())))
    }

    /// Refuses to start `service` without its required variables, naming each with its meaning.
    pub fn require(&self, service: Service) -> anyhow::Result<()> {
        for v in VARS.iter().filter(|v| v.required_by.contains(&service)) {
            if !self.0.contains_key(v.name) {
                anyhow::bail!("{} is not set: {}", v.name, v.meaning);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_variable_is_read_by_someone() {
        let mut seen = std::collections::HashSet::new();
        for v in VARS {
            assert!(seen.insert(v.name), "{} twice", v.name);
            assert!(!v.read_by.is_empty(), "{} read by nobody", v.name);
            assert!(
                v.required_by.iter().all(|s| v.read_by.contains(s)),
                "{}",
                v.name
            );
            assert!(
                v.default.is_none() || v.required_by.is_empty(),
                "{} required with a default",
                v.name
            );
        }
    }

    #[test]
    fn channel_credentials_follow_their_pattern() {
        assert_eq!(
            channel_of("LINE_CHANNEL_1656000001_SECRET"),
            Some(("1656000001", true))
        );
        assert_eq!(
            channel_of("LINE_CHANNEL_1656000001_TOKEN"),
            Some(("1656000001", false))
        );
        for not in [
            "LINE_CHANNEL_SECRET",
            "LINE_CHANNEL_ID",
            "LINE_CHANNEL_ab_SECRET",
            "LINE_CHANNEL__TOKEN",
        ] {
            assert_eq!(channel_of(not), None, "{not}");
        }
    }

    #[test]
    fn a_service_without_a_required_variable_refuses_to_start_and_says_what_it_is() {
        let vars = Vars::from_pairs([("GOOGLE_CLOUD_PROJECT".to_owned(), "p".to_owned())]);
        assert!(vars.require(Service::Delivery).is_ok());
        assert!(
            vars.require(Service::ClickRedirect).is_ok(),
            "the redirect needs no bucket"
        );
        let e = vars.require(Service::Scheduler).unwrap_err().to_string();
        assert_eq!(e, "SEGCAST_BUCKET is not set: bucket for segment exports");
        let e = Vars::default()
            .require(Service::LogSink)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("GOOGLE_CLOUD_PROJECT is not set"), "{e}");
    }

    #[test]
    #[should_panic(expected = "not in config::vars::VARS")]
    fn reading_an_unlisted_variable_is_caught() {
        Vars::default().get("SEGCAST_NO_SUCH_SETTING");
    }
}
