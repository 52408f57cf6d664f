"""Conformance with the official OpenAI OpenAPI description (see validator.py)."""
