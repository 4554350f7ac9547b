"""Kaito common library: CRD types, presets, CRD generation, reconcile framework."""
