"""HTTP routes: thin handlers that read the raw request and call the logic that owns the work."""
