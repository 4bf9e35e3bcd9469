"""SMPP 3.4 with no I/O: constants, PDU codec, session state machine, receipts."""
