"""Hamroh tests."""
