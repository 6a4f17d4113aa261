"""The trusted core: the only code that may open sockets or TLS, reveal a secret, read the
environment, write files, import dynamically, decide egress, and bound a call's sends and time.

Everything else in the package reaches the network, secrets, the disk and the clock budget
through this folder's narrow interfaces; docs/AUDIT.md lists these modules with their line
counts, and tests/test_invariants.py derives the same list from the code.
"""
