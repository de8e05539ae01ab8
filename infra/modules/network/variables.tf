variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project of the VPC network, the connector and its subnet."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the connector and its subnet: the functions' region (a connector serves its own region only)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as europe-west1 or us-central1."
  }
}

variable "network" {
  type        = string
  description = "VPC network (projects/<p>/global/networks/<name>) the connector egresses into: the feature server's and Memorystore's network."

  validation {
    condition     = can(regex("^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/global/networks/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.network))
    error_message = "network must look like projects/<project>/global/networks/<name>."
  }
}

variable "subnetwork_name" {
  type        = string
  description = "Name of the /28 subnet created for the connector (used by nothing else)."
  default     = "shopml-serverless-egress"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.subnetwork_name))
    error_message = "subnetwork_name must be 1-63 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "ip_cidr_range" {
  type        = string
  description = "Internal /28 range of the connector's subnet; must not overlap any other subnet, peering (Memorystore's reserved range) or route of the network."
  default     = "10.8.0.0/28"

  validation {
    # A /28 (what a connector subnet must be), given by its network address, in RFC 1918 space.
    condition = (
      can(cidrhost(var.ip_cidr_range, 0))
      && endswith(var.ip_cidr_range, "/28")
      && try(cidrsubnet(var.ip_cidr_range, 0, 0) == var.ip_cidr_range, false)
      && can(regex("^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.)", var.ip_cidr_range))
    )
    error_message = "ip_cidr_range must be a /28 network address in private (RFC 1918) space, e.g. 10.8.0.0/28."
  }
}

variable "connector_name" {
  type        = string
  description = "Name of the Serverless VPC Access connector."
  default     = "shopml-features"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{0,23}[a-z0-9]$", var.connector_name))
    error_message = "connector_name must be 2-25 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "connector_machine_type" {
  type        = string
  description = "Machine type of the connector's instances (e2-micro, e2-standard-4 or f1-micro); throughput grows with it."
  default     = "e2-micro"

  validation {
    condition     = contains(["e2-micro", "e2-standard-4", "f1-micro"], var.connector_machine_type)
    error_message = "connector_machine_type must be e2-micro, e2-standard-4 or f1-micro."
  }
}

variable "connector_min_instances" {
  type        = number
  description = "Instances the connector always runs (at least 2)."
  default     = 2

  validation {
    condition     = var.connector_min_instances >= 2 && var.connector_min_instances <= 9 && floor(var.connector_min_instances) == var.connector_min_instances
    error_message = "connector_min_instances must be a whole number from 2 to 9."
  }
}

variable "connector_max_instances" {
  type        = number
  description = "Instances the connector may scale out to under load: more than connector_min_instances, at most 10."
  default     = 3

  validation {
    condition     = var.connector_max_instances > var.connector_min_instances && var.connector_max_instances <= 10 && floor(var.connector_max_instances) == var.connector_max_instances
    error_message = "connector_max_instances must be a whole number above connector_min_instances and at most 10."
  }
}

variable "flow_log_sampling" {
  type        = number
  description = "Share of the connector subnet's flows recorded in VPC flow logs (0 to 1)."
  default     = 0.5

  validation {
    condition     = var.flow_log_sampling > 0 && var.flow_log_sampling <= 1
    error_message = "flow_log_sampling must be greater than 0 and at most 1."
  }
}
