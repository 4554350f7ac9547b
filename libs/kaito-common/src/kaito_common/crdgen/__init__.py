"""CRD generation: pydantic models -> structural OpenAPI v3 -> CRD YAML."""
