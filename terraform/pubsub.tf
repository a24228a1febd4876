# Pub/Sub. Names are the code's (crates/segcast/src/config.rs): the delivery topics and their push
# subscriptions come from the delivery_topics module; the log topics end in BigQuery subscriptions.

module "delivery_topics" {
  source = "./modules/delivery_topics"

  project_id   = var.project_id
  topic_prefix = var.topic_prefix
  topic_count  = var.delivery_topics

  handler_url                = module.delivery.uri
  push_service_account_email = google_service_account.sa["pubsub-push"].email
  push_audience              = local.delivery_push_audience
  ack_deadline_seconds       = var.ack_deadline_seconds
  # segcast::pipeline::provision::MAX_DELIVERY_ATTEMPTS
  max_delivery_attempts = 15
  pubsub_service_agent  = local.pubsub_service_agent
}

# Delivery-log rows (segcast::domain::DeliveryLogRow as JSON), published by the handler before it acks.
resource "google_pubsub_topic" "delivery_log" {
  project                    = var.project_id
  name                       = var.log_topic
  message_retention_duration = "604800s"
}

# Production: a BigQuery subscription writes each message into delivery_logs with the table's own schema
# (use_table_schema), so the JSON fields must be exactly the table's columns (sql/ddl/delivery_logs.sql);
# crates/infra-check checks both against DeliveryLogRow. Duplicates (at-least-once) are deduplicated by
# log_id in the views.
resource "google_pubsub_subscription" "delivery_log_bigquery" {
  count = var.enable_log_sink ? 0 : 1

  project = var.project_id
  name    = "${var.log_topic}-bigquery"
  topic   = google_pubsub_topic.delivery_log.id

  bigquery_config {
    table               = "${var.project_id}.${google_bigquery_dataset.segcast.dataset_id}.delivery_logs"
    use_table_schema    = true
    drop_unknown_fields = false
    write_metadata      = false
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # A row BigQuery refuses (schema drift) is set aside rather than retried for ever.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.log_dead_letter.id
    max_delivery_attempts = 10
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_bigquery_job.ddl, google_bigquery_dataset_iam_member.segcast]
}

# Local-style alternative (enable_log_sink): segcast-log-sink pulls <log topic>-sink and <click topic>-sink
# (Settings::log_subscription, Settings::click_subscription) and inserts with insertAll.
resource "google_pubsub_subscription" "delivery_log_sink" {
  count = var.enable_log_sink ? 1 : 0

  project                    = var.project_id
  name                       = "${var.log_topic}-sink"
  topic                      = google_pubsub_topic.delivery_log.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "click_logs_sink" {
  count = var.enable_log_sink ? 1 : 0

  project                    = var.project_id
  name                       = "${var.click_topic}-sink"
  topic                      = google_pubsub_topic.click_logs.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Click logs from the click redirect (SEGCAST_CLICK_TOPIC: segcast::click::ClickRow as JSON), into click_logs
# the same way.
resource "google_pubsub_topic" "click_logs" {
  project                    = var.project_id
  name                       = var.click_topic
  message_retention_duration = "604800s"
}

resource "google_pubsub_subscription" "click_logs_bigquery" {
  count = var.enable_log_sink ? 0 : 1

  project = var.project_id
  name    = "${var.click_topic}-bigquery"
  topic   = google_pubsub_topic.click_logs.id

  bigquery_config {
    table               = "${var.project_id}.${google_bigquery_dataset.segcast.dataset_id}.click_logs"
    use_table_schema    = true
    drop_unknown_fields = false
    write_metadata      = false
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.log_dead_letter.id
    max_delivery_attempts = 10
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_bigquery_job.ddl, google_bigquery_dataset_iam_member.segcast]
}

# Log messages BigQuery would not take, kept (7 days) for inspection and replay: see docs/runbook.md.
resource "google_pubsub_topic" "log_dead_letter" {
  project                    = var.project_id
  name                       = "${var.log_topic}-dead-letter"
  message_retention_duration = "604800s"
}

resource "google_pubsub_subscription" "log_dead_letter_hold" {
  project                    = var.project_id
  name                       = "${var.log_topic}-dead-letter-hold"
  topic                      = google_pubsub_topic.log_dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_topic_iam_member" "log_dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.log_dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "log_bigquery_subscriber" {
  for_each = toset(concat(
    google_pubsub_subscription.delivery_log_bigquery[*].name,
    google_pubsub_subscription.click_logs_bigquery[*].name,
  ))

  project      = var.project_id
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_service_agent}"
}
