"""Azure Functions entry point: build the app and register one blueprint per feature."""

import azure.durable_functions as df
import azure.functions as func

from broker.api import approvals, classification, execute, grants, health, journal, mcp, methods, problems, requests
from broker.telemetry import configure_telemetry
from broker.workflows import approval as approval_workflow
from broker.workflows import grants as grant_workflow

configure_telemetry()
app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(execute.bp)
app.register_functions(health.bp)
app.register_functions(journal.bp)
app.register_functions(classification.bp)
app.register_functions(requests.bp)
app.register_functions(approvals.bp)
app.register_functions(grants.bp)
app.register_functions(mcp.bp)
app.register_functions(problems.bp)
app.register_functions(methods.bp)
app.register_functions(approval_workflow.bp)
app.register_functions(grant_workflow.bp)
