//! The checks: terraform (as a [`Model`]) against the code (as [`Code`]).

use crate::code::{self, Code};
use crate::model::{Model, PROJECT_NUMBER, Resource, is_unknown};
use crate::roles::{self, Only, Scope};
use segcast::config::Settings;
use segcast_console::ConsoleSettings;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt;

/// One way terraform and the code disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What it is about: a terraform address, or a file.
    pub subject: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// What a service's code does with the LINE channel secrets kept in Secret Manager
/// (`SEGCAST_CHANNEL_SECRETS`, `crates/segcast/src/line/secrets.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelSecrets {
    Unused,
    /// Looks up channels its environment does not have (the token provider).
    Reads,
    /// Stores the secrets entered in the console (creates the secret, adds versions), and reads channel
    /// secrets to issue the tokens of test sends and LINE's validate endpoint (the console).
    ReadsAndWrites,
}

/// A Cloud Run service the code has a binary for.
pub struct Service {
    pub key: &'static str,
    pub name: &'static str,
    /// The binary, as the code's settings table (`segcast::config::vars`) names it.
    pub code: segcast::config::Service,
    /// Reads its settings with `Settings::from_vars` (and so needs the whole pipeline environment).
    pub pipeline: bool,
    /// Authenticates its callers with `PushAuth` (OIDC audience + service account).
    pub push_auth: bool,
    /// Must be deployed (the others are optional: log sink, console).
    pub required: bool,
    pub env: &'static [&'static str],
    pub secret_env: &'static [&'static str],
    pub channel_secrets: ChannelSecrets,
}

/// The services, by binary. The environment variables listed here are the ones the code reads outside
/// `Settings::from_vars` (which the check runs on each service's environment, as it runs
/// `ConsoleSettings::from_vars` on the console's) and `TokenProvider`, that production must set.
pub const SERVICES: &[Service] = &[
    Service {
        key: "scheduler",
        name: "segcast-scheduler",
        code: segcast::config::Service::Scheduler,
        pipeline: true,
        push_auth: true,
        required: true,
        env: &[],
        secret_env: &[],
        channel_secrets: ChannelSecrets::Reads,
    },
    Service {
        key: "delivery",
        name: "segcast-delivery",
        code: segcast::config::Service::Delivery,
        pipeline: true,
        push_auth: true,
        required: true,
        env: &["SEGCAST_CLICK_BASE_URL"],
        secret_env: &["SEGCAST_CLICK_KEYS"],
        channel_secrets: ChannelSecrets::Reads,
    },
    Service {
        key: "log-sink",
        name: "segcast-log-sink",
        code: segcast::config::Service::LogSink,
        pipeline: true,
        push_auth: false,
        required: false,
        env: &[],
        secret_env: &[],
        channel_secrets: ChannelSecrets::Unused,
    },
    Service {
        key: "click-redirect",
        name: "segcast-click-redirect",
        code: segcast::config::Service::ClickRedirect,
        pipeline: false,
        push_auth: false,
        required: true,
        env: &[
            "GOOGLE_CLOUD_PROJECT",
            "SEGCAST_CLICK_TOPIC",
            "SEGCAST_CLICK_BASE_URL",
        ],
        secret_env: &["SEGCAST_CLICK_KEYS"],
        channel_secrets: ChannelSecrets::Unused,
    },
    Service {
        key: "console",
        name: "segcast-console",
        code: segcast::config::Service::Console,
        pipeline: true,
        push_auth: false,
        required: false,
        env: &[
            "SEGCAST_CONSOLE_AUTH",
            "SEGCAST_IAP_AUDIENCE",
            "SEGCAST_SEGMENT_DATASETS",
            "SEGCAST_APPROVAL_THRESHOLD",
        ],
        secret_env: &[],
        channel_secrets: ChannelSecrets::ReadsAndWrites,
    },
];

/// The one service that may be public.
pub const PUBLIC_SERVICE: &str = "segcast-click-redirect";

struct Out(Vec<Problem>);

impl Out {
    fn add(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            subject: subject.into(),
            message: message.into(),
        });
    }
}

/// How a problem names a resource: its address, and its GCP name when it has one.
fn who(r: &Resource) -> String {
    match r.str("name").or(r.str("secret_id")).or(r.str("account_id")) {
        Some(n) if !r.address().contains(n) => format!("{} ({n})", r.address()),
        _ => r.address(),
    }
}

/// The last path segment of a resource id (`projects/p/topics/t` -> `t`).
fn last(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Every check. An empty result means terraform creates what the code expects.
pub fn check(model: &Model, code: &Code) -> Vec<Problem> {
    let mut out = Out(Vec::new());
    for e in &model.errors {
        if e.starts_with("terraform plan") {
            out.add("terraform", e.clone());
        } else {
            out.add("terraform", format!("cannot evaluate: {e}"));
        }
    }
    let settings = services(model, code, &mut out);
    if let Some(s) = &settings {
        delivery_topics(model, code, s, &mut out);
        log_topics(model, code, s, &mut out);
        storage(model, s, &mut out);
    }
    push_subscriptions(model, &mut out);
    bigquery(model, code, &mut out);
    datastore(model, code, &mut out);
    iam(model, code, &mut out);
    custom_roles(model, &mut out);
    images(model, code, &mut out);
    log_metrics(model, &mut out);
    out.0
}

/// Every log-based metric that matches a message (`jsonPayload.message="..."`) matches one the code writes
/// (`segcast::telemetry::events`), and extracts only fields that event carries; no metric is labelled by
/// campaign, batch or user (unbounded label values: they are on the log lines, for reading).
fn log_metrics(model: &Model, out: &mut Out) {
    use segcast::telemetry::events::ALL;
    for r in model.all("google_logging_metric") {
        let filter = r.str("filter").unwrap_or_default();
        let event = filter
            .split("jsonPayload.message=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|message| (message, ALL.iter().find(|(m, _)| *m == message)));
        let fields: Option<&[&str]> = match event {
            None => None,
            Some((message, None)) => {
                out.add(
                    who(r),
                    format!("matches the log message {message:?}, which the code never writes (segcast::telemetry::events)"),
                );
                continue;
            }
            Some((_, Some((_, fields)))) => Some(fields),
        };
        let mut extracted: Vec<(String, String)> = r
            .at("/label_extractors")
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(v) = r.str("value_extractor") {
            extracted.push(("(value)".into(), v.to_owned()));
        }
        for (label, expr) in extracted {
            let field = expr
                .split("jsonPayload.")
                .nth(1)
                .map(|f| f.trim_end_matches(')').to_owned())
                .unwrap_or_default();
            if ["campaign", "batch", "user_id", "recipient", "message_id"].contains(&field.as_str())
                && label != "(value)"
            {
                out.add(
                    who(r),
                    format!("labels a metric by {field}: unbounded values (keep them in the log lines, label by channel and outcome)"),
                );
            }
            if let Some(fields) = fields
                && !fields.contains(&field.as_str())
            {
                out.add(
                    who(r),
                    format!("extracts jsonPayload.{field}, which the code's log line does not carry (segcast::telemetry::events)"),
                );
            }
        }
    }
}

/// Every image a service runs is one cloudbuild.yaml builds (from docker/Dockerfile, its runtime target of the
/// same name) and pushes, to the repository terraform creates.
fn images(model: &Model, code: &Code, out: &mut Out) {
    let cb = &code.cloudbuild;
    let repo_default = cb
        .pointer("/substitutions/_REPOSITORY")
        .and_then(Json::as_str)
        .unwrap_or_default();
    if let Some(r) = model.all("google_artifact_registry_repository").next()
        && r.str("repository_id") != Some(repo_default)
    {
        out.add(
            who(r),
            format!(
                "cloudbuild.yaml pushes to repository {repo_default:?} (_REPOSITORY), not this one"
            ),
        );
    }
    let pushed: Vec<&str> = cb
        .get("images")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let steps = cb
        .get("steps")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    for svc in model.all("google_cloud_run_v2_service") {
        let Some(image) = svc.at_str("/template/0/containers/0/image") else {
            out.add(who(svc), "cannot evaluate its image");
            continue;
        };
        let name = image
            .rsplit('/')
            .next()
            .and_then(|n| n.split(':').next())
            .unwrap_or_default();
        let tag = format!(
            "${{_REGION}}-docker.pkg.dev/${{PROJECT_ID}}/${{_REPOSITORY}}/{name}:${{_TAG}}"
        );
        let built = steps.iter().any(|st| {
            let args: Vec<&str> = st
                .get("args")
                .and_then(Json::as_array)
                .map(|a| a.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            args.contains(&format!("--tag={tag}").as_str())
                && args.contains(&format!("--target={name}").as_str())
                && args.contains(&"--file=docker/Dockerfile")
        });
        if !built {
            out.add(
                who(svc),
                format!("runs image {name}, which no cloudbuild.yaml step builds (docker/Dockerfile --target {name}, tag {tag})"),
            );
        }
        if !pushed.contains(&tag.as_str()) {
            out.add(
                who(svc),
                format!("image {tag} is not in cloudbuild.yaml's images (pushed)"),
            );
        }
    }
}

/// The environment of a Cloud Run service: plain values, and secret-backed names -> secret id.
struct Env {
    plain: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    unknown: Vec<String>,
}

fn env_of(r: &Resource) -> Env {
    let mut env = Env {
        plain: BTreeMap::new(),
        secrets: BTreeMap::new(),
        unknown: Vec::new(),
    };
    let list = r
        .at("/template/0/containers/0/env")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    for e in list {
        let Some(name) = e.get("name").and_then(Json::as_str) else {
            env.unknown.push(e.to_string());
            continue;
        };
        if let Some(v) = e.get("value") {
            match v.as_str() {
                Some(v) => {
                    env.plain.insert(name.to_owned(), v.to_owned());
                }
                None => env.unknown.push(name.to_owned()),
            }
        } else if let Some(secret) = e
            .pointer("/value_source/0/secret_key_ref/0/secret")
            .and_then(Json::as_str)
        {
            env.secrets.insert(name.to_owned(), secret.to_owned());
        } else {
            env.unknown.push(name.to_owned());
        }
    }
    env
}

/// Each service: deployed with its own service account, an environment the code accepts, push
/// authentication wired to its callers. Returns the delivery handler's settings (the names the pipeline
/// uses), as the code computes them from the handler's environment.
fn services(model: &Model, code: &Code, out: &mut Out) -> Option<Settings> {
    let mut delivery_settings = None;
    let mut accounts: BTreeMap<String, String> = BTreeMap::new();
    for svc in SERVICES {
        let Some(r) = model.find("google_cloud_run_v2_service", "name", svc.name) else {
            if svc.required {
                out.add(
                    format!("service {}", svc.name),
                    "no google_cloud_run_v2_service with this name",
                );
            }
            continue;
        };
        let addr = who(r);
        let env = env_of(r);
        for u in &env.unknown {
            out.add(&addr, format!("cannot evaluate environment variable {u}"));
        }
        if !code.packages.iter().any(|p| p == svc.name) {
            out.add(
                &addr,
                format!(
                    "no package under services/ or functions/ is named {}: the binary it runs does not exist",
                    svc.name
                ),
            );
        }
        match r.at_str("/template/0/service_account") {
            None => out.add(
                &addr,
                "no service_account: it would run as the default compute account (Editor)",
            ),
            Some(sa) => {
                if let Some(other) = accounts.insert(sa.to_owned(), svc.name.to_owned()) {
                    out.add(
                        &addr,
                        format!(
                            "shares its service account {sa} with {other}: one account per service"
                        ),
                    );
                }
            }
        }
        for name in env.plain.keys().chain(env.secrets.keys()) {
            let channel = segcast::config::vars::is_channel_credential(name);
            let read_by = segcast::config::vars::lookup(name).map(|v| v.read_by);
            if let Some(read_by) = read_by.filter(|r| !channel && !r.contains(&svc.code)) {
                out.add(
                    &addr,
                    format!(
                        "sets {name}, which {} does not read (read by {read_by:?})",
                        svc.name
                    ),
                );
            }
            if !channel && !code.env_names.contains(name) {
                out.add(
                    &addr,
                    format!(
                        "sets {name}, which no code reads (a typo? the code would use its default)"
                    ),
                );
            }
        }
        for name in svc.env {
            if !env.plain.contains_key(*name) {
                out.add(&addr, format!("environment variable {name} is not set"));
            }
        }
        for name in svc.secret_env {
            if !env.secrets.contains_key(*name) {
                out.add(
                    &addr,
                    format!("environment variable {name} must come from a Secret Manager secret"),
                );
            }
        }
        for (name, secret) in &env.secrets {
            let exists = model
                .all("google_secret_manager_secret")
                .any(|s| s.str("id") == Some(secret) || s.str("secret_id") == Some(last(secret)));
            if !exists {
                out.add(
                    &addr,
                    format!("{name} reads secret {secret}, which terraform does not create"),
                );
            }
        }
        // What the binary itself would make of this environment.
        let vars: Vec<(String, String)> = env
            .plain
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let required = segcast::config::Vars::from_pairs(vars.clone()).require(svc.code);
        let settings = match required.and_then(|()| Settings::from_vars(vars)) {
            Ok(s) => s,
            Err(e) => {
                out.add(&addr, format!("the code refuses this environment: {e:#}"));
                continue;
            }
        };
        if svc.key == "click-redirect" || svc.key == "delivery" {
            click_topic(model, &addr, &settings, out);
        }
        if svc.push_auth {
            push_auth(model, svc, r, &settings, out);
        }
        channel_secret_store(model, code, svc, r, &env, &settings, out);
        if svc.key == "delivery" {
            delivery_service(model, r, &env, &settings, out);
            delivery_settings = Some(settings);
        } else if svc.key == "console" {
            if r.str("ingress") == Some("INGRESS_TRAFFIC_ALL") {
                out.add(
                    &addr,
                    "the console must only be reachable through its IAP load balancer (ingress)",
                );
            }
            console_service(model, &addr, &env, &settings, out);
        }
    }
    // Pipeline services must agree on the names they share.
    if let Some(d) = &delivery_settings {
        for svc in SERVICES.iter().filter(|s| s.pipeline) {
            let Some(r) = model.find("google_cloud_run_v2_service", "name", svc.name) else {
                continue;
            };
            let env = env_of(r);
            let Ok(s) = Settings::from_vars(env.plain.clone()) else {
                continue;
            };
            let pairs = [
                ("delivery topics", d.delivery_topic(0), s.delivery_topic(0)),
                (
                    "number of delivery topics",
                    d.delivery_topics.to_string(),
                    s.delivery_topics.to_string(),
                ),
                ("log topic", d.log_topic.clone(), s.log_topic.clone()),
                ("dataset", d.dataset.clone(), s.dataset.clone()),
                ("bucket", d.bucket.clone(), s.bucket.clone()),
                ("namespace", d.namespace.clone(), s.namespace.clone()),
            ];
            for (what, a, b) in pairs {
                if a != b {
                    out.add(
                        who(r),
                        format!("its {what} ({b}) differs from the delivery handler's ({a})"),
                    );
                }
            }
        }
    }
    delivery_settings
}

fn click_topic(model: &Model, addr: &str, s: &Settings, out: &mut Out) {
    if model
        .find("google_pubsub_topic", "name", &s.click.topic)
        .is_none()
    {
        out.add(
            addr,
            format!(
                "click topic {} (SEGCAST_CLICK_TOPIC) is not created by terraform",
                s.click.topic
            ),
        );
    }
}

/// The IAM condition that narrows a project-level grant to the LINE channel secrets, by the name the code
/// gives them.
fn channel_secrets_condition(code: &Code) -> Option<String> {
    let (prefix, _) = code.channel_secret_name.as_ref()?;
    Some(format!(
        "resource.name.startsWith(\"projects/{PROJECT_NUMBER}/secrets/{prefix}\")"
    ))
}

/// The permissions a role grants, as far as the check knows them: custom roles from terraform, the
/// Secret Manager roles from [`roles::secret_manager_permissions`].
fn permissions_of(model: &Model, role: &str) -> Vec<String> {
    match roles::custom_role_id(role) {
        Some(id) => model
            .find("google_project_iam_custom_role", "role_id", id)
            .and_then(|c| c.at("/permissions"))
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        None => roles::secret_manager_permissions(role)
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
    }
}

/// Channel secrets live where the console puts them, and each service can do there what its code does: the
/// console creates, adds versions and reads, the delivery handler and scheduler read, each by a project grant
/// that reaches the channel secrets only (creation aside); and the secrets terraform declares have the name
/// the code looks for.
fn channel_secret_store(
    model: &Model,
    code: &Code,
    svc: &Service,
    r: &Resource,
    env: &Env,
    s: &Settings,
    out: &mut Out,
) {
    if svc.channel_secrets == ChannelSecrets::Unused {
        return;
    }
    let addr = who(r);
    let Some(condition) = channel_secrets_condition(code) else {
        out.add(
            "crates/segcast/src/line/secrets.rs",
            "cannot find how the code names a channel's secret (format!(\"...{channel}...\") in fn secret_id)",
        );
        return;
    };
    // The secrets terraform mounts are the ones the console writes and the code looks up.
    for (name, secret) in &env.secrets {
        let Some(id) = name
            .strip_prefix("LINE_CHANNEL_")
            .and_then(|n| n.strip_suffix("_SECRET"))
        else {
            continue;
        };
        let want = code.channel_secret(id).unwrap_or_default();
        if last(secret) != want {
            out.add(
                &addr,
                format!("{name} reads secret {}, but the code keeps channel {id}'s secret in {want} (line/secrets.rs): a secret registered in the console would not reach it", last(secret)),
            );
        }
    }
    if s.line.channel_secrets.as_deref() != Some("secret-manager") {
        out.add(
            &addr,
            format!(
                "SEGCAST_CHANNEL_SECRETS must be secret-manager, not {:?}: the console keeps the secrets of the channels registered in it there, and {}",
                s.line.channel_secrets,
                if svc.channel_secrets == ChannelSecrets::ReadsAndWrites {
                    "without it no channel can be given a secret, and test sends and validation have no credentials"
                } else {
                    "without it this service has no credentials for them"
                }
            ),
        );
        return;
    }
    let Some(sa) = r.at_str("/template/0/service_account") else {
        return; // reported above
    };
    let member = format!("serviceAccount:{sa}");
    // (permission, must the grant carry the channel-secret condition)
    let needs: &[(&str, bool)] = match svc.channel_secrets {
        ChannelSecrets::Reads => &[("secretmanager.versions.access", true)],
        // Creation is authorized on the project, whose name no condition on a secret's name matches.
        ChannelSecrets::ReadsAndWrites => &[
            ("secretmanager.secrets.create", false),
            ("secretmanager.versions.add", true),
            ("secretmanager.versions.access", true),
        ],
        ChannelSecrets::Unused => &[],
    };
    for (perm, conditioned) in needs {
        let granted = model.all("google_project_iam_member").any(|m| {
            m.str("member") == Some(member.as_str())
                && permissions_of(model, m.str("role").unwrap_or_default())
                    .iter()
                    .any(|p| p == perm)
                && match m.at_str("/condition/0/expression") {
                    None => m.at("/condition/0").is_none(),
                    Some(e) => *conditioned && e == condition,
                }
        });
        if !granted {
            out.add(
                &addr,
                if *conditioned {
                    format!("its code needs {perm} on the channel secrets, but no project grant with the condition {condition} gives it to {sa}")
                } else {
                    format!("its code needs {perm}, but no unconditioned project grant gives it to {sa} (it is authorized on the project, where a condition on the secret's name never holds)")
                },
            );
        }
    }
}

/// What the console makes of its environment: IAP sign-in with the audience of the backend service IAP
/// guards, and segment datasets that the console (previews) and the scheduler (runs) can both read.
fn console_service(model: &Model, addr: &str, env: &Env, s: &Settings, out: &mut Out) {
    let console = match ConsoleSettings::from_vars(env.plain.clone(), &s.dataset) {
        Ok(c) => c,
        Err(e) => {
            out.add(addr, format!("the console refuses this environment: {e:#}"));
            return;
        }
    };
    if console.mode.name() != "iap" {
        out.add(
            addr,
            format!(
                "SEGCAST_CONSOLE_AUTH is {}: production signs users in through IAP (iap)",
                console.mode.name()
            ),
        );
    }
    let audience = env.plain.get("SEGCAST_IAP_AUDIENCE").cloned();
    let guarded = model
        .all("google_compute_backend_service")
        .filter(|b| b.at("/iap/0/enabled").and_then(Json::as_bool) == Some(true))
        .filter_map(|b| b.str("generated_id"))
        .any(|id| {
            audience.as_deref()
                == Some(format!("/projects/{PROJECT_NUMBER}/global/backendServices/{id}").as_str())
        });
    if !guarded {
        out.add(
            addr,
            format!("SEGCAST_IAP_AUDIENCE {audience:?} is not /projects/<number>/global/backendServices/<id> of a backend service with IAP enabled: the console would refuse every signed-in user"),
        );
    }
    let project = project(model);
    for ds in &console.segment_datasets {
        let (p, d) = match ds.split_once('.') {
            Some((p, d)) => (p.to_owned(), d),
            None => (project.clone(), ds.as_str()),
        };
        for account in ["console", "scheduler"] {
            let readable = model.all("google_bigquery_dataset_iam_member").any(|m| {
                m.str("project") == Some(p.as_str())
                    && m.str("dataset_id") == Some(d)
                    && matches!(
                        m.str("role"),
                        Some("roles/bigquery.dataViewer" | "roles/bigquery.dataEditor")
                    )
                    && m.str("member")
                        .and_then(|mb| account_of(model, mb))
                        .as_deref()
                        == Some(account)
            });
            if !readable {
                out.add(
                    addr,
                    format!("SEGCAST_SEGMENT_DATASETS lets segments read {ds}, but {account} is not granted read access to it (segment_source_datasets)"),
                );
            }
        }
    }
}

/// Every custom role is in the reviewed table ([`roles::CUSTOM_ROLES`]) with exactly its permissions.
fn custom_roles(model: &Model, out: &mut Out) {
    for r in model.all("google_project_iam_custom_role") {
        let id = r.str("role_id").unwrap_or_default();
        let have = permissions_of(model, &format!("projects/*/roles/{id}"));
        let Some(reviewed) = roles::CUSTOM_ROLES.iter().find(|c| c.id == id) else {
            out.add(
                who(r),
                format!("custom role {id} is not in the reviewed table (CUSTOM_ROLES in crates/infra-check/src/roles.rs): add it there with its reason, or remove it"),
            );
            continue;
        };
        for p in &have {
            if !reviewed.permissions.contains(&p.as_str()) {
                out.add(
                    who(r),
                    format!("holds {p}, which the reviewed custom role {id} does not (CUSTOM_ROLES in crates/infra-check/src/roles.rs)"),
                );
            }
        }
        for p in reviewed.permissions {
            if !have.iter().any(|h| h == p) {
                out.add(
                    who(r),
                    format!("lacks {p}, which the reviewed custom role {id} holds for the code"),
                );
            }
        }
    }
}

/// The service's callers sign OIDC tokens as the account and for the audience the code expects.
fn push_auth(model: &Model, svc: &Service, r: &Resource, s: &Settings, out: &mut Out) {
    let addr = who(r);
    let (Some(aud), Some(sa)) = (&s.delivery.push_audience, &s.delivery.push_service_account)
    else {
        out.add(
            &addr,
            "SEGCAST_PUSH_AUDIENCE and SEGCAST_PUSH_SERVICE_ACCOUNT must be set (production OIDC)",
        );
        return;
    };
    if s.delivery.push_token.is_some() {
        out.add(
            &addr,
            "SEGCAST_PUSH_TOKEN is the local shared token: not in production",
        );
    }
    let uri = r.str("uri").unwrap_or_default();
    let audiences: Vec<&str> = r
        .at("/custom_audiences")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    if aud != uri && !audiences.contains(&aud.as_str()) {
        out.add(
            &addr,
            format!("SEGCAST_PUSH_AUDIENCE {aud:?} is neither the service URL nor one of its custom_audiences: Cloud Run would refuse the tokens"),
        );
    }
    let invoker = model
        .all("google_cloud_run_v2_service_iam_member")
        .any(|m| {
            m.str("name") == Some(svc.name)
                && m.str("role") == Some("roles/run.invoker")
                && m.str("member") == Some(&format!("serviceAccount:{sa}"))
        });
    if !invoker {
        out.add(
            &addr,
            format!("{sa} (SEGCAST_PUSH_SERVICE_ACCOUNT) is not granted roles/run.invoker on it"),
        );
    }
    if svc.key == "scheduler" {
        let tick = format!("{uri}/tick");
        let jobs: Vec<&Resource> = model
            .all("google_cloud_scheduler_job")
            .filter(|j| j.at_str("/http_target/0/uri") == Some(&tick))
            .collect();
        if jobs.is_empty() {
            out.add(&addr, format!("no Cloud Scheduler job calls {tick}"));
        }
        for j in jobs {
            let ja = who(j);
            if j.at_str("/http_target/0/http_method") != Some("POST") {
                out.add(&ja, "POST /tick is the only tick route");
            }
            if j.at_str("/http_target/0/oidc_token/0/service_account_email") != Some(sa) {
                out.add(&ja, format!("its OIDC token must be signed as {sa}"));
            }
            if j.at_str("/http_target/0/oidc_token/0/audience") != Some(aud) {
                out.add(&ja, format!("its OIDC audience must be {aud:?}"));
            }
        }
    }
}

fn delivery_service(model: &Model, r: &Resource, env: &Env, s: &Settings, out: &mut Out) {
    let addr = who(r);
    // The rate limiter is exact within one process only; LINE's limit is per channel.
    match r.at("/template/0/scaling/0/max_instance_count").and_then(Json::as_i64) {
        Some(1) => {}
        other => out.add(
            &addr,
            format!("max_instance_count must be 1 (the rate limiter is per process, LINE's limit per channel), not {other:?}"),
        ),
    }
    let timeout: Option<u64> = r
        .at_str("/template/0/timeout")
        .and_then(|t| t.strip_suffix('s'))
        .and_then(|t| t.parse().ok());
    if timeout.is_none_or(|t| t < s.delivery.push_budget.as_secs()) {
        out.add(
            &addr,
            format!(
                "request timeout {timeout:?} s must cover the push budget ({} s)",
                s.delivery.push_budget.as_secs()
            ),
        );
    }
    // Channel credentials: what TokenProvider finds in this environment, for each configured channel.
    let channels: Vec<String> = model
        .root_vars
        .get("line_channel_ids")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let vars = env
        .plain
        .keys()
        .chain(env.secrets.keys())
        .map(|k| (k.clone(), "x".to_owned()));
    let tokens = segcast::line::access_token::TokenProvider::from_vars(
        reqwest::Client::new(),
        &s.line.base_url,
        vars,
    );
    for id in channels {
        match segcast::domain::ChannelId::parse(&id) {
            Err(e) => out.add(&addr, format!("line_channel_ids: {e}")),
            Ok(ch) if !tokens.knows(&ch) => out.add(
                &addr,
                format!("no credentials for channel {id}: set LINE_CHANNEL_{id}_SECRET from a Secret Manager secret"),
            ),
            Ok(_) => {}
        }
        let name = format!("LINE_CHANNEL_{id}_SECRET");
        if env.plain.contains_key(&name) {
            out.add(
                &addr,
                format!("{name} must come from Secret Manager, not a plain value"),
            );
        }
    }
}

fn subscription<'a>(model: &'a Model, name: &str) -> Option<&'a Resource> {
    model.find("google_pubsub_subscription", "name", name)
}

fn topic_of(sub: &Resource) -> String {
    last(sub.str("topic").unwrap_or_default()).to_owned()
}

/// The delivery topics, their push subscriptions and the dead-letter topic, by the code's names.
fn delivery_topics(model: &Model, code: &Code, s: &Settings, out: &mut Out) {
    let handler = model
        .find("google_cloud_run_v2_service", "name", "segcast-delivery")
        .and_then(|r| r.str("uri"))
        .unwrap_or_default()
        .to_owned();
    let dlt = s.dead_letter_topic();
    if model.find("google_pubsub_topic", "name", &dlt).is_none() {
        out.add(
            format!("topic {dlt}"),
            "the dead-letter topic (Settings::dead_letter_topic) is not created by terraform",
        );
    }
    for i in 0..s.delivery_topics {
        let topic = s.delivery_topic(i);
        if model.find("google_pubsub_topic", "name", &topic).is_none() {
            out.add(
                format!("topic {topic}"),
                format!(
                    "delivery topic {i} of {} (Settings::delivery_topic) is not created by terraform",
                    s.delivery_topics
                ),
            );
        }
        let name = s.delivery_subscription(i);
        let Some(sub) = subscription(model, &name) else {
            out.add(
                format!("subscription {name}"),
                "the delivery push subscription (Settings::delivery_subscription) is not created by terraform",
            );
            continue;
        };
        let addr = who(sub);
        if topic_of(sub) != topic {
            out.add(
                &addr,
                format!("must subscribe to {topic}, not {}", topic_of(sub)),
            );
        }
        let endpoint = format!("{handler}/push/delivery");
        if sub.at_str("/push_config/0/push_endpoint") != Some(&endpoint) {
            out.add(&addr, format!("must push to {endpoint}"));
        }
        if sub.at("/ack_deadline_seconds").and_then(Json::as_u64)
            != Some(s.delivery.ack_deadline.as_secs())
        {
            out.add(
                &addr,
                format!(
                    "ack_deadline_seconds must be SEGCAST_ACK_DEADLINE_SECONDS = {}",
                    s.delivery.ack_deadline.as_secs()
                ),
            );
        }
        if let Some(oidc) = sub.at("/push_config/0/oidc_token/0") {
            if oidc.get("service_account_email").and_then(Json::as_str)
                != s.delivery.push_service_account.as_deref()
            {
                out.add(
                    &addr,
                    "its OIDC service account is not the handler's SEGCAST_PUSH_SERVICE_ACCOUNT",
                );
            }
            if oidc.get("audience").and_then(Json::as_str) != s.delivery.push_audience.as_deref() {
                out.add(
                    &addr,
                    "its OIDC audience is not the handler's SEGCAST_PUSH_AUDIENCE",
                );
            }
        }
        if let Some(dl) = sub.at("/dead_letter_policy/0") {
            let t = dl
                .get("dead_letter_topic")
                .and_then(Json::as_str)
                .unwrap_or_default();
            if last(t) != dlt {
                out.add(&addr, format!("must dead-letter to {dlt}, not {}", last(t)));
            }
            if dl.get("max_delivery_attempts").and_then(Json::as_i64)
                != Some(code.max_delivery_attempts)
            {
                out.add(
                    &addr,
                    format!(
                        "max_delivery_attempts must be provision::MAX_DELIVERY_ATTEMPTS = {}",
                        code.max_delivery_attempts
                    ),
                );
            }
        }
    }
    // The dead-letter topic's own push subscription (provision.rs: "<dead-letter topic>-push").
    let name = format!("{dlt}-push");
    match subscription(model, &name) {
        None => out.add(
            format!("subscription {name}"),
            "the dead-letter push subscription is not created by terraform",
        ),
        Some(sub) => {
            let endpoint = format!("{handler}/push/dead-letter");
            if sub.at_str("/push_config/0/push_endpoint") != Some(&endpoint) {
                out.add(who(sub), format!("must push to {endpoint}"));
            }
            if topic_of(sub) != dlt {
                out.add(who(sub), format!("must subscribe to {dlt}"));
            }
        }
    }
}

/// Every push subscription: OIDC, retry policy, dead-letter policy (a dead-letter topic's own
/// subscription is the end of the line and needs none).
fn push_subscriptions(model: &Model, out: &mut Out) {
    let dead_letter_topics: Vec<String> = model
        .all("google_pubsub_subscription")
        .filter_map(|s| s.at_str("/dead_letter_policy/0/dead_letter_topic"))
        .map(|t| last(t).to_owned())
        .collect();
    for sub in model.all("google_pubsub_subscription") {
        let Some(push) = sub.at("/push_config/0") else {
            continue;
        };
        let addr = who(sub);
        match push.pointer("/oidc_token/0") {
            Some(o)
                if o.get("service_account_email").is_some_and(|v| !is_unknown(v))
                    && o.get("audience").is_some_and(|v| !is_unknown(v)) => {}
            _ => out.add(
                &addr,
                "push subscription without OIDC authentication (oidc_token with service_account_email and audience)",
            ),
        }
        if push.get("no_wrapper").is_some() {
            out.add(
                &addr,
                "the handler reads the Pub/Sub push envelope: no no_wrapper",
            );
        }
        if sub.at("/retry_policy/0").is_none() {
            out.add(
                &addr,
                "push subscription without a retry_policy (exponential backoff)",
            );
        }
        let is_dead_letter_sub = dead_letter_topics.contains(&topic_of(sub));
        if !is_dead_letter_sub && sub.at("/dead_letter_policy/0/dead_letter_topic").is_none() {
            out.add(
                &addr,
                "push subscription without a dead_letter_policy: a batch that can never be handled would be retried for ever",
            );
        }
    }
}

/// The delivery-log and click-log topics end in BigQuery subscriptions into the DDL's tables.
fn log_topics(model: &Model, code: &Code, s: &Settings, out: &mut Out) {
    let sink = model
        .find("google_cloud_run_v2_service", "name", "segcast-log-sink")
        .is_some();
    let topics = [
        (
            s.log_topic.clone(),
            code.log_table.clone(),
            "SEGCAST_LOG_TOPIC",
        ),
        (
            s.click.topic.clone(),
            code.click_table.clone(),
            "SEGCAST_CLICK_TOPIC",
        ),
    ];
    for (topic, table, var) in topics {
        if model.find("google_pubsub_topic", "name", &topic).is_none() {
            out.add(
                format!("topic {topic}"),
                format!("the topic {var} names is not created by terraform"),
            );
        }
        let bq: Vec<&Resource> = model
            .all("google_pubsub_subscription")
            .filter(|r| topic_of(r) == topic && r.at("/bigquery_config/0").is_some())
            .collect();
        if sink {
            let pull = if topic == s.log_topic {
                s.log_subscription()
            } else {
                s.click_subscription()
            };
            if subscription(model, &pull).is_none() {
                out.add(
                    format!("subscription {pull}"),
                    "the log sink runs but its pull subscription (Settings::log_subscription / click_subscription) is not created",
                );
            }
            continue;
        }
        if bq.is_empty() {
            out.add(
                format!("topic {topic}"),
                format!("no BigQuery subscription writes it into the {table} table"),
            );
        }
        for sub in bq {
            let addr = who(sub);
            let want = format!("{}.{}.{table}", project(model), s.dataset);
            if sub.at_str("/bigquery_config/0/table") != Some(&want) {
                out.add(&addr, format!("must write into {want}"));
            }
            if sub
                .at("/bigquery_config/0/use_table_schema")
                .and_then(Json::as_bool)
                != Some(true)
            {
                out.add(
                    &addr,
                    format!("must set use_table_schema = true: the JSON rows map onto the columns of {table} (sql/ddl); otherwise each message lands whole in a `data` column"),
                );
            }
            if sub
                .at("/bigquery_config/0/drop_unknown_fields")
                .and_then(Json::as_bool)
                == Some(true)
            {
                out.add(&addr, "drop_unknown_fields would silently lose fields the table lacks (schema drift); leave it false");
            }
            let (row, fields) = if table == code.log_table {
                ("DeliveryLogRow", &code.log_row)
            } else {
                ("ClickRow", &code.click_row)
            };
            match code.table_ddl(&table) {
                None => out.add(&addr, format!("no sql/ddl file creates {table}")),
                Some(ddl) => {
                    for d in code::schema_drift(fields, &code::columns_of(ddl)) {
                        out.add(
                            &addr,
                            format!("schema drift between {row} and {table} (sql/ddl, the subscription's schema): {d}"),
                        );
                    }
                }
            }
        }
    }
}

fn project(model: &Model) -> String {
    model
        .root_vars
        .get("project_id")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn storage(model: &Model, s: &Settings, out: &mut Out) {
    match model.find("google_storage_bucket", "name", &s.bucket) {
        None => out.add(
            format!("bucket {}", s.bucket),
            "the export bucket (SEGCAST_BUCKET) is not created by terraform",
        ),
        Some(b) => {
            if b.at("/lifecycle_rule/0/action/0").is_none() {
                out.add(
                    who(b),
                    "the export bucket needs a lifecycle rule (exports are a work list)",
                );
            }
        }
    }
    if model
        .find("google_bigquery_dataset", "dataset_id", &s.dataset)
        .is_none()
    {
        out.add(
            format!("dataset {}", s.dataset),
            "the dataset (SEGCAST_DATASET) is not created by terraform",
        );
    }
}

/// The tables and views are created by running exactly the sql/ddl files, in segcast::sql::DDL's order.
fn bigquery(model: &Model, code: &Code, out: &mut Out) {
    for t in model.all("google_bigquery_table") {
        out.add(
            who(t),
            "tables come from sql/ddl (a google_bigquery_job running the file), not a second copy of the schema",
        );
    }
    let Some(ds) = model.all("google_bigquery_dataset").next() else {
        out.add("bigquery", "no dataset");
        return;
    };
    let qualified = format!(
        "{}.{}",
        ds.str("project").unwrap_or_default(),
        ds.str("dataset_id").unwrap_or_default()
    );
    let rendered: Vec<(String, String)> = code
        .ddl
        .iter()
        .map(|(f, t)| (f.clone(), t.replace("{dataset}", &qualified)))
        .collect();
    let scripts: Vec<(&Resource, &str)> = model
        .all("google_bigquery_job")
        .filter_map(|j| j.at_str("/query/0/query").map(|q| (j, q)))
        .collect();
    if scripts.is_empty() {
        out.add(
            "bigquery",
            "no google_bigquery_job runs the sql/ddl files (or its query cannot be evaluated)",
        );
        return;
    }
    // Where each file's statement appears, in which job.
    let mut found: Vec<(String, usize, usize)> = Vec::new();
    for (file, text) in &rendered {
        match scripts
            .iter()
            .enumerate()
            .find_map(|(j, (_, q))| q.find(text.as_str()).map(|at| (j, at)))
        {
            Some((j, at)) => found.push((file.clone(), j, at)),
            None => out.add(
                "bigquery",
                format!("sql/{file} (segcast::sql::DDL) is not run by any google_bigquery_job, word for word"),
            ),
        }
    }
    for w in found.windows(2) {
        if (w[0].1, w[0].2) > (w[1].1, w[1].2) {
            out.add(
                who(scripts[w[1].1].0),
                format!(
                    "sql/{} must run before sql/{} (segcast::sql::DDL's order)",
                    w[0].0, w[1].0
                ),
            );
        }
    }
    // Nothing else: a statement that is not a sql/ddl file is a second copy of a schema.
    for (r, q) in &scripts {
        let mut rest = q.to_string();
        for (_, text) in &rendered {
            rest = rest.replace(text.as_str(), "");
        }
        if rest.chars().any(|c| !c.is_whitespace() && c != ';') {
            out.add(
                who(r),
                format!(
                    "runs SQL that is not a sql/ddl file: {:?}",
                    rest.trim_matches(|c: char| c.is_whitespace() || c == ';')
                        .chars()
                        .take(120)
                        .collect::<String>()
                ),
            );
        }
    }
}

fn datastore(model: &Model, code: &Code, out: &mut Out) {
    let dbs: Vec<&Resource> = model.all("google_firestore_database").collect();
    if !dbs.iter().any(|d| d.str("type") == Some("DATASTORE_MODE")) {
        out.add("firestore", "no Firestore database in DATASTORE_MODE");
    }
    let indexes: Vec<&Resource> = model.all("google_firestore_index").collect();
    for want in &code.datastore_indexes {
        let kind = want.get("kind").and_then(Json::as_str).unwrap_or_default();
        let props: Vec<&str> = want
            .get("properties")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.get("name").and_then(Json::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let ok = indexes.iter().any(|i| {
            i.str("collection") == Some(kind)
                && i.str("api_scope") == Some("DATASTORE_MODE_API")
                && i.at("/fields").and_then(Json::as_array).map(|f| {
                    f.iter()
                        .filter_map(|x| x.get("field_path").and_then(Json::as_str))
                        .collect::<Vec<_>>()
                }) == Some(props.clone())
        });
        if !ok {
            out.add(
                "datastore/index.yaml",
                format!(
                    "the index on {kind} ({}) is not created by terraform",
                    props.join(", ")
                ),
            );
        }
    }
    if indexes.len() > code.datastore_indexes.len() {
        out.add(
            "firestore",
            "terraform creates Datastore indexes that datastore/index.yaml does not list",
        );
    }
}

/// Who a member is, in the roles table's terms.
fn account_of(model: &Model, member: &str) -> Option<String> {
    let email = member.strip_prefix("serviceAccount:")?;
    if email == format!("service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com") {
        return Some("pubsub-service-agent".into());
    }
    if email == format!("service-{PROJECT_NUMBER}@gcp-sa-iap.iam.gserviceaccount.com") {
        return Some("iap-service-agent".into());
    }
    let sa = model.find("google_service_account", "email", email)?;
    let id = sa.str("account_id")?;
    Some(id.strip_prefix("segcast-").unwrap_or(id).to_owned())
}

/// An account restricted to the LINE channel secrets ([`roles::CHANNEL_SECRETS_ONLY`]: the console) reads
/// them and nothing else, whatever the roles table says: a secret-reading grant must be the value reader
/// ([`roles::VALUE_READER`] or a custom role reading values only), on the project with exactly the
/// channel-secret condition or on a channel secret itself; never a role that reads any secret or widens its
/// own access, never the click keys or another secret.
fn channel_secrets_only(
    model: &Model,
    code: &Code,
    r: &Resource,
    account: &str,
    condition: Option<&str>,
    out: &mut Out,
) {
    let role = r.str("role").unwrap_or_default();
    let rule = "the console may read the LINE channel secrets only (segcast-line-channel-*, to issue tokens for test sends and validation), never another secret such as the click-signing keys";
    match roles::secret_reading(role, &permissions_of(model, role)) {
        roles::SecretReading::No => {}
        roles::SecretReading::Wider => out.add(
            who(r),
            format!("grants {role} to {account}, which can do more than read the values of the secrets it is granted on (read every secret, change IAM, or act as another account): {rule}"),
        ),
        roles::SecretReading::Values => {
            let channel_condition = channel_secrets_condition(code);
            let channel_secret = |id: &str| {
                code.channel_secret_name
                    .as_ref()
                    .is_some_and(|(prefix, suffix)| {
                        let id = last(id);
                        id.len() > prefix.len() + suffix.len()
                            && id.starts_with(prefix.as_str())
                            && id.ends_with(suffix.as_str())
                    })
            };
            let reach = match r.kind.as_str() {
                "google_project_iam_member" => match condition {
                    Some(c) if Some(c) == channel_condition.as_deref() => None,
                    Some(c) => Some(format!("on the project with the condition {c}")),
                    None => Some("on the project without a condition, so on every secret".to_owned()),
                },
                "google_secret_manager_secret_iam_member" => match r.str("secret_id") {
                    Some(id) if channel_secret(id) => None,
                    id => Some(format!("on secret {}", id.map(last).unwrap_or("(unknown)"))),
                },
                kind => Some(format!("on a {kind}")),
            };
            if let Some(reach) = reach {
                out.add(
                    who(r),
                    format!("grants {role} to {account} {reach}: {rule}"),
                );
            }
        }
    }
}

fn iam(model: &Model, code: &Code, out: &mut Out) {
    let channel_condition = channel_secrets_condition(code);
    for r in model.resources.iter().filter(|r| r.mode == "resource") {
        let kind = r.kind.as_str();
        if kind.ends_with("_iam_policy") || kind.ends_with("_iam_binding") {
            out.add(
                who(r),
                "authoritative IAM (policy/binding) would remove grants made elsewhere: use _iam_member",
            );
        }
        if !kind.ends_with("_iam_member") && !kind.ends_with("_iam_binding") {
            continue;
        }
        let addr = who(r);
        let role = r.str("role").unwrap_or("(unknown role)");
        let condition = r.at_str("/condition/0/expression");
        if r.body.pointer("/condition/0").is_some() && condition.is_none() {
            out.add(&addr, "cannot evaluate its condition");
            continue;
        }
        if let Some(id) = roles::custom_role_id(role)
            && model
                .find("google_project_iam_custom_role", "role_id", id)
                .is_none()
        {
            out.add(
                &addr,
                format!("grants custom role {role}, which this configuration does not define (its permissions cannot be reviewed)"),
            );
        }
        let members: Vec<String> = match (r.at("/member"), r.at("/members")) {
            (Some(Json::String(m)), _) => vec![m.clone()],
            (_, Some(Json::Array(ms))) => ms
                .iter()
                .filter_map(|m| m.as_str().map(str::to_owned))
                .collect(),
            _ => {
                out.add(&addr, "cannot evaluate its member");
                continue;
            }
        };
        for member in members {
            if member == "allUsers" || member == "allAuthenticatedUsers" {
                let public_redirect = kind == "google_cloud_run_v2_service_iam_member"
                    && r.str("name") == Some(PUBLIC_SERVICE)
                    && role == "roles/run.invoker";
                if !public_redirect {
                    out.add(
                        &addr,
                        format!("grants {role} to {member}: only the click redirect ({PUBLIC_SERVICE}) may be public, and only as run.invoker"),
                    );
                }
                continue;
            }
            if roles::FORBIDDEN.contains(&role) {
                out.add(
                    &addr,
                    format!("grants {role} to {member}: an over-broad role, never allowed"),
                );
                continue;
            }
            if !member.starts_with("serviceAccount:") {
                if role != "roles/iap.httpsResourceAccessor" {
                    out.add(
                        &addr,
                        format!(
                            "grants {role} to {member}: people get console access through IAP only"
                        ),
                    );
                }
                continue;
            }
            let Some(account) = account_of(model, &member) else {
                out.add(
                    &addr,
                    format!("grants {role} to {member}, a service account this configuration does not manage"),
                );
                continue;
            };
            if roles::CHANNEL_SECRETS_ONLY.contains(&account.as_str()) {
                channel_secrets_only(model, code, r, &account, condition, out);
            }
            let Some(scope) = Scope::of_resource(kind) else {
                out.add(
                    &addr,
                    format!("{kind} is not a scope the reviewed roles table knows"),
                );
                continue;
            };
            match roles::reviewed(&account, &roles::key(role), scope) {
                None => out.add(
                    &addr,
                    format!(
                        "grants {role} on a {scope:?} to {account}, which is not in the reviewed roles table (crates/infra-check/src/roles.rs): add it there with its reason, or remove the grant"
                    ),
                ),
                Some(g) if g.only == Only::ChannelSecrets && condition != channel_condition.as_deref() => {
                    out.add(
                        &addr,
                        format!(
                            "grants {role} on the project to {account} {}: the reviewed grant reaches the LINE channel secrets only, with the condition {}",
                            match condition {
                                None => "without a condition".to_owned(),
                                Some(c) => format!("with the condition {c}"),
                            },
                            channel_condition.as_deref().unwrap_or("(unknown: see line/secrets.rs)")
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
}
