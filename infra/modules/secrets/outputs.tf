output "secret_ids" {
  description = "Secret ID of every secret, keyed by secret ID. Depends on the accessor grants, so a function that reads it is deployed only once it may read it."
  value       = { for id, secret in google_secret_manager_secret.this : id => secret.secret_id }
  depends_on  = [google_secret_manager_secret_iam_member.accessor]
}

output "secret_names" {
  description = "Full resource name (projects/<number>/secrets/<id>) of every secret, keyed by secret ID."
  value       = { for id, secret in google_secret_manager_secret.this : id => secret.name }
}
