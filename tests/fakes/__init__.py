"""Fake provider servers for tests and benchmarks, spoken to over real HTTP."""
