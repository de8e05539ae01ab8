output "trainer_email" {
  description = "Email of the trainer's service account (SHOPML_TRAINER_SERVICE_ACCOUNT)."
  value       = google_service_account.trainer.email
}

output "trainer_member" {
  description = "IAM member string (serviceAccount:<email>) of the trainer, for grants made by other modules (the warehouse dataset)."
  value       = local.trainer_member
}

output "bucket_name" {
  description = "Bucket of Vertex job outputs and registered model files."
  value       = google_storage_bucket.vertex.name
}

output "bucket_url" {
  description = "gs:// URL of that bucket (SHOPML_VERTEX_STAGING_BUCKET)."
  value       = google_storage_bucket.vertex.url
}

output "repository_url" {
  description = "Docker repository of the trainer image: <region>-docker.pkg.dev/<project>/<repository>."
  value       = "${google_artifact_registry_repository.trainer.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.trainer.repository_id}"
}
