-- orders_latest: one row per (shop_domain, id), the newest version of each order.
-- Newest by the payload's updated_at; ties (orders/paid and orders/updated often share one)
-- broken by received_at, then webhook_id, so the choice is deterministic. Duplicates and
-- out-of-order deliveries (an older update after a newer one, orders/updated before
-- orders/create) cannot make an older version win.
SELECT *
FROM orders
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY shop_domain, id
  ORDER BY updated_at DESC NULLS LAST, received_at DESC, webhook_id DESC
) = 1
