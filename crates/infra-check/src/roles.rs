//! The reviewed table of every role a service account holds in terraform/, with the reason for it.
//!
//! A grant in terraform that is not in this table fails the check, so adding a role means adding a row here,
//! with its reason, where a reviewer sees it. Accounts are named by account id without the `segcast-` prefix
//! (`scheduler` is `segcast-scheduler@<project>.iam.gserviceaccount.com`); the Google-managed service agents
//! that act for segcast are `pubsub-service-agent` and `iap-service-agent`. The scope is the kind of resource
//! the role is granted on: roles are granted on the narrowest resource IAM allows, and where that is the
//! project, a grant that must reach only some resources says so ([`Only`]) and carries the IAM condition.
//! Custom roles are named `projects/*/roles/<id>` and their permissions are reviewed in [`CUSTOM_ROLES`].

/// What a role is granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Project,
    Dataset,
    Bucket,
    Topic,
    Subscription,
    Secret,
    CloudRunService,
    ServiceAccount,
}

impl Scope {
    /// The scope of an IAM member resource type.
    pub fn of_resource(kind: &str) -> Option<Self> {
        Some(match kind {
            "google_project_iam_member" => Self::Project,
            "google_bigquery_dataset_iam_member" => Self::Dataset,
            "google_storage_bucket_iam_member" => Self::Bucket,
            "google_pubsub_topic_iam_member" => Self::Topic,
            "google_pubsub_subscription_iam_member" => Self::Subscription,
            "google_secret_manager_secret_iam_member" => Self::Secret,
            "google_cloud_run_v2_service_iam_member" => Self::CloudRunService,
            "google_service_account_iam_member" => Self::ServiceAccount,
            _ => return None,
        })
    }
}

/// Which resources a grant may reach within its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// All of them: the grant is on the resource itself, or the role reaches nothing it should not.
    Scope,
    /// The LINE channel secrets: an IAM condition `resource.name.startsWith("projects/<number>/secrets/<prefix>")`
    /// with the prefix of the name the code gives them (`crates/segcast/src/line/secrets.rs`), and nothing wider.
    ChannelSecrets,
}

pub struct Grant {
    pub account: &'static str,
    pub role: &'static str,
    pub scope: Scope,
    pub only: Only,
    pub reason: &'static str,
}

const fn g(account: &'static str, role: &'static str, scope: Scope, reason: &'static str) -> Grant {
    Grant {
        account,
        role,
        scope,
        only: Only::Scope,
        reason,
    }
}

/// A project-level grant narrowed by an IAM condition to the LINE channel secrets.
const fn channel_secrets(account: &'static str, role: &'static str, reason: &'static str) -> Grant {
    Grant {
        account,
        role,
        scope: Scope::Project,
        only: Only::ChannelSecrets,
        reason,
    }
}

/// A custom role (`google_project_iam_custom_role`), with exactly these permissions.
pub struct CustomRole {
    pub id: &'static str,
    pub permissions: &'static [&'static str],
    pub reason: &'static str,
}

pub const CUSTOM_ROLES: &[CustomRole] = &[CustomRole {
    id: "segcastChannelSecretCreator",
    permissions: &["secretmanager.secrets.create"],
    reason: "the console creates a channel's secret when the channel is registered; no predefined role can create \
             secrets without also reading them (secretmanager.admin)",
}];

/// The roles table's name for a role: custom roles as `projects/*/roles/<id>`, predefined roles as they are.
pub fn key(role: &str) -> String {
    match custom_role_id(role) {
        Some(id) => format!("projects/*/roles/{id}"),
        None => role.to_owned(),
    }
}

/// The id of a custom role (`projects/<project>/roles/<id>`).
pub fn custom_role_id(role: &str) -> Option<&str> {
    role.strip_prefix("projects/")?
        .split_once("/roles/")
        .map(|(_, id)| id)
}

/// Accounts that may read the LINE channel secrets and no other secret, whatever the table says: the console
/// reads channel secrets to issue channel access tokens (test sends, LINE's validate endpoint), so it may hold
/// [`VALUE_READER`] on the project with the channel-secret condition (or on a channel secret itself), and
/// nothing else that reads a secret: not the click-signing keys, not any other secret, and no role that could
/// widen its own access (IAM changes, acting as another account).
pub const CHANNEL_SECRETS_ONLY: &[&str] = &["console"];

/// The one predefined role that reads secret values and does nothing else (`secretmanager.versions.access`).
pub const VALUE_READER: &str = "roles/secretmanager.secretAccessor";

/// Predefined roles that read secret values, or let their holder give itself that (IAM on the project or
/// on secrets, acting as another service account).
pub const READS_SECRETS: &[&str] = &[
    "roles/owner",
    "roles/editor",
    "roles/secretmanager.admin",
    "roles/secretmanager.secretAccessor",
    "roles/iam.securityAdmin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/iam.roleAdmin",
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.workloadIdentityUser",
];

/// Permissions that do the same in a custom role.
pub const SECRET_READ_PERMISSIONS: &[&str] = &[
    "secretmanager.versions.access",
    "secretmanager.secrets.setIamPolicy",
    "resourcemanager.projects.setIamPolicy",
    "iam.roles.update",
    "iam.serviceAccounts.actAs",
    "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.signJwt",
    "iam.serviceAccounts.implicitDelegation",
];

/// The Secret Manager permissions of the predefined Secret Manager roles.
pub fn secret_manager_permissions(role: &str) -> &'static [&'static str] {
    match role {
        "roles/secretmanager.secretAccessor" => &["secretmanager.versions.access"],
        "roles/secretmanager.secretVersionAdder" => &["secretmanager.versions.add"],
        "roles/secretmanager.secretVersionManager" => &[
            "secretmanager.versions.add",
            "secretmanager.versions.destroy",
            "secretmanager.versions.disable",
            "secretmanager.versions.enable",
            "secretmanager.versions.get",
            "secretmanager.versions.list",
        ],
        "roles/secretmanager.admin" => &[
            "secretmanager.secrets.create",
            "secretmanager.secrets.delete",
            "secretmanager.secrets.get",
            "secretmanager.secrets.getIamPolicy",
            "secretmanager.secrets.list",
            "secretmanager.secrets.setIamPolicy",
            "secretmanager.secrets.update",
            "secretmanager.versions.access",
            "secretmanager.versions.add",
            "secretmanager.versions.destroy",
            "secretmanager.versions.disable",
            "secretmanager.versions.enable",
            "secretmanager.versions.get",
            "secretmanager.versions.list",
        ],
        _ => &[],
    }
}

use Scope::*;

/// Roles no service account may hold anywhere, whatever the table says.
pub const FORBIDDEN: &[&str] = &[
    "roles/owner",
    "roles/editor",
    "roles/viewer",
    "roles/iam.securityAdmin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountKeyAdmin",
];

pub const ROLES: &[Grant] = &[
    // scheduler
    g(
        "scheduler",
        "roles/datastore.user",
        Project,
        "claims campaigns (transactions, leases), reads content and segments, writes progress and checkpoints; Datastore has no finer IAM than the project",
    ),
    g(
        "scheduler",
        "roles/bigquery.jobUser",
        Project,
        "runs the segment snapshot, EXPORT DATA, round-settled and diff-retry queries as jobs in the project",
    ),
    g(
        "scheduler",
        "roles/bigquery.dataEditor",
        Dataset,
        "creates per-campaign target and owed tables and inserts settled rows into delivery_logs, in the segcast dataset only",
    ),
    g(
        "scheduler",
        "roles/bigquery.dataViewer",
        Dataset,
        "reads the datasets marketers' segment SQL selects from (segment_source_datasets only)",
    ),
    g(
        "scheduler",
        "roles/storage.objectAdmin",
        Bucket,
        "EXPORT DATA writes a round's files to the export bucket; the fan-out lists and streams them",
    ),
    g(
        "scheduler",
        "roles/pubsub.publisher",
        Topic,
        "the fan-out publishes batches to each delivery topic (and re-publishes parked batches)",
    ),
    channel_secrets(
        "scheduler",
        "roles/secretmanager.secretAccessor",
        "reads the LINE channel secrets to fetch LINE's per-campaign statistics (insight): terraform's channels from its environment, the console's at run time; on the project because the console creates secrets terraform cannot name, so only with the channel-secret condition",
    ),
    // delivery handler
    g(
        "delivery",
        "roles/datastore.user",
        Project,
        "dedupe (BatchDone), parking batches of paused campaigns, reading campaign state",
    ),
    g(
        "delivery",
        "roles/pubsub.publisher",
        Topic,
        "publishes each LINE request's outcome to the delivery-log topic before acknowledging",
    ),
    g(
        "delivery",
        "roles/secretmanager.secretAccessor",
        Secret,
        "reads the click-signing keys (to sign tracked links)",
    ),
    channel_secrets(
        "delivery",
        "roles/secretmanager.secretAccessor",
        "reads the LINE channel secrets to issue access tokens: terraform's channels from its environment, the console's at run time; on the project because the console creates secrets terraform cannot name, so only with the channel-secret condition",
    ),
    // log sink (optional)
    g(
        "log-sink",
        "roles/pubsub.subscriber",
        Subscription,
        "pulls the delivery-log sink subscription",
    ),
    g(
        "log-sink",
        "roles/bigquery.dataEditor",
        Dataset,
        "inserts delivery-log rows (insertAll) into the segcast dataset",
    ),
    // click redirect
    g(
        "click-redirect",
        "roles/pubsub.publisher",
        Topic,
        "publishes click rows to the click-log topic",
    ),
    g(
        "click-redirect",
        "roles/datastore.viewer",
        Project,
        "reads a clicked link's campaign and target (read only)",
    ),
    g(
        "click-redirect",
        "roles/secretmanager.secretAccessor",
        Secret,
        "verifies signed links with the click keys",
    ),
    // console
    g(
        "console",
        "roles/datastore.user",
        Project,
        "registers content, segments and campaigns; pause, resume, cancel; reads progress",
    ),
    g(
        "console",
        "roles/bigquery.jobUser",
        Project,
        "dry-runs and previews segment SQL, reads stats views",
    ),
    g(
        "console",
        "roles/bigquery.dataViewer",
        Dataset,
        "reads logs and stats in the segcast dataset, and the segment source datasets for previews",
    ),
    g(
        "console",
        "projects/*/roles/segcastChannelSecretCreator",
        Project,
        "creates a channel's secret (segcast-line-channel-<ID>-secret) when a channel is registered; creation is authorized on the project, where no condition on the new secret's name can apply, so it is unconditioned and the role holds nothing but secretmanager.secrets.create (an empty secret, reaching no existing one)",
    ),
    channel_secrets(
        "console",
        "roles/secretmanager.secretVersionAdder",
        "stores the secret entered for a channel as a new version (secretmanager.versions.add only)",
    ),
    channel_secrets(
        "console",
        "roles/secretmanager.secretAccessor",
        "issues channel access tokens for test sends and LINE's validate endpoint, from the channel's secret (the channels in line_channel_ids too, so they need no secret entered in the console); the channel secrets only (CHANNEL_SECRETS_ONLY), never returned or logged by the console's code",
    ),
    // invoker identities
    g(
        "pubsub-push",
        "roles/run.invoker",
        CloudRunService,
        "Pub/Sub pushes to the delivery handler signed as this account",
    ),
    g(
        "scheduler-invoker",
        "roles/run.invoker",
        CloudRunService,
        "Cloud Scheduler calls POST /tick on the scheduler signed as this account",
    ),
    // Google-managed service agents
    g(
        "pubsub-service-agent",
        "roles/pubsub.publisher",
        Topic,
        "dead-lettering: Pub/Sub moves undeliverable messages to the dead-letter topics",
    ),
    g(
        "pubsub-service-agent",
        "roles/pubsub.subscriber",
        Subscription,
        "dead-lettering: Pub/Sub acknowledges the dead-lettered message on the source subscription",
    ),
    g(
        "pubsub-service-agent",
        "roles/bigquery.dataEditor",
        Dataset,
        "BigQuery subscriptions write delivery and click logs into the segcast dataset",
    ),
    g(
        "pubsub-service-agent",
        "roles/iam.serviceAccountTokenCreator",
        ServiceAccount,
        "mints the push OIDC tokens as pubsub-push (needed in projects created before April 2021)",
    ),
    g(
        "iap-service-agent",
        "roles/run.invoker",
        CloudRunService,
        "IAP forwards signed-in users' requests to the console",
    ),
];

/// The reviewed grant for (account, role, scope), if any (`role` as [`key`] names it).
pub fn reviewed(account: &str, role: &str, scope: Scope) -> Option<&'static Grant> {
    ROLES
        .iter()
        .find(|g| g.account == account && g.role == role && g.scope == scope)
}

/// How a role (predefined, or custom with these permissions) reads secret values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretReading {
    /// It cannot.
    No,
    /// It reads the values of the secrets it is granted on, and nothing more ([`VALUE_READER`], or a custom
    /// role whose only reading permission is `secretmanager.versions.access`).
    Values,
    /// It reads every secret, or lets its holder give itself more (IAM changes, acting as another account).
    Wider,
}

pub fn secret_reading(role: &str, custom_permissions: &[String]) -> SecretReading {
    let custom: Vec<&str> = custom_permissions
        .iter()
        .map(String::as_str)
        .filter(|p| SECRET_READ_PERMISSIONS.contains(p))
        .collect();
    if role != VALUE_READER && READS_SECRETS.contains(&role)
        || custom.iter().any(|p| *p != "secretmanager.versions.access")
    {
        SecretReading::Wider
    } else if role == VALUE_READER || !custom.is_empty() {
        SecretReading::Values
    } else {
        SecretReading::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_reading_roles_are_told_apart() {
        let none: &[String] = &[];
        let perms = |ps: &[&str]| ps.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        assert_eq!(secret_reading(VALUE_READER, none), SecretReading::Values);
        for wider in [
            "roles/secretmanager.admin",
            "roles/owner",
            "roles/iam.serviceAccountTokenCreator",
        ] {
            assert_eq!(secret_reading(wider, none), SecretReading::Wider, "{wider}");
        }
        for no in [
            "roles/secretmanager.secretVersionAdder",
            "roles/secretmanager.viewer",
        ] {
            assert_eq!(secret_reading(no, none), SecretReading::No, "{no}");
        }
        let custom = "projects/p/roles/x";
        assert_eq!(
            secret_reading(custom, &perms(&["secretmanager.secrets.create"])),
            SecretReading::No
        );
        assert_eq!(
            secret_reading(custom, &perms(&["secretmanager.versions.access"])),
            SecretReading::Values
        );
        assert_eq!(
            secret_reading(
                custom,
                &perms(&[
                    "secretmanager.versions.access",
                    "secretmanager.secrets.setIamPolicy"
                ])
            ),
            SecretReading::Wider
        );
    }

    /// The table itself lets an account restricted to the channel secrets read them only: through the value
    /// reader with the channel-secret condition, and no other secret-reading role.
    #[test]
    fn the_table_lets_the_console_read_channel_secrets_only() {
        let mut reads = 0;
        for g in ROLES
            .iter()
            .filter(|g| CHANNEL_SECRETS_ONLY.contains(&g.account))
        {
            let custom: Vec<String> = custom_role_id(g.role)
                .and_then(|id| CUSTOM_ROLES.iter().find(|c| c.id == id))
                .map(|c| c.permissions.iter().map(|p| (*p).to_owned()).collect())
                .unwrap_or_default();
            match secret_reading(g.role, &custom) {
                SecretReading::No => {}
                SecretReading::Values => {
                    assert_eq!(
                        (g.scope, g.only),
                        (Scope::Project, Only::ChannelSecrets),
                        "{} may hold {} beyond the channel secrets",
                        g.account,
                        g.role
                    );
                    reads += 1;
                }
                SecretReading::Wider => {
                    panic!("{} may hold {}, which reads any secret", g.account, g.role)
                }
            }
        }
        assert_eq!(reads, 1, "the console reads channel secrets, once");
        for c in CUSTOM_ROLES {
            for p in c.permissions {
                assert!(!SECRET_READ_PERMISSIONS.contains(p), "{} holds {p}", c.id);
            }
        }
    }

    #[test]
    fn every_custom_role_granted_is_reviewed_and_keys_are_unique() {
        for g in ROLES {
            if let Some(id) = custom_role_id(g.role) {
                assert_eq!(g.role, key(g.role));
                assert!(CUSTOM_ROLES.iter().any(|c| c.id == id), "{}", g.role);
            }
            let same = ROLES
                .iter()
                .filter(|o| o.account == g.account && o.role == g.role && o.scope == g.scope)
                .count();
            assert_eq!(
                same, 1,
                "{} {} {:?} is listed twice",
                g.account, g.role, g.scope
            );
        }
        assert_eq!(
            key("projects/my-project/roles/segcastChannelSecretCreator"),
            "projects/*/roles/segcastChannelSecretCreator"
        );
        assert_eq!(
            key("roles/secretmanager.secretAccessor"),
            "roles/secretmanager.secretAccessor"
        );
    }
}
