output "function_urls" {
  description = "HTTPS URL of every deployed function, keyed by function name."
  value       = module.functions.uris
}

output "webhook_url" {
  description = "URL to give Shopify for webhooks (ingest_webhook); null while it is not deployed."
  value       = try(module.functions.uris["ingest_webhook"], null)
}

output "predict_url" {
  description = "URL the storefront calls for forecasts (predict); null while it is not deployed."
  value       = try(module.functions.uris["predict"], null)
}

output "deployed_functions" {
  description = "Functions this configuration deploys (enabled_functions, or every implemented one)."
  value       = local.enabled_functions
}

output "topic_ids" {
  description = "ID of every Pub/Sub topic, keyed by topic name."
  value       = module.pubsub.topic_ids
}

output "push_subscription_ids" {
  description = "ID of every push subscription, keyed by subscription name."
  value       = module.pubsub.push_subscription_ids
}

output "dead_letter_hold_subscriptions" {
  description = "Pull subscription holding each dead-letter topic's messages, keyed by dead-letter topic."
  value       = module.pubsub.dead_letter_hold_subscription_ids
}

output "function_service_accounts" {
  description = "Runtime service account of each function, keyed by function name (for the modules to come)."
  value       = module.iam.function_emails
}

output "push_invoker_service_account" {
  description = "Service account in the OIDC token of every push subscription."
  value       = module.iam.push_invoker_email
}

output "webhook_secret_id" {
  description = "Secret Manager secret that holds SHOPIFY_WEBHOOK_SECRETS (add versions with gcloud)."
  value       = module.secrets.secret_ids[local.webhook_secret_id]
}

output "function_source_objects" {
  description = "Content-addressed source zip each function is deployed from."
  value       = module.functions.source_objects
}

output "bigquery_dataset" {
  description = "The warehouse dataset (SHOPML_WAREHOUSE=bigquery://<project>/<this>)."
  value       = module.bigquery.dataset_id
}

output "trainer_service_account" {
  description = "Service account the Vertex AI training jobs run as."
  value       = module.vertex.trainer_email
}

output "vertex_bucket" {
  description = "Bucket of Vertex job outputs and registered model files (gs://...)."
  value       = module.vertex.bucket_url
}

output "trainer_repository" {
  description = "Docker repository the trainer image is pushed to (Cloud Build step trainer-image)."
  value       = module.vertex.repository_url
}

output "trainer_image" {
  description = "Trainer image the CustomJobs run (SHOPML_TRAINER_IMAGE)."
  value       = local.trainer_image
}

output "scheduler_jobs" {
  description = "ID of every Cloud Scheduler job, keyed by job name."
  value       = module.scheduler.job_ids
}

output "feature_server_url" {
  description = "URL of the Feast feature server (SHOPML_FEATURE_SERVER_URL of validate_load and predict; the audience of their ID tokens)."
  value       = module.features.url
}

output "feature_server_image" {
  description = "Feature server image the Cloud Run service runs."
  value       = local.feature_server_image
}

output "redis_host" {
  description = "Private IP of the Memorystore instance behind the feature server (TLS, port 6378)."
  value       = module.features.redis_host
}

output "feature_registry_bucket" {
  description = "Bucket of Feast's registry (gs://<this>/feast/registry.db)."
  value       = module.features.registry_bucket
}

output "feature_connector_id" {
  description = "Serverless VPC Access connector through which the feature server's callers (validate_load, predict) route all their traffic."
  value       = module.network.connector_id
}

output "firestore_database" {
  description = "Firestore database of the live pointers (SHOPML_FIRESTORE_DATABASE)."
  value       = module.serving.firestore_database
}

output "predict_keys_secret_id" {
  description = "Secret Manager secret that holds SHOPML_PREDICT_KEYS (add versions with gcloud)."
  value       = module.secrets.secret_ids[local.predict_keys_secret_id]
}

output "materialize_job" {
  description = "Cloud Run Job of the nightly feature materialization (gcloud run jobs execute <this> --region <region> runs it by hand)."
  value       = module.features.materialize_job
}

output "sync_state_url" {
  description = "SHOPML_SYNC_STATE for shopml connect and backfill run by an operator (reconcile has it already)."
  value       = module.storesync.sync_state_url
}

output "shop_token_secrets" {
  description = "Secret Manager secret per connected shop: add the Admin API token with gcloud secrets versions add."
  value       = module.storesync.token_secret_ids
}
