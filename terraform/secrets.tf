# Secret Manager secrets. Terraform creates the secrets, never their values (no secret in the state): the
# values are added with `gcloud secrets versions add` (docs/deploy.md), and Cloud Run reads the latest
# version into the environment when an instance starts.

# One per LINE channel: its channel secret, LINE_CHANNEL_<ID>_SECRET on the delivery handler and scheduler,
# from which segcast issues (and caches) stateless channel access tokens. Channels registered in the console
# get a secret of the same name, created by the console itself (not by terraform, so not in its state); a
# channel listed here and registered in the console shares this secret.
resource "google_secret_manager_secret" "line_channel" {
  for_each = toset(var.line_channel_ids)

  project   = var.project_id
  secret_id = "${local.channel_secret_prefix}${each.value}-secret"

  replication {
    auto {}
  }
}

# Click-link signing keys, "kid:base64url-key,...": the first key signs, all verify (rotation: prepend a
# new key, wait out the old links, drop the old key).
resource "google_secret_manager_secret" "click_keys" {
  project   = var.project_id
  secret_id = "segcast-click-keys"

  replication {
    auto {}
  }
}
