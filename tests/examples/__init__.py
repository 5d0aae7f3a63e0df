"""The example applications of examples/, run end to end."""
