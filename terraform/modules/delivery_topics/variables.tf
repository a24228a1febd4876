variable "project_id" {
  type = string
}

variable "topic_prefix" {
  type = string
}

variable "topic_count" {
  description = "N, the number of delivery topics."
  type        = number
}

variable "handler_url" {
  description = "The delivery handler's base URL."
  type        = string
}

variable "push_service_account_email" {
  description = "The service account Pub/Sub signs pushes as."
  type        = string
}

variable "push_audience" {
  description = "The OIDC audience of the pushes (one of the handler's custom audiences)."
  type        = string
}

variable "ack_deadline_seconds" {
  type = number
}

variable "max_delivery_attempts" {
  type    = number
  default = 15
}

variable "pubsub_service_agent" {
  description = "service-<project number>@gcp-sa-pubsub.iam.gserviceaccount.com"
  type        = string
}
