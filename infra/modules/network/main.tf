# Serverless egress into shopml's VPC: a Serverless VPC Access connector on a subnet of its own,
# for the Cloud Functions that call the feature server (internal ingress). The root attaches it
# only to those functions, with vpc_connector_egress_settings = "ALL_TRAFFIC": Cloud Run's
# internal ingress admits a request from a function only if the function routes all of its
# traffic through the VPC (with PRIVATE_RANGES_ONLY the call to the *.run.app URL leaves by the
# default route and is refused).
#
# Why a connector and not Direct VPC egress: google provider 6.41.0 has no
# direct_vpc_network_interface / direct_vpc_egress on google_cloudfunctions2_function (the fields
# came with 7.x). After a provider upgrade, this module can be replaced by those two fields on the
# same functions (same subnet sizing caveats as the feature server's Direct VPC egress).
#
# Everything such a function reaches is a Google API or Cloud Run (Pub/Sub, BigQuery, Cloud
# Storage, Vertex AI, the feature server): with all traffic in the VPC it gets there through
# Private Google Access on the connector's subnet, so there is no Cloud NAT (nothing goes to the
# internet). A function that needs the internet must not use this connector with ALL_TRAFFIC
# without a Cloud NAT on var.network.

resource "google_compute_subnetwork" "connector" {
  project       = var.project_id
  region        = var.region
  name          = var.subnetwork_name
  description   = "Serverless VPC Access connector ${var.connector_name} (shopml functions -> feature server). Only the connector uses it."
  network       = var.network
  ip_cidr_range = var.ip_cidr_range
  stack_type    = "IPV4_ONLY"

  # The functions' Google API calls and the call to the feature server's run.app URL leave the
  # connector from this subnet: Private Google Access is what lets them out without external IPs.
  private_ip_google_access = true

  # Flow logs: an audit trail of what the functions sent through the VPC.
  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = var.flow_log_sampling
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_vpc_access_connector" "this" {
  project       = var.project_id
  region        = var.region
  name          = var.connector_name
  machine_type  = var.connector_machine_type
  min_instances = var.connector_min_instances
  max_instances = var.connector_max_instances

  # A /28 subnet of its own (rather than ip_cidr_range) so that Private Google Access and flow
  # logs are set here, in code, and not on a subnet the service creates.
  subnet {
    name       = google_compute_subnetwork.connector.name
    project_id = var.project_id
  }
}
