"""Tests of ApprovebotTransport, ApprovebotApproval and load_chain, offline.

A loopback stand-in of approvebot's /v1/approvals answers as approvebot does
(signed with a test key) or tampered; the classes are driven through the
stand-in of AGT's govern (agt_standin), as AGT drives them.
"""

import hashlib
import http.server
import json
import logging
import os
import threading
import time
import unittest
from datetime import timedelta

from approvebot_agt import ApprovebotApproval, ApprovebotTransport, build_webhook_request
from approvebot_agt import _agt

from . import agt_standin as agt
from .test_verifier import Issuer

logging.getLogger("approvebot_agt").setLevel(logging.CRITICAL)

CALLER = "payments-agent"
TOKEN = "payments-agent-token"

POLICY = """
name: financial-approvals
version: "2026.12.01"
rules:
  - name: approve-large-transfer
    condition: "action.type == 'transfer'"
    action: require_approval
    approvers: [treasury-ops]
"""


def transfer(action, amount, to):
    return "sent %s to %s" % (amount, to)


class FakeApprovebot(object):
    """Answers POST /v1/approvals as approvebot does; tests change how."""

    def __init__(self):
        self.issuer = Issuer()
        self.received = []  # (bytes, headers)
        self.approver = "jane@company.com"
        self.decision = "allow"
        self.claims = {}  # overrides of the signed claims
        self.fields = {}  # overrides of the answer body
        self.status = 200
        self.raw = None  # a raw answer body instead of JSON
        self.release = threading.Event()
        self.hang = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((data, dict(self.headers)))
                if outer.hang:
                    outer.release.wait(60)
                    return
                out = outer.raw if outer.raw is not None else json.dumps(outer.answer(data)).encode()
                self.send_response(outer.status)
                if outer.status in (301, 302, 307, 308):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/v1/approvals" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def answer(self, data):
        req = json.loads(data)
        allow = self.decision == "allow"
        body = {"approved": allow, "approver": self.approver, "reason": "ok" if allow else "too much",
                "status": "approved" if allow else "denied"}
        claims = {"sub": self.approver, "aud": CALLER, "decision": self.decision, "status": body["status"]}
        if req.get("schema_version") == "1.0":
            for k in ("approval_request_id", "action_digest", "input_digest"):
                body[k] = req[k]
                claims[k] = req[k]
            body.update(schema_version="1.0", decision=self.decision)
        else:
            body["approval_request_id"] = claims["approval_request_id"] = "ab1234"
            claims["body_digest"] = "sha256:" + hashlib.sha256(data).hexdigest()
            claims["action_digest"] = None
        claims.update(self.claims)
        body["identity_assertion"] = self.issuer.token(**claims)
        body.update(self.fields)
        return {k: v for k, v in body.items() if v is not None}

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def one_stage_chain(*identities):
    return agt.ApprovalChain("payments", "7", (agt.ApprovalStage(0, frozenset(identities)),))


class Base(unittest.TestCase):
    def setUp(self):
        self.fake = FakeApprovebot()
        self.addCleanup(self.fake.close)
        self.jwks = self.fake.issuer.jwks()

    def kwargs(self, **kw):
        args = dict(caller=CALLER, token=TOKEN, jwks=self.jwks)
        args.update(kw)
        return args


class TransportTest(Base):
    def govern(self, transport=None, chain=None):
        chain = chain or one_stage_chain("jane@company.com")
        coordinator = agt.ApprovalCoordinator(agt.InMemoryApprovalStore(), {chain.chain_id: chain})
        return agt.govern(transfer, policy=POLICY, agent_id=CALLER, approval_coordinator=coordinator,
                          approval_chain_id=chain.chain_id,
                          approval_transport=transport or ApprovebotTransport(self.fake.url, **self.kwargs()))

    def test_approval_runs_the_tool(self):
        g = self.govern()
        self.assertEqual(g(action="transfer", amount=5000, to="ACME-1"), "sent 5000 to ACME-1")
        self.assertEqual(g.last_approval.approver, "jane@company.com")
        self.assertEqual(g.last_reason_code, "ok")

    def test_posts_what_agt_posts(self):
        g = self.govern()
        g(action="transfer", amount=5000, to="ACME-1")
        data, headers = self.fake.received[0]
        # Byte for byte what VersionedWebhookApproval.request_decision sends.
        req = g.last_request
        want = {"schema_version": "1.0", "type": "approval_request", "input_digest": req.input_digest()}
        want.update(req.presented_canonical())
        self.assertEqual(data, json.dumps(want).encode("utf-8"))
        self.assertEqual(data, json.dumps(build_webhook_request(req)).encode("utf-8"))
        self.assertEqual(headers["Authorization"], "Bearer " + TOKEN)
        self.assertEqual(headers["Content-Type"], "application/json")

    def test_refusals(self):
        other, same_kid = Issuer(), Issuer()
        same_kid.kid = self.fake.issuer.kid
        now = int(time.time())
        cases = {
            "bad signature": dict(claims={"sub": "mallory@company.com"}, forge=True),
            "no key": dict(issuer=other),
            "bad signature ": dict(issuer=same_kid),
            "expired": dict(claims={"exp": now - 3600, "iat": now - 4000, "nbf": now - 4000}),
            "audience": dict(claims={"aud": "other-agent"}),
            "assertion approval_request_id": dict(claims={"approval_request_id": "ar_" + "0" * 32}),
            "assertion action_digest": dict(claims={"action_digest": "sha256:" + "0" * 64}),
            "input_digest": dict(claims={"input_digest": "sha256:" + "0" * 64}),
            "decision is 'deny'": dict(claims={"decision": "deny"}),
            "issuer": dict(claims={"iss": "someone-else"}),
            "no identity_assertion": dict(fields={"identity_assertion": None}, drop=True),
        }
        for name, case in cases.items():
            with self.subTest(name):
                self.fake.claims = case.get("claims", {})
                self.fake.fields = case.get("fields", {})
                saved = self.fake.issuer
                if "issuer" in case:
                    self.fake.issuer = case["issuer"]
                if case.get("forge"):
                    real = self.fake.answer

                    def forged(data, real=real):
                        self.fake.claims = {}
                        body = real(data)
                        h, p, s = body["identity_assertion"].split(".")
                        self.fake.claims = case["claims"]
                        h2, p2, _ = real(data)["identity_assertion"].split(".")
                        body["identity_assertion"] = h2 + "." + p2 + "." + s
                        return body

                    self.fake.answer = forged
                try:
                    g = self.govern()
                    with self.assertRaises(agt.GovernanceDenied):
                        g(action="transfer", amount=5000, to="ACME-1")
                    a = g.last_approval
                    self.assertFalse(a.approved)
                    self.assertEqual(a.approver, "webhook:rejected")
                    self.assertIn("unverified approver identity", a.reason)
                    self.assertIn(name.strip(), a.reason)
                    # The vote is rejected by the stage: not an allowed identity.
                    self.assertIn("not permitted", g.last_reason_code)
                finally:
                    self.fake.issuer = saved
                    self.fake.answer = FakeApprovebot.answer.__get__(self.fake)
                    self.fake.claims = self.fake.fields = {}

    def test_binding_mismatch_in_the_body(self):
        for key in ("approval_request_id", "action_digest"):
            with self.subTest(key):
                self.fake.fields = {key: "x"}
                d = ApprovebotTransport(self.fake.url, **self.kwargs()).request_decision(self.request())
                self.assertEqual((d.approved, d.approver, d.reason), (False, "webhook:binding-mismatch", key + " mismatch"))

    def request(self):
        binding = agt.ActionBinding("tool.invoke", CALLER, agt.ActionTarget("transfer", "1"), {"amount": 1})
        coordinator = agt.ApprovalCoordinator(agt.InMemoryApprovalStore(), {"payments": one_stage_chain("x")})
        return coordinator.open_request(binding, policy_rule_id="r", policy_version="1", chain_id="payments",
                                        ttl_seconds=600)[1]

    def test_denial_is_honoured(self):
        self.fake.decision = "deny"
        self.fake.approver = "carl@company.com"
        g = self.govern(chain=one_stage_chain("jane@company.com", "carl@company.com"))
        with self.assertRaises(agt.GovernanceDenied) as e:
            g(action="transfer", amount=5000, to="ACME-1")
        self.assertEqual((g.last_approval.approved, g.last_approval.approver), (False, "carl@company.com"))
        # AGT records the deny at stage 0 and the chain resolves to deny.
        self.assertEqual(g.last_reason_code, "not_terminal_allow")
        self.assertIn("not_terminal_allow", str(e.exception))

    def test_verified_approver_outside_the_stage_is_denied_by_agt(self):
        g = self.govern(chain=one_stage_chain("bob@company.com"))
        with self.assertRaises(agt.GovernanceDenied):
            g(action="transfer", amount=5000, to="ACME-1")
        self.assertTrue(g.last_approval.approved)
        self.assertIn("'jane@company.com' not permitted for stage 0", g.last_reason_code)

    def test_transport_failures_deny_and_say_why(self):
        t = ApprovebotTransport(self.fake.url, **self.kwargs(timeout_seconds=0.5))
        cases = [
            ("202", dict(status=202), "system:webhook-error", "still pending"),
            ("400", dict(status=400, raw=b'{"error":"approval_request_id: want an id","field":"approval_request_id","approved":false}'),
             "system:webhook-error", "HTTP 400: approval_request_id: want an id (field approval_request_id)"),
            ("redirect", dict(status=307), "system:webhook-error", "HTTP 307"),
            ("not JSON", dict(raw=b"<html>"), "webhook:rejected", "not JSON"),
            ("not an object", dict(raw=b"[true]"), "webhook:rejected", "not a JSON object"),
            ("approved a string", dict(fields={"approved": "true"}), "webhook:rejected", "malformed 'approved'"),
            ("timeout", dict(hang=True), "system:timeout", "timeout: no answer from approvebot within 0.5 s"),
        ]
        for name, setup, approver, why in cases:
            with self.subTest(name):
                self.fake.status, self.fake.raw, self.fake.fields, self.fake.hang = 200, None, {}, False
                for k, v in setup.items():
                    setattr(self.fake, k, v)
                d = t.request_decision(self.request())
                self.assertFalse(d.approved)
                self.assertEqual(d.approver, approver)
                self.assertIn(why, d.reason)
        self.fake.hang = False

    def test_waits_for_the_request_expiry_by_default(self):
        from approvebot_agt import transport

        self.fake.hang = True
        self.addCleanup(setattr, transport, "MIN_WAIT_SECONDS", transport.MIN_WAIT_SECONDS)
        transport.MIN_WAIT_SECONDS = 0.3
        req = self.request()
        req.expires_at = agt.utcnow() - timedelta(seconds=1)
        d = ApprovebotTransport(self.fake.url, **self.kwargs()).request_decision(req)
        self.assertEqual((d.approved, d.approver), (False, "system:timeout"))
        self.assertIn("within 0.3 s", d.reason)

    def test_unreachable(self):
        url = self.fake.url
        self.fake.close()
        d = ApprovebotTransport(url, **self.kwargs()).request_decision(self.request())
        self.assertEqual((d.approved, d.approver), (False, "system:webhook-error"))
        self.assertIn("cannot reach approvebot", d.reason)

    def test_request_that_cannot_be_built(self):
        d = ApprovebotTransport(self.fake.url, **self.kwargs()).request_decision(object())
        self.assertFalse(d.approved)
        self.assertIn("cannot build the approval request", d.reason)
        self.assertEqual(self.fake.received, [])

    def test_expired_request_is_not_executed(self):
        # approvebot approved, but AGT's own clock says the request expired.
        g = self.govern()
        g._ttl = 0.000001
        with self.assertRaises(agt.GovernanceDenied):
            g(action="transfer", amount=5000, to="ACME-1")
        self.assertIn("expired", g.last_reason_code)

    def test_constructor_refuses_bad_configuration(self):
        bad = [
            dict(url="ftp://x/v1/approvals"),
            dict(caller=""),
            dict(token=None),
            dict(headers={"Authorization": "Bearer a"}),
            dict(jwks=None),
            dict(jwks_url="http://approvebot.example/.well-known/jwks.json", jwks=None),
            dict(timeout_seconds=0),
        ]
        for b in bad:
            with self.subTest(b):
                kw = self.kwargs()
                url = b.pop("url", self.fake.url)
                kw.update(b)
                with self.assertRaises(ValueError):
                    ApprovebotTransport(url, **kw)
        ApprovebotTransport(self.fake.url, **self.kwargs(token=None, headers={"authorization": "bearer x"}))

    def test_strict_mode(self):
        os.environ["AGT_APPROVAL_STRICT"] = "1"
        self.addCleanup(os.environ.pop, "AGT_APPROVAL_STRICT")
        with self.assertRaises(ValueError):
            agt.WebhookApproval(self.fake.url)
        t = ApprovebotTransport(self.fake.url, **self.kwargs())
        a = ApprovebotApproval(self.fake.url, **self.kwargs())
        self.assertNotIsInstance(t, agt.WebhookApproval)
        self.assertNotIsInstance(a, agt.WebhookApproval)
        self.assertEqual(self.govern(t)(action="transfer", amount=1, to="A"), "sent 1 to A")


class LegacyTest(Base):
    def govern(self, handler=None):
        return agt.govern(transfer, policy=POLICY, agent_id=CALLER,
                          approval_handler=handler or ApprovebotApproval(self.fake.url, **self.kwargs()))

    def test_approval_sends_the_context_and_runs_the_tool(self):
        g = self.govern()
        self.assertEqual(g(action="transfer", amount=5000, to="ACME-1"), "sent 5000 to ACME-1")
        self.assertIsInstance(g.last_approval, _agt.ApprovalDecision)
        self.assertEqual((g.last_approval.approved, g.last_approval.approver), (True, "jane@company.com"))
        data, _ = self.fake.received[0]
        body = json.loads(data)
        self.assertEqual(list(body), ["type", "rule_name", "policy_name", "agent_id", "action", "approvers",
                                      "requested_at", "context"])
        self.assertEqual(body["context"], {"action": {"type": "transfer"}, "amount": {"value": 5000},
                                           "to": {"value": "ACME-1"}})
        self.assertEqual((body["rule_name"], body["policy_name"], body["agent_id"], body["approvers"]),
                         ("approve-large-transfer", "financial-approvals", CALLER, ["treasury-ops"]))
        self.assertTrue(body["requested_at"].endswith("+00:00"))

    def test_context_that_json_cannot_carry(self):
        g = self.govern()
        g(action="transfer", amount=float("nan"), to=object())
        body = json.loads(self.fake.received[0][0])
        self.assertEqual(body["context"]["amount"], {"value": "nan"})
        self.assertTrue(body["context"]["to"]["value"].startswith("<object object"))

    def test_refusals(self):
        now = int(time.time())
        cases = {
            "body_digest does not match": dict(claims={"body_digest": "sha256:" + "0" * 64}),
            "audience": dict(claims={"aud": "other-agent"}),
            "expired": dict(claims={"exp": now - 3600, "iat": now - 4000, "nbf": now - 4000}),
            "body approval_request_id does not match": dict(fields={"approval_request_id": "zz999"}),
            "decision is 'deny'": dict(claims={"decision": "deny"}),
            "no identity_assertion": dict(fields={"identity_assertion": ""}),
            "no key": dict(other=True),
        }
        for name, case in cases.items():
            with self.subTest(name):
                self.fake.claims = case.get("claims", {})
                self.fake.fields = case.get("fields", {})
                saved = self.fake.issuer
                if case.get("other"):
                    self.fake.issuer = Issuer()
                try:
                    g = self.govern()
                    with self.assertRaises(agt.GovernanceDenied):
                        g(action="transfer", amount=5000, to="ACME-1")
                    self.assertFalse(g.last_approval.approved)
                    self.assertEqual(g.last_approval.approver, "webhook:rejected")
                    self.assertIn(name, g.last_approval.reason)
                finally:
                    self.fake.issuer, self.fake.claims, self.fake.fields = saved, {}, {}

    def test_forged_signature(self):
        real = self.fake.answer

        def forged(data):
            body = real(data)
            h, p, s = body["identity_assertion"].split(".")
            body["identity_assertion"] = h + "." + p + "." + ("A" if s[0] != "A" else "B") + s[1:]
            return body

        self.fake.answer = forged
        g = self.govern()
        with self.assertRaises(agt.GovernanceDenied):
            g(action="transfer", amount=5000, to="ACME-1")
        self.assertIn("bad signature", g.last_approval.reason)

    def test_denial(self):
        self.fake.decision = "deny"
        g = self.govern()
        with self.assertRaises(agt.GovernanceDenied) as e:
            g(action="transfer", amount=5000, to="ACME-1")
        self.assertEqual((g.last_approval.approved, g.last_approval.reason), (False, "too much"))
        self.assertIn("Approval rejected by jane@company.com: too much", str(e.exception))

    def test_inside_the_coordinator(self):
        # govern with a coordinator and no transport bridges the handler
        # through LegacyHandlerAdapter; the context still reaches approvebot.
        chain = one_stage_chain("jane@company.com")
        coordinator = agt.ApprovalCoordinator(agt.InMemoryApprovalStore(), {chain.chain_id: chain})
        g = agt.govern(transfer, policy=POLICY, agent_id=CALLER, approval_coordinator=coordinator,
                       approval_chain_id="payments", approval_handler=ApprovebotApproval(self.fake.url, **self.kwargs()))
        self.assertEqual(g(action="transfer", amount=7, to="B"), "sent 7 to B")
        self.assertEqual(json.loads(self.fake.received[0][0])["context"]["amount"], {"value": 7})


class MutationTest(Base):
    """Random damage to real answers: never an exception, never an approval
    that names anyone but the signer's approver."""

    ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
    JUNK = [None, True, False, 0, -1, 1e308, "", "x" * 1000, [], {}, ["allow"], {"a": 1}, "mallory@company.com"]

    def mutate(self, rng, body):
        body = dict(body)
        kind = rng.randrange(3)
        if kind == 0:  # one character of the token
            tok = body["identity_assertion"]
            i = rng.randrange(len(tok))
            c = rng.choice([x for x in self.ALPHABET if x != tok[i]])
            body["identity_assertion"] = tok[:i] + c + tok[i + 1:]
        elif kind == 1:  # one field of the body
            body[rng.choice(sorted(body))] = rng.choice(self.JUNK)
        else:  # the token's claims, re-encoded under the old signature
            import base64
            h, p, sig = body["identity_assertion"].split(".")
            claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
            claims[rng.choice(sorted(claims))] = rng.choice(self.JUNK)
            p = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            body["identity_assertion"] = h + "." + p + "." + sig
        return body

    def check(self, make, ask):
        import random

        rng = random.Random(9)
        real = self.fake.answer
        self.fake.answer = lambda data: self.mutate(rng, real(data))
        client = make(self.fake.url, **self.kwargs())
        approvals = 0
        for _ in range(150):
            d = ask(client)
            self.assertIsInstance(d.approved, bool)
            if d.approved:
                approvals += 1
                self.assertEqual(d.approver, "jane@company.com")
            else:
                self.assertTrue(d.reason)
        # Only damage that changes nothing signed or checked can pass
        # (a body field the classes do not read, a padding bit).
        self.assertLess(approvals, 50)

    def test_transport(self):
        self.check(ApprovebotTransport, lambda t: t.request_decision(TransportTest.request(self)))

    def test_legacy(self):
        req = agt.ApprovalRequest(action="transfer", rule_name="r", policy_name="p", agent_id=CALLER,
                                  context={"amount": {"value": 1}})
        self.check(ApprovebotApproval, lambda a: a.request_approval(req))


class ChainTest(unittest.TestCase):
    def setUp(self):
        agt.install()
        self.addCleanup(self._uninstall)

    @staticmethod
    def _uninstall():
        import sys

        for name in [n for n in sys.modules if n == "agentmesh" or n.startswith("agentmesh.")]:
            del sys.modules[name]

    def test_load(self):
        from approvebot_agt import load_chain

        c = load_chain('{"chain_id": "high-risk-tools", "version": "3", "stages": ['
                       '{"stage_index": 0, "allowed_identities": ["jane@company.com", "slack:T0/U0BOB"]},'
                       '{"stage_index": 1, "allowed_identities": ["sam@company.com"], "required": true}],'
                       '"warnings": ["x"]}')
        self.assertEqual((c.chain_id, c.version, len(c.stages)), ("high-risk-tools", "3", 2))
        self.assertTrue(c.stage(0).authorizes("slack:T0/U0BOB", ()))
        self.assertFalse(c.stage(0).authorizes("sam@company.com", ()))
        self.assertIsInstance(c, agt.ApprovalChain)

    def test_refusals_name_the_key(self):
        from approvebot_agt import load_chain

        cases = {
            "[]": "top level",
            "{": "JSON",
            '{"version": "3", "stages": [{}]}': "chain_id",
            '{"chain_id": "c", "version": 3, "stages": [{}]}': "version",
            '{"chain_id": "c", "version": "3", "stages": []}': "stages",
            '{"chain_id": "c", "version": "3", "stages": [1]}': "stages[0]",
            '{"chain_id": "c", "version": "3", "stages": [{"allowed_identities": "jane"}]}': "stages[0].allowed_identities",
            '{"chain_id": "c", "version": "3", "stages": [{"stage_index": 0}, {"stage_index": 0}]}': "stages[1].stage_index",
            '{"chain_id": "c", "version": "3", "stages": [{"required": "yes"}]}': "stages[0].required",
        }
        for text, key in cases.items():
            with self.subTest(text):
                with self.assertRaises(ValueError) as e:
                    load_chain(text)
                self.assertIn(key + ":", str(e.exception))


    def test_damaged_definitions_raise_only_value_error(self):
        import random

        from approvebot_agt import load_chain

        rng = random.Random(3)
        good = {"chain_id": "c", "version": "3", "stages": [{"stage_index": 0, "allowed_identities": ["a"],
                                                                "allowed_roles": [], "required": True}]}
        junk = [None, True, 0, -1, 1.5, "", "x", [], {}, [None], ["a", 1], {"a": []}]
        for _ in range(500):
            d = json.loads(json.dumps(good))
            target = d if rng.random() < 0.4 else d["stages"][0]
            target[rng.choice(sorted(target) + ["extra"])] = rng.choice(junk)
            try:
                c = load_chain(json.dumps(d))
            except ValueError:
                continue
            self.assertIsInstance(c.version, str)
            self.assertTrue(all(isinstance(i, str) for st in c.stages for i in st.allowed_identities))


class TimeTest(unittest.TestCase):
    def test_naive_expiry_is_sent_as_agt_sends_it(self):
        binding = agt.ActionBinding("tool.invoke", CALLER, agt.ActionTarget("transfer", "1"), {})
        naive = agt.ApprovalCoordinator(agt.InMemoryApprovalStore(), {"payments": one_stage_chain("x")},
                                        clock=lambda: agt.utcnow().replace(tzinfo=None))
        req = naive.open_request(binding, policy_rule_id="r", policy_version="1", chain_id="payments",
                                 ttl_seconds=60)[1]
        body = build_webhook_request(req)
        self.assertNotIn("+", body["expires_at"])
        self.assertEqual(body["expires_at"], (req.expires_at + timedelta(0)).isoformat())


if __name__ == "__main__":
    unittest.main()
