"""Adapters: one module per backend. Each imports its cloud client lazily, on first use."""
