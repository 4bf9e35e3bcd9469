"""Customer-facing adapters: the SMPP server and the HTTP API."""
