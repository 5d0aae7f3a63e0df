"""The hub's wire protocol: codes, the message encodings and the value types both sides share."""
