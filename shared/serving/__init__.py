"""Serving: the live pointer (blue-green slots) and the deploy/rollback use cases."""
