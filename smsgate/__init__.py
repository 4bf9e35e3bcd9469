"""smsgate: an SMS gateway (SMPP 3.4 server, HTTP API, routing, credits, receipts)."""

__version__ = "0.1.0"
