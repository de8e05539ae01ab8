-- variant_daily_features: one row per (shop_domain, variant_id, date) for @start_date ..
-- @end_date (DATE, inclusive), the columns of shared/features/__init__.py COLUMNS, in order.
-- BigQuery dialect, bare table names; DuckDB runs it through SQLGlot (shared/warehouse.py).
--
-- Point in time. Every feature of day D uses only data stamped before 00:00 UTC of D; the
-- label `units` is day D itself; the PLANNED columns (calendar, promotions announced before D)
-- describe D as it was known at 00:00 of D. All days are UTC days.
--
-- Net units per variant and day, by EVENT date:
--   + line quantity on the order's created_at date (orders_latest x order_line_items_latest,
--     test orders skipped);
--   - line quantity of a cancelled order on its cancelled_at date;
--   - refunded quantity (refund_line_items_latest) on the refund's created date, except refunds
--     of a cancelled order created at or after its cancellation (the cancellation already took
--     those units back).
-- Refunds and cancellations are deliberately attributed to the day they happened, not to the
-- order's day: otherwise the history a lag feature reads would change after the fact (a refund
-- made on D+10 would lower the units of D-1 that the row of D saw), i.e. lags would see future
-- refunds. The label is max(net, 0); lags and rolling statistics read that floored series.
-- Known approximation: an order edit (a line removed or a quantity changed later) rewrites the
-- order's day through order_line_items_latest.
--
-- Rows of a variant start at its product's created_at date, or its first sale if earlier
-- (the first day it had a variants row if neither is known). The calendar spine is dense:
-- days without sales are 0; lags of days before the variant existed are NULL; the rolling
-- windows (D-7..D-1, D-28..D-1) average over the days that existed (NULL on the first day).
-- Lags read up to 28 days before @start_date.
--
-- State at 00:00 of D (as-of joins: a row stamped at t counts from the day after DATE(t), the
-- first D with t < D 00:00; the newest per day wins, carried forward over the spine):
--   price, discount: the newest variants row by updated_at (product_updated_at when NULL);
--     discount = 1 - price / compare_at_price when compare_at_price > price, else 0.
--   inventory_on_hand: sum over locations of the newest inventory_levels.available per
--     (inventory_item_id, location_id), through the variant's newest inventory_item_id;
--     an untracked level (available NULL) counts 0; NULL before the first level is known.
--   product_type: the product's newest version that is not a delete tombstone (a tombstone
--     carries no type); treated as a static attribute. product_age_days = D - DATE(created_at).
-- Intermittency (variant, over D-28..D-1): sale_days_28 = share of those days with a sale;
--   days_since_sale = days since the last of them with a sale (NULL: none in those 28 days).
-- Shop trading (shop level, the same on every variant's row): shop_trading_dow1..7 = share of
--   the 4 days of ISO weekday k in D-28..D-1 on which the shop had any (non-test) order, of
--   any line, products or not. A shop that never trades on Saturdays has dow6 = 0; one that
--   closed over Christmas shows it from the next day on. Only orders created before D 00:00.
-- Promotions (table promotions): a version counts for D when created_at and updated_at are
-- before D 00:00 (newest such version per promotion); a promotion covers every UTC day that
-- [starts_at, ends_at) overlaps (ends_at exclusive, NULL open-ended). promo_active /
-- promo_discount (the largest running discount), days_to_promo (to the next known first day;
-- 0 while one runs; NULL: none known), days_since_promo (since the last one's last day; 0
-- while one runs; NULL: none yet). dow is ISO (1 = Monday), month 1..12.
WITH
order_line AS (
  SELECT li.shop_domain, li.variant_id, li.product_id, li.quantity, o.created_at, o.cancelled_at
  FROM order_line_items_latest AS li
  INNER JOIN orders_latest AS o
    ON li.shop_domain = o.shop_domain AND li.order_id = o.id
  WHERE li.variant_id IS NOT NULL AND NOT COALESCE(o.test, FALSE)
),
refund_line AS (
  SELECT r.shop_domain, COALESCE(r.variant_id, li.variant_id) AS variant_id, r.quantity, r.refund_created_at
  FROM refund_line_items_latest AS r
  LEFT JOIN orders_latest AS o
    ON r.shop_domain = o.shop_domain AND r.order_id = o.id
  LEFT JOIN order_line_items_latest AS li
    ON r.shop_domain = li.shop_domain AND r.line_item_id = li.id
  WHERE NOT COALESCE(o.test, FALSE)
    AND NOT COALESCE(r.refund_created_at >= o.cancelled_at, FALSE)
),
movement AS (
  SELECT shop_domain, variant_id, DATE(created_at) AS cal_day, quantity AS units
  FROM order_line
  UNION ALL
  SELECT shop_domain, variant_id, DATE(cancelled_at) AS cal_day, -quantity AS units
  FROM order_line
  WHERE cancelled_at IS NOT NULL
  UNION ALL
  SELECT shop_domain, variant_id, DATE(refund_created_at) AS cal_day, -quantity AS units
  FROM refund_line
  WHERE variant_id IS NOT NULL
),
daily_units AS (
  SELECT shop_domain, variant_id, cal_day, SUM(units) AS net_units
  FROM movement
  WHERE cal_day BETWEEN CAST(DATE_SUB(@start_date, INTERVAL 28 DAY) AS DATE) AND @end_date
  GROUP BY shop_domain, variant_id, cal_day
),
first_sale AS (
  SELECT
    shop_domain,
    variant_id,
    MAX(product_id) AS product_id,
    MIN(DATE(created_at)) AS first_sale_day,
    MAX(DATE(created_at)) AS last_sale_day
  FROM order_line
  GROUP BY shop_domain, variant_id
),
variant_version AS (
  SELECT
    shop_domain,
    id AS variant_id,
    product_id,
    inventory_item_id,
    CAST(price AS FLOAT64) AS price,
    CASE
      WHEN compare_at_price > price THEN 1 - CAST(price AS FLOAT64) / CAST(compare_at_price AS FLOAT64)
      ELSE 0.0
    END AS discount,
    COALESCE(updated_at, product_updated_at) AS stamped_at,
    received_at,
    webhook_id
  FROM variants
  WHERE COALESCE(updated_at, product_updated_at) IS NOT NULL
),
variant_entity AS (
  SELECT shop_domain, variant_id, product_id, inventory_item_id, first_seen_day
  FROM (
    SELECT
      shop_domain,
      variant_id,
      product_id,
      inventory_item_id,
      MIN(DATE(stamped_at)) OVER (PARTITION BY shop_domain, variant_id) AS first_seen_day,
      ROW_NUMBER() OVER (
        PARTITION BY shop_domain, variant_id
        ORDER BY stamped_at DESC, received_at DESC, webhook_id DESC
      ) AS newest
    FROM variant_version
  )
  WHERE newest = 1
  UNION ALL
  -- Variants that sold before (or without) any product webhook: orders alone make them known,
  -- e.g. a store connected before its catalogue synced, or an order-only replay.
  -- (product_id 0 when the line items do not name one.)
  SELECT f.shop_domain, f.variant_id, COALESCE(f.product_id, 0), CAST(NULL AS INT64), CAST(NULL AS DATE)
  FROM first_sale AS f
  -- Without a catalogue entry nothing says such a variant is still for sale: it counts only
  -- if it sold inside the window (lags included), not for years after its last order.
  WHERE f.last_sale_day >= CAST(DATE_SUB(@start_date, INTERVAL 28 DAY) AS DATE)
    AND NOT EXISTS (
    SELECT 1 FROM variant_version AS vv
    WHERE vv.shop_domain = f.shop_domain AND vv.variant_id = f.variant_id
  )
),
product AS (
  SELECT shop_domain, id AS product_id, product_type, DATE(created_at) AS created_day
  FROM products
  WHERE NOT deleted
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY shop_domain, id
    ORDER BY updated_at DESC NULLS LAST, received_at DESC, webhook_id DESC
  ) = 1
),
variant_span AS (
  SELECT
    shop_domain,
    variant_id,
    product_id,
    inventory_item_id,
    product_type,
    created_day,
    GREATEST(first_day, CAST(DATE_SUB(@start_date, INTERVAL 28 DAY) AS DATE)) AS spine_start
  FROM (
    SELECT
      v.shop_domain,
      v.variant_id,
      v.product_id,
      v.inventory_item_id,
      p.product_type,
      p.created_day,
      LEAST(
        COALESCE(p.created_day, f.first_sale_day, v.first_seen_day),
        COALESCE(f.first_sale_day, p.created_day, v.first_seen_day)
      ) AS first_day
    FROM variant_entity AS v
    LEFT JOIN product AS p
      ON v.shop_domain = p.shop_domain AND v.product_id = p.product_id
    LEFT JOIN first_sale AS f
      ON v.shop_domain = f.shop_domain AND v.variant_id = f.variant_id
  )
  WHERE first_day <= @end_date
),
spine AS (
  SELECT s.shop_domain, s.variant_id, s.product_id, s.product_type, s.created_day, cal_day
  FROM variant_span AS s
  CROSS JOIN UNNEST(GENERATE_DATE_ARRAY(s.spine_start, @end_date)) AS cal_day
),
price_change AS (
  SELECT shop_domain, variant_id, cal_day, price, discount
  FROM (
    SELECT
      s.shop_domain,
      s.variant_id,
      GREATEST(CAST(DATE_ADD(DATE(vv.stamped_at), INTERVAL 1 DAY) AS DATE), s.spine_start) AS cal_day,
      vv.price,
      vv.discount,
      ROW_NUMBER() OVER (
        PARTITION BY
          s.shop_domain,
          s.variant_id,
          GREATEST(CAST(DATE_ADD(DATE(vv.stamped_at), INTERVAL 1 DAY) AS DATE), s.spine_start)
        ORDER BY vv.stamped_at DESC, vv.received_at DESC, vv.webhook_id DESC
      ) AS newest
    FROM variant_version AS vv
    INNER JOIN variant_span AS s
      ON vv.shop_domain = s.shop_domain AND vv.variant_id = s.variant_id
    WHERE DATE(vv.stamped_at) < @end_date
  )
  WHERE newest = 1
),
level_version AS (
  SELECT shop_domain, inventory_item_id, location_id, available, cal_day
  FROM (
    SELECT
      shop_domain,
      inventory_item_id,
      location_id,
      available,
      CAST(DATE_ADD(DATE(updated_at), INTERVAL 1 DAY) AS DATE) AS cal_day,
      ROW_NUMBER() OVER (
        PARTITION BY shop_domain, inventory_item_id, location_id, DATE(updated_at)
        ORDER BY updated_at DESC, received_at DESC, webhook_id DESC
      ) AS newest
    FROM inventory_levels
    WHERE DATE(updated_at) < @end_date
  )
  WHERE newest = 1
),
level_delta AS (
  -- Each location's change of `available` on the day it takes effect: summed and carried
  -- forward over the spine they give the sum over locations without a per-location spine.
  SELECT
    shop_domain,
    inventory_item_id,
    cal_day,
    COALESCE(available, 0) - COALESCE(
      LAG(available) OVER (PARTITION BY shop_domain, inventory_item_id, location_id ORDER BY cal_day), 0
    ) AS delta
  FROM level_version
),
stock_change AS (
  SELECT s.shop_domain, s.variant_id, GREATEST(d.cal_day, s.spine_start) AS cal_day, SUM(d.delta) AS delta
  FROM level_delta AS d
  INNER JOIN variant_span AS s
    ON d.shop_domain = s.shop_domain AND d.inventory_item_id = s.inventory_item_id
  GROUP BY s.shop_domain, s.variant_id, GREATEST(d.cal_day, s.spine_start)
),
dense AS (
  SELECT
    sp.shop_domain,
    sp.variant_id,
    sp.product_id,
    sp.product_type,
    sp.created_day,
    sp.cal_day,
    CAST(GREATEST(COALESCE(u.net_units, 0), 0) AS FLOAT64) AS units,
    pc.price AS new_price,
    pc.discount AS new_discount,
    sc.delta AS stock_delta
  FROM spine AS sp
  LEFT JOIN daily_units AS u
    ON sp.shop_domain = u.shop_domain AND sp.variant_id = u.variant_id AND sp.cal_day = u.cal_day
  LEFT JOIN price_change AS pc
    ON sp.shop_domain = pc.shop_domain AND sp.variant_id = pc.variant_id AND sp.cal_day = pc.cal_day
  LEFT JOIN stock_change AS sc
    ON sp.shop_domain = sc.shop_domain AND sp.variant_id = sc.variant_id AND sp.cal_day = sc.cal_day
),
history AS (
  SELECT
    shop_domain,
    variant_id,
    product_id,
    product_type,
    created_day,
    cal_day,
    units,
    LAG(units, 1) OVER (PARTITION BY shop_domain, variant_id ORDER BY cal_day) AS lag_1,
    LAG(units, 7) OVER (PARTITION BY shop_domain, variant_id ORDER BY cal_day) AS lag_7,
    LAG(units, 14) OVER (PARTITION BY shop_domain, variant_id ORDER BY cal_day) AS lag_14,
    LAG(units, 28) OVER (PARTITION BY shop_domain, variant_id ORDER BY cal_day) AS lag_28,
    AVG(units) OVER (
      PARTITION BY shop_domain, variant_id ORDER BY cal_day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING
    ) AS rmean_7,
    STDDEV_POP(units) OVER (
      PARTITION BY shop_domain, variant_id ORDER BY cal_day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING
    ) AS rstd_7,
    AVG(units) OVER (
      PARTITION BY shop_domain, variant_id ORDER BY cal_day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING
    ) AS rmean_28,
    STDDEV_POP(units) OVER (
      PARTITION BY shop_domain, variant_id ORDER BY cal_day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING
    ) AS rstd_28,
    AVG(IF(units > 0, 1.0, 0.0)) OVER (
      PARTITION BY shop_domain, variant_id ORDER BY cal_day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING
    ) AS sale_days_28,
    DATE_DIFF(
      cal_day,
      LAST_VALUE(IF(units > 0, cal_day, NULL) IGNORE NULLS) OVER (
        PARTITION BY shop_domain, variant_id ORDER BY cal_day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING
      ),
      DAY
    ) AS days_since_sale,
    LAST_VALUE(new_price IGNORE NULLS) OVER (
      PARTITION BY shop_domain, variant_id ORDER BY cal_day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS price,
    LAST_VALUE(new_discount IGNORE NULLS) OVER (
      PARTITION BY shop_domain, variant_id ORDER BY cal_day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS discount,
    SUM(stock_delta) OVER (
      PARTITION BY shop_domain, variant_id ORDER BY cal_day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS inventory_on_hand
  FROM dense
),
promotion_version AS (
  SELECT
    shop_domain,
    id,
    discount,
    created_at,
    COALESCE(updated_at, created_at) AS stamped_at,
    received_at,
    DATE(starts_at) AS first_day,
    COALESCE(DATE(TIMESTAMP_SUB(ends_at, INTERVAL 1 MICROSECOND)), DATE '9999-12-31') AS last_day
  FROM promotions
  WHERE ends_at IS NULL OR ends_at > starts_at
),
shop_day AS (
  SELECT shop_domain, cal_day
  FROM (SELECT DISTINCT shop_domain FROM variant_span) AS shops
  CROSS JOIN UNNEST(GENERATE_DATE_ARRAY(@start_date, @end_date)) AS cal_day
),
shop_trading AS (
  SELECT DISTINCT shop_domain, DATE(created_at) AS trade_day
  FROM orders_latest
  WHERE NOT COALESCE(test, FALSE)
    AND DATE(created_at) >= CAST(DATE_SUB(@start_date, INTERVAL 28 DAY) AS DATE)
    AND DATE(created_at) < @end_date
),
shop_week AS (
  SELECT
    c.shop_domain,
    c.cal_day,
    COUNTIF(MOD(DATE_DIFF(t.trade_day, DATE '1900-01-01', DAY), 7) = 0) / 4 AS dow1,
    COUNTIF(MOD(DATE_DIFF(t.trade_day, DATE '1900-01-01', DAY), 7) = 1) / 4 AS dow2,
    COUNTIF(MOD(DATE_DIFF(t.trade_day, DATE '1900-01-01', DAY), 7) = 2) / 4 AS dow3,
    COUNTIF(MOD(DATE_DIFF(t.trade_day, DATE '1900-01-01', DAY), 7) = 3) / 4 AS dow4,
    COUNTIF(MOD(DATE_DIFF(t.trade_day, DATE '1900-01-01', DAY), 7) = 4) / 4 AS dow5,
    COUNTIF(MOD(DATE_DIFF(t.trade_day, DATE '1900-01-01', DAY), 7) = 5) / 4 AS dow6,
    COUNTIF(MOD(DATE_DIFF(t.trade_day, DATE '1900-01-01', DAY), 7) = 6) / 4 AS dow7
  FROM shop_day AS c
  LEFT JOIN shop_trading AS t
    ON c.shop_domain = t.shop_domain
    AND t.trade_day BETWEEN CAST(DATE_SUB(c.cal_day, INTERVAL 28 DAY) AS DATE)
    AND CAST(DATE_SUB(c.cal_day, INTERVAL 1 DAY) AS DATE)
  GROUP BY c.shop_domain, c.cal_day
),
promotion_known AS (
  SELECT shop_domain, cal_day, discount, first_day, last_day
  FROM (
    SELECT
      c.shop_domain,
      c.cal_day,
      p.discount,
      p.first_day,
      p.last_day,
      ROW_NUMBER() OVER (
        PARTITION BY c.shop_domain, c.cal_day, p.id ORDER BY p.stamped_at DESC, p.received_at DESC
      ) AS newest
    FROM shop_day AS c
    INNER JOIN promotion_version AS p
      ON c.shop_domain = p.shop_domain
      AND p.created_at < TIMESTAMP(c.cal_day)
      AND p.stamped_at < TIMESTAMP(c.cal_day)
  )
  WHERE newest = 1
),
promotion_day AS (
  SELECT
    shop_domain,
    cal_day,
    MAX(IF(cal_day BETWEEN first_day AND last_day, 1, 0)) AS running,
    MAX(IF(cal_day BETWEEN first_day AND last_day, discount, 0.0)) AS running_discount,
    MIN(IF(first_day > cal_day, DATE_DIFF(first_day, cal_day, DAY), NULL)) AS to_next,
    MIN(IF(last_day < cal_day, DATE_DIFF(cal_day, last_day, DAY), NULL)) AS since_last
  FROM promotion_known
  GROUP BY shop_domain, cal_day
)
SELECT
  h.shop_domain,
  h.variant_id,
  h.product_id,
  h.cal_day AS date,
  h.units,
  h.lag_1,
  h.lag_7,
  h.lag_14,
  h.lag_28,
  h.rmean_7,
  h.rstd_7,
  h.rmean_28,
  h.rstd_28,
  h.sale_days_28,
  CAST(h.days_since_sale AS FLOAT64) AS days_since_sale,
  CAST(COALESCE(sw.dow1, 0) AS FLOAT64) AS shop_trading_dow1,
  CAST(COALESCE(sw.dow2, 0) AS FLOAT64) AS shop_trading_dow2,
  CAST(COALESCE(sw.dow3, 0) AS FLOAT64) AS shop_trading_dow3,
  CAST(COALESCE(sw.dow4, 0) AS FLOAT64) AS shop_trading_dow4,
  CAST(COALESCE(sw.dow5, 0) AS FLOAT64) AS shop_trading_dow5,
  CAST(COALESCE(sw.dow6, 0) AS FLOAT64) AS shop_trading_dow6,
  CAST(COALESCE(sw.dow7, 0) AS FLOAT64) AS shop_trading_dow7,
  h.price,
  h.discount,
  CAST(h.inventory_on_hand AS FLOAT64) AS inventory_on_hand,
  h.product_type,
  CAST(DATE_DIFF(h.cal_day, h.created_day, DAY) AS FLOAT64) AS product_age_days,
  CAST(MOD(DATE_DIFF(h.cal_day, DATE '1900-01-01', DAY), 7) + 1 AS FLOAT64) AS dow,
  CAST(EXTRACT(MONTH FROM h.cal_day) AS FLOAT64) AS month,
  CAST(COALESCE(pd.running, 0) AS FLOAT64) AS promo_active,
  CAST(COALESCE(pd.running_discount, 0.0) AS FLOAT64) AS promo_discount,
  CAST(IF(pd.running = 1, 0, pd.to_next) AS FLOAT64) AS days_to_promo,
  CAST(IF(pd.running = 1, 0, pd.since_last) AS FLOAT64) AS days_since_promo
FROM history AS h
LEFT JOIN promotion_day AS pd
  ON h.shop_domain = pd.shop_domain AND h.cal_day = pd.cal_day
LEFT JOIN shop_week AS sw
  ON h.shop_domain = sw.shop_domain AND h.cal_day = sw.cal_day
WHERE h.cal_day BETWEEN @start_date AND @end_date
ORDER BY h.shop_domain, h.variant_id, h.cal_day
