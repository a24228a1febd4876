//! The reviewed table of every role a service account holds in terraform/, with the reason for it.
//!
//! A grant in terraform that is not in this table fails the check, so adding a role means adding a row here,
//! with its reason, where a reviewer sees it. Accounts are named by account id without the `segcast-` prefix
//! (`scheduler` is `segcast-scheduler@<project>.iam.gserviceaccount.com`); the Google-managed service agents
//! that act for segcast are `pubsub-service-agent` and `iap-service-agent`. The scope is the kind of resource
//! the role is granted on: roles are granted on the narrowest resource IAM allows.

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

pub struct Grant {
    pub account: &'static str,
    pub role: &'static str,
    pub scope: Scope,
    pub reason: &'static str,
}

const fn g(account: &'static str, role: &'static str, scope: Scope, reason: &'static str) -> Grant {
    Grant {
        account,
        role,
        scope,
        reason,
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
    g(
        "scheduler",
        "roles/secretmanager.secretAccessor",
        Secret,
        "reads the LINE channel secrets to fetch LINE's per-campaign statistics (insight)",
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
        "reads the LINE channel secrets (to issue access tokens) and the click-signing keys",
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

/// The reviewed grant for (account, role, scope), if any.
pub fn reviewed(account: &str, role: &str, scope: Scope) -> Option<&'static Grant> {
    ROLES
        .iter()
        .find(|g| g.account == account && g.role == role && g.scope == scope)
}
