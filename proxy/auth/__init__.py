"""Who may do what: principals (``[principal.NAME]``), SigV4 on /v1, authorization tokens for the package
clients, permissions policies on the domain and its repositories, and the audit log of writes.

``Authorizer`` (proxy.auth.authorizer) holds them for one application; the middlewares
(proxy.auth.middleware) put a ``Caller`` on every request and refuse what the policies do not allow.
"""
