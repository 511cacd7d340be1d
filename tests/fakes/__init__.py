"""Fakes of the services the proxy talks to, for tests and benchmarks (loopback addresses only)."""
