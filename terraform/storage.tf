# Segment exports: EXPORT DATA writes gs://<bucket>/campaigns/<campaign>/round-<n>/ as sharded NDJSON,
# the fan-out streams it. It is a work list, not an archive: files are deleted after
# export_retention_days (a campaign's rounds are over within a day).
resource "google_storage_bucket" "exports" {
  project                     = var.project_id
  name                        = local.export_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  lifecycle_rule {
    condition {
      age = var.export_retention_days
    }
    action {
      type = "Delete"
    }
  }
}
