"""Credentials found wherever a workflow puts them: the one classifier, as a table, and
every form of issue 10 (defect 9) kept out of the module and the IR."""

from __future__ import annotations

import json

import pytest

from kflow import AsyncLocalRuntime, AsyncWorkflowBuilder, compile_workflow
from kflow.builder import runtime_extras
from kflow.secrets import is_secret, secret_literals

# (path under the settings, value, is it a credential?)
TABLE = [
    (("password",), "hunter2", True),
    (("passwd",), "hunter2", True),
    (("db_password",), "hunter2", True),
    (("api_key",), "k", True),
    (("apiKey",), "k", True),
    (("token",), "t", True),
    (("access_token",), "t", True),
    (("client_secret",), "s", True),
    (("credentials",), "c", True),
    (("private_key",), "pem", True),
    (("auth",), "user:pass", True),
    (("password",), 1234, True),
    (("password",), "", False),
    (("password",), None, False),
    (("host",), "db.internal", False),
    (("author",), "me", False),
    (("key_prefix",), "app:", False),
    (("timeout",), 30, False),
    (("ssl",), True, False),
    # DSNs and URLs
    (("dsn",), "postgresql://u:pw@h/db", True),
    (("dsn",), "postgresql://u@h/db?password=pw", True),
    (("dsn",), "postgresql://u@h/db?sslmode=require", False),
    (("dsn",), "host=h user=u password=pw dbname=d", True),
    (("dsn",), "host=h user=u dbname=d", False),
    (("url",), "redis://h:6379/0?password=pw", True),
    (("url",), "redis://:pw@h:6379/0", True),
    (("url",), "redis://h:6379/0", False),
    (("base_url",), "https://api.example.com/v1?api_key=k", True),
    (("base_url",), "https://api.example.com/v1?token=t", True),
    (("base_url",), "https://api.example.com/v1?access_token=t", True),
    (("base_url",), "https://api.example.com/v1?secret=s", True),
    (("base_url",), "https://api.example.com/v1?key=k", True),
    (("base_url",), "https://api.example.com/v1?page=2", False),
    (("base_url",), "https://[broken/v1", True),  # cannot be parsed: kept secret
    # headers, by name
    (("headers", "Authorization"), "Bearer t", True),
    (("headers", "Proxy-Authorization"), "Basic x", True),
    (("headers", "X-Auth-Token"), "t", True),
    (("headers", "X-Access-Token"), "t", True),
    (("headers", "Api-Key"), "k", True),
    (("headers", "X-Api-Key"), "k", True),
    (("headers", "X-Client-Secret"), "s", True),
    (("headers", "Cookie"), "sid=1", True),
    (("headers", "X-Session-Id"), "abc", True),
    (("headers", "User-Agent"), "MyApp/1.0", False),
    (("headers", "Accept"), "application/json", False),
    # cookies, auth pairs, nested dicts
    (("cookies", "sid"), "abc", True),
    (("cookies",), "sid=abc", True),
    (("auth", 0), "user", False),
    (("auth", 1), "pw", True),
    (("server_settings", "password"), "pw", True),
    (("server_settings", "application_name"), "nightly", False),
    (("options", "nested", "token"), "t", True),
]


@pytest.mark.parametrize("path, value, secret", TABLE, ids=[f"{p}={v!r}" for p, v, _ in TABLE])
def test_the_classifier(path, value, secret):
    assert is_secret(path, value) is secret


# Each form of defect 9, as a workflow declares it, with the values that must not leak.
FORMS = [
    ("dsn with ?password=", "with_database", {"dsn": "postgresql://u@h/db?password=PW1"},
     ["PW1"], ["KFLOW_R_DSN"]),
    ("redis url with ?password=", "with_cache", {"url": "redis://h:6379/0?password=PW2"},
     ["PW2"], ["KFLOW_R_URL"]),
    ("base_url with api_key", "with_http_client",
     {"base_url": "https://h/v1?api_key=K3&page=1"}, ["K3"], ["KFLOW_R_BASE_URL"]),
    ("credential headers", "with_http_client",
     {"headers": {"X-Auth-Token": "T4", "X-Access-Token": "T5", "Api-Key": "K6",
                  "X-Api-Key": "K7", "X-Client-Secret": "S8", "Cookie": "C9",
                  "Proxy-Authorization": "P10", "X-My-Session": "S11", "Accept": "a/b"}},
     ["T4", "T5", "K6", "K7", "S8", "C9", "P10", "S11"],
     ["KFLOW_R_HEADERS_X_AUTH_TOKEN", "KFLOW_R_HEADERS_PROXY_AUTHORIZATION"]),
    ("headers as pairs", "with_http_client",
     {"headers": [("Authorization", "Bearer T12"), ("Accept", "a/b")]}, ["T12"],
     ["KFLOW_R_HEADERS_AUTHORIZATION"]),
    ("cookies", "with_http_client", {"cookies": {"sid": "C13"}}, ["C13"],
     ["KFLOW_R_COOKIES_SID"]),
    ("auth pair", "with_http_client", {"auth": ("alice", "PW14")}, ["PW14"],
     ["KFLOW_R_AUTH_PASSWORD"]),
    ("redis auth", "with_cache", {"auth": "PW15"}, ["PW15"], ["KFLOW_R_AUTH"]),
    ("redis password", "with_cache", {"password": "PW16"}, ["PW16"], ["KFLOW_R_PASSWORD"]),
    ("server_settings", "with_database", {"server_settings": {"password": "PW17"}}, ["PW17"],
     ["KFLOW_R_SERVER_SETTINGS_PASSWORD"]),
]


@pytest.mark.parametrize("label, method, settings, values, variables", FORMS,
                         ids=[f[0] for f in FORMS])
def test_every_credential_form_becomes_an_environment_lookup(label, method, settings, values,
                                                              variables):
    builder = AsyncWorkflowBuilder("w")
    getattr(builder, method)("r", **settings)
    builder.add_async_code("use", "result = str(r)")
    workflow = builder.build()
    compiled = compile_workflow(workflow)
    for text in (compiled.source, workflow.to_json()):
        assert not [v for v in values if v in text], text
    assert set(variables) <= set(compiled.env_vars)
    for variable in variables:
        assert f'Secret("{variable}")' in compiled.source
    kept = runtime_extras(workflow).secrets.values()  # for in-process runs
    assert all(any(v in secret for secret in kept) for v in values)


def test_what_is_not_a_credential_stays_in_the_module():
    builder = AsyncWorkflowBuilder("w")
    builder.with_http_client("api", base_url="https://h/v1?page=2",
                             headers=[("Accept", "a/b"), ("Authorization", "Bearer t")],
                             auth=("alice", "pw"))
    builder.add_async_code("use", "result = str(api)")
    source = compile_workflow(builder.build()).source
    assert '"https://h/v1?page=2"' in source and '"a/b"' in source and '"alice"' in source


class Client:
    def __init__(self, api_key, region="eu"):
        self.api_key, self.region = api_key, region


API_KEY = "sk-live-literal"


def make_client(api_key, region="eu"):
    return Client(api_key, region)


def make_client_with_literal():
    return Client(API_KEY)


async def test_require_resource_settings_reach_the_factory_from_the_environment(monkeypatch):
    builder = AsyncWorkflowBuilder("w")
    builder.require_resource("crm", make_client, settings={"api_key": "sk-1", "region": "us"})
    builder.add_async_code("use", "result = (crm.api_key, crm.region)")
    workflow = builder.build()
    compiled = compile_workflow(workflow)
    assert "sk-1" not in compiled.source and "sk-1" not in workflow.to_json()
    assert compiled.env_vars == ("KFLOW_CRM_API_KEY",)
    envelope = await AsyncLocalRuntime().execute_workflow_async(workflow, {})
    assert envelope["results"]["use"] == ("sk-1", "us"), envelope["errors"]
    monkeypatch.setenv("KFLOW_CRM_API_KEY", "sk-from-env")
    envelope = await AsyncLocalRuntime().execute_workflow_async(workflow, {})
    assert envelope["results"]["use"] == ("sk-from-env", "us")


def test_a_credential_inlined_from_a_factory_is_warned_about():
    builder = AsyncWorkflowBuilder("w")
    builder.require_resource("crm", make_client_with_literal)
    builder.add_async_code("use", "result = crm.api_key")
    compiled = compile_workflow(builder.build())
    (warning,) = [w for w in compiled.warnings if w.code == "KF109"]
    assert "resource 'crm': its factory holds what looks like a credential (API_KEY)" in (
        warning.message)
    assert "settings=" in warning.hint


@pytest.mark.parametrize("code, names", [
    ('API_KEY = "x"', ["API_KEY"]),
    ('connect(password="x")', ["password"]),
    ('headers = {"Authorization": "Bearer x"}', ["Authorization"]),
    ('url = "postgresql://u:pw@h/db"', ["a URL with a credential"]),
    ('name = "x"\nconnect(host="h")', []),
])
def test_secret_literals(code, names):
    assert [name for name, _ in secret_literals(code)] == names


def test_two_credentials_on_one_variable_are_an_error(kflowc, write_workflow, tmp_path):
    path = write_workflow(
        "from kailash.workflow import AsyncWorkflowBuilder\n"
        'builder = AsyncWorkflowBuilder("w")\n'
        'builder.with_http_client("api", headers={"X-Api-Key": "a", "X_API_KEY": "b"})\n'
    )
    code, _, stderr = kflowc("build", path, "-o", str(tmp_path / "out.py"))
    assert code == 2 and ":3:1: error KF019: resource 'api': two secrets" in stderr


def test_the_ir_of_a_credential_form_reads_back(tmp_path):
    builder = AsyncWorkflowBuilder("w")
    builder.with_http_client("api", headers=[("Authorization", "Bearer t")], auth=("u", "p"))
    workflow = builder.build()
    data = json.loads(workflow.to_json())
    assert data["resources"][0]["settings"]["auth"] == ["u", {"__secret__": "KFLOW_API_AUTH_PASSWORD"}]
    from kflow import Workflow

    assert Workflow.from_json(workflow.to_json()) == workflow
