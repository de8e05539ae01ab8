-- variants_latest: one row per (shop_domain, id), the variants of each product's winning
-- version (the products row products_latest keeps, matched on its webhook_id). A variant
-- removed from its product, or of a deleted product (whose tombstone has no variants),
-- drops out; duplicate deliveries of the winning event collapse.
SELECT v.*
FROM variants AS v
INNER JOIN (
  SELECT shop_domain, id, webhook_id
  FROM products
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY shop_domain, id
    ORDER BY deleted DESC, updated_at DESC NULLS LAST, received_at DESC, webhook_id DESC
  ) = 1
) AS winner
  ON v.shop_domain = winner.shop_domain
  AND v.product_id = winner.id
  AND v.webhook_id = winner.webhook_id
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY v.shop_domain, v.id
  ORDER BY v.received_at DESC, v.loaded_at DESC
) = 1
