variable "project_id" {
  type = string
}

variable "region" {
  type = string
}

variable "name" {
  description = "Service name."
  type        = string
}

variable "image" {
  type = string
}

variable "service_account_email" {
  description = "The service's own identity."
  type        = string
}

variable "env" {
  description = "Plain environment variables."
  type        = map(string)
  default     = {}
}

variable "secret_env" {
  description = "Environment variables read from Secret Manager: name => secret id."
  type        = map(string)
  default     = {}
}

variable "min_instances" {
  type    = number
  default = 0
}

variable "max_instances" {
  type = number
}

variable "concurrency" {
  description = "Requests one instance serves at once."
  type        = number
}

variable "cpu" {
  type    = string
  default = "1"
}

variable "memory" {
  type    = string
  default = "512Mi"
}

variable "cpu_idle" {
  description = "true: CPU only while serving requests; false: always allocated (for background work)."
  type        = bool
  default     = true
}

variable "timeout_seconds" {
  type    = number
  default = 60
}

variable "ingress" {
  type    = string
  default = "INGRESS_TRAFFIC_ALL"
}

variable "custom_audiences" {
  description = "OIDC audiences Cloud Run accepts besides the service URL (lets the service know its audience before its URL exists)."
  type        = list(string)
  default     = []
}

variable "invokers" {
  description = "Members granted roles/run.invoker on this service, by a static key (a member such as a new service account's email is only known after apply, and for_each keys must be known when planning)."
  type        = map(string)
  default     = {}
}
