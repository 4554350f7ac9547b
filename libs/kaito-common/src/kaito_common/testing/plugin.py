"""pytest plugin (filled by the control plane work)."""
