"""The hub's wire protocol: codes and the message encodings."""
