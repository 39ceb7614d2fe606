"""Validation of a trained ensemble by its own MD (stage=validate)."""
