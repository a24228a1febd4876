variable "project_id" {
  type = string
}

variable "alert_email" {
  type = string
}

variable "delivery_subscriptions" {
  description = "The delivery push subscriptions."
  type        = list(string)
}

variable "dead_letter_subscription" {
  type = string
}

variable "log_dead_letter_hold" {
  description = "Subscription holding log messages BigQuery refused."
  type        = string
}

variable "scheduler_service" {
  type = string
}

variable "delivery_service" {
  type = string
}

variable "click_redirect_service" {
  type = string
}

variable "backlog_age_alert_seconds" {
  type = number
}

variable "handler_error_ratio_alert" {
  type = number
}
