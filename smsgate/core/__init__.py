"""The gateway's domain: accounts, credits, routing, the submit pipeline, receipts."""
