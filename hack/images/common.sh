# Shared by the image scripts: how buildah is called here. Sourced, not run.
# Storage: overlay on the host's filesystem (root, no daemon); KAITO_BUILDAH_DRIVER=vfs where
# overlay mounts are not allowed (e.g. inside another container).
BUILDAH_DRIVER="${KAITO_BUILDAH_DRIVER:-overlay}"

bah() {
  buildah --storage-driver "$BUILDAH_DRIVER" "$@"
}

# The four service images, in build order (the controllers first: they are quick).
KAITO_SERVICES=(workspace-controller gpu-provisioner inference-server tuning-runner)
