# The Docker repository cloudbuild.yaml pushes the images to. Created first, on its own, before the images
# exist (docs/deploy.md: `terraform apply -target=google_artifact_registry_repository.segcast`).
resource "google_artifact_registry_repository" "segcast" {
  project       = var.project_id
  location      = var.region
  repository_id = var.artifact_registry_repository
  format        = "DOCKER"
  description   = "segcast images (cloudbuild.yaml)"

  # Keep the last 20 versions of each image; older untagged ones are deleted.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }
}
