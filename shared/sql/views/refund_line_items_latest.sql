-- refund_line_items_latest: one row per (shop_domain, id), duplicates removed (refund line
-- items never change). Units sold net of refunds per variant and day: the quantities of
-- order_line_items_latest by order day minus these quantities by refund day.
SELECT *
FROM refund_line_items
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY shop_domain, id
  ORDER BY received_at DESC, webhook_id DESC
) = 1
