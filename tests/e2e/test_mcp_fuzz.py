"""Fuzzing /mcp, which the OpenAPI schema (and so the schemathesis run) does not describe: hypothesis
writes JSON-RPC messages into an initialized session of the real server, with API keys on. Tool
arguments are drawn from each tool's own input schema (as published by tools/list) mixed with any JSON
at all; the envelope (method, id, params, batches, bytes that are not JSON) is fuzzed too.

Every answer must be the protocol's: below 500, with X-Request-ID, and a JSON-RPC message (as JSON or an
SSE stream); the server's log must show no traceback and nothing logged as an error. A fixed seed keeps CI
deterministic; set PIXYPROXY_FUZZ_SEED to explore other cases locally.
"""

import json
import os
import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from pixyproxy.entrypoints.mcp.tools import TOOLS
from tests.e2e.server import run_server

KEY = "mcp-fuzz-key-0001"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
VERSION = "2025-06-18"
SEED = int(os.environ.get("PIXYPROXY_FUZZ_SEED", "20261207"))
EXAMPLES = 60  # per target
METHODS = [
    "tools/call",
    "tools/list",
    "resources/read",
    "resources/list",
    "resources/templates/list",
    "ping",
    "prompts/list",
    "completion/complete",
    "logging/setLevel",
    "notifications/cancelled",
    "notifications/progress",
    "initialize",
]

# Any JSON value, nested a little: what a confused or hostile client may put anywhere.
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)
GUIDS = st.uuids().map(str) | st.sampled_from(["../../etc/passwd", "", "0" * 36, "' OR 1=1 --"])


def from_schema(schema: dict[str, Any], defs: dict[str, Any], strict: bool) -> st.SearchStrategy[Any]:
    """Values for the subset of JSON Schema the tools' schemas use: only what it allows when `strict`,
    else a little beyond each bound too."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, strict)
    if "anyOf" in schema:
        return st.one_of([from_schema(option, defs, strict) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = schema.get("minimum", -1000), schema.get("maximum", 1000)
        return st.integers(min_value=low, max_value=high) if strict else st.integers(low - 2, high + 2)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "string":
        if schema.get("format") == "uuid":
            return st.uuids().map(str) if strict else GUIDS
        if "pattern" in schema:
            pattern = st.from_regex(schema["pattern"], fullmatch=True)
            return pattern if strict else pattern | st.text(max_size=60)
        low, high = schema.get("minLength", 0), min(schema.get("maxLength", 60), 60)
        return st.text(min_size=low, max_size=high) if strict else st.text(max_size=high + 2)
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs, strict)
        return st.lists(items, max_size=schema.get("maxItems", 3) + (0 if strict else 1))
    if kind == "object":
        return arguments_for(schema, defs, strict)
    return ANY_JSON


def arguments_for(schema: dict[str, Any], defs: dict[str, Any], strict: bool) -> st.SearchStrategy[Any]:
    """An object after `schema`: its required fields, any of the others. When not `strict`, a value may
    be any JSON at all, a required field may be missing and a field it does not have may be added."""
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))

    def value(name: str) -> st.SearchStrategy[Any]:
        shaped = from_schema(properties[name], defs, strict)
        return shaped if strict else shaped | ANY_JSON

    @st.composite
    def fields(draw) -> dict[str, Any]:
        # Each optional field a coin toss (fixed_dictionaries' optional= leaves most out).
        chosen = [name for name in properties if name in required or draw(st.booleans())]
        return {name: draw(value(name)) for name in chosen}

    if strict:
        return fields()
    stray = st.dictionaries(st.text(max_size=12), ANY_JSON, max_size=2)
    return (
        fields() | st.builds(lambda a, b: {**b, **a}, fields(), stray) | st.dictionaries(st.text(), ANY_JSON)
    )


def tool_call(tool) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments as the schema allows them (which the HTTP API may still refuse), or beyond it."""
    defs = tool.input_schema.get("$defs", {})
    arguments = arguments_for(tool.input_schema, defs, True) | arguments_for(tool.input_schema, defs, False)
    return arguments.map(lambda arguments: {"name": tool.name, "arguments": arguments})


IDS = st.integers(min_value=-(2**63), max_value=2**63) | st.text(max_size=20) | ANY_JSON
RESOURCE_URIS = (
    st.builds(lambda guid: f"image://{guid}", GUIDS)
    | st.builds(
        lambda job, index: f"preview://{job}/{index}", GUIDS, st.integers(-1, 4) | st.text(max_size=8)
    )
    | st.text(max_size=80)
)
PARAMS = {
    "tools/call": st.one_of([tool_call(tool) for tool in TOOLS]),
    "resources/read": st.fixed_dictionaries({"uri": RESOURCE_URIS}),
    "resources/list": st.fixed_dictionaries({}, optional={"cursor": st.text(max_size=60) | ANY_JSON}),
}


def request(method: str, params: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A JSON-RPC request well enough formed to reach the method's handler."""
    ids = st.integers(min_value=1, max_value=2**31)
    return st.builds(
        lambda id_, p: json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": p}).encode(),
        ids,
        params,
    )


@st.composite
def envelopes(draw) -> bytes:
    """Any method, known or not, with any params; broken envelopes, batches, bytes that are not JSON."""
    shape = draw(st.sampled_from(["request", "envelope", "batch", "bytes"]))
    if shape == "bytes":
        return draw(st.binary(max_size=200))
    method = draw(st.sampled_from(METHODS) | st.text(max_size=30))
    params = draw(PARAMS.get(method, ANY_JSON) if shape == "request" else ANY_JSON)
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": draw(IDS), "method": method, "params": params}
    if shape != "request":
        for field in draw(st.sets(st.sampled_from(["jsonrpc", "id", "method", "params"]))):
            if draw(st.booleans()):
                del message[field]
            else:
                message[field] = draw(ANY_JSON)
    if shape == "batch":
        return json.dumps([message, draw(ANY_JSON)]).encode()
    return json.dumps(message).encode()


# What each run fuzzes: every tool's arguments, then the rest of the protocol.
TARGETS: dict[str, st.SearchStrategy[bytes]] = {
    **{tool.name: request("tools/call", tool_call(tool)) for tool in TOOLS},
    "resources": request("resources/read", PARAMS["resources/read"])
    | request("resources/list", PARAMS["resources/list"]),
    "envelopes": envelopes(),
}


def jsonrpc_messages(response: httpx.Response) -> list[Any]:
    """The JSON-RPC messages an answer carries: a JSON body, or the data lines of an SSE stream."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        # SSE's line ends only: splitlines() would also split at the Unicode separators JSON may hold.
        lines = [line[5:] for line in re.split(r"\r\n|\r|\n", response.text) if line.startswith("data:")]
        return [json.loads(line) for line in lines if line.strip()]
    if not response.content:
        return []
    assert content_type.startswith("application/json"), (response.status_code, content_type)
    return [response.json()]


def is_jsonrpc(message: Any) -> bool:
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return False
    if "error" in message:
        error = message["error"]
        return isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
    return "result" in message or "method" in message


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"PIXYPROXY_API_KEYS": f"fuzz:user:{KEY}"}
    with run_server(tmp_path_factory.mktemp("mcp-fuzz"), env, timeout=60) as running:
        yield running


@pytest.fixture(scope="module")
def session(server):
    http = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    opening = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "fuzz", "version": "1"},
        },
    }
    answer = http.post("/mcp", json=opening, headers=ACCEPT)
    assert answer.status_code == 200, answer.text
    headers = {**ACCEPT, "Mcp-Session-Id": answer.headers["mcp-session-id"], "MCP-Protocol-Version": VERSION}
    assert http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    yield http, headers
    http.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzzed_json_rpc_gets_the_protocols_answers_and_no_server_error(server, session, target):
    http, headers = session
    start = len(server.log_text())
    seen: dict[str, int] = {}

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=TARGETS[target])
    def one_message(body: bytes) -> None:
        send_and_check(http, headers, body, seen)

    one_message()
    assert_log_clean(server.log_text()[start:])
    # The fuzzer reached what it aimed at: the tools' own answers, or the protocol's refusals.
    reached = seen.get("error", 0) if target == "envelopes" else len(seen) - ("error" in seen)
    assert reached, seen


def send_and_check(http: httpx.Client, headers: dict[str, str], body: bytes, seen: dict[str, int]) -> None:
    """Send one body; its answer must be the protocol's. Counts the kinds of answer in `seen`."""
    answer = http.post("/mcp", content=body, headers=headers)
    assert answer.status_code < 500, (body[:300], answer.status_code, answer.text[:500])
    assert answer.headers.get("x-request-id"), body[:300]
    carried = jsonrpc_messages(answer)
    assert all(is_jsonrpc(message) for message in carried), (body[:300], answer.text[:500])
    if answer.status_code >= 400:
        assert carried, (body[:300], answer.status_code)
    for message in carried:
        kind = "error" if "error" in message else "tool error" if _tool_error(message) else "result"
        seen[kind] = seen.get(kind, 0) + 1


def assert_log_clean(log: str) -> None:
    assert "Traceback" not in log and "unhandled error" not in log, log[-5000:]
    assert not re.findall(r"^.* ERROR .*$", log, re.MULTILINE), log[-5000:]


def enumerated(schema: dict[str, Any], defs: dict[str, Any]) -> list[Any]:
    """Every value an enum in `schema` lists (through anyOf and $ref)."""
    if "$ref" in schema:
        return enumerated(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    found = list(schema.get("enum", []))
    for option in schema.get("anyOf", []):
        found += enumerated(option, defs)
    return found


@pytest.mark.timeout(300)
def test_each_enumerated_option_reaches_its_tool(server, session):
    """What the random runs rarely draw: each option's every listed value, once, with the tool's
    required arguments filled in (a stored image's guid)."""
    http, headers = session
    guid = http.post("/image/", json={"prompt": "a fuzzed fox"}).json()["guid"]
    required = {"prompt": "a fuzzed fox", "guid": guid}
    start, seen = len(server.log_text()), {}
    for tool in TOOLS:
        defs = tool.input_schema.get("$defs", {})
        base = {name: required[name] for name in tool.input_schema.get("required", [])}
        for name, schema in tool.input_schema["properties"].items():
            for value in enumerated(schema, defs):
                params = {"name": tool.name, "arguments": {**base, name: value}}
                message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
                send_and_check(http, headers, json.dumps(message).encode(), seen)
    assert_log_clean(server.log_text()[start:])
    assert seen.get("result", 0) >= 10, seen


def _tool_error(message: dict[str, Any]) -> bool:
    result = message.get("result")
    return isinstance(result, dict) and result.get("isError") is True
