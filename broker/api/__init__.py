"""HTTP adapters: Azure Functions blueprints that turn requests into calls on the domain.

The only package (with ``workflows``) that imports ``azure.functions``. Handlers parse and
authenticate, call the domain, and render JSON or problem+json; they decide nothing themselves.
"""
