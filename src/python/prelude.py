"""authflow's expression-policy runtime: the objects and helpers an expression sees.

Loaded once into the embedded interpreter as the module `_authflow_expression` by
`src/python/mod.rs`. It mirrors the scope of authentik's expression policies
(`authentik/lib/expression/evaluator.py`, `authentik/policies/expression/evaluator.py`);
every store access goes through `bridge` (a Rust object), which asks the host's
`UserDirectory` on the async side and answers with JSON.

Expressions run with the host's privileges: this is not a sandbox.
"""

import ast
import builtins
import json
import re
import sys
import textwrap
from ipaddress import _BaseAddress, _BaseNetwork, ip_address, ip_network

# Names passed to `handler(...)` as arguments (authentik's per-request `_context`).
PARAMS = (
    "ak_message",
    "ak_logger",
    "ak_is_sso_flow",
    "ak_client_ip",
    "http_request",
    "request",
    "context",
    "flow_plan",
)


class ExpressionTimeout(BaseException):
    """Raised into an expression that ran past its deadline.

    A `BaseException`, so `except Exception:` inside an expression does not swallow it.
    """


# Names passed to a value expression (a prompt's placeholder or initial value;
# authentik's `PropertyMappingEvaluator` with `prompt_context`).
VALUE_PARAMS = (
    "ak_logger",
    "ak_client_ip",
    "http_request",
    "request",
    "user",
    "prompt_context",
)


def compile_handler(source, filename, value=False):
    """Wraps `source` as the body of `def handler(...)` and compiles it (authentik's
    `wrap_expression` + `compile`). Raises SyntaxError / ValueError."""
    params = VALUE_PARAMS if value else PARAMS
    wrapped = "def handler(%s):\n%s" % (", ".join(params), textwrap.indent(source, "    "))
    try:
        tree = ast.parse(wrapped, filename, "exec")
    except SyntaxError as exc:
        # Report lines of the expression, not of the wrapper.
        if exc.lineno is not None and exc.lineno > 1:
            exc.lineno -= 1
            if exc.end_lineno is not None and exc.end_lineno > 1:
                exc.end_lineno -= 1
        raise
    ast.increment_lineno(tree, -1)
    return compile(tree, filename, "exec")


def describe(exc):
    """The text of an exception, as authentik reports it (`str(exc)`)."""
    text = str(exc)
    return text if text else type(exc).__name__


# ---------------------------------------------------------------------------------------
# Objects


def _match(obj, filters, what):
    """Django-style `field`, `field__iexact`, `field__in` filters on attributes."""
    for key, want in filters.items():
        field, _, op = key.partition("__")
        if field not in type(obj)._FIELDS:
            raise ValueError("Cannot filter %s by %r" % (what, key))
        have = getattr(obj, field)
        if op == "":
            ok = have == want or (field == "pk" and str(have) == str(want))
        elif op == "iexact":
            ok = isinstance(have, str) and isinstance(want, str) and have.lower() == want.lower()
        elif op == "in":
            ok = have in want or (field == "pk" and str(have) in [str(w) for w in want])
        else:
            raise ValueError("Unsupported lookup %r on %s" % (key, what))
        if not ok:
            return False
    return True


class Group:
    """A group (authentik's `Group`)."""

    _FIELDS = ("pk", "name", "parent", "is_superuser", "attributes")

    def __init__(self, data):
        self.pk = data.get("pk")
        self.name = data.get("name", "")
        self.parent = data.get("parent")
        self.is_superuser = bool(data.get("is_superuser", False))
        self.attributes = data.get("attributes") or {}

    @property
    def group_uuid(self):
        return self.pk

    def __eq__(self, other):
        return isinstance(other, Group) and other.pk == self.pk

    def __hash__(self):
        return hash(self.pk)

    def __str__(self):
        return self.name

    def __repr__(self):
        return "<Group %s>" % self.name


class GroupList(list):
    """A list of groups with a few QuerySet methods."""

    def all(self):
        return self

    def filter(self, **filters):
        return GroupList(g for g in self if _match(g, filters, "groups"))

    def exists(self):
        return len(self) > 0

    def count(self):
        return len(self)

    def first(self):
        return self[0] if self else None


class GroupManager:
    """`user.groups`: the user's direct groups (`.all()`, `.filter(name=...)`)."""

    def __init__(self, user):
        self._user = user

    def all(self):
        return GroupList(self._user._direct_groups())

    def filter(self, **filters):
        return self.all().filter(**filters)

    def exists(self):
        return self.all().exists()

    def count(self):
        return self.all().count()

    def __iter__(self):
        return iter(self.all())

    def __contains__(self, group):
        return group in self.all()


class User:
    """A user (authentik's `User`). Full records load lazily through the bridge."""

    _FIELDS = ("pk", "username", "email", "name", "is_active", "path", "type", "attributes")
    _LAZY = ("is_active", "path", "type", "attributes", "_group_pks")

    def __init__(self, bridge, data, backend=None, anonymous=False):
        self._bridge = bridge
        self.pk = data.get("pk")
        self.username = data.get("username") or ""
        self.email = data.get("email") or ""
        self.name = data.get("name") or ""
        self.is_anonymous = anonymous
        self.is_authenticated = (not anonymous) and self.pk is not None
        if backend is not None:
            self.backend = backend
        if "attributes" in data or self.pk is None:
            self._fill(data)

    def _fill(self, data):
        self.is_active = bool(data.get("is_active", self.pk is not None))
        self.path = data.get("path") or ""
        self.type = data.get("user_type") or ""
        self.attributes = data.get("attributes") or {}
        self._group_pks = list(data.get("groups") or [])

    def __getattr__(self, name):
        # Only called for attributes not set yet: the lazily loaded fields.
        if name in User._LAZY:
            record = None
            pk = self.__dict__.get("pk")
            if pk is not None:
                raw = self.__dict__["_bridge"].user(str(pk))
                record = json.loads(raw) if raw is not None else None
            self._fill(record or {})
            return self.__dict__[name]
        raise AttributeError("'User' object has no attribute %r" % name)

    @property
    def uuid(self):
        return self.pk

    @property
    def groups(self):
        return GroupManager(self)

    @property
    def ak_groups(self):
        return GroupManager(self)

    def _direct_groups(self):
        groups = []
        for pk in self._group_pks:
            raw = self._bridge.group(str(pk))
            if raw is not None:
                groups.append(Group(json.loads(raw)))
        return groups

    def all_groups(self):
        """Every group the user is in, with their ancestors."""
        if self.pk is None:
            return GroupList()
        return GroupList(Group(g) for g in json.loads(self._bridge.groups_of(str(self.pk))))

    def _pending_json(self):
        return {"pk": self.pk, "username": self.username, "email": self.email, "name": self.name}

    def __eq__(self, other):
        if not isinstance(other, User):
            return NotImplemented
        if self.pk is None or other.pk is None:
            return self is other
        return self.pk == other.pk

    def __hash__(self):
        return hash(self.pk) if self.pk is not None else id(self)

    def __str__(self):
        return self.username

    def __repr__(self):
        return "<User %s>" % self.username


class HttpRequest:
    """The minimal `http_request`: the client IP and a `META` dict."""

    def __init__(self, client_ip):
        self.client_ip = client_ip
        self.META = {"REMOTE_ADDR": client_ip} if client_ip else {}

    def __repr__(self):
        return "<HttpRequest %s>" % (self.client_ip or "-")


class Flow:
    """The flow being run (`request.obj`)."""

    def __init__(self, data):
        self.pk = data.get("pk")
        self.slug = data.get("slug", "")
        self.name = data.get("name", "")
        self.title = data.get("title", "")
        self.designation = data.get("designation", "")

    def __repr__(self):
        return "<Flow %s>" % self.slug


class FlowPlan:
    """`flow_plan`: writes to `.context` are copied back into the plan."""

    def __init__(self, context, flow_pk):
        self.context = context
        self.flow_pk = flow_pk

    def __repr__(self):
        return "<FlowPlan %s>" % self.flow_pk


class PolicyRequest:
    """`request`: `.user`, `.context`, `.http_request`, `.obj` (the flow), `.debug`."""

    def __init__(self, user, context, http_request, obj):
        self.user = user
        self.context = context
        self.http_request = http_request
        self.obj = obj
        self.debug = False

    def __repr__(self):
        return "<PolicyRequest user=%s>" % self.user


class Logger:
    """`ak_logger`: structlog-like; logs through the host (`tracing`), keyword values
    whose names look secret are redacted by the host."""

    def __init__(self, bridge, bound=None):
        self._bridge = bridge
        self._bound = dict(bound or {})

    def bind(self, **kwargs):
        return Logger(self._bridge, {**self._bound, **kwargs})

    def _log(self, level, event, args, kwargs):
        text = str(event)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError):
                text = " ".join([text, *map(str, args)])
        fields = [(str(k), repr(v)) for k, v in {**self._bound, **kwargs}.items()]
        self._bridge.log(level, text, fields)

    def debug(self, event="", *args, **kwargs):
        self._log("debug", event, args, kwargs)

    def info(self, event="", *args, **kwargs):
        self._log("info", event, args, kwargs)

    def warning(self, event="", *args, **kwargs):
        self._log("warning", event, args, kwargs)

    warn = warning

    def error(self, event="", *args, **kwargs):
        self._log("error", event, args, kwargs)

    def exception(self, event="", *args, **kwargs):
        self._log("error", event, args, kwargs)

    def critical(self, event="", *args, **kwargs):
        self._log("error", event, args, kwargs)

    msg = info


# ---------------------------------------------------------------------------------------
# Global helpers


def _user_by(bridge):
    lookups = {"username": "username", "email": "email", "attributes__upn": "upn"}

    def ak_user_by(**filters):
        """A user by `username=`, `email=`, `pk=` or `attributes__upn=` (the first three
        also with `__iexact`), narrowed by the other filters; `None` when none matches
        (also for filters authflow cannot look up by, where authentik would scan)."""
        for key, want in filters.items():
            base, op = (key[: -len("__iexact")], "iexact") if key.endswith("__iexact") else (key, "")
            if base in ("pk", "uuid") and op == "":
                raw = bridge.user(str(want))
            elif base in lookups and isinstance(want, str):
                raw = bridge.find_user(lookups[base], want, op == "iexact")
            else:
                continue
            if raw is None:
                return None
            user = User(bridge, json.loads(raw))
            try:
                return user if _user_matches(user, filters) else None
            except ValueError:
                # authentik answers None on an unknown field (FieldError).
                return None
        return None

    return ak_user_by


def _user_matches(user, filters):
    plain = {}
    for key, want in filters.items():
        if key.startswith("attributes__"):
            if user.attributes.get(key[len("attributes__"):]) != want:
                return False
        elif key.partition("__")[0] == "uuid":
            plain["pk" + key[len("uuid"):]] = want
        else:
            plain[key] = want
    return _match(user, plain, "users")


def ak_is_group_member(user, **group_filters):
    """Whether `user` is in a group (or a child of a group) matching the filters,
    e.g. `ak_is_group_member(request.user, name="admins")`."""
    if user is None or not isinstance(user, User):
        return False
    return user.all_groups().filter(**group_filters).exists()


def list_flatten(value):
    """The first element of a list (None when empty), anything else as is."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def regex_match(value, regex):
    """`re.search(regex, value) is not None`."""
    return re.search(regex, value) is not None


def regex_replace(value, regex, repl):
    """`re.sub(regex, repl, value)`."""
    return re.sub(regex, repl, value)


# ---------------------------------------------------------------------------------------
# Evaluation


def _default(value):
    if isinstance(value, User):
        return value._pending_json()
    if isinstance(value, Group):
        return value.pk
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (_BaseAddress, _BaseNetwork)):
        return str(value)
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def export(context, plan):
    """The context as `(key, json or None, reason or None)` triples, in order."""
    out = []
    for key, value in list(context.items()):
        if key == "flow_plan" and value is plan:
            continue
        if not isinstance(key, str):
            out.append((repr(key), None, "the key is not a string"))
            continue
        try:
            out.append((key, json.dumps(value, default=_default, allow_nan=False), None))
        except (TypeError, ValueError, RecursionError, OverflowError) as exc:
            out.append((key, None, describe(exc)))
    return out


def _handler(code, bridge):
    """The compiled handler, run in a module namespace with authentik's helpers."""
    globals_ = {
        "__builtins__": builtins,
        "__name__": "__authflow_expression__",
        "ak_user_by": _user_by(bridge),
        "ak_is_group_member": ak_is_group_member,
        "ip_address": ip_address,
        "ip_network": ip_network,
        "list_flatten": list_flatten,
        "regex_match": regex_match,
        "regex_replace": regex_replace,
    }
    exec(code, globals_)
    return globals_["handler"]


def _client(client_ip):
    """`http_request` and `ak_client_ip` (255.255.255.255 when unknown, as authentik)."""
    try:
        address = ip_address(client_ip or "255.255.255.255")
    except ValueError:
        address = ip_address("255.255.255.255")
    return HttpRequest(client_ip), address


def evaluate(code, bridge, tracer, inputs):
    """Runs a compiled handler. Returns `(passing, error, messages, exported_context)`;
    raises `ExpressionTimeout` when the deadline passed."""
    inputs = json.loads(inputs)
    context = inputs["context"]
    if not isinstance(context, dict):
        context = {}
    pending = context.get("pending_user")
    if isinstance(pending, dict) and isinstance(pending.get("username"), str):
        backend = context.get("user_backend")
        context["pending_user"] = User(
            bridge, pending, backend=backend if isinstance(backend, str) else None
        )
    # authentik (flows/planner.py, flows/markers.py) gives a policy of a stage binding a
    # new `request.context`: `flow_plan` plus a copy of the plan context's keys, so only
    # writes to `flow_plan.context` stay in the plan. Flow-level policies run before the
    # plan exists: a copy without `flow_plan`, whose writes go nowhere.
    plan_context = context
    context = dict(plan_context)
    if inputs.get("flow_plan"):
        plan = FlowPlan(plan_context, inputs["flow"].get("pk"))
        context["flow_plan"] = plan
    else:
        plan = None

    if inputs["user"] is not None:
        user = User(bridge, inputs["user"])
    elif inputs["username"] is not None:
        user = User(bridge, {"pk": None, "username": inputs["username"]})
    else:
        user = User(bridge, {"pk": None, "username": "AnonymousUser"}, anonymous=True)

    http_request, ak_client_ip = _client(inputs["client_ip"])

    messages = []

    def ak_message(message):
        """Adds a message to the policy result."""
        messages.append(str(message))

    handler = _handler(code, bridge)
    arguments = {
        "ak_message": ak_message,
        "ak_logger": Logger(bridge),
        "ak_is_sso_flow": bool(context.get("is_sso", False)),
        "ak_client_ip": ak_client_ip,
        "http_request": http_request,
        "request": PolicyRequest(user, context, http_request, Flow(inputs["flow"])),
        "context": context,
        "flow_plan": plan,
    }

    passing, error = False, None
    sys.settrace(tracer)
    try:
        try:
            result = handler(**arguments)
            passing = False if result is None else bool(result)
        except ExpressionTimeout:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure is the policy's error
            error = describe(exc)
        exported = export(plan_context, plan)
    finally:
        sys.settrace(None)
    return passing, error, messages, exported


def evaluate_value(code, bridge, tracer, inputs):
    """Runs a compiled value handler. Returns `(json or None, error or None)`; raises
    `ExpressionTimeout` when the deadline passed."""
    inputs = json.loads(inputs)
    if inputs["user"] is not None:
        user = User(bridge, inputs["user"])
    else:
        user = User(bridge, {"pk": None, "username": "AnonymousUser"}, anonymous=True)
    http_request, ak_client_ip = _client(inputs["client_ip"])
    prompt_context = inputs["prompt_context"]
    if not isinstance(prompt_context, dict):
        prompt_context = {}
    handler = _handler(code, bridge)
    arguments = {
        "ak_logger": Logger(bridge),
        "ak_client_ip": ak_client_ip,
        "http_request": http_request,
        "request": http_request,
        "user": user,
        "prompt_context": prompt_context,
    }
    sys.settrace(tracer)
    try:
        try:
            result = handler(**arguments)
        except ExpressionTimeout:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure is the expression's error
            return None, describe(exc)
    finally:
        sys.settrace(None)
    try:
        return json.dumps(result, default=str), None
    except (TypeError, ValueError) as exc:
        return None, "the expression returned a value that is not JSON: %s" % describe(exc)
