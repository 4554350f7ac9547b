"""kaito_common.testing."""
