-- inventory_levels_latest: one row per (shop_domain, inventory_item_id, location_id).
-- Shopify gives an inventory level no id; it is the pair (inventory_item_id, location_id).
-- Newest by the payload's updated_at, then received_at, then webhook_id.
SELECT *
FROM inventory_levels
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY shop_domain, inventory_item_id, location_id
  ORDER BY updated_at DESC NULLS LAST, received_at DESC, webhook_id DESC
) = 1
