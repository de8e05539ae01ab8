output "job_ids" {
  description = "ID of every scheduler job, keyed by job name."
  value       = { for name, job in google_cloud_scheduler_job.this : name => job.id }
}
