output "url" {
  description = "HTTPS URL of the feature server (SHOPML_FEATURE_SERVER_URL; also the audience of callers' ID tokens)."
  value       = google_cloud_run_v2_service.server.uri
}

output "service_name" {
  description = "Name of the feature server's Cloud Run service."
  value       = google_cloud_run_v2_service.server.name
}

output "service_account_email" {
  description = "Email of the feature server's service account."
  value       = google_service_account.server.email
}

output "redis_host" {
  description = "Private IP of the Memorystore instance (TLS port 6378, SHOPML_REDIS_HOST)."
  value       = google_redis_instance.online.host
}

output "redis_port" {
  description = "Port of the Memorystore instance (6378 with in-transit encryption)."
  value       = google_redis_instance.online.port
}

output "redis_auth_secret_id" {
  description = "Secret Manager secret that holds the Redis AUTH string."
  value       = google_secret_manager_secret.redis_auth.secret_id
}

output "registry_bucket" {
  description = "Bucket of Feast's registry (SHOPML_FEATURE_BUCKET; the registry is gs://<this>/feast/registry.db)."
  value       = google_storage_bucket.registry.name
}

output "materializer_member" {
  description = "IAM member (serviceAccount:<email>) of the materialization job, for the warehouse grants made by the root (dataset read, jobUser)."
  value       = local.materializer_member
}

output "materialize_job" {
  description = "Name of the Cloud Run Job of the nightly materialization (gcloud run jobs execute <this> to run it by hand)."
  value       = google_cloud_run_v2_job.materialize.name
}

output "materialize_schedule_job" {
  description = "ID of the Cloud Scheduler job that runs the materialization."
  value       = google_cloud_scheduler_job.materialize.id
}
