terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x: Cloud Run v2 custom audiences, Pub/Sub BigQuery subscriptions with use_table_schema,
      # Firestore databases in Datastore mode, and the IAP block without an OAuth client.
      version = ">= 6.10, < 7.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
