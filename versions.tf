terraform {
  # >= 1.11: write-only arguments (the optional webhook secret value never reaches the state).
  required_version = ">= 1.11.0, < 2.0.0"

  # Provider versions are pinned exactly, here and in every module, and kept equal (the
  # infra tests check both). Upgrade them together, in one change, after reading the changelog.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.41.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "2.7.1"
    }
  }

  # Partial configuration: terraform init -backend-config="bucket=<state bucket>" -backend-config="prefix=shopml/<env>"
  backend "gcs" {}
}
