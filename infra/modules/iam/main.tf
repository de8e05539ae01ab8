# Identities of shopml. Accounts are created here; the grants that let them do their work are
# made on the resources themselves by the module that owns each resource (topics in pubsub,
# secrets in secrets, function services in functions), so every grant is resource-level.
#
#   fn-<function>        runtime identity of one function (one account per function)
#   pubsub-push-invoker  identity in the OIDC token of every push subscription
#   gcf-builder          identity of the Cloud Build builds that turn a source zip into an image

locals {
  pubsub_service_agent = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Accounts a deployer must be able to act as (iam.serviceAccountUser), keyed "<deployer>|<account>".
  actable_accounts = merge(
    { for name, sa in google_service_account.function : "function:${name}" => sa.name },
    {
      "push-invoker" = google_service_account.push_invoker.name
      "builder"      = google_service_account.function_builder.name
    },
  )
  # Keys come from inputs only (never from computed attributes), so for_each is known at plan.
  actable_keys = concat([for name in sort(tolist(var.function_names)) : "function:${name}"], ["push-invoker", "builder"])
  deployer_grants = {
    for pair in setproduct(sort(tolist(var.deployer_members)), local.actable_keys) :
    "${pair[0]}|${pair[1]}" => { member = pair[0], account = local.actable_accounts[pair[1]] }
  }
}

resource "google_service_account" "function" {
  for_each = var.function_names

  project      = var.project_id
  account_id   = "fn-${replace(each.key, "_", "-")}"
  display_name = "shopml function ${each.key}"
  description  = "Runtime identity of the ${each.key} Cloud Function; its grants are made on the resources it uses."
}

resource "google_service_account" "push_invoker" {
  project      = var.project_id
  account_id   = "pubsub-push-invoker"
  display_name = "shopml Pub/Sub push invoker"
  description  = "Identity in the OIDC token that shopml's push subscriptions attach; may only invoke the Pub/Sub-triggered functions."
}

resource "google_service_account" "function_builder" {
  project      = var.project_id
  account_id   = "gcf-builder"
  display_name = "shopml Cloud Functions builder"
  description  = "Runs the Cloud Build builds of shopml's functions: reads the source bucket, writes the function images."
}

# Pub/Sub signs the OIDC tokens of push requests as pubsub-push-invoker. Projects created after
# 8 April 2021 give the service agent this permission implicitly; older ones need the grant. It
# is made on the one account only, never as a project-wide Token Creator role.
resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.push_invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# The one project-level grant of shopml. Unavoidable: Cloud Logging has no resource below the
# project on which "write log entries" can be granted, and a function build without it fails
# with "missing permission on the build logs".
resource "google_project_iam_member" "builder_writes_build_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.function_builder.email}"
}

# Deploying a function "as" an account needs actAs on that account: granted per account.
resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each = local.deployer_grants

  service_account_id = each.value.account
  role               = "roles/iam.serviceAccountUser"
  member             = each.value.member
}
