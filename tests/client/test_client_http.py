"""gateway_client over HTTP answers played by ``responses``: every method's request, every error path.

The batch and file endpoints are built on another branch; their methods are tested here
against the agreed shapes only (docs/client.md says so).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError

from gateway_client import (
    AuthError,
    ConflictError,
    GatewayClient,
    NotFoundError,
    ProblemError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    TransportError,
    ValidationError,
)
from gateway_client.client import DEFAULT_TIMEOUT

BASE = "http://gateway.test"
KEY = "gk_test_not_a_real_key_0123456789"
PROBLEM = "https://partner-gateway.dev/problems/"
INS = "ins_01JD0000000000000000000000"
WHE = "whe_01JD0000000000000000000000"
WHD = "whd_01JD0000000000000000000000"


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def client(waits: list[float]) -> Iterator[GatewayClient]:
    with GatewayClient(BASE, KEY, sleep=waits.append) as c:
        yield c


def problem(status: int, slug: str, title: str, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": PROBLEM + slug, "title": title, "status": status, **extra}
    if detail:
        body["detail"] = detail
    return body


def add_problem(http: responses.RequestsMock, method: str, path: str, status: int, body: Any, **headers: str) -> None:
    http.add(
        method,
        BASE + path,
        body=json.dumps(body),
        status=status,
        content_type="application/problem+json",
        headers=headers,
    )


def sent(http: responses.RequestsMock, index: int = -1) -> requests.PreparedRequest:
    return http.calls[index].request


# -- every method: its request and its answer ---------------------------------------------------------

INSTRUCTION = {"reference": "INV-1", "amount": Decimal("12.50"), "currency": "EUR"}

# (call, method, path, expected JSON body or None, status, answer)
METHODS: list[tuple[Callable[[GatewayClient], Any], str, str, Any, int, Any]] = [
    (
        lambda c: c.submit_instruction(INSTRUCTION, idempotency_key="k-1"),
        "POST",
        "/v1/instructions",
        {"reference": "INV-1", "amount": "12.50", "currency": "EUR"},
        202,
        {"id": INS, "reference": "INV-1", "status": "received", "created_at": "2026-12-06T00:00:00Z"},
    ),
    (lambda c: c.get_instruction(INS), "GET", f"/v1/instructions/{INS}", None, 200, {"id": INS, "events": []}),
    (lambda c: c.cancel_instruction(INS), "POST", f"/v1/instructions/{INS}/cancel", None, 200, {"id": INS}),
    (
        lambda c: c.submit_batch([{"reference": "A"}, {"reference": "B"}], all_or_nothing=True, idempotency_key="b"),
        "POST",
        "/v1/instruction-batches",
        {"instructions": [{"reference": "A"}, {"reference": "B"}], "all_or_nothing": True},
        202,
        {"id": "bat_1", "accepted": 1, "refused": 1, "items": [{"index": 0, "id": INS}, {"index": 1, "problem": {}}]},
    ),
    (
        lambda c: c.get_batch("bat_1"),
        "GET",
        "/v1/instruction-batches/bat_1",
        None,
        200,
        {"id": "bat_1", "created_at": "2026-12-06T00:00:00Z", "count": 2, "by_status": {"received": 2}},
    ),
    (
        lambda c: c.get_file("fil_1"),
        "GET",
        "/v1/files/fil_1",
        None,
        200,
        {"id": "fil_1", "message_id": "M1", "payments": 3, "status": "accepted"},
    ),
    (lambda c: c.get_hold(INS), "GET", f"/v1/holds/{INS}", None, 200, {"instruction_id": INS, "state": "pending"}),
    (
        lambda c: c.approve_hold(INS, "checked the invoice"),
        "POST",
        f"/v1/holds/{INS}/approve",
        {"comment": "checked the invoice"},
        200,
        {"instruction_id": INS, "state": "approved"},
    ),
    (
        lambda c: c.reject_hold(INS, "no contract"),
        "POST",
        f"/v1/holds/{INS}/reject",
        {"comment": "no contract"},
        200,
        {"instruction_id": INS, "state": "rejected"},
    ),
    (
        lambda c: c.create_webhook_endpoint("https://erp.example/hooks", events=["settled"], enabled=False),
        "POST",
        "/v1/webhook-endpoints",
        {"url": "https://erp.example/hooks", "events": ["settled"], "enabled": False},
        201,
        {"id": WHE, "secret": "whsec_x"},
    ),
    (lambda c: c.get_webhook_endpoint(WHE), "GET", f"/v1/webhook-endpoints/{WHE}", None, 200, {"id": WHE}),
    (
        lambda c: c.update_webhook_endpoint(WHE, enabled=True, events=["*"]),
        "PATCH",
        f"/v1/webhook-endpoints/{WHE}",
        {"events": ["*"], "enabled": True},
        200,
        {"id": WHE, "enabled": True},
    ),
    (
        lambda c: c.rotate_webhook_secret(WHE, overlap_seconds=60),
        "POST",
        f"/v1/webhook-endpoints/{WHE}/rotate-secret",
        {"overlap_seconds": 60},
        200,
        {"id": WHE, "secret": "whsec_y"},
    ),
    (
        lambda c: c.rotate_webhook_secret(WHE),
        "POST",
        f"/v1/webhook-endpoints/{WHE}/rotate-secret",
        {},
        200,
        {"id": WHE, "secret": "whsec_z"},
    ),
    (lambda c: c.delete_webhook_endpoint(WHE), "DELETE", f"/v1/webhook-endpoints/{WHE}", None, 204, None),
    (
        lambda c: c.redeliver(WHD),
        "POST",
        f"/v1/webhook-deliveries/{WHD}/redeliver",
        None,
        202,
        {"id": WHD, "status": "pending"},
    ),
]


@pytest.mark.parametrize(("call", "method", "path", "body", "status", "answer"), METHODS)
def test_each_method_sends_its_request_with_the_key_and_returns_the_answer(
    http: responses.RequestsMock,
    client: GatewayClient,
    call: Callable[[GatewayClient], Any],
    method: str,
    path: str,
    body: Any,
    status: int,
    answer: Any,
) -> None:
    http.add(method, BASE + path, json=answer, status=status)

    result = call(client)

    assert result == answer
    request = sent(http)
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.url == BASE + path
    if body is None:
        assert not request.body
    else:
        assert request.headers["Content-Type"] == "application/json"
        assert json.loads(request.body) == body
    assert http.calls[-1].request.req_kwargs["timeout"] == DEFAULT_TIMEOUT


def test_a_submission_without_a_key_gets_a_fresh_one_per_call(
    http: responses.RequestsMock, client: GatewayClient
) -> None:
    http.add("POST", BASE + "/v1/instructions", json={"id": INS}, status=202)
    http.add("POST", BASE + "/v1/instruction-batches", json={"id": "bat_1"}, status=202)
    http.add("POST", BASE + "/v1/files", json={"id": "fil_1"}, status=202)

    client.submit_instruction({"reference": "A"})
    client.submit_instruction({"reference": "B"})
    client.submit_batch([{"reference": "C"}])
    client.submit_file(b"<Document/>")

    keys = [call.request.headers["Idempotency-Key"] for call in http.calls]
    assert len(set(keys)) == 4 and all(len(k) == 36 for k in keys)


def test_files_go_as_xml_bytes_text_or_a_path_and_the_status_report_comes_back_as_xml(
    http: responses.RequestsMock, client: GatewayClient, tmp_path: Path
) -> None:
    xml = '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"/>'
    path = tmp_path / "pain001.xml"
    path.write_text(xml, encoding="utf-8")
    accepted = {"id": "fil_1", "message_id": "MSG-1", "payments": 2, "status": "accepted"}
    http.add("POST", BASE + "/v1/files", json=accepted, status=202)
    report = b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"/>'
    http.add(
        "GET",
        BASE + "/v1/files/fil_1/status-report",
        body=report,
        content_type="application/xml",
        match=[matchers.header_matcher({"Accept": "application/xml"})],
    )

    assert client.submit_file(xml.encode(), idempotency_key="f-1") == accepted
    assert client.submit_file(xml) == accepted
    assert client.submit_file(path) == accepted
    assert client.get_file_status_report("fil_1") == report
    for call in http.calls[:3]:
        assert call.request.headers["Content-Type"] == "application/xml"
        assert call.request.body == xml.encode()
    assert http.calls[0].request.headers["Idempotency-Key"] == "f-1"


# -- paging ------------------------------------------------------------------------------------------


def test_list_follows_the_cursor_through_every_page_and_fetches_only_when_iterated(
    http: responses.RequestsMock, client: GatewayClient
) -> None:
    url = BASE + "/v1/instructions"
    first = {"status": "settled,returned", "limit": "2", "reference": "INV-9"}
    http.add(
        "GET",
        url,
        json={"items": [{"id": "c"}, {"id": "b"}], "next_cursor": "b"},
        match=[matchers.query_param_matcher(first)],
    )
    http.add(
        "GET",
        url,
        json={"items": [{"id": "a"}], "next_cursor": None},
        match=[matchers.query_param_matcher({**first, "cursor": "b"})],
    )

    found = client.list_instructions(status=["settled", "returned"], page_size=2, reference="INV-9")
    assert len(http.calls) == 0  # a generator: nothing fetched yet
    assert next(found) == {"id": "c"}
    assert len(http.calls) == 1
    assert [i["id"] for i in found] == ["b", "a"]
    assert len(http.calls) == 2


@pytest.mark.parametrize(
    ("call", "path", "query"),
    [
        (lambda c: c.list_holds(state="pending", page_size=1), "/v1/holds", {"state": "pending", "limit": "1"}),
        (lambda c: c.list_webhook_endpoints(page_size=1), "/v1/webhook-endpoints", {"limit": "1"}),
        (
            lambda c: c.list_webhook_deliveries(status="failed", endpoint_id=WHE, page_size=1),
            "/v1/webhook-deliveries",
            {"status": "failed", "endpoint_id": WHE, "limit": "1"},
        ),
        (lambda c: c.list_instruction_events(INS, page_size=1), f"/v1/instructions/{INS}/events", {"limit": "1"}),
    ],
)
def test_every_list_pages_through_its_cursor(
    http: responses.RequestsMock, client: GatewayClient, call: Callable[[GatewayClient], Any], path: str, query: dict
) -> None:
    http.add(
        "GET", BASE + path, json={"items": [{"n": 1}], "next_cursor": "x1"}, match=[matchers.query_param_matcher(query)]
    )
    http.add(
        "GET",
        BASE + path,
        json={"items": [{"n": 2}], "next_cursor": None},
        match=[matchers.query_param_matcher({**query, "cursor": "x1"})],
    )

    assert list(call(client)) == [{"n": 1}, {"n": 2}]


def test_an_empty_list_is_one_request(http: responses.RequestsMock, client: GatewayClient) -> None:
    http.add("GET", BASE + "/v1/instructions", json={"items": [], "next_cursor": None})

    assert list(client.list_instructions()) == []
    assert len(http.calls) == 1


# -- retries -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError("Connection reset by peer"),
        requests.ReadTimeout("read timed out"),
        requests.ConnectTimeout("connect timed out"),
        requests.exceptions.ChunkedEncodingError("connection broken mid-answer"),
    ],
    ids=["reset", "read-timeout", "connect-timeout", "broken-answer"],
)
def test_a_network_failure_is_retried_with_the_same_key_and_the_same_body(
    http: responses.RequestsMock, client: GatewayClient, waits: list[float], failure: Exception
) -> None:
    url = BASE + "/v1/instructions"
    http.add("POST", url, body=failure)
    http.add("POST", url, body=failure)
    http.add("POST", url, json={"id": INS, "status": "received"}, status=202)

    assert client.submit_instruction(INSTRUCTION)["id"] == INS

    assert len(http.calls) == 3
    assert len({c.request.headers["Idempotency-Key"] for c in http.calls}) == 1
    assert len({c.request.body for c in http.calls}) == 1
    assert len(waits) == 2 and 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0  # backoff with jitter


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_that_is_down_or_overloaded_is_retried_with_the_same_key(
    http: responses.RequestsMock, client: GatewayClient, waits: list[float], status: int
) -> None:
    url = BASE + "/v1/instruction-batches"
    add_problem(http, "POST", url.removeprefix(BASE), status, problem(status, "unavailable", "Service Unavailable"))
    http.add("POST", url, json={"id": "bat_1", "accepted": 1, "refused": 0, "items": []}, status=202)

    assert client.submit_batch([{"reference": "A"}], idempotency_key="batch-7")["id"] == "bat_1"

    assert [c.request.headers["Idempotency-Key"] for c in http.calls] == ["batch-7", "batch-7"]
    assert len(waits) == 1


def test_retry_after_in_seconds_is_honoured(
    http: responses.RequestsMock, client: GatewayClient, waits: list[float]
) -> None:
    add_problem(
        http,
        "GET",
        f"/v1/instructions/{INS}",
        429,
        problem(429, "too-many-requests", "Slow down"),
        **{"Retry-After": "7"},
    )
    http.add("GET", BASE + f"/v1/instructions/{INS}", json={"id": INS})

    assert client.get_instruction(INS) == {"id": INS}
    assert waits == [7.0]


def test_retry_after_as_an_http_date_is_honoured_and_capped(http: responses.RequestsMock, waits: list[float]) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    much_later = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    add_problem(
        http, "GET", f"/v1/instructions/{INS}", 503, problem(503, "unavailable", "Busy"), **{"Retry-After": later}
    )
    add_problem(
        http, "GET", f"/v1/instructions/{INS}", 503, problem(503, "unavailable", "Busy"), **{"Retry-After": much_later}
    )
    http.add("GET", BASE + f"/v1/instructions/{INS}", json={"id": INS})
    client = GatewayClient(BASE, KEY, sleep=waits.append, retry=RetryPolicy(max_retry_after=45))

    assert client.get_instruction(INS) == {"id": INS}
    assert 25 <= waits[0] <= 30
    assert waits[1] == 45  # two hours is cut to the policy's patience


def test_retries_give_up_with_the_last_problem_typed(
    http: responses.RequestsMock, client: GatewayClient, waits: list[float]
) -> None:
    for _ in range(4):
        add_problem(
            http,
            "GET",
            "/v1/webhook-endpoints",
            503,
            problem(503, "unavailable", "Unavailable", "draining"),
            **{"Retry-After": "1"},
        )

    with pytest.raises(ServerError) as caught:
        list(client.list_webhook_endpoints())

    assert caught.value.status == 503 and caught.value.retry_after == 1.0 and caught.value.detail == "draining"
    assert len(http.calls) == 4 and waits == [1.0, 1.0, 1.0]


def test_a_rate_limit_that_lasts_is_a_rate_limited_error(http: responses.RequestsMock, waits: list[float]) -> None:
    client = GatewayClient(BASE, KEY, sleep=waits.append, retry=RetryPolicy(attempts=2))
    for _ in range(2):
        add_problem(
            http,
            "GET",
            f"/v1/holds/{INS}",
            429,
            problem(429, "too-many-requests", "Too Many Requests"),
            **{"Retry-After": "2"},
        )

    with pytest.raises(RateLimitedError) as caught:
        client.get_hold(INS)
    assert caught.value.retry_after == 2.0 and waits == [2.0]


def test_network_failures_that_last_are_a_transport_error(
    http: responses.RequestsMock, client: GatewayClient, waits: list[float]
) -> None:
    for _ in range(4):
        http.add("POST", BASE + "/v1/instructions", body=requests.ConnectionError("Connection refused"))

    with pytest.raises(TransportError) as caught:
        client.submit_instruction(INSTRUCTION)

    error = caught.value
    assert error.attempts == 4 and error.method == "POST" and error.path == "/v1/instructions"
    assert isinstance(error.cause, requests.ConnectionError)
    assert len(waits) == 3
    assert KEY not in str(error) and KEY not in repr(error)


def test_retries_can_be_turned_off(http: responses.RequestsMock, waits: list[float]) -> None:
    client = GatewayClient(BASE, KEY, sleep=waits.append, retry=RetryPolicy(attempts=1))
    http.add("GET", BASE + f"/v1/instructions/{INS}", body=requests.ReadTimeout("slow"))

    with pytest.raises(TransportError):
        client.get_instruction(INS)
    assert waits == []


def test_a_post_the_gateway_does_not_deduplicate_is_not_repeated_once_it_may_have_arrived(
    http: responses.RequestsMock, client: GatewayClient, waits: list[float]
) -> None:
    """A lost answer to "register an endpoint" could mean it exists: trying again would make a second one."""
    http.add("POST", BASE + "/v1/webhook-endpoints", body=requests.ReadTimeout("no answer"))
    with pytest.raises(TransportError) as lost:
        client.create_webhook_endpoint("https://erp.example/hooks")
    assert lost.value.attempts == 1

    add_problem(http, "POST", f"/v1/webhook-endpoints/{WHE}/rotate-secret", 502, {"message": "bad gateway"})
    with pytest.raises(ServerError) as proxy:
        client.rotate_webhook_secret(WHE)
    assert proxy.value.status == 502
    assert waits == [] and len(http.calls) == 2


def test_a_post_the_gateway_does_not_deduplicate_is_repeated_when_it_never_arrived(
    http: responses.RequestsMock, client: GatewayClient, waits: list[float]
) -> None:
    refused = requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "Connection refused")))  # type: ignore[arg-type]
    http.add("POST", BASE + f"/v1/instructions/{INS}/cancel", body=refused)
    http.add("POST", BASE + f"/v1/instructions/{INS}/cancel", body=requests.ConnectTimeout("no connection"))
    add_problem(
        http,
        "POST",
        f"/v1/instructions/{INS}/cancel",
        503,
        problem(503, "unavailable", "Starting"),
        **{"Retry-After": "0"},
    )
    http.add("POST", BASE + f"/v1/instructions/{INS}/cancel", json={"id": INS, "status": "cancelled"})

    assert client.cancel_instruction(INS)["status"] == "cancelled"
    assert len(http.calls) == 4 and waits[-1] == 0.0


# -- problem+json → typed errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "slug", "error"),
    [
        (400, "bad-request", ValidationError),
        (413, "payload-too-large", ValidationError),
        (415, "unsupported-media-type", ValidationError),
        (422, "contract-violation", ValidationError),
        (401, "unauthenticated", AuthError),
        (403, "four-eyes", AuthError),
        (404, "not-found", NotFoundError),
        (409, "idempotency-conflict", ConflictError),
        (500, "gateway-error", ServerError),
        (418, "teapot", ProblemError),
    ],
)
def test_a_problem_answer_is_raised_as_its_typed_error_with_every_field(
    http: responses.RequestsMock, client: GatewayClient, waits: list[float], status: int, slug: str, error: type
) -> None:
    body = problem(
        status,
        slug,
        "Something is wrong",
        "amount has more decimals than EUR allows",
        instance="/v1/instructions",
        errors=[{"pointer": "/amount", "detail": "at most 2 decimals"}, {"pointer": "/currency", "detail": "unknown"}],
    )
    add_problem(http, "POST", "/v1/instructions", status, body)

    with pytest.raises(error) as caught:
        client.submit_instruction(INSTRUCTION)

    e = caught.value
    assert isinstance(e, ProblemError) and e.status == status and e.type == PROBLEM + slug and e.slug == slug
    assert e.title == "Something is wrong" and e.detail == "amount has more decimals than EUR allows"
    assert e.instance == "/v1/instructions"
    assert e.pointer == "/amount" and [x.pointer for x in e.errors] == ["/amount", "/currency"]
    assert e.errors[0].detail == "at most 2 decimals" and e.body == body
    assert str(e) == (
        f"{status} Something is wrong: amount has more decimals than EUR allows "
        "(/amount: at most 2 decimals; /currency: unknown)"
    )
    assert waits == [] and len(http.calls) == 1  # 4xx and 500 are answers, not outages


def test_an_error_answer_that_is_not_problem_json_is_still_typed(
    http: responses.RequestsMock, client: GatewayClient
) -> None:
    http.add(
        "GET", BASE + f"/v1/instructions/{INS}", body="<html>Not Found</html>", status=404, content_type="text/html"
    )

    with pytest.raises(NotFoundError) as caught:
        client.get_instruction(INS)
    assert caught.value.title == "Not Found" and caught.value.type == "about:blank" and caught.value.errors == ()


def test_ids_are_escaped_into_one_path_segment(http: responses.RequestsMock, client: GatewayClient) -> None:
    http.add("GET", BASE + "/v1/instructions/..%2Fapi-keys", json={}, status=200)

    client.get_instruction("../api-keys")
    assert sent(http).path_url == "/v1/instructions/..%2Fapi-keys"


def test_no_repr_or_message_shows_the_api_key(http: responses.RequestsMock, client: GatewayClient) -> None:
    add_problem(
        http, "GET", "/v1/webhook-endpoints", 401, problem(401, "unauthenticated", "Unauthenticated", "unknown API key")
    )

    with pytest.raises(AuthError) as caught:
        list(client.list_webhook_endpoints())

    assert KEY not in repr(client) and KEY not in str(vars(caught.value)) and KEY not in str(caught.value)
    assert repr(client) == f"GatewayClient(base_url={BASE!r})"


def test_timeouts_can_be_set_and_an_api_key_is_required(http: responses.RequestsMock) -> None:
    http.add("GET", BASE + f"/v1/instructions/{INS}", json={"id": INS})
    GatewayClient(BASE + "/", KEY, timeout=(1, 2)).get_instruction(INS)

    assert http.calls[0].request.req_kwargs["timeout"] == (1, 2)
    with pytest.raises(ValueError, match="api_key"):
        GatewayClient(BASE, "")


def test_an_answer_that_is_not_the_gateways_is_a_problem_error_not_a_crash(
    http: responses.RequestsMock, client: GatewayClient
) -> None:
    http.add("GET", BASE + f"/v1/instructions/{INS}", body="<html>captive portal</html>", content_type="text/html")
    http.add("GET", BASE + f"/v1/webhook-endpoints/{WHE}", status=302, headers={"Location": "http://elsewhere.test/"})

    with pytest.raises(ProblemError, match="not JSON") as html:
        client.get_instruction(INS)
    with pytest.raises(ProblemError) as redirect:
        client.get_webhook_endpoint(WHE)

    assert html.value.status == 200
    assert redirect.value.status == 302 and len(http.calls) == 2  # redirects are not followed
