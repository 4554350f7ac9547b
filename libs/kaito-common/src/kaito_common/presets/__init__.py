"""kaito_common.presets."""
