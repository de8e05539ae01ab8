-- refunds_latest: one row per (shop_domain, id). Refunds never change, so this only removes
-- duplicates (repeated deliveries, and the same refund embedded in orders/updated bodies);
-- the most recently received copy is kept, ties broken by webhook_id.
SELECT *
FROM refunds
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY shop_domain, id
  ORDER BY received_at DESC, webhook_id DESC
) = 1
