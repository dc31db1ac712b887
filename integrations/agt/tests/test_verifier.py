"""Tests of approvebot_agt.verifier (AGT's response_verifier and the command line)."""

import base64
import hashlib
import hmac
import http.server
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.dirname(HERE)
sys.path.insert(0, PACKAGE_DIR)
from approvebot_agt import verifier as approvebot_verifier  # noqa: E402
from approvebot_agt import make_response_verifier  # noqa: E402
REQUEST_ID = "ar_9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b"
ACTION_DIGEST = "sha256:9b43418da608a5a5f7cf62303220b4d194b5780d011785b1db7898fd51284990"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def raw_public(key):
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(key):
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % b64(raw_public(key))
    return b64(hashlib.sha256(canonical.encode()).digest())


class Issuer(object):
    """A minimal approvebot stand-in: one Ed25519 key, EdDSA JWTs."""

    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        self.kid = thumbprint(self.key)

    def jwks(self):
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64(raw_public(self.key)),
                          "kid": self.kid, "alg": "EdDSA", "use": "sig"}]}

    def token(self, header=None, **claims):
        now = int(time.time())
        c = {"iss": "approvebot", "sub": "jane@company.com", "aud": "payments-agent", "iat": now, "nbf": now, "exp": now + 600,
             "jti": "j1", "approval_request_id": REQUEST_ID, "action_digest": ACTION_DIGEST,
             "decision": "allow", "status": "approved", "identity_assurance": "slack_signed_interaction",
             "approver_kind": "human"}
        for k, v in claims.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        h = {"alg": "EdDSA", "kid": self.kid, "typ": "JWT"}
        h.update(header or {})
        signing_input = b64(json.dumps(h).encode()) + "." + b64(json.dumps(c).encode())
        return signing_input + "." + b64(self.key.sign(signing_input.encode()))


def body(token, **overrides):
    b = {"approval_request_id": REQUEST_ID, "action_digest": ACTION_DIGEST, "approved": True,
         "decision": "allow", "approver": "jane@company.com", "reason": "ok", "identity_assertion": token}
    b.update(overrides)
    return b


REQUEST = {"approval_request_id": REQUEST_ID, "action_digest": ACTION_DIGEST}

# Refusals are logged at WARNING; keep the test output readable.
logging.getLogger("approvebot_agt").setLevel(logging.CRITICAL)


class VerifierTest(unittest.TestCase):
    def setUp(self):
        self.issuer = Issuer()
        self.verify = make_response_verifier(jwks=self.issuer.jwks(), audience="payments-agent")

    def test_accepts_valid(self):
        self.assertEqual(self.verify(body(self.issuer.token()), REQUEST), "jane@company.com")

    def test_request_as_object(self):
        class Req(object):
            approval_request_id = REQUEST_ID
            action_digest = ACTION_DIGEST

        self.assertEqual(self.verify(body(self.issuer.token()), Req()), "jane@company.com")

    def test_leeway(self):
        now = int(time.time())
        self.assertEqual(self.verify(body(self.issuer.token(exp=now - 30)), REQUEST), "jane@company.com")
        self.assertEqual(self.verify(body(self.issuer.token(nbf=now + 30)), REQUEST), "jane@company.com")

    def test_rejects(self):
        now = int(time.time())
        good = self.issuer.token()
        h, p, s = good.split(".")
        sig = bytearray(base64.urlsafe_b64decode(s + "=="))
        sig[0] ^= 1
        forged_sig = h + "." + p + "." + b64(bytes(sig))
        forged_claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        forged_claims["sub"] = "mallory@evil.example"
        forged_payload = h + "." + b64(json.dumps(forged_claims).encode()) + "." + s

        other = Issuer()
        other_same_kid = Issuer()
        other_same_kid.kid = self.issuer.kid

        none_header = b64(json.dumps({"alg": "none", "kid": self.issuer.kid}).encode())
        alg_none = none_header + "." + p + "."
        hs_header = b64(json.dumps({"alg": "HS256", "kid": self.issuer.kid, "typ": "JWT"}).encode())
        hs_input = hs_header + "." + p
        hs_secret = raw_public(self.issuer.key)
        alg_hs256 = hs_input + "." + b64(hmac.new(hs_secret, hs_input.encode(), hashlib.sha256).digest())

        cases = {
            "forged signature": body(forged_sig),
            "changed approver": body(forged_payload),
            "other key": body(other.token()),
            "other key under our kid": body(other_same_kid.token()),
            "expired": body(self.issuer.token(exp=now - 120)),
            "no exp": body(self.issuer.token(exp=None)),
            "exp not a number": body(self.issuer.token(exp="soon")),
            "not yet valid": body(self.issuer.token(nbf=now + 300)),
            "other issuer": body(self.issuer.token(iss="someone-else")),
            "token for another request": body(self.issuer.token(approval_request_id="ar_" + "0" * 32)),
            "token for another action": body(self.issuer.token(action_digest="sha256:" + "0" * 64)),
            "body for another request": body(good, approval_request_id="ar_" + "0" * 32),
            "body for another action": body(good, action_digest="sha256:" + "0" * 64),
            "decision deny": body(self.issuer.token(decision="deny")),
            "approved false": body(good, approved=False),
            "approved as a string": body(good, approved="true"),
            "approved missing": {k: v for k, v in body(good).items() if k != "approved"},
            "no subject": body(self.issuer.token(sub=None)),
            "missing assertion": {k: v for k, v in body(good).items() if k != "identity_assertion"},
            "assertion not a string": body({"token": good}),
            "alg none": body(alg_none),
            "alg HS256 keyed with the public key": body(alg_hs256),
            "no kid": body(self.issuer.token(header={"kid": None})),
            "crit header": body(self.issuer.token(header={"crit": ["exp"]})),
            "a checkpoint's typ": body(self.issuer.token(header={"typ": "approvebot-checkpoint+jwt"})),
            "no typ": body(self.issuer.token(header={"typ": None})),
            "two segments": body(h + "." + p),
            "garbage": body("not.a.jwt"),
            "body not a dict": [good],
        }
        for name, b in cases.items():
            with self.subTest(name):
                self.assertIsNone(self.verify(b, REQUEST))

    def test_refusal_is_logged_without_the_token(self):
        logger = logging.getLogger("approvebot_agt")
        logger.setLevel(logging.WARNING)
        self.addCleanup(logger.setLevel, logging.CRITICAL)
        token = self.issuer.token(decision="deny")
        with self.assertLogs("approvebot_agt", "WARNING") as logs:
            self.assertIsNone(self.verify(body(token), REQUEST))
        self.assertIn("decision", logs.output[0])
        self.assertNotIn(token.split(".")[2], logs.output[0])

    def test_request_without_binding(self):
        self.assertIsNone(self.verify(body(self.issuer.token()), {"approval_request_id": REQUEST_ID}))
        self.assertIsNone(self.verify(body(self.issuer.token()), None))
        self.assertIsNone(self.verify(body(self.issuer.token()), object()))

    def test_audience(self):
        v = make_response_verifier(jwks=self.issuer.jwks(), audience="payments-agent")
        self.assertEqual(v(body(self.issuer.token(aud="payments-agent")), REQUEST), "jane@company.com")
        self.assertIsNone(v(body(self.issuer.token(aud="other-agent")), REQUEST))
        self.assertIsNone(v(body(self.issuer.token(aud=None)), REQUEST))

    def test_audience_is_required(self):
        with self.assertRaises(TypeError):
            make_response_verifier(jwks=self.issuer.jwks())
        for aud in ("", None, ["payments-agent"]):
            with self.assertRaises(ValueError):
                make_response_verifier(jwks=self.issuer.jwks(), audience=aud)

    def test_key_file(self):
        with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as f:
            f.write(self.issuer.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.addCleanup(os.remove, f.name)
        v = make_response_verifier(key_file=f.name, audience="payments-agent")
        self.assertEqual(v(body(self.issuer.token()), REQUEST), "jane@company.com")
        # The pinned key's thumbprint is its kid: another kid is refused.
        self.assertIsNone(v(body(self.issuer.token(header={"kid": "other"})), REQUEST))
        self.assertIsNone(v(body(Issuer().token()), REQUEST))

    def test_needs_one_key_source(self):
        with self.assertRaises(ValueError):
            make_response_verifier(audience="payments-agent")
        with self.assertRaises(ValueError):
            make_response_verifier("https://x.example/jwks", jwks=self.issuer.jwks(), audience="payments-agent")
        with self.assertRaises(ValueError):
            make_response_verifier(jwks={"keys": [{"kty": "RSA", "kid": "r", "n": "x", "e": "AQAB"}]}, audience="payments-agent")


class JWKSServer(object):
    def __init__(self, jwks):
        self.jwks = jwks
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                data = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/.well-known/jwks.json" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class JWKSURLTest(unittest.TestCase):
    def test_fetches_caches_and_follows_rotation(self):
        first, second = Issuer(), Issuer()
        srv = JWKSServer(first.jwks())
        self.addCleanup(srv.close)
        v = make_response_verifier(srv.url, audience="payments-agent")
        self.assertEqual(v(body(first.token()), REQUEST), "jane@company.com")
        self.assertEqual(v(body(first.token()), REQUEST), "jane@company.com")
        self.assertEqual(srv.fetches, 1, "second verification should use the cache")
        # approvebot rotates its key: an unknown kid triggers one refetch.
        srv.jwks = second.jwks()
        approvebot_verifier._MIN_REFETCH_SECONDS = 0
        self.addCleanup(setattr, approvebot_verifier, "_MIN_REFETCH_SECONDS", 30)
        self.assertEqual(v(body(second.token()), REQUEST), "jane@company.com")
        self.assertEqual(srv.fetches, 2)

    def test_unknown_kid_refetch_is_rate_limited(self):
        issuer = Issuer()
        srv = JWKSServer(issuer.jwks())
        self.addCleanup(srv.close)
        v = make_response_verifier(srv.url, audience="payments-agent")
        self.assertEqual(v(body(issuer.token()), REQUEST), "jane@company.com")
        for _ in range(5):
            self.assertIsNone(v(body(Issuer().token()), REQUEST))
        self.assertEqual(srv.fetches, 1)

    def test_refuses_plain_http_to_other_hosts(self):
        with self.assertRaises(ValueError):
            make_response_verifier("http://approvebot.example/.well-known/jwks.json", audience="payments-agent")
        with self.assertRaises(ValueError):
            make_response_verifier("file:///etc/jwks.json", audience="payments-agent")

    def test_redirect_is_not_followed(self):
        issuer = Issuer()
        target = JWKSServer(issuer.jwks())
        self.addCleanup(target.close)

        class Redirect(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(302)
                self.send_header("Location", target.url)
                self.end_headers()

            def log_message(self, *args):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        v = make_response_verifier("http://127.0.0.1:%d/jwks" % srv.server_address[1], audience="payments-agent")
        self.assertIsNone(v(body(issuer.token()), REQUEST))
        self.assertEqual(target.fetches, 0)

    def test_unreachable_jwks_denies(self):
        srv = JWKSServer({"keys": []})
        url = srv.url
        srv.close()
        v = make_response_verifier(url, audience="payments-agent")
        self.assertIsNone(v(body(Issuer().token()), REQUEST))


class CLITest(unittest.TestCase):
    def run_cli(self, issuer, token, request_id=REQUEST_ID):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(issuer.jwks(), f)
        self.addCleanup(os.remove, f.name)
        return subprocess.run(
            [sys.executable, "-m", "approvebot_agt", "--jwks", f.name, "--issuer", "approvebot",
             "--audience", "payments-agent", "--action-digest", ACTION_DIGEST] + (["--request-id", request_id] if request_id else []),
            input=json.dumps(body(token)).encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
            cwd=PACKAGE_DIR)

    def test_accept(self):
        issuer = Issuer()
        res = self.run_cli(issuer, issuer.token())
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.decode().strip(), "jane@company.com")

    def run_legacy(self, issuer, token, sent, audience="payments-agent"):
        files = []
        for content in (json.dumps(issuer.jwks()).encode(), sent):
            with tempfile.NamedTemporaryFile("wb", delete=False) as f:
                f.write(content)
            self.addCleanup(os.remove, f.name)
            files.append(f.name)
        return subprocess.run(
            [sys.executable, "-m", "approvebot_agt", "--jwks", files[0], "--audience", audience,
             "--request-body", files[1]],
            input=json.dumps(body(token)).encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
            cwd=PACKAGE_DIR)

    def test_legacy(self):
        issuer = Issuer()
        sent = b'{"type": "approval_request", "action": "transfer"}'
        token = issuer.token(action_digest=None, aud="payments-agent",
                             body_digest="sha256:" + hashlib.sha256(sent).hexdigest())
        res = self.run_legacy(issuer, token, sent)
        self.assertEqual((res.returncode, res.stdout.decode().strip()), (0, "jane@company.com"), res.stderr)
        res = self.run_legacy(issuer, token, sent + b" ")
        self.assertEqual((res.returncode, res.stdout), (1, b""))
        self.assertIn(b"body_digest does not match", res.stderr)
        res = self.run_legacy(issuer, token, sent, audience="other-agent")
        self.assertIn(b"audience", res.stderr)

    def test_needs_a_request(self):
        issuer = Issuer()
        res = self.run_cli(issuer, issuer.token(), request_id=None)
        self.assertEqual(res.returncode, 2)
        self.assertIn(b"--request-body", res.stderr)

    def test_reject(self):
        issuer = Issuer()
        res = self.run_cli(issuer, issuer.token(), request_id="ar_" + "1" * 32)
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stdout, b"")
        self.assertIn(b"approval_request_id", res.stderr)


if __name__ == "__main__":
    unittest.main()
