output "bucket_name" {
  description = "The sync-state bucket."
  value       = google_storage_bucket.sync_state.name
}

output "sync_state_url" {
  description = "SHOPML_SYNC_STATE for the functions and the operator's shopml connect / backfill."
  value       = "gs://${google_storage_bucket.sync_state.name}/sync"
}

output "shopify_delivery_member" {
  description = "The member granted publisher on shopify-events for Shopify's Pub/Sub delivery, or null."
  value       = var.shopify_pubsub_delivery ? "serviceAccount:${var.shopify_delivery_service_account}" : null
}

output "token_secret_ids" {
  description = "The access-token secret of each connected shop (add the token with gcloud secrets versions add)."
  value       = sort(keys(google_secret_manager_secret.shop_token))
}
