-- drift_reports_latest: the latest drift_monitor check per model (what a dashboard shows first).
SELECT *
FROM drift_reports
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY model ORDER BY checked_at DESC, check_id DESC) = 1
