"""Helpers shared by test areas (importable as ``tests.support``)."""
