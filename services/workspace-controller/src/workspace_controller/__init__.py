"""workspace_controller service."""
