"""Talking to OCI distribution registries: where a reference lives, how to authenticate,
the HTTP transport, and pulling and pushing images through the content and layer stores.

Owns: everything that crosses the network for images. Must not: write image records or
publish events (the image manager commits what a pull stages).
"""
