"""kaito_common.api."""
