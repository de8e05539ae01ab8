output "firestore_database" {
  description = "Name of the Firestore database holding the live pointers (SHOPML_FIRESTORE_DATABASE)."
  value       = local.database_name
}

output "firestore_database_id" {
  description = "Full ID of that database (projects/<p>/databases/<name>)."
  value       = google_firestore_database.pointers.id
}
