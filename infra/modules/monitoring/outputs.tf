output "alert_policy_ids" {
  description = "ID of every alert policy, keyed by alert name (the same names as the Prometheus rules)."
  value = merge(
    { for name, policy in google_monitoring_alert_policy.threshold : name => policy.id },
    { for name, policy in google_monitoring_alert_policy.promql : name => policy.id },
  )
}

output "notification_channel_ids" {
  description = "Every notification channel the policies notify: the ones created here and the ones passed in."
  value       = local.notification_channels
}

output "reports_bucket_name" {
  description = "The drift-reports bucket (SHOPML_REPORTS is gs://<it>/drift-reports)."
  value       = google_storage_bucket.reports.name
}
