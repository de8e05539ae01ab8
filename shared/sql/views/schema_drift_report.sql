-- schema_drift_report: what the webhook schemas did not expect, per topic, API version and
-- field: how many distinct events and shops showed it, first and last seen.
SELECT
  shopify_topic,
  api_version,
  kind,
  field_path,
  COUNT(DISTINCT webhook_id) AS events,
  COUNT(DISTINCT shop_domain) AS shops,
  MIN(received_at) AS first_seen_at,
  MAX(received_at) AS last_seen_at
FROM schema_drift
GROUP BY shopify_topic, api_version, kind, field_path
