"""inference_server service."""
