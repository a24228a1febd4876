# One service account per service, and each holds only what its code does, granted on the narrowest
# resource possible (a topic, a secret, the dataset, the bucket) rather than the project. The reviewed list
# of (account, role, scope) with the reason for each is the ROLES table in crates/infra-check/src/roles.rs;
# the check fails on any grant that is not in it.

locals {
  service_accounts = {
    scheduler         = "segcast-scheduler: claims campaigns, runs segment SQL, exports, fans out"
    delivery          = "segcast-delivery: Pub/Sub push handler that sends to LINE"
    log-sink          = "segcast-log-sink: delivery-log topic to BigQuery (only where no BigQuery subscription)"
    click-redirect    = "segcast-click-redirect: public click redirect"
    console           = "segcast-console: the marketers' console behind IAP"
    pubsub-push       = "identity Pub/Sub signs delivery pushes as"
    scheduler-invoker = "identity Cloud Scheduler signs ticks as"
  }

  # Project-level grants: only where the resource has no finer IAM (Datastore, BigQuery jobs).
  project_roles = [
    { account = "scheduler", role = "roles/datastore.user" },
    { account = "scheduler", role = "roles/bigquery.jobUser" },
    { account = "delivery", role = "roles/datastore.user" },
    { account = "console", role = "roles/datastore.user" },
    { account = "console", role = "roles/bigquery.jobUser" },
    { account = "click-redirect", role = "roles/datastore.viewer" },
  ]

  # Dataset-level grants on the segcast dataset (keys are static: emails are only known after apply).
  dataset_roles = merge(
    {
      scheduler-editor = { member = "serviceAccount:${google_service_account.sa["scheduler"].email}", role = "roles/bigquery.dataEditor" }
      console-viewer   = { member = "serviceAccount:${google_service_account.sa["console"].email}", role = "roles/bigquery.dataViewer" }
      # BigQuery subscriptions write as the Pub/Sub service agent.
      pubsub-agent-editor = { member = "serviceAccount:${local.pubsub_service_agent}", role = "roles/bigquery.dataEditor" }
    },
    var.enable_log_sink ? {
      log-sink-editor = { member = "serviceAccount:${google_service_account.sa["log-sink"].email}", role = "roles/bigquery.dataEditor" }
    } : {},
  )

  # Read access to the datasets segment SQL reads, for the scheduler (runs it) and the console (previews).
  segment_source_grants = flatten([
    for ds in var.segment_source_datasets : [
      for account in ["scheduler", "console"] : {
        key     = "${ds}/${account}"
        project = length(split(".", ds)) == 2 ? split(".", ds)[0] : var.project_id
        dataset = length(split(".", ds)) == 2 ? split(".", ds)[1] : ds
        account = account
      }
    ]
  ])
}

resource "google_service_account" "sa" {
  for_each = local.service_accounts

  project      = var.project_id
  account_id   = "segcast-${each.key}"
  display_name = "segcast ${each.key}"
  description  = each.value
}

resource "google_project_iam_member" "project" {
  for_each = { for g in local.project_roles : "${g.account}/${g.role}" => g }

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.sa[each.value.account].email}"
}

resource "google_bigquery_dataset_iam_member" "segcast" {
  for_each = local.dataset_roles

  project    = var.project_id
  dataset_id = google_bigquery_dataset.segcast.dataset_id
  role       = each.value.role
  member     = each.value.member
}

resource "google_bigquery_dataset_iam_member" "segment_sources" {
  for_each = { for g in local.segment_source_grants : g.key => g }

  project    = each.value.project
  dataset_id = each.value.dataset
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.sa[each.value.account].email}"
}

# EXPORT DATA writes the segment files as the scheduler; the fan-out reads them back.
resource "google_storage_bucket_iam_member" "scheduler_exports" {
  bucket = google_storage_bucket.exports.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.sa["scheduler"].email}"
}

# The fan-out (and the re-publishing of parked batches) publishes to every delivery topic.
resource "google_pubsub_topic_iam_member" "scheduler_delivery" {
  count = var.delivery_topics

  project = var.project_id
  topic   = module.delivery_topics.topic_names[count.index]
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.sa["scheduler"].email}"
}

# The delivery handler publishes each request's outcome to the delivery-log topic.
resource "google_pubsub_topic_iam_member" "delivery_log" {
  project = var.project_id
  topic   = google_pubsub_topic.delivery_log.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.sa["delivery"].email}"
}

resource "google_pubsub_topic_iam_member" "click_redirect_clicks" {
  project = var.project_id
  topic   = google_pubsub_topic.click_logs.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.sa["click-redirect"].email}"
}

resource "google_pubsub_subscription_iam_member" "log_sink" {
  for_each = var.enable_log_sink ? toset(["${var.log_topic}-sink", "${var.click_topic}-sink"]) : toset([])

  project      = var.project_id
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_service_account.sa["log-sink"].email}"

  depends_on = [google_pubsub_subscription.delivery_log_sink, google_pubsub_subscription.click_logs_sink]
}

# LINE channel secrets (segcast-line-channel-<ID>-secret): terraform declares some (secrets.tf), the console
# creates the others when a channel is registered, so the grants cannot name each secret. They are made on
# the project, narrowed by an IAM condition to the secrets whose name starts segcast-line-channel-
# (local.channel_secrets_condition): no other secret in the project is reachable through them.
#
# Read: the delivery handler (issues the access tokens it sends with) and the scheduler (LINE's per-campaign
# statistics, insight), from their environment or, for channels registered later, at run time; and the console
# (console_channel_secret_reader below).
resource "google_project_iam_member" "channel_secret_readers" {
  for_each = toset(["delivery", "scheduler"])

  project = var.project_id
  role    = "roles/secretmanager.secretAccessor"
  member  = "serviceAccount:${google_service_account.sa[each.value].email}"

  condition {
    title       = "segcast LINE channel secrets"
    description = "Only secrets named segcast-line-channel-*"
    expression  = local.channel_secrets_condition
  }
}

# The console reads the channel secrets to issue channel access tokens for test sends and LINE's validate
# endpoint (channels in line_channel_ids included, so they need no secret entered in the console). Same role
# and condition as the delivery handler and scheduler: the channel secrets and no other secret (not the click
# keys). Its code never returns or logs a secret value (the UI and API only say whether a channel has one).
resource "google_project_iam_member" "console_channel_secret_reader" {
  count = var.enable_console ? 1 : 0

  project = var.project_id
  role    = "roles/secretmanager.secretAccessor"
  member  = "serviceAccount:${google_service_account.sa["console"].email}"

  condition {
    title       = "segcast LINE channel secrets"
    description = "Only secrets named segcast-line-channel-*"
    expression  = local.channel_secrets_condition
  }
}

# Write: the console stores the secret an admin enters (create the secret if missing, add a version).
# roles/secretmanager.admin would do it but also reads every secret's value and can change the secrets' IAM;
# secretVersionManager lacks creation. So:
# - creating a secret: a custom role holding only secretmanager.secrets.create. Creation is authorized on the
#   project (the secret does not exist yet), where a condition on the secret's name cannot apply, so this
#   grant is unconditioned; it reaches no existing secret (an empty new secret, no versions, no IAM).
# - adding a version: roles/secretmanager.secretVersionAdder (only secretmanager.versions.add), narrowed to
#   the channel secrets by the condition.
resource "google_project_iam_custom_role" "channel_secret_creator" {
  count = var.enable_console ? 1 : 0

  project     = var.project_id
  role_id     = "segcastChannelSecretCreator"
  title       = "segcast channel secret creator"
  description = "Create Secret Manager secrets (no reading, no versions, no IAM): the console registering a LINE channel."
  permissions = ["secretmanager.secrets.create"]
}

resource "google_project_iam_member" "console_channel_secret_create" {
  count = var.enable_console ? 1 : 0

  project = var.project_id
  role    = google_project_iam_custom_role.channel_secret_creator[0].name
  member  = "serviceAccount:${google_service_account.sa["console"].email}"
}

resource "google_project_iam_member" "console_channel_secret_versions" {
  count = var.enable_console ? 1 : 0

  project = var.project_id
  role    = "roles/secretmanager.secretVersionAdder"
  member  = "serviceAccount:${google_service_account.sa["console"].email}"

  condition {
    title       = "segcast LINE channel secrets"
    description = "Only secrets named segcast-line-channel-*"
    expression  = local.channel_secrets_condition
  }
}

# Click-signing keys: the handler signs links, the redirect verifies them.
resource "google_secret_manager_secret_iam_member" "click_keys" {
  for_each = toset(["delivery", "click-redirect"])

  project   = var.project_id
  secret_id = google_secret_manager_secret.click_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.sa[each.value].email}"
}

# Only for projects created before April 2021: the Pub/Sub service agent mints the push OIDC tokens.
resource "google_service_account_iam_member" "pubsub_push_token_creator" {
  service_account_id = google_service_account.sa["pubsub-push"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"
}
