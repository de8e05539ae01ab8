-- Contract tests: the latest-state pattern the real views use, in BigQuery's dialect.
SELECT *
FROM contract_entities
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY shop_domain, id
  ORDER BY updated_at DESC NULLS LAST, received_at DESC, webhook_id DESC
) = 1
