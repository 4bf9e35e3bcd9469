"""Upstream connectors: the built-in simulator, SMPP client, HTTP provider."""
