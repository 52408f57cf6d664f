"""Litestar routes: the endpoint table's, and those the gateway answers itself (models, usage,
admin, operations, the API reference)."""
