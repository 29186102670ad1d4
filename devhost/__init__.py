"""Runs ``function_app.py`` locally without the Azure Functions host, and the local stand-ins for
services that cannot run here (OIDC issuer, Key Vault, managed identity). Never deployed."""
