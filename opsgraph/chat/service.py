"""The chat's view of the shared operations service, plus what its conversational agent may read."""

from __future__ import annotations

from opsgraph.agents.evidence import ReadOnlyTools
from opsgraph.chat.agent import ChatTools
from opsgraph.operations import AnswerRefused, Operations, Pending

__all__ = ["AnswerRefused", "ChatService", "Pending"]


class ChatService(Operations):
    """`Operations` with the read-only tool belt of the chat's agent."""

    def agent_tools(self) -> ChatTools:
        """What the conversational agent may read: health, the ledger, the catalogue's read-only tools."""
        return ChatTools(
            inventory=self.context.inventory,
            read=ReadOnlyTools(self.context.tools, self.context.tool_timeout_s),
            health=lambda: [snapshot.model_dump(mode="json") for snapshot in self.health()],
            incidents=self.incidents,
            incident=self.incident,
            actions=self.actions_between,
        )
