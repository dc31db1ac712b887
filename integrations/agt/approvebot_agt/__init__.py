"""approvebot for AGT (Agent Governance Toolkit) agents.

- ``ApprovebotTransport``: pass as ``govern(..., approval_transport=...)``
  with ``approval_coordinator=`` and ``approval_chain_id=`` (schema 1.0).
- ``ApprovebotApproval``: pass as ``govern(..., approval_handler=...)``
  (the legacy path; sends the call's context).
- ``load_chain``: AGT's ``ApprovalChain`` from ``approvebot agt chain`` output.
- ``make_response_verifier``: a ``response_verifier`` for AGT's own
  ``VersionedWebhookApproval``.

Each verifies approvebot's signed ``identity_assertion`` before it reports an
approval, and turns every failure into a denial that says why.
"""

from ._agt import ApprovalDecision
from .chain import load_chain
from .legacy import ApprovebotApproval, build_legacy_request
from .transport import ApprovebotTransport, build_webhook_request
from .verifier import VerificationError, body_digest, make_response_verifier

__all__ = [
    "ApprovebotTransport",
    "ApprovebotApproval",
    "ApprovalDecision",
    "load_chain",
    "make_response_verifier",
    "VerificationError",
    "build_webhook_request",
    "build_legacy_request",
    "body_digest",
]
