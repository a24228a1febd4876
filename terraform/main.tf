# segcast on GCP: the root module. Files by concern:
#   registry.tf     the Artifact Registry repository the images are pushed to
#   iam.tf          service accounts (one per service) and every role they hold
#   pubsub.tf       delivery topics (module), log and click topics with BigQuery subscriptions
#   bigquery.tf     dataset, and tables/views created from ../sql/ddl (the same files the code loads)
#   storage.tf      the segment-export bucket
#   firestore.tf    Firestore in Datastore mode, indexes from ../datastore/index.yaml
#   secrets.tf      Secret Manager secrets (channel credentials, click-signing keys)
#   services.tf     the Cloud Run services, sized for LINE's rate limits
#   scheduler.tf    the Cloud Scheduler tick
#   console.tf      the console's HTTPS load balancer with IAP
#   monitoring.tf   alert policies and the dashboard (module)

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  project_number = data.google_project.this.number

  # Google-managed service agents that act on segcast's behalf.
  pubsub_service_agent = "service-${local.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  iap_service_agent    = "service-${local.project_number}@gcp-sa-iap.iam.gserviceaccount.com"

  # Cloud Run service names (a service URL is https://<name>-<project number>.<region>.run.app).
  service_names = {
    scheduler      = "segcast-scheduler"
    delivery       = "segcast-delivery"
    log_sink       = "segcast-log-sink"
    click_redirect = "segcast-click-redirect"
    console        = "segcast-console"
  }

  # Images from Artifact Registry (cloudbuild.yaml pushes <binary>:<commit SHA>).
  registry = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.segcast.repository_id}"
  images = {
    for key, name in local.service_names :
    key => "${local.registry}/${name}:${lookup(var.image_tags, key, var.image_tag)}"
  }

  # OIDC audiences. The services are given these as custom audiences, so each knows its audience before its
  # URL exists (the URL would make the service's environment depend on the service itself).
  delivery_push_audience  = "segcast-delivery-push"
  scheduler_tick_audience = "segcast-scheduler-tick"

  export_bucket = var.export_bucket_name != "" ? var.export_bucket_name : "${var.project_id}-segcast-exports"

  click_base_url = var.click_base_url != "" ? var.click_base_url : "https://${local.service_names.click_redirect}-${local.project_number}.${var.region}.run.app"

  # What every pipeline binary reads (crates/segcast/src/config.rs, Settings::from_vars).
  pipeline_env = {
    GOOGLE_CLOUD_PROJECT         = var.project_id
    SEGCAST_BUCKET               = google_storage_bucket.exports.name
    SEGCAST_DATASET              = google_bigquery_dataset.segcast.dataset_id
    SEGCAST_NAMESPACE            = var.datastore_namespace
    SEGCAST_DELIVERY_TOPICS      = tostring(var.delivery_topics)
    SEGCAST_TOPIC_PREFIX         = var.topic_prefix
    SEGCAST_LOG_TOPIC            = google_pubsub_topic.delivery_log.name
    SEGCAST_ACK_DEADLINE_SECONDS = tostring(var.ack_deadline_seconds)
    SEGCAST_PUSH_BUDGET_SECONDS  = tostring(var.push_budget_seconds)
    SEGCAST_LINE_PUSH_RATE       = tostring(var.line_push_rate)
    SEGCAST_LINE_MULTICAST_RATE  = tostring(var.line_multicast_rate)
    SEGCAST_FANOUT_RATE          = tostring(var.fanout_rate)
    LINE_API_BASE_URL            = var.line_api_base_url
  }

  # Channels registered in the console keep their secret in Secret Manager as
  # segcast-line-channel-<ID>-secret (crates/segcast/src/line/secrets.rs; the name line_channel in secrets.tf
  # uses too): the console writes it there, and the delivery handler, the scheduler and the console (test
  # sends, LINE's validate endpoint) look a channel up there when their environment does not have it
  # (SEGCAST_CHANNEL_SECRETS on all three).
  channel_secret_store  = "secret-manager"
  channel_secret_prefix = "segcast-line-channel-"
  # The IAM condition that narrows the Secret Manager grants on those secrets to exactly them (IAM names a
  # secret by project number).
  channel_secrets_condition = "resource.name.startsWith(\"projects/${local.project_number}/secrets/${local.channel_secret_prefix}\")"

  # Datasets the console lets segment SQL read (SEGCAST_SEGMENT_DATASETS): segcast's own dataset (the code's
  # default, e.g. retargeting on click_logs) and the segment source datasets, which the scheduler and the
  # console are granted read access to (iam.tf).
  segment_datasets = join(",", concat(
    [google_bigquery_dataset.segcast.dataset_id],
    [for ds in var.segment_source_datasets : ds if ds != google_bigquery_dataset.segcast.dataset_id],
  ))

  # LINE_CHANNEL_<ID>_SECRET for each channel (crates/segcast/src/line/token.rs), from Secret Manager.
  channel_secret_env = {
    for id in var.line_channel_ids :
    "LINE_CHANNEL_${id}_SECRET" => google_secret_manager_secret.line_channel[id].id
  }
}
