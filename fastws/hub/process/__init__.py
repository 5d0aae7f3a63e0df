"""Processes: the master (supervisor) and its workers, linked by ``fastws.hub.ipc`` streams."""
