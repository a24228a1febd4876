# The console behind Identity-Aware Proxy: an external HTTPS load balancer (managed certificate for
# console_domain) whose backend is the console's Cloud Run service through a serverless NEG. IAP signs users
# in with Google and lets through only console_users; the service accepts traffic from the load balancer only
# (ingress), and only the IAP service agent may invoke it.

resource "google_compute_global_address" "console" {
  count = var.enable_console ? 1 : 0

  project = var.project_id
  name    = "segcast-console"
}

resource "google_compute_region_network_endpoint_group" "console" {
  count = var.enable_console ? 1 : 0

  project               = var.project_id
  name                  = "segcast-console"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    # The name, not the module output: the service's environment needs this backend's id (IAP audience).
    service = local.service_names.console
  }
}

resource "google_compute_backend_service" "console" {
  count = var.enable_console ? 1 : 0

  project               = var.project_id
  name                  = "segcast-console"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.console[0].id
  }

  # Google-managed OAuth client (no client id/secret to keep).
  iap {
    enabled = true
  }
}

resource "google_compute_url_map" "console" {
  count = var.enable_console ? 1 : 0

  project         = var.project_id
  name            = "segcast-console"
  default_service = google_compute_backend_service.console[0].id
}

resource "google_compute_managed_ssl_certificate" "console" {
  count = var.enable_console ? 1 : 0

  project = var.project_id
  name    = "segcast-console"

  managed {
    domains = [var.console_domain]
  }
}

resource "google_compute_target_https_proxy" "console" {
  count = var.enable_console ? 1 : 0

  project          = var.project_id
  name             = "segcast-console"
  url_map          = google_compute_url_map.console[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.console[0].id]
}

resource "google_compute_global_forwarding_rule" "console" {
  count = var.enable_console ? 1 : 0

  project               = var.project_id
  name                  = "segcast-console"
  target                = google_compute_target_https_proxy.console[0].id
  ip_address            = google_compute_global_address.console[0].address
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

# Who may open the console (users and groups; never allUsers / allAuthenticatedUsers).
resource "google_iap_web_backend_service_iam_member" "console_users" {
  for_each = var.enable_console ? toset(var.console_users) : toset([])

  project             = var.project_id
  web_backend_service = google_compute_backend_service.console[0].name
  role                = "roles/iap.httpsResourceAccessor"
  member              = each.value
}
