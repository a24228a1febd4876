# Cloud Scheduler ticks the scheduler every minute with an OIDC token signed as segcast-scheduler-invoker,
# for the scheduler's custom audience (the scheduler checks both: SEGCAST_PUSH_SERVICE_ACCOUNT and
# SEGCAST_PUSH_AUDIENCE). No retries: the next tick is a minute away, and every tick resumes from Datastore.
resource "google_cloud_scheduler_job" "tick" {
  project          = var.project_id
  region           = var.region
  name             = "segcast-scheduler-tick"
  description      = "segcast: claim due campaigns and drive them"
  schedule         = var.scheduler_cron
  time_zone        = var.scheduler_time_zone
  attempt_deadline = "180s"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${module.scheduler.uri}/tick"

    oidc_token {
      service_account_email = google_service_account.sa["scheduler-invoker"].email
      audience              = local.scheduler_tick_audience
    }
  }
}
