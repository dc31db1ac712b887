"""Verify approvebot's signed approvals in an AGT agent.

approvebot answers a schema 1.0 approval request with a body that carries an
``identity_assertion``: a JWT (compact JWS, EdDSA/Ed25519) naming the person
who approved, the request and the action digest. AGT's
``VersionedWebhookApproval`` honours an approval only when its
``response_verifier(body, request)`` returns the approver's identity; this
module builds that verifier.

    from approvebot_agt import make_response_verifier
    verifier = make_response_verifier("https://approvebot.example/.well-known/jwks.json",
                                      audience="payments-agent")

The verifier fails closed: on any doubt it returns None, which AGT turns into
a denial. It never raises. (``ApprovebotTransport`` and
``ApprovebotApproval`` use the same checks, plus the audience, the input
digest, and for legacy answers the digest of the body sent.)

Needs only the standard library and ``cryptography`` (3.x or later).

Command line, for checking a response by hand (exit 0 and the approver on
stdout when it verifies, exit 1 otherwise):

    python3 -m approvebot_agt --jwks jwks.json --issuer approvebot \\
        --audience payments-agent --request-id ar_... --action-digest sha256:... < body.json
"""

import base64
import hashlib
import json
import logging
import sys
import threading
import time
import urllib.parse
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["make_response_verifier", "VerificationError", "key_source", "body_digest"]

logger = logging.getLogger("approvebot_agt")

_MAX_JWKS_BYTES = 1 << 20
_FETCH_TIMEOUT = 10
# An unknown kid may mean the key was rotated: refetch, but not more often
# than this, so forged tokens cannot make us hammer the JWKS endpoint.
_MIN_REFETCH_SECONDS = 30


class VerificationError(Exception):
    """Why an assertion was refused (never raised by the verifier itself)."""


def _b64url(segment):
    if not isinstance(segment, str) or not segment:
        raise VerificationError("empty token segment")
    if any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in segment):
        raise VerificationError("token segment is not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _thumbprint(x):
    # RFC 7638: SHA-256 over the required members in lexical order.
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % x
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _keys_from_jwks(jwks):
    """Map kid -> Ed25519PublicKey for the usable keys of a JWKS dict."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise VerificationError("JWKS has no keys list")
    keys = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, dict):
            continue
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if jwk.get("alg") not in (None, "EdDSA") or jwk.get("use") not in (None, "sig"):
            continue
        kid, x = jwk.get("kid"), jwk.get("x")
        if not isinstance(kid, str) or not kid or not isinstance(x, str):
            continue
        try:
            raw = _b64url(x)
            if len(raw) != 32:
                continue
            keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
        except Exception:
            continue
    return keys


def _key_from_pem(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        key = serialization.load_pem_public_key(data)
    except TypeError:  # cryptography < 3.1 wants a backend
        from cryptography.hazmat.backends import default_backend

        key = serialization.load_pem_public_key(data, backend=default_backend())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("%s is not an Ed25519 public key" % path)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    # approvebot's kid is the key's RFC 7638 thumbprint, so a pinned key
    # still checks the kid.
    return {_thumbprint(x): key}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could lead from https to http, where the keys can be
    # swapped in transit.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _check_jwks_url(url):
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in _LOOPBACK):
        return
    raise ValueError("jwks_url must be https (plain http only to loopback): %r" % url)


class _JWKSCache(object):
    def __init__(self, url, cache_seconds):
        _check_jwks_url(url)
        self._url = url
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._ttl = cache_seconds
        self._lock = threading.Lock()
        self._keys = {}
        self._fetched = None  # monotonic time of the last successful fetch
        self._tried = None  # monotonic time of the last attempt

    def _fetch(self):
        req = urllib.request.Request(self._url, headers={"Accept": "application/json"})
        with self._opener.open(req, timeout=_FETCH_TIMEOUT) as resp:  # noqa: S310
            data = resp.read(_MAX_JWKS_BYTES + 1)
        if len(data) > _MAX_JWKS_BYTES:
            raise VerificationError("JWKS larger than %d bytes" % _MAX_JWKS_BYTES)
        return _keys_from_jwks(json.loads(data.decode("utf-8")))

    def key(self, kid):
        with self._lock:
            now = time.monotonic()
            stale = self._fetched is None or now - self._fetched > self._ttl
            unknown = kid not in self._keys
            recently_tried = self._tried is not None and now - self._tried < _MIN_REFETCH_SECONDS
            if stale or (unknown and not recently_tried):
                self._tried = now
                try:
                    self._keys = self._fetch()
                    self._fetched = now
                except Exception as exc:
                    # Keep the keys we had: a JWKS outage must not turn
                    # into accepting anything, and the old keys are still
                    # the published ones as far as we know.
                    logger.warning("approvebot JWKS fetch from %s failed: %s", self._url, exc)
            key = self._keys.get(kid)
        if key is None:
            raise VerificationError("no key %r in the JWKS" % kid)
        return key


def _request_value(request, name):
    if isinstance(request, dict):
        value = request.get(name)
    else:
        value = getattr(request, name, None)
    if not isinstance(value, str) or not value:
        raise VerificationError("request has no %s" % name)
    return value


def _number(claims, name):
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VerificationError("claim %s is not a number" % name)
    return value


def _assertion_claims(body, key_for, issuer, leeway, audience, now):
    """Check the body's identity_assertion token and return its claims.

    Checks what every approvebot assertion carries, whatever the body's
    schema: EdDSA signature by a published key, issuer, expiry, audience.
    """
    if not isinstance(body, dict):
        raise VerificationError("body is not an object")
    token = body.get("identity_assertion")
    if not isinstance(token, str) or not token:
        raise VerificationError("no identity_assertion")
    parts = token.split(".")
    if len(parts) != 3:
        raise VerificationError("identity_assertion is not a compact JWS")
    try:
        header = json.loads(_b64url(parts[0]).decode("utf-8"))
        claims = json.loads(_b64url(parts[1]).decode("utf-8"))
        signature = _b64url(parts[2])
    except VerificationError:
        raise
    except Exception:
        raise VerificationError("identity_assertion is not readable")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise VerificationError("identity_assertion header or claims not an object")
    if header.get("alg") != "EdDSA":
        raise VerificationError("alg %r, want EdDSA" % (header.get("alg"),))
    # A decision says typ JWT; approvebot's audit checkpoints, signed with
    # the same key, say otherwise and are never an approval.
    if header.get("typ") != "JWT":
        raise VerificationError("typ %r, want JWT" % (header.get("typ"),))
    if "crit" in header:
        raise VerificationError("unsupported crit header")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise VerificationError("no kid")
    key = key_for(kid)
    try:
        key.verify(signature, (parts[0] + "." + parts[1]).encode("ascii"))
    except InvalidSignature:
        raise VerificationError("bad signature")

    if claims.get("iss") != issuer:
        raise VerificationError("issuer %r, want %r" % (claims.get("iss"), issuer))
    if now > _number(claims, "exp") + leeway:
        raise VerificationError("assertion expired")
    if "nbf" in claims and now < _number(claims, "nbf") - leeway:
        raise VerificationError("assertion not valid yet")
    if not isinstance(audience, str) or not audience:
        raise VerificationError("no audience to check the assertion against")
    aud = claims.get("aud")
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        raise VerificationError("audience %r, want %r" % (aud, audience))
    return claims


def _approver(body, claims):
    if claims.get("decision") != "allow":
        raise VerificationError("assertion decision is %r, not allow" % (claims.get("decision"),))
    if body.get("approved") is not True:
        raise VerificationError("body does not say approved")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise VerificationError("assertion names no approver")
    return sub


def _verify(body, request, key_for, issuer, leeway, audience, now, input_digest=None):
    claims = _assertion_claims(body, key_for, issuer, leeway, audience, now)
    for name in ("approval_request_id", "action_digest"):
        want = _request_value(request, name)
        if claims.get(name) != want:
            raise VerificationError("assertion %s does not match the request" % name)
        if body.get(name) != want:
            raise VerificationError("body %s does not match the request" % name)
    if input_digest is not None and claims.get("input_digest") != input_digest:
        raise VerificationError("assertion input_digest does not match the request sent")
    return _approver(body, claims)


def body_digest(data):
    """The digest approvebot signs over a legacy body: sha256 of its bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _verify_legacy(body, sent, key_for, issuer, leeway, audience, now):
    """Check a legacy answer against the exact body bytes that were sent.

    A legacy request carries no id of the agent's own: approvebot names it,
    and binds the answer to the request by ``body_digest``, the SHA-256 of
    the body it received.
    """
    claims = _assertion_claims(body, key_for, issuer, leeway, audience, now)
    if claims.get("body_digest") != body_digest(sent):
        raise VerificationError("assertion body_digest does not match the request sent")
    rid = claims.get("approval_request_id")
    if not isinstance(rid, str) or not rid:
        raise VerificationError("assertion has no approval_request_id")
    if body.get("approval_request_id") != rid:
        raise VerificationError("body approval_request_id does not match the assertion")
    return _approver(body, claims)


def key_source(jwks_url=None, jwks=None, key_file=None, cache_seconds=300):
    """Return ``key_for(kid) -> Ed25519PublicKey`` for exactly one key source.

    Raises ValueError at once for a bad source, so a misconfigured agent
    fails when it starts, not on its first approval.
    """
    sources = [s for s in (jwks_url, jwks, key_file) if s is not None]
    if len(sources) != 1:
        raise ValueError("give exactly one of jwks_url, jwks or key_file")
    if jwks_url is not None:
        return _JWKSCache(jwks_url, cache_seconds).key
    keys = _keys_from_jwks(jwks) if jwks is not None else _key_from_pem(key_file)
    if not keys:
        raise ValueError("no usable Ed25519 key given")

    def key_for(kid):
        if kid not in keys:
            raise VerificationError("no key %r" % kid)
        return keys[kid]

    return key_for


def make_response_verifier(jwks_url=None, *, audience, jwks=None, key_file=None, issuer="approvebot",
                           leeway=60, cache_seconds=300):
    """Return ``response_verifier(body, request) -> str | None`` for AGT.

    Give exactly one key source: ``jwks_url`` (approvebot's
    ``/.well-known/jwks.json``, fetched and cached for ``cache_seconds``),
    ``jwks`` (a JWKS dict) or ``key_file`` (a PEM Ed25519 public key).
    ``issuer`` must equal approvebot's configured issuer. ``audience`` is
    required and must equal the token's ``aud``: the caller name approvebot
    knows this agent by, so a decision made for another agent is refused. The verifier returns the approver's identity when the
    assertion is valid, fresh, signed by approvebot, bound to this request's
    ``approval_request_id`` and ``action_digest``, and says allow; otherwise
    None.
    """
    if not isinstance(audience, str) or not audience:
        raise ValueError("audience must be the caller name approvebot knows this agent by")
    key_for = key_source(jwks_url, jwks, key_file, cache_seconds)

    def response_verifier(body, request):
        try:
            return _verify(body, request, key_for, issuer, leeway, audience, time.time())
        except VerificationError as exc:
            logger.warning("approvebot approval refused: %s", exc)
        except Exception as exc:  # fail closed on anything unforeseen
            logger.warning("approvebot approval refused: %s: %s", type(exc).__name__, exc)
        return None

    return response_verifier


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(
        prog="python3 -m approvebot_agt",
        description="Verify an approvebot answer read from stdin: a schema 1.0 answer against "
                    "--request-id and --action-digest, or a legacy answer against --request-body.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--jwks", help="JWKS file")
    src.add_argument("--jwks-url", help="JWKS URL")
    src.add_argument("--key-file", help="PEM Ed25519 public key file")
    p.add_argument("--issuer", default="approvebot")
    p.add_argument("--audience", required=True, help="the caller name approvebot knows the agent by")
    p.add_argument("--request-id", help="the 1.0 request's approval_request_id")
    p.add_argument("--action-digest", help="the 1.0 request's action_digest")
    p.add_argument("--request-body", help="file holding the exact legacy request body that was sent")
    args = p.parse_args(argv)
    if (args.request_body is None) == (args.request_id is None or args.action_digest is None):
        p.error("give --request-id and --action-digest (schema 1.0), or --request-body (legacy)")
    try:
        jwks = None
        if args.jwks:
            with open(args.jwks, "rb") as f:
                jwks = json.loads(f.read().decode("utf-8"))
        key_for = key_source(args.jwks_url, jwks, args.key_file)
        body = json.loads(sys.stdin.buffer.read().decode("utf-8"))
        if args.request_body is not None:
            with open(args.request_body, "rb") as f:
                sent = f.read()
            principal = _verify_legacy(body, sent, key_for, args.issuer, 60, args.audience, time.time())
        else:
            request = {"approval_request_id": args.request_id, "action_digest": args.action_digest}
            principal = _verify(body, request, key_for, args.issuer, 60, args.audience, time.time())
    except Exception as exc:
        print("rejected: %s" % (str(exc) or type(exc).__name__), file=sys.stderr)
        return 1
    print(principal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
