"""OCI registry access: references, docker config auth, the registry client, adapter images."""
