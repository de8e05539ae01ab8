"""Feast definitions (imports Feast: batch work only) and the cloud ``feature_store.yaml`` example."""
