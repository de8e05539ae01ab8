output "topic_ids" {
  description = "ID (projects/<p>/topics/<name>) of every topic, keyed by topic name."
  value       = { for name, topic in google_pubsub_topic.this : name => topic.id }
}

output "topic_names" {
  description = "Name of every topic, keyed by topic name (the same string; useful as a dependency)."
  value       = { for name, topic in google_pubsub_topic.this : name => topic.name }
}

output "push_subscription_ids" {
  description = "ID of every push subscription, keyed by subscription name."
  value       = { for name, sub in google_pubsub_subscription.push : name => sub.id }
}

output "dead_letter_hold_subscription_ids" {
  description = "ID of the pull subscription that holds each dead-letter topic's messages, keyed by dead-letter topic."
  value       = { for name, sub in google_pubsub_subscription.dead_letter_hold : name => sub.id }
}
