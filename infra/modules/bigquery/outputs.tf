output "dataset_id" {
  description = "The dataset's id."
  value       = google_bigquery_dataset.this.dataset_id
}

output "table_ids" {
  description = "Fully qualified id of each table, keyed by table name."
  value       = { for name, table in google_bigquery_table.this : name => table.id }
}
