# One Cloud Run service: its container, scaling, environment (plain values and Secret Manager references)
# and who may invoke it. Every service runs as its own service account (passed in), which holds only the
# roles granted in the root module's iam.tf.

resource "google_cloud_run_v2_service" "this" {
  project             = var.project_id
  name                = var.name
  location            = var.region
  ingress             = var.ingress
  custom_audiences    = var.custom_audiences
  deletion_protection = false

  template {
    service_account                  = var.service_account_email
    max_instance_request_concurrency = var.concurrency
    timeout                          = "${var.timeout_seconds}s"

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = var.cpu_idle
        startup_cpu_boost = true
      }

      # Empty values are left out (the code treats an empty variable as unset anyway).
      dynamic "env" {
        for_each = { for k, v in var.env : k => v if v != "" }
        content {
          name  = env.key
          value = env.value
        }
      }

      # Secrets are mounted as environment variables (the code reads them from the environment); the value
      # is resolved when an instance starts, so a new secret version reaches new instances only.
      dynamic "env" {
        for_each = var.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 2
        failure_threshold = 15
      }
    }
  }
}

# Who may call the service (Cloud Run checks the caller's identity before the request reaches the code).
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = var.invokers

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = each.value
}
