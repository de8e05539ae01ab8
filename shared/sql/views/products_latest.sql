-- products_latest: one row per (shop_domain, id), the newest version of each product. A
-- products/delete tombstone (deleted = TRUE) always wins: Shopify never reuses a product id,
-- so no update delivered late may bring a deleted product back. Otherwise newest by the
-- payload's updated_at (NULL, as in Shopify's test notifications, loses), then received_at,
-- then webhook_id.
SELECT *
FROM products
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY shop_domain, id
  ORDER BY deleted DESC, updated_at DESC NULLS LAST, received_at DESC, webhook_id DESC
) = 1
