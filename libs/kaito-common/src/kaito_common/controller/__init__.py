"""kaito_common.controller."""
