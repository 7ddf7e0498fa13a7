"""`opsgraph serve`: one long-running service — the watcher, alert webhooks, the REST API, `/metrics`.

It is one more entry point on the shared operations service (`opsgraph.operations`): the API
answers approvals the same way the CLI and the chat do, and alerts start the same incident graph
the watcher starts. Notifications and metrics read the ledger, so they cover incidents whichever
process drove them.
"""
