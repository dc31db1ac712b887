"""ApprovebotApproval: AGT's legacy approval handler, with context, verified.

AGT hands a legacy ``ApprovalHandler`` an ``approval.ApprovalRequest`` whose
``context`` is the full evaluation context of the call: the amount, the
destination account (govern.py, ``_handle_approval``, and through
``LegacyHandlerAdapter.collect`` in approval_bridge.py). AGT's stock
``WebhookApproval`` drops it and trusts the approver named in the answer.
This handler sends the body ``WebhookApproval`` sends plus ``context``, so
approvers see what they approve, and returns ``approved=True`` only when
approvebot's signed ``identity_assertion`` verifies: approvebot's key,
issuer, expiry, audience (this caller's name), ``body_digest`` equal to the
SHA-256 of the exact bytes sent, and ``allow``. The approver returned is the
assertion's subject.

It subclasses ``ApprovalHandler``, not ``WebhookApproval``, so it works with
``AGT_APPROVAL_STRICT=1``.
"""

import json

from . import verifier
from ._agt import ApprovalDecision, ApprovalHandler
from ._client import Client, Denial, clip, json_safe

# AGT's WebhookApproval waits 300 s by default; approvebot's default route
# timeout is below that.
DEFAULT_WAIT_SECONDS = 300.0


def build_legacy_request(request):
    """The legacy body of AGT's WebhookApproval.request_approval (approval.py),
    plus the request's context."""
    context = json_safe(request.context if request.context is not None else {})
    if not isinstance(context, dict):
        context = {"value": context}
    requested_at = request.requested_at
    return {
        "type": "approval_request",
        "rule_name": request.rule_name,
        "policy_name": request.policy_name,
        "agent_id": request.agent_id,
        "action": request.action,
        "approvers": list(request.approvers),
        "requested_at": requested_at.isoformat() if hasattr(requested_at, "isoformat") else str(requested_at),
        "context": context,
    }


class ApprovebotApproval(Client, ApprovalHandler):
    """An AGT ``ApprovalHandler`` (approval.py) answered by approvebot.

    Takes the same arguments as ``ApprovebotTransport``; ``timeout_seconds``
    defaults to 300 (AGT's ``WebhookApproval``'s).
    """

    def request_approval(self, request):
        """POST the legacy body with context and return a verified ``ApprovalDecision``."""

        def build():
            return json.dumps(build_legacy_request(request)).encode("utf-8")

        def check(body, data):
            approved = body.get("approved")
            if not isinstance(approved, bool):
                raise Denial("missing or malformed 'approved' field")
            if not approved:
                return self._denied(body)
            approver = self._verified(verifier._verify_legacy, body, data)
            return ApprovalDecision(approved=True, approver=approver, reason=clip(body.get("reason") or ""))

        return self._decide(build, check, lambda: DEFAULT_WAIT_SECONDS)
