"""The HTTP entry: the hot lane, the Litestar app and its routes, and the server around them."""
