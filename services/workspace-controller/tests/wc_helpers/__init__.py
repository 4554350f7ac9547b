"""Helpers shared by the workspace controller's tests (put on sys.path by conftest.py)."""
