"""Processes: the master (supervisor), its workers, and the links between them."""
