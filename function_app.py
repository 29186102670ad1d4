"""Azure Functions entry point: build the app and register one blueprint per feature."""

import azure.durable_functions as df
import azure.functions as func

from broker.api import execute, health, journal
from broker.telemetry import configure_telemetry

configure_telemetry()
app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(execute.bp)
app.register_functions(health.bp)
app.register_functions(journal.bp)
