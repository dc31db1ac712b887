"""load_chain: AGT's ApprovalChain from the JSON ``approvebot agt chain`` prints.

AGT's coordinator authorizes the single vote a transport returns only if the
approver is one of the stage's ``allowed_identities``
(approval_protocol/coordinator.py, ``ApprovalStage.authorizes``), so the
chain an agent configures must list the identities approvebot reports.
``approvebot agt chain --config FILE --chain ID`` prints them with AGT's own
field names; this turns that output into AGT's ``ApprovalChain``.
"""

import json


def _fail(where, what):
    raise ValueError("approvebot agt chain definition: %s: %s" % (where, what))


def load_chain(definition):
    """Return ``agentmesh.governance.approval_protocol.ApprovalChain``.

    ``definition`` is the JSON text (str or bytes), a path to a file holding
    it, or the parsed dict: ``chain_id`` and ``version`` (strings, as AGT
    types them) and ``stages``, each with ``allowed_identities`` (strings) and
    optionally ``stage_index`` (default: its position), ``allowed_roles`` and
    ``required`` (default true). Other keys are ignored. Raises ValueError
    naming the key that is wrong.
    """
    from agentmesh.governance.approval_protocol import ApprovalChain, ApprovalStage

    d = definition
    if isinstance(d, bytes):
        d = d.decode("utf-8")
    if isinstance(d, str):
        if not d.lstrip().startswith(("{", "[")):
            with open(d, encoding="utf-8") as f:
                d = f.read()
        try:
            d = json.loads(d)
        except ValueError as exc:
            _fail("JSON", str(exc))
    if not isinstance(d, dict):
        _fail("top level", "want a JSON object")
    for key, kind, name in (("chain_id", str, "a string"), ("version", str, "a string"), ("stages", list, "a list")):
        if not isinstance(d.get(key), kind) or (kind is str and not d[key]):
            _fail(key, "want %s, got %s" % (name, json.dumps(d.get(key))))
    if not d["stages"]:
        _fail("stages", "want at least one stage")
    stages, seen = [], set()
    for i, s in enumerate(d["stages"]):
        where = "stages[%d]" % i
        if not isinstance(s, dict):
            _fail(where, "want an object")
        index = s.get("stage_index", i)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            _fail(where + ".stage_index", "want a whole number")
        if index in seen:
            _fail(where + ".stage_index", "stage %d appears twice" % index)
        seen.add(index)
        lists = {}
        for key in ("allowed_identities", "allowed_roles"):
            val = s.get(key, [])
            if not isinstance(val, list) or not all(isinstance(x, str) and x for x in val):
                _fail(where + "." + key, "want a list of non-empty strings")
            lists[key] = frozenset(val)
        required = s.get("required", True)
        if not isinstance(required, bool):
            _fail(where + ".required", "want true or false")
        stages.append(ApprovalStage(index, allowed_identities=lists["allowed_identities"],
                                    allowed_roles=lists["allowed_roles"], required=required))
    return ApprovalChain(chain_id=d["chain_id"], version=d["version"], stages=tuple(stages))
