output "bucket_name" {
  description = "Name of the export bucket."
  value       = google_storage_bucket.exports.name
}

output "exports_url" {
  description = "SHOPML_PRIVACY_EXPORTS of the compliance function (exports go under data-requests/<shop>/ in it)."
  value       = "gs://${google_storage_bucket.exports.name}"
}
