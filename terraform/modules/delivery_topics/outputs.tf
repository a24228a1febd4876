output "topic_names" {
  value = google_pubsub_topic.delivery[*].name
}

output "topic_ids" {
  value = google_pubsub_topic.delivery[*].id
}

output "subscription_names" {
  value = google_pubsub_subscription.delivery[*].name
}

output "dead_letter_topic" {
  value = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription" {
  value = google_pubsub_subscription.dead_letter.name
}
