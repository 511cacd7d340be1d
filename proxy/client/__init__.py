"""The command-line side of the proxy: what ``login``, ``logout``, ``prefetch`` and ``status`` need to
find and talk to a daemon (over HTTP, with httpx) and to edit the clients' own configuration files.

Nothing here runs inside the daemon; every function is synchronous and used by one command at a time.
"""
