"""`training_config.yaml`: Kaito's sections, each parsed into its library's own type."""
