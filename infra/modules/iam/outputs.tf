output "function_emails" {
  description = "Runtime service account email of each function, keyed by function name."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "function_members" {
  description = "IAM member string (serviceAccount:<email>) of each function's runtime account, keyed by function name."
  value       = { for name, sa in google_service_account.function : name => "serviceAccount:${sa.email}" }
}

output "push_invoker_email" {
  description = "Email of the service account whose OIDC token the push subscriptions attach."
  value       = google_service_account.push_invoker.email
}

output "builder_email" {
  description = "Email of the service account that builds the functions."
  value       = google_service_account.function_builder.email
}

output "builder_id" {
  description = "Fully qualified ID (projects/<p>/serviceAccounts/<email>) of the build service account, as build_config.service_account wants it."
  value       = google_service_account.function_builder.id
}

output "pubsub_service_agent" {
  description = "IAM member of the project's Pub/Sub service agent."
  value       = local.pubsub_service_agent
}
