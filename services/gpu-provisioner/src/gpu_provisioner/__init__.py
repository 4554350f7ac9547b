"""gpu_provisioner service."""
