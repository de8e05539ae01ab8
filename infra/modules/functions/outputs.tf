output "uris" {
  description = "HTTPS URL (Cloud Run URI) of each function, keyed by function name."
  value       = { for name, fn in google_cloudfunctions2_function.this : name => fn.service_config[0].uri }
}

output "service_names" {
  description = "Cloud Run service behind each function, keyed by function name."
  value       = { for name, fn in google_cloudfunctions2_function.this : name => fn.service_config[0].service }
}

output "source_objects" {
  description = "Source zip object (gs://bucket/name, named by content hash) each function is deployed from."
  value       = { for name, obj in google_storage_bucket_object.source : name => "gs://${obj.bucket}/${obj.name}" }
}

output "source_bucket" {
  description = "Name of the bucket that stores the function source zips."
  value       = google_storage_bucket.source.name
}

output "artifact_repository" {
  description = "ID of the Artifact Registry repository of the function images."
  value       = google_artifact_registry_repository.functions.id
}

output "publisher_grants" {
  description = "Topics each function may publish to, keyed \"<function>/<topic>\" (for review)."
  value       = { for key, grant in local.publisher_grants : key => grant.topic }
}
