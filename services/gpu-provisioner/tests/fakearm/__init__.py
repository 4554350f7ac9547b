"""A fake Azure Resource Manager for the AKS agent pool operations (test-only, not shipped)."""

from fakearm.credential import StaticTokenCredential
from fakearm.server import FakeArm, Faults

__all__ = ["FakeArm", "Faults", "StaticTokenCredential"]
