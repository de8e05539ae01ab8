"""Keeping the warehouse in step with a store through its Admin API (Step 6).

* ``subscriptions``: what ``shopml connect`` subscribes where (pure planning).
* ``pubsub_delivery``: attributes of messages Shopify publishes to Pub/Sub itself, mapped to ours.
* ``convert``: Admin API GraphQL objects → the webhook bodies validation expects.
* ``bulk``: a bulk operation's JSONL re-assembled into whole objects.
* ``state``: watermarks, uninstalled shops and backfill progress in an object store.
* ``reconcile``: what changed since the watermark, compared with the warehouse, re-published.
"""
