"""Plumbing both services share: logging, the health probe, crash points, gRPC server basics."""
