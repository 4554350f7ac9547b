"""kaito_common.crdgen."""
