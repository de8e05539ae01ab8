-- Contract tests: a view over a view (creation order) with aggregation and a CTE.
WITH latest AS (
  SELECT shop_domain, price FROM contract_entities_latest
)
SELECT shop_domain, COUNT(*) AS entities, SUM(price) AS total_price
FROM latest
GROUP BY shop_domain
