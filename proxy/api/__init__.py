"""The control plane: CodeArtifact's REST API on ``/v1/``, bound to botocore's ``codeartifact`` service
model (paths, query parameters, JSON shapes and error shapes come from the model, not from copies).

A new API operation is one ``@operation("Name")`` handler in the module of its resource (domains,
repositories, packages, package versions, tokens, policies); ``proxy.api.binding`` parses its input and
serialises its output by the model.
"""
