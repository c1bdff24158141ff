"""Diagnostics that build models and data to test the machine they run on (orchestration layer)."""
