"""What operators see of a running server: Prometheus metrics and structured RPC logs."""
