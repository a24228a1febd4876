# Inputs. Names that the code also reads (topic prefix, log topic, dataset, ...) default to the code's own
# defaults (crates/segcast/src/config.rs) and are passed to the services as environment variables, so the
# two cannot drift; crates/infra-check checks it.

variable "project_id" {
  description = "The GCP project to deploy into."
  type        = string
}

variable "region" {
  description = "Region for Cloud Run, Pub/Sub regional resources, Cloud Scheduler and the export bucket."
  type        = string
  default     = "asia-northeast1"
}

variable "bigquery_location" {
  description = "BigQuery dataset location. EXPORT DATA writes to the export bucket, which must be in a compatible location (same region, or a multi-region that contains it)."
  type        = string
  default     = "asia-northeast1"
}

variable "firestore_location" {
  description = "Location of the Firestore (Datastore mode) database. Cannot be changed after creation."
  type        = string
  default     = "asia-northeast1"
}

variable "artifact_registry_repository" {
  description = "Artifact Registry Docker repository the images are pushed to (cloudbuild.yaml's _REPOSITORY)."
  type        = string
  default     = "segcast"
}

variable "image_tag" {
  description = "Image tag to deploy for every service (cloudbuild.yaml tags images with the commit SHA)."
  type        = string
}

variable "image_tags" {
  description = "Per-service tag overrides, keyed by service (scheduler, delivery, log-sink, click-redirect, console)."
  type        = map(string)
  default     = {}
}

variable "line_channel_ids" {
  description = "LINE channel IDs segcast sends for. Each gets a Secret Manager secret for its channel secret (LINE_CHANNEL_<ID>_SECRET on the delivery handler)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.line_channel_ids : can(regex("^[0-9]{1,20}$", id))])
    error_message = "LINE channel IDs are digits only."
  }
}

variable "line_api_base_url" {
  description = "LINE Messaging API base URL."
  type        = string
  default     = "https://api.line.me"
}

variable "delivery_topics" {
  description = "N, the number of delivery topics the fan-out spreads batches over (SEGCAST_DELIVERY_TOPICS). The seed used 10."
  type        = number
  default     = 10

  validation {
    condition     = var.delivery_topics >= 1 && var.delivery_topics <= 100
    error_message = "delivery_topics must be between 1 and 100 (the code refuses anything else)."
  }
}

variable "topic_prefix" {
  description = "Delivery topics are <prefix>-0 .. <prefix>-<N-1> (SEGCAST_TOPIC_PREFIX)."
  type        = string
  default     = "segcast-delivery"
}

variable "log_topic" {
  description = "The delivery-log topic (SEGCAST_LOG_TOPIC)."
  type        = string
  default     = "segcast-delivery-log"
}

variable "click_topic" {
  description = "The click-log topic (SEGCAST_CLICK_TOPIC)."
  type        = string
  default     = "click-logs"
}

variable "dataset" {
  description = "BigQuery dataset for targets, logs and views (SEGCAST_DATASET)."
  type        = string
  default     = "segcast"
}

variable "datastore_namespace" {
  description = "Datastore namespace (SEGCAST_NAMESPACE); empty is the default namespace."
  type        = string
  default     = ""
}

variable "export_bucket_name" {
  description = "Bucket for segment exports (SEGCAST_BUCKET). Defaults to <project>-segcast-exports."
  type        = string
  default     = ""
}

variable "export_retention_days" {
  description = "Segment export files are deleted this many days after they are written. A campaign's rounds finish within a day; a week leaves time to investigate."
  type        = number
  default     = 7
}

variable "segment_source_datasets" {
  description = "Datasets (project.dataset or dataset) that segment SQL reads: the scheduler and console get read access to exactly these."
  type        = list(string)
  default     = []
}

variable "line_push_rate" {
  description = "Push requests/s kept to per channel (SEGCAST_LINE_PUSH_RATE). LINE allows 2,000; the limiter counts each request until its answer is in, so no second at LINE holds more whatever the network does. Lower it when something else sends on the channel."
  type        = number
  default     = 2000
  validation {
    condition     = var.line_push_rate > 0 && var.line_push_rate <= 2000
    error_message = "line_push_rate must be between 1 and LINE's limit of 2,000 requests/s."
  }
}

variable "line_multicast_rate" {
  description = "Multicast requests/s kept to per channel (SEGCAST_LINE_MULTICAST_RATE). LINE allows 200; each request is counted until its answer is in, so no second at LINE holds more."
  type        = number
  default     = 200
  validation {
    condition     = var.line_multicast_rate > 0 && var.line_multicast_rate <= 200
    error_message = "line_multicast_rate must be between 1 and LINE's limit of 200 requests/s."
  }
}

variable "ack_deadline_seconds" {
  description = "Ack deadline of the delivery subscriptions (SEGCAST_ACK_DEADLINE_SECONDS). Must exceed push_budget_seconds."
  type        = number
  default     = 60
}

variable "push_budget_seconds" {
  description = "How long one push may work before letting Pub/Sub redeliver (SEGCAST_PUSH_BUDGET_SECONDS)."
  type        = number
  default     = 30
}

variable "fanout_rate" {
  description = "Batches/s the fan-out publishes at most; 0 = unlimited (SEGCAST_FANOUT_RATE)."
  type        = number
  default     = 0
}

variable "scheduler_cron" {
  description = "How often Cloud Scheduler ticks the scheduler (a tick works up to SEGCAST_TICK_BUDGET_SECONDS = 50 s)."
  type        = string
  default     = "* * * * *"
}

variable "scheduler_time_zone" {
  description = "Time zone of the Cloud Scheduler job."
  type        = string
  default     = "Etc/UTC"
}

variable "enable_log_sink" {
  description = "Run segcast-log-sink (a pull subscriber) instead of the delivery-log BigQuery subscription. Off in production: BigQuery subscriptions replace it."
  type        = bool
  default     = false
}

variable "enable_console" {
  description = "Deploy the console behind IAP (needs console_domain)."
  type        = bool
  default     = true
}

variable "console_domain" {
  description = "Domain name for the console's HTTPS load balancer (a managed certificate is issued for it; point its A record at the console_ip output)."
  type        = string
  default     = ""
}

variable "console_users" {
  description = "Who may open the console through IAP, e.g. [\"group:marketing@example.com\", \"user:alice@example.com\"]."
  type        = list(string)
  default     = []
}

variable "console_admins" {
  description = "Email addresses that are console admins whatever the console's user list says (SEGCAST_CONSOLE_ADMINS). This is how the first admins get in: they then add the other users and their roles in the console itself. Each must also be let through IAP (console_users). Empty: nobody can manage users in a new console."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.console_admins : can(regex("^[^@:, ]+@[^@:, ]+[.][^@:, ]+$", e))])
    error_message = "console_admins are plain email addresses (alice@example.com, no \"user:\" prefix)."
  }
}

variable "approval_threshold" {
  description = "A campaign to more recipients than this needs a second console user's approval before it can start (SEGCAST_APPROVAL_THRESHOLD)."
  type        = number
  default     = 100000

  validation {
    condition     = var.approval_threshold >= 0 && floor(var.approval_threshold) == var.approval_threshold
    error_message = "approval_threshold is a whole number of recipients."
  }
}

variable "click_base_url" {
  description = "Public base URL of the click redirect (SEGCAST_CLICK_BASE_URL), e.g. a custom domain mapped to it. Empty: the service's run.app URL."
  type        = string
  default     = ""
}

variable "alert_email" {
  description = "Email address that receives alert notifications."
  type        = string
}

variable "backlog_age_alert_seconds" {
  description = "Alert when the oldest unacknowledged delivery batch is older than this."
  type        = number
  default     = 1800
}

variable "handler_error_ratio_alert" {
  description = "Alert when this fraction of delivery handler responses are 5xx over 10 minutes."
  type        = number
  default     = 0.2
}
