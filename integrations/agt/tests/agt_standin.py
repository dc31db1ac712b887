"""A small, faithful stand-in of the AGT calls approvebot's classes are used in.

AGT (microsoft/agent-governance-toolkit, Python package ``agentmesh``) cannot
be installed here, so this file copies, from AGT's public source, just what
``govern`` does around an approval: each piece names the AGT file and
function it mirrors, under agent-governance-python/agent-mesh/src/agentmesh/
governance/. Behaviour is kept; logging, audit, rings, advisory checks and
TRACE are left out because they do not touch the approval.

``install()`` registers these pieces under AGT's module names
(``agentmesh.governance``, ``.approval``, ``.approval_protocol``,
``.approval_bridge``), so code written for AGT runs unchanged against it.

"""

import hashlib
from abc import ABC, abstractmethod
import json
import os
import re
import sys
import threading
import types
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional


# -- approval_protocol/digest.py: canonicalize, sha256_jcs --------------------

def _emit(value, out):
    if value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("JCS cannot serialize NaN or Infinity")
        out.append(str(int(value)) if value.is_integer() else repr(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _emit(item, out)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError("JCS object keys must be strings, got %s" % type(key).__name__)
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _emit(value[key], out)
        out.append("}")
    else:
        raise TypeError("value of type %s is not JCS-serializable" % type(value).__name__)


def canonicalize(value):
    parts = []
    _emit(value, parts)
    return "".join(parts).encode("utf-8")


def sha256_jcs(value):
    return "sha256:" + hashlib.sha256(canonicalize(value)).hexdigest()


# -- approval_protocol/binding.py: ActionTarget, ActionBinding ----------------

@dataclass(frozen=True)
class ActionTarget:
    tool_name: str
    tool_schema_version: str
    resource: Optional[str] = None

    def to_canonical(self):
        return {"tool_name": self.tool_name, "tool_schema_version": self.tool_schema_version,
                "resource": self.resource}


@dataclass(frozen=True)
class ActionBinding:
    operation: str
    agent_id: str
    target: ActionTarget
    parameters: dict = field(default_factory=dict)
    subject_id: Optional[str] = None
    schema_version: str = "1.0"

    def to_canonical(self):
        return {"schema_version": self.schema_version, "operation": self.operation, "agent_id": self.agent_id,
                "subject_id": self.subject_id, "target": self.target.to_canonical(),
                "parameters": dict(self.parameters)}

    def digest(self):
        return sha256_jcs(self.to_canonical())


# -- approval_protocol/models.py: ApprovalRequest, ApprovalChainEntry,
#    ApprovalResolution (enums as their string values) -------------------------

def utcnow():
    return datetime.now(timezone.utc)


def _new_id(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex)


@dataclass
class ProtocolApprovalRequest:
    """models.ApprovalRequest (the protocol request a transport receives)."""

    policy_decision_id: str
    action_digest: str
    agent_id: str
    operation: str
    policy_version: str
    approval_chain_id: str
    approval_chain_version: str
    expires_at: datetime
    subject_id: Optional[str] = None
    target_resource: Optional[str] = None
    fail_closed_on_timeout: bool = True
    status: str = "pending"
    approval_request_id: str = field(default_factory=lambda: _new_id("ar"))
    requested_at: datetime = field(default_factory=utcnow)

    def presented_canonical(self):
        return {
            "approval_request_id": self.approval_request_id,
            "policy_decision_id": self.policy_decision_id,
            "action_digest": self.action_digest,
            "agent_id": self.agent_id,
            "subject_id": self.subject_id,
            "operation": self.operation,
            "target_resource": self.target_resource,
            "policy_version": self.policy_version,
            "approval_chain_id": self.approval_chain_id,
            "approval_chain_version": self.approval_chain_version,
            "expires_at": self.expires_at.isoformat(),
        }

    def input_digest(self):
        return sha256_jcs(self.presented_canonical())


@dataclass
class ApprovalChainEntry:
    approval_request_id: str
    stage_index: int
    approver_kind: str
    approver_identity: str
    identity_assurance: str
    decision: str
    input_digest: str
    reason_code: str = ""
    previous_entry_digest: Optional[str] = None
    chain_entry_id: str = field(default_factory=lambda: _new_id("ace"))
    decided_at: datetime = field(default_factory=utcnow)
    entry_digest: Optional[str] = None

    def compute_digest(self):
        return sha256_jcs({
            "approval_request_id": self.approval_request_id, "chain_entry_id": self.chain_entry_id,
            "stage_index": self.stage_index, "approver_kind": self.approver_kind,
            "approver_identity": self.approver_identity, "identity_assurance": self.identity_assurance,
            "decision": self.decision, "reason_code": self.reason_code, "input_digest": self.input_digest,
            "previous_entry_digest": self.previous_entry_digest, "decided_at": self.decided_at.isoformat(),
        })

    def seal(self):
        self.entry_digest = self.compute_digest()
        return self

    def verify_digest(self):
        return self.entry_digest is not None and self.entry_digest == self.compute_digest()


@dataclass
class ApprovalResolution:
    approval_request_id: str
    outcome: str  # allow | deny | expired
    action_digest: str
    policy_version: str
    approval_chain_version: str
    final_entry_digest: Optional[str] = None
    approval_resolution_id: str = field(default_factory=lambda: _new_id("apr"))
    resolved_at: datetime = field(default_factory=utcnow)


# -- approval_protocol/store.py: InMemoryApprovalStore ------------------------

class InMemoryApprovalStore(object):
    def __init__(self):
        self._lock = threading.RLock()
        self._requests, self._entries, self._resolutions = {}, {}, {}

    def save_request(self, request):
        with self._lock:
            self._requests[request.approval_request_id] = request
            self._entries.setdefault(request.approval_request_id, [])

    def get_request(self, rid):
        return self._requests.get(rid)

    def set_status(self, rid, status):
        with self._lock:
            if rid in self._requests:
                self._requests[rid].status = status

    def append_entry(self, entry):
        with self._lock:
            self._entries.setdefault(entry.approval_request_id, []).append(entry)

    def get_entries(self, rid):
        return list(self._entries.get(rid, []))

    def save_resolution(self, resolution):
        self._resolutions[resolution.approval_request_id] = resolution

    def get_resolution(self, rid):
        return self._resolutions.get(rid)

    def consume(self, rid):
        with self._lock:
            request = self._requests.get(rid)
            if request is None or request.status != "allowed":
                return False
            request.status = "consumed"
            return True


# -- approval_protocol/coordinator.py: ApprovalStage, ApprovalChain,
#    ApprovalCoordinator.{open_request, submit_entry, validate_for_execution} --

class ApprovalProtocolError(Exception):
    pass


@dataclass(frozen=True)
class ExecutionDecision:
    allowed: bool
    reason_code: str


@dataclass(frozen=True)
class ApprovalStage:
    stage_index: int
    allowed_identities: frozenset = frozenset()
    allowed_roles: frozenset = frozenset()
    required: bool = True

    def authorizes(self, identity, roles):
        if identity in self.allowed_identities:
            return True
        return bool(self.allowed_roles.intersection(roles))


@dataclass(frozen=True)
class ApprovalChain:
    chain_id: str
    version: str
    stages: tuple

    def stage(self, stage_index):
        for stage in self.stages:
            if stage.stage_index == stage_index:
                return stage
        return None


@dataclass
class ApprovalCoordinator:
    store: Any
    chains: dict
    clock: Callable[[], datetime] = field(default=utcnow)

    def open_request(self, binding, *, policy_rule_id, policy_version, chain_id, ttl_seconds,
                     target_resource=None, fail_closed_on_timeout=True):
        chain = self.chains.get(chain_id)
        if chain is None:
            raise ApprovalProtocolError("unknown approval chain: %r" % (chain_id,))
        action_digest = binding.digest()
        policy_decision_id = _new_id("pd")  # PolicyDecisionRecord's default id
        request = ProtocolApprovalRequest(
            policy_decision_id=policy_decision_id, action_digest=action_digest, agent_id=binding.agent_id,
            operation=binding.operation, policy_version=policy_version, approval_chain_id=chain.chain_id,
            approval_chain_version=chain.version, expires_at=self.clock() + timedelta(seconds=ttl_seconds),
            subject_id=binding.subject_id,
            target_resource=target_resource if target_resource is not None else binding.target.resource,
            fail_closed_on_timeout=fail_closed_on_timeout)
        self.store.save_request(request)
        return policy_decision_id, request

    def submit_entry(self, approval_request_id, *, stage_index, approver_kind, approver_identity,
                     identity_assurance, decision, reason_code="", roles=(), chain_entry_id=None):
        request = self.store.get_request(approval_request_id)
        if request is None:
            raise ApprovalProtocolError("unknown approval request: %r" % (approval_request_id,))
        if self._expire_if_due(request):
            raise ApprovalProtocolError("approval request has expired")
        if request.status != "pending":
            raise ApprovalProtocolError("approval request is not pending (status=%s)" % request.status)
        chain = self.chains[request.approval_chain_id]
        stage = chain.stage(stage_index)
        if stage is None:
            raise ApprovalProtocolError("unknown stage index: %d" % stage_index)
        advisory = approver_kind == "llm_advisory"
        if not advisory and not stage.authorizes(approver_identity, roles):
            raise ApprovalProtocolError("identity %r not permitted for stage %d" % (approver_identity, stage_index))
        prior = self.store.get_entries(approval_request_id)
        entry = ApprovalChainEntry(
            approval_request_id=approval_request_id, stage_index=stage_index, approver_kind=approver_kind,
            approver_identity=approver_identity, identity_assurance=identity_assurance, decision=decision,
            input_digest=request.input_digest(), reason_code=reason_code,
            previous_entry_digest=prior[-1].entry_digest if prior else None).seal()
        self.store.append_entry(entry)
        if not advisory:
            self._maybe_resolve(request, chain)
        return entry

    def _maybe_resolve(self, request, chain):
        if self.store.get_resolution(request.approval_request_id) is not None:
            return
        entries = [e for e in self.store.get_entries(request.approval_request_id) if e.approver_kind != "llm_advisory"]
        for entry in entries:
            if entry.decision == "deny":
                self._resolve(request, "deny", entry.entry_digest)
                return
        allowed = {e.stage_index for e in entries if e.decision == "allow"}
        required = {s.stage_index for s in chain.stages if s.required}
        final = entries[-1].entry_digest if entries else None
        if not required:
            self._resolve(request, "deny", final)
        elif required.issubset(allowed):
            self._resolve(request, "allow", final)

    def _resolve(self, request, outcome, final_entry_digest):
        self.store.save_resolution(ApprovalResolution(
            approval_request_id=request.approval_request_id, outcome=outcome, action_digest=request.action_digest,
            policy_version=request.policy_version, approval_chain_version=request.approval_chain_version,
            final_entry_digest=final_entry_digest))
        self.store.set_status(request.approval_request_id,
                              {"allow": "allowed", "deny": "denied", "expired": "expired"}[outcome])

    def validate_for_execution(self, approval_request_id, *, current_action_digest, current_policy_version,
                               current_chain_version, consume=True):
        try:
            request = self.store.get_request(approval_request_id)
            if request is None:
                return ExecutionDecision(False, "unknown_request")
            self._expire_if_due(request)
            resolution = self.store.get_resolution(approval_request_id)
            if resolution is None:
                return ExecutionDecision(False, "no_resolution")
            if resolution.outcome == "expired":
                return ExecutionDecision(False, "expired")
            if resolution.outcome != "allow":
                return ExecutionDecision(False, "not_terminal_allow")
            if request.status == "consumed":
                return ExecutionDecision(False, "already_consumed")
            if request.status == "cancelled":
                return ExecutionDecision(False, "cancelled")
            if request.status != "allowed":
                return ExecutionDecision(False, "not_terminal_allow")
            if self.clock() >= request.expires_at:
                return ExecutionDecision(False, "expired")
            if current_action_digest != resolution.action_digest:
                return ExecutionDecision(False, "action_digest_mismatch")
            if current_policy_version != resolution.policy_version:
                return ExecutionDecision(False, "policy_version_mismatch")
            if current_chain_version != resolution.approval_chain_version:
                return ExecutionDecision(False, "chain_version_mismatch")
            if not self._chain_intact(approval_request_id, resolution.final_entry_digest):
                return ExecutionDecision(False, "chain_tampered")
            if consume and not self.store.consume(approval_request_id):
                return ExecutionDecision(False, "already_consumed")
            return ExecutionDecision(True, "ok")
        except Exception:
            return ExecutionDecision(False, "internal_error")

    def _expire_if_due(self, request):
        if request.status != "pending":
            return request.status == "expired"
        if self.clock() >= request.expires_at:
            self._resolve(request, "expired", None)
            return True
        return False

    def _chain_intact(self, rid, final_entry_digest):
        previous = None
        for entry in self.store.get_entries(rid):
            if not entry.verify_digest() or entry.previous_entry_digest != previous:
                return False
            previous = entry.entry_digest
        return final_entry_digest is None or previous == final_entry_digest


# -- approval.py: ApprovalRequest, ApprovalDecision, ApprovalHandler,
#    AutoRejectApproval, WebhookApproval's strict-mode check -------------------

def _strict_mode(explicit):
    env = os.environ.get("AGT_APPROVAL_STRICT", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(explicit) or env


@dataclass
class ApprovalRequest:
    """approval.ApprovalRequest (what a legacy handler receives)."""

    action: str
    rule_name: str
    policy_name: str
    agent_id: str
    context: dict = field(default_factory=dict)
    approvers: list = field(default_factory=list)
    requested_at: datetime = field(default_factory=utcnow)


@dataclass
class ApprovalDecision:
    approved: bool
    approver: str = ""
    reason: str = ""
    decided_at: datetime = field(default_factory=utcnow)


class ApprovalHandler(ABC):
    @abstractmethod
    def request_approval(self, request):
        """Return an ApprovalDecision."""


class AutoRejectApproval(ApprovalHandler):
    def request_approval(self, request):
        return ApprovalDecision(approved=False, approver="system:auto-reject",
                                reason="No approval handler configured — auto-rejected")


class WebhookApproval(ApprovalHandler):
    """Only the constructor's strict-mode refusal of approval.WebhookApproval."""

    def __init__(self, url, timeout_seconds=300, headers=None, *, strict=None):
        if _strict_mode(strict):
            raise ValueError("WebhookApproval is deprecated: it trusts an unverified body-supplied "
                             "approver identity. Use VersionedWebhookApproval (ADR-0030).")

    def request_approval(self, request):
        raise NotImplementedError("only the constructor is mirrored")


# -- approval_bridge.py: AdapterResult, submit_vote, LegacyHandlerAdapter -----

@dataclass
class AdapterResult:
    approval: Any
    entry: Optional[ApprovalChainEntry]
    error: Optional[str]

    @property
    def submitted(self):
        return self.entry is not None


def submit_vote(coordinator, request, approval, *, approver_kind="human",
                identity_assurance="approval-handler", stage_index=0):
    try:
        entry = coordinator.submit_entry(
            request.approval_request_id, stage_index=stage_index, approver_kind=approver_kind,
            approver_identity=approval.approver or "unknown", identity_assurance=identity_assurance,
            decision="allow" if approval.approved else "deny", reason_code=approval.reason or "")
    except ApprovalProtocolError as exc:
        return AdapterResult(approval=approval, entry=None, error="approval entry rejected: %s" % exc)
    return AdapterResult(approval=approval, entry=entry, error=None)


class LegacyHandlerAdapter(object):
    def __init__(self, handler, *, approver_kind="human", identity_assurance="approval-handler"):
        self._handler = handler
        self._approver_kind = approver_kind
        self._identity_assurance = identity_assurance

    def collect(self, coordinator, request, legacy_request, *, stage_index=0):
        approval = self._handler.request_approval(legacy_request)
        return submit_vote(coordinator, request, approval, approver_kind=self._approver_kind,
                           identity_assurance=self._identity_assurance, stage_index=stage_index)


# -- policy.py: PolicyDecision; PolicyEngine.evaluate, reduced to rules whose
#    condition is absent or "action.type == '...'" (first match wins) --------

@dataclass
class PolicyDecision:
    allowed: bool
    action: str
    matched_rule: Optional[str] = None
    policy_name: Optional[str] = None
    reason: Optional[str] = None
    approvers: list = field(default_factory=list)


_CONDITION = re.compile(r"""^\s*action\.type\s*==\s*['"]([^'"]*)['"]\s*$""")


class _Policy(object):
    def __init__(self, policy):
        import yaml  # AGT reads policies as YAML too

        if os.path.isfile(policy):
            with open(policy) as f:
                policy = f.read()
        d = yaml.safe_load(policy)
        self.name = d.get("name", "")
        self.version = str(d.get("version", "1.0") or "1.0")
        self.rules = d.get("rules", [])

    def evaluate(self, context):
        action_type = context.get("action", {}).get("type", "")
        for rule in self.rules:
            cond = rule.get("condition")
            m = _CONDITION.match(cond) if cond else None
            if cond and (m is None or m.group(1) != action_type):
                continue
            act = rule.get("action", "allow")
            return PolicyDecision(allowed=act == "allow", action=act, matched_rule=rule.get("name"),
                                  policy_name=self.name, reason=rule.get("message", ""),
                                  approvers=list(rule.get("approvers", [])))
        return PolicyDecision(allowed=True, action="allow", policy_name=self.name)


# -- govern.py: govern, GovernedCallable.{__call__, _handle_approval,
#    _handle_approval_via_coordinator, _build_action_binding, _json_safe,
#    _build_context}, GovernanceDenied ------------------------------------------

class GovernanceDenied(Exception):
    def __init__(self, decision):
        self.decision = decision
        super().__init__("Action denied by policy rule '%s': %s" % (decision.matched_rule, decision.reason))


class GovernedCallable(object):
    def __init__(self, fn, *, policy, agent_id="*", approval_handler=None, approval_coordinator=None,
                 approval_chain_id=None, approval_ttl_seconds=300.0, approval_transport=None):
        self._fn = fn
        self._policy = _Policy(policy)
        self._policy_version = self._policy.version
        self._agent_id = agent_id
        self._handler = approval_handler
        self._coordinator = approval_coordinator
        self._chain_id = approval_chain_id
        self._ttl = approval_ttl_seconds
        self._transport = approval_transport
        # What the last approval did, for tests to look at (not AGT's).
        self.last_approval = None
        self.last_reason_code = None
        self.last_request = None

    def __call__(self, *args, **kwargs):
        context = self._build_context(args, kwargs)
        decision = self._policy.evaluate(context)
        if decision.action == "require_approval":
            decision = self._handle_approval(decision, context)
        if not decision.allowed:
            raise GovernanceDenied(decision)
        return self._fn(*args, **kwargs)

    def _legacy_request(self, decision, context):
        return ApprovalRequest(action=context.get("action", {}).get("type", "unknown"),
                               rule_name=decision.matched_rule or "", policy_name=decision.policy_name or "",
                               agent_id=self._agent_id, context=context, approvers=decision.approvers)

    def _handle_approval(self, decision, context):
        if self._coordinator is not None and self._chain_id is not None:
            return self._handle_approval_via_coordinator(decision, context)
        handler = self._handler or AutoRejectApproval()
        approval = handler.request_approval(self._legacy_request(decision, context))
        self.last_approval = approval
        if approval.approved:
            return PolicyDecision(allowed=True, action="allow", matched_rule=decision.matched_rule,
                                  policy_name=decision.policy_name,
                                  reason="Approved by %s: %s" % (approval.approver, approval.reason))
        return PolicyDecision(allowed=False, action="deny", matched_rule=decision.matched_rule,
                              policy_name=decision.policy_name,
                              reason="Approval rejected by %s: %s" % (approval.approver, approval.reason))

    def _handle_approval_via_coordinator(self, decision, context):
        coordinator = self._coordinator
        binding = self._build_action_binding(context)
        _, request = coordinator.open_request(binding, policy_rule_id=decision.matched_rule or "",
                                              policy_version=self._policy_version, chain_id=self._chain_id,
                                              ttl_seconds=self._ttl)
        self.last_request = request
        if self._transport is not None:
            result = submit_vote(coordinator, request, self._transport.request_decision(request),
                                 identity_assurance="webhook")
        else:
            handler = self._handler or AutoRejectApproval()
            result = LegacyHandlerAdapter(handler).collect(coordinator, request,
                                                           self._legacy_request(decision, context))
        approval = result.approval
        verdict = None
        if result.submitted:
            verdict = coordinator.validate_for_execution(
                request.approval_request_id, current_action_digest=binding.digest(),
                current_policy_version=self._policy_version, current_chain_version=request.approval_chain_version)
        allowed = bool(verdict and verdict.allowed)
        reason_code = verdict.reason_code if verdict is not None else result.error
        self.last_approval, self.last_reason_code = approval, reason_code
        if allowed:
            return PolicyDecision(allowed=True, action="allow", matched_rule=decision.matched_rule,
                                  policy_name=decision.policy_name,
                                  reason="Approved by %s (request %s)" % (approval.approver, request.approval_request_id))
        return PolicyDecision(allowed=False, action="deny", matched_rule=decision.matched_rule,
                              policy_name=decision.policy_name,
                              reason="Approval denied (%s) for request %s" % (reason_code, request.approval_request_id))

    def _build_action_binding(self, context):
        action = context.get("action", {})
        if isinstance(action, dict):
            action_type, resource = action.get("type", "unknown"), action.get("resource")
        else:
            action_type, resource = str(action), None
        tool_name = getattr(self._fn, "__name__", None) or action_type
        subject = context.get("subject")
        return ActionBinding(
            operation="tool.invoke", agent_id=self._agent_id,
            target=ActionTarget(tool_name=str(tool_name), tool_schema_version="1",
                                resource=resource if isinstance(resource, str) else None),
            parameters={k: self._json_safe(v) for k, v in context.items()},
            subject_id=subject if isinstance(subject, str) else None)

    @staticmethod
    def _json_safe(value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, dict):
            return {str(k): GovernedCallable._json_safe(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [GovernedCallable._json_safe(v) for v in value]
        return str(value)

    @staticmethod
    def _build_context(args, kwargs):
        context = {}
        if "action" in kwargs:
            a = kwargs["action"]
            context["action"] = a if isinstance(a, dict) else {"type": str(a)}
        elif args:
            context["action"] = {"type": str(args[0])}
        for key, val in kwargs.items():
            if key != "action":
                context[key] = val if isinstance(val, dict) else {"value": val}
        return context


def govern(fn, *, policy, agent_id="*", approval_handler=None, approval_coordinator=None,
           approval_chain_id=None, approval_ttl_seconds=300.0, approval_transport=None):
    return GovernedCallable(fn, policy=policy, agent_id=agent_id, approval_handler=approval_handler,
                            approval_coordinator=approval_coordinator, approval_chain_id=approval_chain_id,
                            approval_ttl_seconds=approval_ttl_seconds, approval_transport=approval_transport)


def install():
    """Register this stand-in under AGT's module names, for code written for AGT."""
    this = sys.modules[__name__]

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    pick = lambda *names: {n: getattr(this, n) for n in names}  # noqa: E731
    protocol = module("agentmesh.governance.approval_protocol", ApprovalRequest=ProtocolApprovalRequest,
                      **pick("ActionBinding", "ActionTarget", "ApprovalChain", "ApprovalStage", "ApprovalCoordinator",
                             "InMemoryApprovalStore", "ApprovalProtocolError", "ExecutionDecision",
                             "canonicalize", "sha256_jcs"))
    approval = module("agentmesh.governance.approval", **pick(
        "ApprovalRequest", "ApprovalDecision", "ApprovalHandler", "AutoRejectApproval", "WebhookApproval"))
    bridge = module("agentmesh.governance.approval_bridge",
                    **pick("AdapterResult", "submit_vote", "LegacyHandlerAdapter"))
    gov = module("agentmesh.governance.govern", **pick("govern", "GovernedCallable", "GovernanceDenied"))
    governance = module("agentmesh.governance", approval=approval, approval_protocol=protocol,
                        approval_bridge=bridge, **pick("govern", "GovernanceDenied"))
    governance.govern = gov.govern
    module("agentmesh", governance=governance)
