"""Test infrastructure of Kaito in Python (dev-only; never installed in an image).

The local Kubernetes control plane (``controlplane``, ``plugin`` for its pytest fixtures,
``devcluster`` for ``make cluster-up``), one real node (``realnode`` with ``containerd``,
``cni``), kwok and Karpenter (``kwok``, ``karpenter``), the fake Azure Resource Manager
(``fakearm``), a local OCI registry (``registry``), tiny models and model images
(``tiny_model``, ``model_image``), the chart's controllers as host processes (``kaito_local``),
and the small shared pieces: ``ports.free_port``, ``process`` (child processes and commands),
``waiting`` and ``controllers`` (helpers for tests of controllers).
"""
