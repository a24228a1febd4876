# The N delivery topics, each with a push subscription to the delivery handler, and the dead-letter topic
# with its own push subscription. The same names and settings as crates/segcast/src/pipeline/provision.rs
# creates on the emulator:
#   <prefix>-<i>              topic            the fan-out publishes batches here, round-robin
#   <prefix>-<i>-push         push subscription -> <handler>/push/delivery
#   <prefix>-dead-letter      topic            batches Pub/Sub gave up on after max_delivery_attempts
#   <prefix>-dead-letter-push push subscription -> <handler>/push/dead-letter (a last attempt that settles
#                             whatever is still unknown as failed/outcome_unknown, never a new retry key)

resource "google_pubsub_topic" "delivery" {
  count = var.topic_count

  project = var.project_id
  name    = "${var.topic_prefix}-${count.index}"
  # A batch that waits (paused campaign, long backlog) must not expire before it is delivered.
  message_retention_duration = "604800s"
}

resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.topic_prefix}-dead-letter"
  message_retention_duration = "604800s"
}

resource "google_pubsub_subscription" "delivery" {
  count = var.topic_count

  project = var.project_id
  name    = "${var.topic_prefix}-${count.index}-push"
  topic   = google_pubsub_topic.delivery[count.index].id

  # The handler works on a batch for at most SEGCAST_PUSH_BUDGET_SECONDS, which the code requires to be
  # below this deadline: Pub/Sub never pushes a batch again while it is still being worked on.
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  push_config {
    push_endpoint = "${var.handler_url}/push/delivery"

    # Pub/Sub signs each push with an OIDC token for this service account and audience; Cloud Run checks
    # it (the account holds run.invoker on the handler) and so does the handler (SEGCAST_PUSH_AUDIENCE,
    # SEGCAST_PUSH_SERVICE_ACCOUNT).
    oidc_token {
      service_account_email = var.push_service_account_email
      audience              = var.push_audience
    }
  }

  # 503 (outcome unknown, or LINE's rate limit past the budget) and Cloud Run's own 429 (all instances
  # busy) come back with exponential backoff: 1 s doubling to 60 s, as on the emulator.
  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "60s"
  }

  # After max_delivery_attempts (segcast::pipeline::provision::MAX_DELIVERY_ATTEMPTS = 15: well over ten
  # minutes of retries, far inside LINE's 24 h retry-key window) the batch goes to the dead-letter topic.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expire, however long no campaign runs
  }
}

resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${var.topic_prefix}-dead-letter-push"
  topic   = google_pubsub_topic.dead_letter.id

  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = "604800s"
  # Kept after acknowledgement for 7 days, so a dead-letter replay is a `seek` to a time
  # (docs/runbook.md): safe, because the handler deduplicates by batch and LINE by retry key.
  retain_acked_messages = true

  push_config {
    push_endpoint = "${var.handler_url}/push/dead-letter"

    oidc_token {
      service_account_email = var.push_service_account_email
      audience              = var.push_audience
    }
  }

  # The last attempt is retried (e.g. through a Datastore outage) with a longer backoff, and never
  # dead-lettered again: a message left here is visible in the dead-letter backlog alert.
  retry_policy {
    minimum_backoff = "5s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by the Pub/Sub service agent: it must be able to publish to the dead-letter
# topic and to acknowledge (subscribe on) the source subscriptions.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  count = var.topic_count

  project      = var.project_id
  subscription = google_pubsub_subscription.delivery[count.index].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${var.pubsub_service_agent}"
}
