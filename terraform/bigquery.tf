# The dataset and its tables and views. They are created by running the repository's own DDL files
# (sql/ddl/*.sql: the files the code compiles in, segcast::sql::DDL, and runs on the emulator), so there is
# one copy of each schema. `{dataset}` in the files is the code's placeholder; here it becomes project.dataset.

resource "google_bigquery_dataset" "segcast" {
  project     = var.project_id
  dataset_id  = var.dataset
  location    = var.bigquery_location
  description = "segcast: per-campaign target snapshots, delivery and click logs, stats views"

  delete_contents_on_destroy = false
}

locals {
  # The files of segcast::sql::DDL, in its order (views come after what they read); crates/infra-check
  # fails when the two lists differ.
  ddl_files = [
    "delivery_logs",
    "click_logs",
    "recipient_outcomes",
    "campaigns",
    "click_events",
    "recipient_clicks",
  ]

  ddl_statements = [
    for name in local.ddl_files :
    replace(
      file("${path.module}/../sql/ddl/${name}.sql"),
      "{dataset}",
      "${var.project_id}.${google_bigquery_dataset.segcast.dataset_id}",
    )
  ]

  # One multi-statement script, so the statements run in order.
  ddl_script = join(";\n\n", local.ddl_statements)
}

# A BigQuery job is immutable: the job id carries a hash of the script, so an edited DDL file runs as a new
# job. The statements are CREATE TABLE IF NOT EXISTS / CREATE OR REPLACE VIEW, so re-running is safe (a column
# added to an existing table needs an ALTER TABLE as well: see docs/runbook.md).
resource "google_bigquery_job" "ddl" {
  project  = var.project_id
  location = var.bigquery_location
  job_id   = "segcast_ddl_${substr(sha256(local.ddl_script), 0, 24)}"

  query {
    query          = local.ddl_script
    use_legacy_sql = false
    # DDL takes no dispositions (the provider's defaults would be refused).
    create_disposition = ""
    write_disposition  = ""
  }
}
