-- customers_latest: one row per (shop_domain, id), the newest version of each customer by
-- the payload's updated_at (NULL, as in Shopify's test notifications, loses), then
-- received_at, then webhook_id.
SELECT *
FROM customers
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY shop_domain, id
  ORDER BY updated_at DESC NULLS LAST, received_at DESC, webhook_id DESC
) = 1
