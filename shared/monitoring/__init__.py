"""Monitoring: drift and accuracy checks of the live model, their metrics and alerts."""
