"""Model weights for the runtime pods: `python -m kaito_common.weights download|build-image`.

`download` fetches a Hugging Face repository at a pinned revision into the pod's weights volume
(the "download at start" init container): only the files a model needs, resumable after a pod
restart, with progress lines and Prometheus gauges, and a marker written last so a restarted
pod does not download again. `build-image` packs a model directory (or a download) into a
weights-only OCI image, the model-image delivery.

huggingface_hub is imported inside the download code only: the controllers, which import
kaito_common but do not install huggingface_hub, never load it.
"""
