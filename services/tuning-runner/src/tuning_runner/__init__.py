"""tuning_runner service."""
