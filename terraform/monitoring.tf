module "monitoring" {
  source = "./modules/monitoring"

  project_id  = var.project_id
  alert_email = var.alert_email

  delivery_subscriptions   = module.delivery_topics.subscription_names
  dead_letter_subscription = module.delivery_topics.dead_letter_subscription
  log_dead_letter_hold     = google_pubsub_subscription.log_dead_letter_hold.name

  scheduler_service      = module.scheduler.name
  delivery_service       = module.delivery.name
  click_redirect_service = module.click_redirect.name

  backlog_age_alert_seconds = var.backlog_age_alert_seconds
  handler_error_ratio_alert = var.handler_error_ratio_alert
}
