"""The CLI's commands, a module each, with ``register`` (its arguments) and ``run``.

The CLI imports every command to build its parser, the daemon's ``serve`` included: what only one
command needs (the HTTP client, the progress bar, botocore's session, the file editors) is imported
inside its ``run`` and helpers, so that a daemon does not load it.
"""
