-- order_line_items_latest: one row per (shop_domain, id), the line items of each order's
-- winning version (the orders row orders_latest keeps, matched on its webhook_id). A line
-- removed by an order edit drops out; duplicate deliveries of the winning event collapse.
SELECT li.*
FROM order_line_items AS li
INNER JOIN (
  SELECT shop_domain, id, webhook_id
  FROM orders
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY shop_domain, id
    ORDER BY updated_at DESC NULLS LAST, received_at DESC, webhook_id DESC
  ) = 1
) AS winner
  ON li.shop_domain = winner.shop_domain
  AND li.order_id = winner.id
  AND li.webhook_id = winner.webhook_id
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY li.shop_domain, li.id
  ORDER BY li.received_at DESC, li.loaded_at DESC
) = 1
