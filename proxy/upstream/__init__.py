"""The connect stage's transport: the pooled client that sends requests to backends."""
