# Alerts (each explained, with what to do, in docs/runbook.md) and a dashboard.

locals {
  delivery_subs_filter = join(" OR ", [for s in var.delivery_subscriptions : "resource.labels.subscription_id = \"${s}\""])
}

resource "google_monitoring_notification_channel" "email" {
  project      = var.project_id
  display_name = "segcast on-call"
  type         = "email"

  labels = {
    email_address = var.alert_email
  }
}

# --- log-based metrics on the services' JSON logs (crates/segcast/src/telemetry.rs: severity, message, fields)

# Scheduler warnings and errors: "tick failed", "lease lost", "could not release the lease",
# "counts do not add up", "tick refused: unauthenticated".
resource "google_logging_metric" "scheduler_problems" {
  project     = var.project_id
  name        = "segcast/scheduler_problems"
  description = "Scheduler log entries at WARNING or above"
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.scheduler_service}\" AND severity>=WARNING"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

# A fan-out that yields at its time budget tick after tick: normal for minutes, a stuck campaign for hours.
# Not labelled by campaign (unbounded label values): the campaign is on each log line.
resource "google_logging_metric" "fanout_yields" {
  project     = var.project_id
  name        = "segcast/fanout_yields"
  description = "Fan-out yielded at its tick budget"
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.scheduler_service}\" AND jsonPayload.message=\"fan-out yields at its time budget\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

# Per channel and outcome, from the delivery handler's "batch outcomes" lines (one per batch, outcome and
# reason; crates/segcast/src/pipeline/deliver/mod.rs): recipients, LINE requests, 429 answers, LINE latency.
resource "google_logging_metric" "delivery_recipients" {
  project         = var.project_id
  name            = "segcast/delivery_recipients"
  description     = "Recipients of LINE requests, by channel, outcome and reason"
  filter          = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.delivery_service}\" AND jsonPayload.message=\"batch outcomes\""
  value_extractor = "EXTRACT(jsonPayload.recipients)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
    labels {
      key        = "channel"
      value_type = "STRING"
    }
    labels {
      key        = "outcome"
      value_type = "STRING"
    }
    labels {
      key        = "reason"
      value_type = "STRING"
    }
  }

  label_extractors = {
    channel = "EXTRACT(jsonPayload.channel)"
    outcome = "EXTRACT(jsonPayload.outcome)"
    reason  = "EXTRACT(jsonPayload.reason)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "line_requests" {
  project         = var.project_id
  name            = "segcast/line_requests"
  description     = "LINE requests, by channel and outcome"
  filter          = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.delivery_service}\" AND jsonPayload.message=\"batch outcomes\""
  value_extractor = "EXTRACT(jsonPayload.requests)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
    labels {
      key        = "channel"
      value_type = "STRING"
    }
    labels {
      key        = "outcome"
      value_type = "STRING"
    }
  }

  label_extractors = {
    channel = "EXTRACT(jsonPayload.channel)"
    outcome = "EXTRACT(jsonPayload.outcome)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "line_rate_limited" {
  project         = var.project_id
  name            = "segcast/line_rate_limited"
  description     = "LINE's 429 answers (rate limit), by channel"
  filter          = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.delivery_service}\" AND jsonPayload.message=\"batch outcomes\""
  value_extractor = "EXTRACT(jsonPayload.rate_limited)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
    labels {
      key        = "channel"
      value_type = "STRING"
    }
  }

  label_extractors = {
    channel = "EXTRACT(jsonPayload.channel)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "line_latency" {
  project         = var.project_id
  name            = "segcast/line_latency"
  description     = "LINE's answer time per request (mean over a batch's requests), by channel"
  filter          = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.delivery_service}\" AND jsonPayload.message=\"batch outcomes\""
  value_extractor = "EXTRACT(jsonPayload.line_latency_ms)"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
    labels {
      key        = "channel"
      value_type = "STRING"
    }
  }

  label_extractors = {
    channel = "EXTRACT(jsonPayload.channel)"
  }

  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 10
    }
  }
}

# Campaign state changes (extracting -> fanning_out -> delivering -> ...), for the dashboard.
resource "google_logging_metric" "campaign_transitions" {
  project     = var.project_id
  name        = "segcast/campaign_transitions"
  description = "Campaign state transitions, by target state"
  filter      = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.scheduler_service}\" AND jsonPayload.message=\"campaign advanced\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "to"
      value_type = "STRING"
    }
  }

  label_extractors = {
    to = "EXTRACT(jsonPayload.to)"
  }
}

# --- alert policies

resource "google_monitoring_alert_policy" "dead_lettered" {
  project      = var.project_id
  display_name = "segcast: delivery batches dead-lettered"
  combiner     = "OR"

  conditions {
    display_name = "Batches moved to the dead-letter topic"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type=\"pubsub_subscription\" AND (${local.delivery_subs_filter})"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  # The dead-letter handler's last attempt itself keeps failing: messages wait in its subscription.
  conditions {
    display_name = "Dead-letter subscription not draining"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND (resource.labels.subscription_id = \"${var.dead_letter_subscription}\" OR resource.labels.subscription_id = \"${var.log_dead_letter_hold}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "1800s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  notification_channels = [google_monitoring_notification_channel.email.id]
  documentation {
    content   = "See docs/runbook.md, \"Delivery batches dead-lettered\"."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "backlog_age" {
  project      = var.project_id
  display_name = "segcast: delivery backlog is old"
  combiner     = "OR"

  conditions {
    display_name = "Oldest unacknowledged batch older than ${var.backlog_age_alert_seconds}s"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND (${local.delivery_subs_filter})"
      comparison      = "COMPARISON_GT"
      threshold_value = var.backlog_age_alert_seconds
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }

  notification_channels = [google_monitoring_notification_channel.email.id]
  documentation {
    content   = "See docs/runbook.md, \"Delivery backlog is old\"."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "handler_errors" {
  project      = var.project_id
  display_name = "segcast: delivery handler error rate"
  combiner     = "OR"

  conditions {
    display_name = "5xx share of delivery handler responses"
    condition_threshold {
      filter             = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.delivery_service}\" AND metric.labels.response_code_class=\"5xx\""
      denominator_filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.delivery_service}\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.handler_error_ratio_alert
      duration           = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  notification_channels = [google_monitoring_notification_channel.email.id]
  documentation {
    content   = "See docs/runbook.md, \"Delivery handler error rate\"."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "campaign_stuck" {
  project      = var.project_id
  display_name = "segcast: campaign stuck"
  combiner     = "OR"

  # The scheduler has logged problems in every 5-minute window for 30 minutes (a tick that keeps failing
  # on the same campaign, a lease that keeps being lost, unauthenticated ticks).
  conditions {
    display_name = "Scheduler problems for 30 minutes"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.scheduler_problems.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "1800s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  # Fan-outs have been yielding for 3 hours without a break (3M recipients fan out in minutes unless
  # SEGCAST_FANOUT_RATE paces it): the campaign is on the "fan-out yields" log lines (docs/runbook.md).
  conditions {
    display_name = "Fan-out running for 3 hours"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.fanout_yields.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "10800s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  notification_channels = [google_monitoring_notification_channel.email.id]
  documentation {
    content   = "See docs/runbook.md, \"Campaign stuck\"."
    mime_type = "text/markdown"
  }
}

# --- dashboard

resource "google_monitoring_dashboard" "segcast" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "segcast"
    mosaicLayout = {
      columns = 12
      tiles = [
        for i, w in [
          {
            title   = "Delivery handler responses by class (req/s)"
            filter  = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.delivery_service}\""
            group   = ["metric.label.response_code_class"]
            aligner = "ALIGN_RATE"
          },
          {
            title   = "Delivery backlog (batches waiting)"
            filter  = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND (${local.delivery_subs_filter})"
            group   = []
            aligner = "ALIGN_MAX"
          },
          {
            title   = "Oldest unacknowledged batch (s)"
            filter  = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND (${local.delivery_subs_filter})"
            group   = []
            aligner = "ALIGN_MAX"
          },
          {
            title   = "Dead-lettered batches"
            filter  = "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type=\"pubsub_subscription\" AND (${local.delivery_subs_filter})"
            group   = []
            aligner = "ALIGN_SUM"
          },
          {
            title   = "Campaign transitions, by new state"
            filter  = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.campaign_transitions.name}\" AND resource.type=\"cloud_run_revision\""
            group   = ["metric.label.to"]
            aligner = "ALIGN_SUM"
          },
          {
            title   = "Scheduler warnings and errors"
            filter  = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.scheduler_problems.name}\" AND resource.type=\"cloud_run_revision\""
            group   = []
            aligner = "ALIGN_SUM"
          },
          {
            title   = "Recipients by channel and outcome"
            filter  = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.delivery_recipients.name}\" AND resource.type=\"cloud_run_revision\""
            group   = ["metric.label.channel", "metric.label.outcome"]
            aligner = "ALIGN_DELTA"
          },
          {
            title   = "LINE 429 answers by channel"
            filter  = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.line_rate_limited.name}\" AND resource.type=\"cloud_run_revision\""
            group   = ["metric.label.channel"]
            aligner = "ALIGN_DELTA"
          },
          {
            title   = "Click redirect requests (req/s)"
            filter  = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.click_redirect_service}\""
            group   = ["metric.label.response_code_class"]
            aligner = "ALIGN_RATE"
          },
          {
            title   = "Delivery handler instances"
            filter  = "metric.type=\"run.googleapis.com/container/instance_count\" AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.delivery_service}\""
            group   = []
            aligner = "ALIGN_MAX"
          },
          ] : {
          xPos   = (i % 2) * 6
          yPos   = floor(i / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = w.title
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = w.filter
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = w.aligner
                      crossSeriesReducer = "REDUCE_SUM"
                      groupByFields      = w.group
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })
}
