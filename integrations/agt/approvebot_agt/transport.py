"""ApprovebotTransport: AGT's schema 1.0 approval transport, verified.

AGT's ``govern(..., approval_coordinator=..., approval_chain_id=...,
approval_transport=...)`` opens a protocol ``ApprovalRequest`` in its
coordinator and calls ``approval_transport.request_decision(request)``
(govern.py, ``_handle_approval_via_coordinator``). This transport posts that
request exactly as AGT's ``build_webhook_request`` builds it
(approval_webhook.py), checks the answer as ``parse_webhook_response`` does,
and honours an approval only when approvebot's signed ``identity_assertion``
verifies: approvebot's key, issuer, expiry, audience (this caller's name),
the request's id, action digest and input digest, and ``allow``. The decision
names the verified approver, which AGT then records as one chain entry at
stage 0 if it is one of that stage's ``allowed_identities``.

It is not AGT's ``WebhookApproval`` (nor a subclass), so it works with
``AGT_APPROVAL_STRICT=1``.
"""

import json
from datetime import datetime, timezone

from . import verifier
from ._agt import ApprovalDecision
from ._client import BINDING_MISMATCH, Client, Denial, clip

WEBHOOK_SCHEMA_VERSION = "1.0"

# approvebot answers no later than the request's expires_at; wait that long
# and a margin, so its own expiry answer arrives before this side gives up.
EXPIRY_MARGIN_SECONDS = 30
MIN_WAIT_SECONDS = 5


def build_webhook_request(request, schema_version=WEBHOOK_SCHEMA_VERSION):
    """The 1.0 body for an AGT protocol ApprovalRequest, as AGT builds it
    (approval_webhook.build_webhook_request): the request's own
    ``input_digest()`` and ``presented_canonical()``, nothing else."""
    payload = {
        "schema_version": schema_version,
        "type": "approval_request",
        "input_digest": request.input_digest(),
    }
    payload.update(request.presented_canonical())
    return payload


class ApprovebotTransport(Client):
    """An AGT ``ApprovalTransport`` (approval_bridge.py) answered by approvebot.

    Args:
        url: approvebot's ``/v1/approvals`` URL.
        caller: the name approvebot knows this agent by (``callers[].name``);
            the assertion's audience must be this name.
        token: the caller's approvebot token, sent as ``Authorization: Bearer``
            (or give ``headers={"Authorization": ...}``).
        headers: other request headers.
        jwks_url / jwks / key_file: exactly one source of approvebot's public
            key: its ``/.well-known/jwks.json`` URL (https, or http to
            loopback), a JWKS dict, or a PEM Ed25519 public key file.
        issuer: approvebot's ``signing.issuer`` (default ``"approvebot"``).
        timeout_seconds: how long to wait for the answer; by default until
            the request's ``expires_at`` and 30 s more.
        leeway: clock skew allowed on the assertion's times, in seconds.
        cache_seconds: how long fetched keys are kept.
    """

    def request_decision(self, request):
        """POST the 1.0 body and return a verified ``ApprovalDecision``."""
        sent = {}

        def build():
            payload = build_webhook_request(request)
            sent["input_digest"] = payload["input_digest"]
            return json.dumps(payload).encode("utf-8")

        def check(body, data):
            # The checks and their order are parse_webhook_response's.
            if body.get("approval_request_id") != request.approval_request_id:
                raise Denial("approval_request_id mismatch", BINDING_MISMATCH)
            if body.get("action_digest") != request.action_digest:
                raise Denial("action_digest mismatch", BINDING_MISMATCH)
            approved = body.get("approved")
            if approved is None and "decision" in body:
                approved = body.get("decision") == "allow"
            if not isinstance(approved, bool):
                raise Denial("missing or malformed 'approved' field")
            if not approved:
                return self._denied(body)
            approver = self._verified(verifier._verify, body, request, input_digest=sent["input_digest"])
            return ApprovalDecision(approved=True, approver=approver, reason=clip(body.get("reason") or ""))

        def wait():
            expires = request.expires_at
            if expires.tzinfo is None:  # approvebot reads a naive time as UTC
                expires = expires.replace(tzinfo=timezone.utc)
            left = (expires - datetime.now(timezone.utc)).total_seconds()
            return left + EXPIRY_MARGIN_SECONDS if left > 0 else MIN_WAIT_SECONDS

        return self._decide(build, check, wait)
