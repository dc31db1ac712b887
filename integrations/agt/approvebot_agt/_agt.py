"""AGT's own types when AGT is installed, faithful copies when it is not.

``ApprovalDecision`` and ``ApprovalHandler`` are those of
``agentmesh.governance.approval``: with AGT installed, the handler is a real
subclass of AGT's ``ApprovalHandler`` and every decision is AGT's own
``ApprovalDecision``. Without AGT (tests, or checking a response by hand) the
copies below have the same fields and defaults.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone

try:
    from agentmesh.governance.approval import ApprovalDecision, ApprovalHandler
except ImportError:

    @dataclass
    class ApprovalDecision:
        """Copy of agentmesh.governance.approval.ApprovalDecision."""

        approved: bool
        approver: str = ""
        reason: str = ""
        decided_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    class ApprovalHandler(ABC):
        """Copy of agentmesh.governance.approval.ApprovalHandler."""

        @abstractmethod
        def request_approval(self, request):
            """Return an ApprovalDecision for an approval.ApprovalRequest."""


__all__ = ["ApprovalDecision", "ApprovalHandler"]
