"""What both AGT classes share: configuration, one POST, and denials.

Every failure becomes a denial that says why; nothing raises out of a
decision. The bearer token is sent only to the configured URL (redirects are
refused) and never logged.
"""

import json
import logging
import math
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from . import verifier
from ._agt import ApprovalDecision

logger = logging.getLogger("approvebot_agt")

_MAX_ANSWER_BYTES = 1 << 20
_MAX_REASON = 300

# The approver strings of denials made on this side, as AGT's own
# VersionedWebhookApproval names them (approval_webhook.py).
TRANSPORT_ERROR = "system:webhook-error"
REJECTED = "webhook:rejected"
BINDING_MISMATCH = "webhook:binding-mismatch"
# A timeout on this side says it is one, as approvebot's own does.
TIMEOUT = "system:timeout"


class Denial(Exception):
    """A failure that ends in a denial with this approver and reason."""

    def __init__(self, reason, approver=REJECTED):
        super().__init__(reason)
        self.reason = reason
        self.approver = approver


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the caller's token somewhere else.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def clip(text):
    text = str(text)
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON] + "..."


class Client(object):
    """Configuration shared by ApprovebotTransport and ApprovebotApproval."""

    def __init__(self, url, *, caller, token=None, headers=None, jwks_url=None, jwks=None,
                 key_file=None, issuer="approvebot", timeout_seconds=None, leeway=60,
                 cache_seconds=300):
        parsed = urllib.parse.urlparse(url if isinstance(url, str) else "")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("url must be an http or https URL of approvebot's /v1/approvals, got %r" % (url,))
        if not isinstance(caller, str) or not caller:
            raise ValueError("caller must be the name approvebot knows this agent by (callers[].name)")
        if timeout_seconds is not None and (not isinstance(timeout_seconds, (int, float)) or
                                            isinstance(timeout_seconds, bool) or timeout_seconds <= 0):
            raise ValueError("timeout_seconds must be a positive number, got %r" % (timeout_seconds,))
        self._headers = {"Content-Type": "application/json"}
        for k, v in dict(headers or {}).items():
            self._headers[str(k)] = str(v)
        has_auth = any(k.lower() == "authorization" for k in self._headers)
        if token is not None:
            if has_auth:
                raise ValueError("give token= or an Authorization header, not both")
            if not isinstance(token, str) or not token:
                raise ValueError("token must be the caller's approvebot token")
            self._headers["Authorization"] = "Bearer " + token
        elif not has_auth:
            raise ValueError("approvebot needs the caller's token: give token= or an Authorization header")
        self._url = url
        self._caller = caller
        self._issuer = issuer
        self._timeout = None if timeout_seconds is None else float(timeout_seconds)
        self._leeway = leeway
        self._key_for = verifier.key_source(jwks_url, jwks, key_file, cache_seconds)
        self._opener = urllib.request.build_opener(_NoRedirect)

    def _post(self, data, timeout):
        """POST data and return the answer body as a dict, or raise Denial."""
        req = urllib.request.Request(self._url, data=data, headers=self._headers, method="POST")
        try:
            with self._opener.open(req, timeout=timeout) as resp:  # noqa: S310
                status = resp.status
                raw = resp.read(_MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise Denial(self._refusal(exc), TRANSPORT_ERROR)
        except (socket.timeout, TimeoutError):
            raise Denial("timeout: no answer from approvebot within %g s" % timeout, TIMEOUT)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise Denial("timeout: no answer from approvebot within %g s" % timeout, TIMEOUT)
            raise Denial("cannot reach approvebot: %s" % clip(exc.reason), TRANSPORT_ERROR)
        except OSError as exc:
            raise Denial("approvebot connection failed: %s" % clip(exc), TRANSPORT_ERROR)
        if status == 202:
            raise Denial("approvebot answered 202: the request is still pending and this client does not poll "
                         "(do not send Prefer: respond-async)", TRANSPORT_ERROR)
        if status != 200:
            raise Denial("approvebot answered HTTP %d, want 200" % status, TRANSPORT_ERROR)
        if len(raw) > _MAX_ANSWER_BYTES:
            raise Denial("approvebot's answer is larger than %d bytes" % _MAX_ANSWER_BYTES)
        try:
            body = json.loads(raw.decode("utf-8"))
        except Exception:
            raise Denial("approvebot's answer is not JSON")
        if not isinstance(body, dict):
            raise Denial("approvebot's answer is not a JSON object")
        return body

    @staticmethod
    def _refusal(exc):
        # approvebot's errors are {"error": ..., "field": ...}; say which.
        what = "HTTP %d" % exc.code
        try:
            body = json.loads(exc.read(_MAX_ANSWER_BYTES).decode("utf-8"))
            if isinstance(body, dict) and body.get("error"):
                what += ": %s" % clip(body["error"])
                if body.get("field"):
                    what += " (field %s)" % clip(body["field"])
        except Exception:
            pass
        return "approvebot refused the request: " + what

    def _decide(self, build, check, timeout):
        """Run build() -> bytes, POST, check(body, sent) -> decision; deny on any failure.

        timeout() is how long to wait when timeout_seconds was not given.
        """
        try:
            try:
                data = build()
                wait = self._timeout if self._timeout is not None else timeout()
            except Exception as exc:
                raise Denial("cannot build the approval request: %s" % clip(exc), TRANSPORT_ERROR)
            return check(self._post(data, wait), data)
        except Denial as d:
            logger.warning("approvebot approval denied: %s", d.reason)
            return ApprovalDecision(approved=False, approver=d.approver, reason=d.reason)
        except Exception as exc:  # fail closed on anything unforeseen
            logger.warning("approvebot approval denied: %s: %s", type(exc).__name__, exc)
            return ApprovalDecision(approved=False, approver=REJECTED,
                                    reason="approve rejected: %s: %s" % (type(exc).__name__, clip(exc)))

    def _verified(self, check, *args, **kwargs):
        """check(*args, key_for, issuer, leeway, audience, now, **kwargs) -> approver, or Denial."""
        try:
            return check(*args, self._key_for, self._issuer, self._leeway, self._caller, time.time(), **kwargs)
        except verifier.VerificationError as exc:
            raise Denial("approve rejected: unverified approver identity: %s" % exc)

    @staticmethod
    def _denied(body):
        # A denial is honoured as approvebot gave it: denying is the safe
        # direction (approval_webhook.parse_webhook_response does the same).
        return ApprovalDecision(approved=False, approver=clip(body.get("approver") or "approvebot"),
                                reason=clip(body.get("reason") or "denied by approvebot"))


def json_safe(value):
    """A JSON-ready copy of value, as govern's GovernedCallable._json_safe makes
    one (govern.py), and with non-finite floats as strings: JSON has no NaN."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)
