"""What operators see of the gateway: one JSON log line per request and Prometheus metrics."""
