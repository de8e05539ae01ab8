output "connector_id" {
  description = "ID of the Serverless VPC Access connector (projects/<p>/locations/<region>/connectors/<name>): the functions' vpc_connector."
  value       = google_vpc_access_connector.this.id
}

output "connector_subnetwork" {
  description = "Self link of the connector's subnet (Private Google Access on)."
  value       = google_compute_subnetwork.connector.self_link
}
