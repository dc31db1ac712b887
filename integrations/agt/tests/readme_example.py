"""Run one of README.md's examples, as written, against the AGT stand-in.

    python3 readme_example.py transport|legacy

in a directory where the example's files may be written (policy.yaml; for
transport, payments.agt-chain.json must already be there). The example's
approvebot URLs are replaced by $APPROVEBOT_URL (its /v1/approvals) and
$APPROVEBOT_JWKS_URL; APPROVEBOT_TOKEN is read by the example itself.
Prints one JSON line: what the governed call returned, or that it was
denied, and the approval AGT recorded.

Two knobs change what AGT generates, as an AGT caller may: AGT_IDS
("pd=pd_1,ar=ar_01...") fixes the ids the coordinator makes (models.py,
``_new_id``), and AGT_NAIVE_TIME=1 gives the coordinator a clock without a
time zone, so ``expires_at`` is sent without an offset.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import agt_standin  # noqa: E402

agt_standin.install()

if os.environ.get("AGT_IDS"):
    _fixed = dict(pair.split("=", 1) for pair in os.environ["AGT_IDS"].split(","))
    _generated = agt_standin._new_id
    agt_standin._new_id = lambda prefix: _fixed.get(prefix) or _generated(prefix)
if os.environ.get("AGT_NAIVE_TIME"):
    from datetime import datetime

    # ApprovalCoordinator's only default is its clock.
    agt_standin.ApprovalCoordinator.__init__.__defaults__ = (lambda: datetime.utcnow(),)


def example(name):
    with open(os.path.join(os.path.dirname(HERE), "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- example: %s -->\n```\w+\n(.*?)```" % re.escape(name), text, re.S)
    if m is None:
        raise SystemExit("README.md has no example %r" % name)
    return m.group(1)


def main():
    kind = sys.argv[1]
    with open("policy.yaml", "w", encoding="utf-8") as f:
        f.write(example("policy"))
    code = example(kind)
    for old, env in (("https://approvebot.example/v1/approvals", "APPROVEBOT_URL"),
                     ("https://approvebot.example/.well-known/jwks.json", "APPROVEBOT_JWKS_URL")):
        if old not in code:
            raise SystemExit("the %s example does not use %s" % (kind, old))
        code = code.replace('"%s"' % old, repr(os.environ[env]))
    scope = {"__name__": "readme_example"}
    from agentmesh.governance import GovernanceDenied

    out = {}
    try:
        exec(compile(code, "README.md:" + kind, "exec"), scope)  # noqa: S102
        out["result"] = scope["result"]
    except GovernanceDenied as exc:
        out["denied"] = str(exc)
    governed = scope["safe_transfer"]
    a = governed.last_approval
    out.update(approved=a.approved, approver=a.approver, reason=a.reason,
               reason_code=governed.last_reason_code,
               approval_request_id=governed.last_request.approval_request_id if governed.last_request else None,
               policy_decision_id=governed.last_request.policy_decision_id if governed.last_request else None,
               expires_at=governed.last_request.expires_at.isoformat() if governed.last_request else None,
               decision_type="%s.%s" % (type(a).__module__, type(a).__name__))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
