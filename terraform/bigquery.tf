# The dataset and its tables. The tables are created by running the repository's own DDL files
# (sql/ddl/*.sql, the files the code compiles in and runs on the emulator), so there is one copy of each
# schema. `{dataset}` in the files is the code's placeholder; here it becomes project.dataset.

resource "google_bigquery_dataset" "segcast" {
  project     = var.project_id
  dataset_id  = var.dataset
  location    = var.bigquery_location
  description = "segcast: per-campaign target snapshots, delivery and click logs, stats views"

  delete_contents_on_destroy = false
}

locals {
  ddl = {
    for name in ["delivery_logs", "click_logs", "recipient_outcomes"] :
    name => replace(
      file("${path.module}/../sql/ddl/${name}.sql"),
      "{dataset}",
      "${var.project_id}.${google_bigquery_dataset.segcast.dataset_id}",
    )
  }
}

# A BigQuery job is immutable: the job id carries a hash of the statement, so an edited DDL file runs as a
# new job. The statements are CREATE TABLE IF NOT EXISTS / CREATE OR REPLACE VIEW, so re-running is safe
# (a column added to a table needs an ALTER TABLE migration, see docs/runbook.md).
resource "google_bigquery_job" "ddl_tables" {
  for_each = toset(["delivery_logs", "click_logs"])

  project  = var.project_id
  location = var.bigquery_location
  job_id   = "segcast_ddl_${each.key}_${substr(sha256(local.ddl[each.key]), 0, 16)}"

  query {
    query          = local.ddl[each.key]
    use_legacy_sql = false
    # DDL takes no dispositions (the provider's defaults would be refused).
    create_disposition = ""
    write_disposition  = ""
  }
}

resource "google_bigquery_job" "ddl_views" {
  for_each = toset(["recipient_outcomes"])

  project  = var.project_id
  location = var.bigquery_location
  job_id   = "segcast_ddl_${each.key}_${substr(sha256(local.ddl[each.key]), 0, 16)}"

  query {
    query              = local.ddl[each.key]
    use_legacy_sql     = false
    create_disposition = ""
    write_disposition  = ""
  }

  depends_on = [google_bigquery_job.ddl_tables]
}
