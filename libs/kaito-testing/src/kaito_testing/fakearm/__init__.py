"""A fake Azure Resource Manager for the AKS agent pool operations (test-only, not shipped)."""

from kaito_testing.fakearm.credential import StaticTokenCredential
from kaito_testing.fakearm.server import FakeArm, Faults

__all__ = ["FakeArm", "Faults", "StaticTokenCredential"]
