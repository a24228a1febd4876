output "scheduler_url" {
  value = module.scheduler.uri
}

output "delivery_url" {
  value = module.delivery.uri
}

output "click_redirect_url" {
  value = module.click_redirect.uri
}

output "click_base_url" {
  description = "The base URL rewritten links point at."
  value       = local.click_base_url
}

output "console_ip" {
  description = "Point console_domain's A record here; the managed certificate is issued once it resolves."
  value       = var.enable_console ? google_compute_global_address.console[0].address : null
}

output "console_url" {
  value = var.enable_console ? "https://${var.console_domain}" : null
}

output "export_bucket" {
  value = google_storage_bucket.exports.name
}

output "delivery_topics" {
  value = module.delivery_topics.topic_names
}

output "dead_letter_subscription" {
  value = module.delivery_topics.dead_letter_subscription
}

output "channel_secrets" {
  description = "Secret Manager secret ids to add each channel's secret to (gcloud secrets versions add)."
  value       = { for id, s in google_secret_manager_secret.line_channel : id => s.secret_id }
}

output "service_accounts" {
  value = { for k, sa in google_service_account.sa : k => sa.email }
}
