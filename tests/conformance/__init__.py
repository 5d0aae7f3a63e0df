"""Conformance runs against independent referees: the Autobahn|Testsuite and real clients."""
