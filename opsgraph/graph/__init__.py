"""The incident state machine: state, schemas, policy, ledger, wiring, runtime and CLI."""
