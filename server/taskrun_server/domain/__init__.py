"""Plain Python objects for task runs, states and filters: no gRPC, no SQL."""
