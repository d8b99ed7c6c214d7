"""Shared test support: fixtures and helpers that start real components."""
