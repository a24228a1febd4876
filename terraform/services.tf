# The Cloud Run services. Sizing follows LINE's per-channel limits (push 2,000 req/s, multicast 200 req/s)
# rather than guesses: the bottleneck is LINE, never Cloud Run.

# Scheduler: POST /tick from Cloud Scheduler every minute; a tick works up to 50 s (SEGCAST_TICK_BUDGET_SECONDS)
# on due campaigns, then returns. Claims are Datastore transactions with leases, so overlapping ticks or two
# instances are safe; two instances at most is plenty (a tick is I/O bound). Memory is flat whatever the
# segment size (files are streamed; `make memory` measures ~30-40 MB up to 5M recipients), so 512 MiB is generous.
# Concurrency 1: each tick gets a whole instance, and a second tick that arrives while one runs gets another.
module "scheduler" {
  source = "./modules/cloud_run_service"

  project_id            = var.project_id
  region                = var.region
  name                  = local.service_names.scheduler
  image                 = local.images.scheduler
  service_account_email = google_service_account.sa["scheduler"].email

  env = merge(local.pipeline_env, {
    SEGCAST_PUSH_AUDIENCE        = local.scheduler_tick_audience
    SEGCAST_PUSH_SERVICE_ACCOUNT = google_service_account.sa["scheduler-invoker"].email
    SEGCAST_TICK_BUDGET_SECONDS  = "50"
    SEGCAST_LEASE_SECONDS        = "30"
    SEGCAST_CHANNEL_SECRETS      = local.channel_secret_store
  })
  # LINE insight (per-campaign statistics) is fetched with each channel's token: terraform's channels from the
  # environment, channels registered in the console from Secret Manager (SEGCAST_CHANNEL_SECRETS).
  secret_env = local.channel_secret_env

  min_instances   = 0
  max_instances   = 2
  concurrency     = 1
  cpu             = "1"
  memory          = "512Mi"
  timeout_seconds = 300 # > the 50 s tick budget, with room for the step in progress to finish
  ingress         = "INGRESS_TRAFFIC_ALL"

  custom_audiences = [local.scheduler_tick_audience]
  invokers         = { scheduler-invoker = "serviceAccount:${google_service_account.sa["scheduler-invoker"].email}" }

  depends_on = [google_project_iam_member.channel_secret_readers["scheduler"]]
}

# Delivery handler: Pub/Sub pushes one batch per request.
#
# max_instances = 1: the rate limiter (crates/segcast/src/line/rate_limit.rs) is exact within one process,
# and LINE's limit is per channel, not per instance: two instances would each send at the full rate and
# LINE would answer 429s (handled, not amplified, but wasted). One instance easily does the work: sending is
# waiting on LINE, not CPU. (During a deploy Cloud Run may briefly run the old and new revision side by side;
# the few 429s that can cause are retried with the same retry keys.)
# min_instances = 1 keeps the limiter's and the token cache's state warm and avoids a cold start per campaign.
#
# concurrency = 80 batches in flight. Push content: a batch is 200 recipients = 200 requests, at most 64 in
# flight each (SEGCAST_BATCH_CONCURRENCY); at 2,000 req/s and ~0.2 s per LINE request, ~400 requests are in
# flight, i.e. ~7 batches busy. 80 batches queued behind the limiter is 16,000 requests = 8 s of sending,
# well inside the 30 s push budget, so no batch times out waiting for its turn. Multicast: a 4,000-recipient
# batch is 8 requests; 80 batches = 640 requests = 3.2 s at 200 req/s. More pushes than 80 are refused by
# Cloud Run (429) and Pub/Sub backs off: the backlog waits in Pub/Sub, not in memory. `make bench` measures
# ~1 MB per 4,000-recipient batch held (docs/performance.md), so 80 batches are ~100 MB over the base.
# cpu_idle = false: the limiter's clock and the token refresher run between requests; 2 vCPUs for TLS to LINE
# at 2,000 req/s; 1 GiB holds 80 batches' requests and responses with a wide margin.
module "delivery" {
  source = "./modules/cloud_run_service"

  project_id            = var.project_id
  region                = var.region
  name                  = local.service_names.delivery
  image                 = local.images.delivery
  service_account_email = google_service_account.sa["delivery"].email

  env = merge(local.pipeline_env, {
    SEGCAST_PUSH_AUDIENCE        = local.delivery_push_audience
    SEGCAST_PUSH_SERVICE_ACCOUNT = google_service_account.sa["pubsub-push"].email
    SEGCAST_BATCH_CONCURRENCY    = "64"
    SEGCAST_CLICK_BASE_URL       = local.click_base_url
    SEGCAST_CHANNEL_SECRETS      = local.channel_secret_store # channels registered in the console
  })
  secret_env = merge(local.channel_secret_env, {
    SEGCAST_CLICK_KEYS = google_secret_manager_secret.click_keys.id
  })

  min_instances   = 1
  max_instances   = 1
  concurrency     = 80
  cpu             = "2"
  memory          = "1Gi"
  cpu_idle        = false
  timeout_seconds = var.ack_deadline_seconds # a push never outlives its ack deadline
  ingress         = "INGRESS_TRAFFIC_ALL"    # Pub/Sub push comes from outside the VPC; OIDC guards it

  custom_audiences = [local.delivery_push_audience]
  invokers         = { pubsub-push = "serviceAccount:${google_service_account.sa["pubsub-push"].email}" }

  # A revision only starts if its account can already read the secrets it mounts.
  depends_on = [
    google_project_iam_member.channel_secret_readers["delivery"],
    google_secret_manager_secret_iam_member.click_keys,
  ]
}

# Log sink (optional, off by default): only where a BigQuery subscription cannot be used. One instance with
# CPU always allocated pulls continuously; two pull loops keep up with ~2,000 rows/s.
module "log_sink" {
  source = "./modules/cloud_run_service"
  count  = var.enable_log_sink ? 1 : 0

  project_id            = var.project_id
  region                = var.region
  name                  = local.service_names.log_sink
  image                 = local.images.log_sink
  service_account_email = google_service_account.sa["log-sink"].email

  env = local.pipeline_env

  min_instances = 1
  max_instances = 1
  concurrency   = 10
  cpu           = "1"
  memory        = "512Mi"
  cpu_idle      = false
  ingress       = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  invokers      = {}
}

# Click redirect: the one public service (links in LINE messages are opened by anyone). A click is a
# signature check, a (cached) Datastore read of the link's target, a buffered Pub/Sub publish and a 302:
# cheap, so high concurrency; it scales out freely (no shared limit), from zero.
module "click_redirect" {
  source = "./modules/cloud_run_service"

  project_id            = var.project_id
  region                = var.region
  name                  = local.service_names.click_redirect
  image                 = local.images.click_redirect
  service_account_email = google_service_account.sa["click-redirect"].email

  env = {
    GOOGLE_CLOUD_PROJECT   = var.project_id
    SEGCAST_NAMESPACE      = var.datastore_namespace
    SEGCAST_CLICK_TOPIC    = google_pubsub_topic.click_logs.name
    SEGCAST_CLICK_BASE_URL = local.click_base_url
  }
  secret_env = {
    SEGCAST_CLICK_KEYS = google_secret_manager_secret.click_keys.id
  }

  min_instances = 0
  max_instances = 20
  concurrency   = 250
  cpu           = "1"
  memory        = "256Mi"
  ingress       = "INGRESS_TRAFFIC_ALL"
  invokers      = { public = "allUsers" }

  depends_on = [google_secret_manager_secret_iam_member.click_keys]
}

# Console: reachable only through the HTTPS load balancer, where IAP signs users in (console.tf); the code
# checks IAP's signed header against SEGCAST_IAP_AUDIENCE (SEGCAST_CONSOLE_AUTH = iap). Who may do what is the
# console's own user list (Datastore); console_admins are admins whatever it says, to add the first users.
# Channel secrets entered in the console go to Secret Manager; it reads the channel secrets (and only those,
# iam.tf) to issue tokens for test sends and LINE's validate endpoint.
# A handful of marketers: small.
module "console" {
  source = "./modules/cloud_run_service"
  count  = var.enable_console ? 1 : 0

  project_id            = var.project_id
  region                = var.region
  name                  = local.service_names.console
  image                 = local.images.console
  service_account_email = google_service_account.sa["console"].email

  env = merge(local.pipeline_env, {
    SEGCAST_CONSOLE_AUTH       = "iap"
    SEGCAST_IAP_AUDIENCE       = "/projects/${local.project_number}/global/backendServices/${google_compute_backend_service.console[0].generated_id}"
    SEGCAST_CONSOLE_ADMINS     = join(",", var.console_admins)
    SEGCAST_APPROVAL_THRESHOLD = tostring(var.approval_threshold)
    SEGCAST_SEGMENT_DATASETS   = local.segment_datasets
    SEGCAST_CHANNEL_SECRETS    = local.channel_secret_store
  })

  min_instances = 0
  max_instances = 2
  concurrency   = 40
  cpu           = "1"
  memory        = "512Mi"
  ingress       = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
  invokers      = { iap = "serviceAccount:${local.iap_service_agent}" }

  depends_on = [
    google_project_iam_member.console_channel_secret_create,
    google_project_iam_member.console_channel_secret_versions,
    google_project_iam_member.console_channel_secret_reader,
  ]
}
