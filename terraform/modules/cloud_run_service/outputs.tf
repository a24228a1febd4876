output "name" {
  value = google_cloud_run_v2_service.this.name
}

output "uri" {
  description = "The service's https://...run.app URL."
  value       = google_cloud_run_v2_service.this.uri
}

output "id" {
  value = google_cloud_run_v2_service.this.id
}
