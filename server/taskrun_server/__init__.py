"""taskrun server: orchestrates task runs over gRPC, with Postgres holding all state."""
