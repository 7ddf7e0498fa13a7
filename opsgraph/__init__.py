"""OpsGraph: an autonomous on-call SRE built as a LangGraph state machine."""
