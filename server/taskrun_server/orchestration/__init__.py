"""Orchestration: how a proposed state changes a task run. Plain Python; no gRPC, no SQL."""
