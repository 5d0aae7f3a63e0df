"""Configuration: defaults, the TOML file, env variables, flags, and their checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fastws.hub.config import ConfigError, HubConfig, check_file, load_config
from fastws.hub.namespaces import Namespace
from tests.support.paths import DOCS


def write(tmp_path, text: str) -> str:
    path = tmp_path / "hub.toml"
    path.write_text(text)
    return str(path)


OPEN = {"FASTWS_INSECURE": "1"}  # no token key: development mode, said explicitly


def test_defaults_are_valid_and_give_the_demo_rooms_history() -> None:
    config = load_config({}, OPEN)
    assert (config.host, config.port, config.broker) == ("127.0.0.1", 8080, "memory://")
    assert config.insecure
    chat = config.namespace("chat:lobby")
    assert chat.history_size > 0 and chat.history_ttl > 0 and chat.presence and chat.join_leave
    assert config.namespace("other") == Namespace("")  # the default namespace keeps nothing
    assert config.namespace("other:x") is None  # not declared


def test_file_then_env_then_flags(tmp_path) -> None:
    path = write(
        tmp_path,
        """
port = 9000
host = "0.0.0.0"
jwt_secret = "from the file"
command_rate = 5
allowed_origins = ["https://a.example"]

[[namespaces]]
name = "room"
history_size = 10
history_ttl = 30
presence = true
allow_subscribe_for_client = true
""",
    )
    environ = {"FASTWS_CONFIG": path, "FASTWS_PORT": "9100", "FASTWS_API_KEY": "env-key"}
    config = load_config({"port": "9200"}, environ)
    assert config.port == 9200  # flag over env over file
    assert config.api_key == "env-key"
    assert config.host == "0.0.0.0" and config.jwt_secret == "from the file"
    assert config.command_rate == 5.0 and config.allowed_origins == ["https://a.example"]
    room = Namespace("room", 10, 30.0, True, False, allow_subscribe_for_client=True)
    assert config.namespaces == [room] and config.namespace("room:x") == room
    assert config.namespace("chat:x") is None  # the file replaces the defaults
    assert not config.insecure
    env_only = load_config({}, {"FASTWS_ALLOWED_ORIGINS": "https://a, https://b", **OPEN})
    assert env_only.allowed_origins == ["https://a", "https://b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prot = 1", r"unknown key 'prot' \(did you mean 'port'\?\)"),
        ("port = 'x'", r"port: expected an integer, got str"),
        ("port = true", r"port: expected an integer"),
        ("jwt_leeway = 'soon'", r"jwt_leeway: expected a number"),
        ("allowed_origins = 'a'", r"allowed_origins: expected an array of strings"),
        ("port = 70000", r"port: 70000 is not between"),
        ("workers = 'many'", r'workers: expected an integer or "auto"'),
        ("broker = 'kafka://localhost'", r"supported schemes: memory://, redis://"),
        ("log_level = 'loud'", r"log_level"),
        ("max_subscriptions = 0", r"max_subscriptions: must be positive"),
        ("jwt_public_key = '/no/such.pem'", r"jwt_public_key: no such file"),
        ("[[namespaces]]\nhistory_size = 1", r"namespaces\[0\]: the 'name' key is missing"),
        ("[[namespaces]]\nname = 'a'\nhistory = 1", r"namespaces\[0\]: unknown key 'history'"),
        ("[[namespaces]]\nname = 'a:*'", r"namespaces\[0\].name: 'a:\*' may hold only"),
        ("[[namespaces]]\nname = ''", r"namespaces\[0\].name: must not be empty"),
        ("[[namespaces]]\nname = 'a'\npresence = 1", r"namespaces\[0\].presence: expected true"),
        (
            "[[namespaces]]\nname = 'a'\nallow_subscribe_for_clients = true",
            r"unknown key 'allow_subscribe_for_clients' \(did you mean "
            r"'allow_subscribe_for_client'\?\)",
        ),
        ("allow_publish_for_client = 'yes'", r"allow_publish_for_client: expected true or false"),
        ("history_size = 5", r"history_ttl: must be positive"),
        ("[[channels]]\npattern = 'chat:*'", r"unknown key 'channels': .*\[\[namespaces\]\]"),
        (
            "[[namespaces]]\nname = 'a'\nhistory_size = 5",
            r"namespaces\[0\].history_ttl: must be positive",
        ),
        ("[[namespaces]]\nname = 'a'\n[[namespaces]]\nname = 'a'", r"appears twice"),
        ("namespaces = 3", r"namespaces: expected an array of tables"),
        ("port = ", r"not valid TOML"),
        ("proxy_notify_events = 'disconnect'", r"proxy_notify_events: expected an array"),
        (
            "proxy_notify_events = ['disconnect', 'closed']",
            r"proxy_notify_events: 'closed' is not a notification; the notifications are "
            r"disconnect, channel_occupied, channel_vacated",
        ),
        (
            "proxy_notify_endpoint = 'http://backend/notify'\nproxy_notify_events = []",
            r"proxy_notify_events: empty, so proxy_notify_endpoint would get nothing",
        ),
    ],
)
def test_bad_files_name_the_bad_key(tmp_path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as caught:
        check_file(path)
    assert str(caught.value).startswith(path)


def test_bad_env_and_flag_values_name_their_source() -> None:
    with pytest.raises(ConfigError, match="FASTWS_PORT: expected an integer, got 'abc'"):
        load_config({}, {"FASTWS_PORT": "abc"})
    with pytest.raises(ConfigError, match="--jwt-leeway: expected a number"):
        load_config({"jwt_leeway": "x"}, {})
    with pytest.raises(ConfigError, match="no such file|cannot read"):
        load_config({}, {}, path="/no/such/file.toml")


def test_every_option_has_a_flag_and_an_env_variable() -> None:
    from fastws.cli import _parser

    help_text = _parser().format_help()
    for name in HubConfig.__dataclass_fields__:
        if name == "namespaces":
            continue
        assert "--" + name.replace("_", "-") in help_text, name
        assert "FASTWS_" + name.upper() in help_text, name


def test_check_config_command(tmp_path) -> None:
    good = write(
        tmp_path, "port = 9000\ninsecure = true\n[[namespaces]]\nname = 'x'\npresence = true\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "fastws", "check-config", good],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("port = 9000\nmax_conections = 5\n")
    done = subprocess.run(
        [sys.executable, "-m", "fastws", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "max_conections" in done.stderr and "max_connections" in done.stderr


def test_every_option_is_documented() -> None:

    text = (DOCS / "hub.md").read_text()
    for name in HubConfig.__dataclass_fields__:
        assert f"| `{name}` |" in text, name


def test_workers_auto_is_one_per_core_and_operations_options_are_checked(tmp_path) -> None:
    from fastws.hub.config import cpu_count, values_from_mapping

    assert load_config({"workers": "auto"}, OPEN).workers == cpu_count() >= 1
    assert load_config({}, {"FASTWS_WORKERS": "3", **OPEN}).workers == 3
    assert values_from_mapping({"workers": "auto"})["workers"] == cpu_count()
    cert = tmp_path / "cert.pem"
    cert.write_text("-")
    for flags, expected in [
        ({"log_format": "xml"}, "log_format: 'xml' is not one of plain, json"),
        ({"keyfile": str(cert)}, "keyfile: needs certfile"),
        ({"certfile": str(tmp_path / "none.pem")}, "certfile: no such file"),
        ({"drain_window": "-1"}, "drain_window: must not be negative"),
    ]:
        with pytest.raises(ConfigError, match=expected):
            load_config(flags, OPEN)
    config = load_config({"certfile": str(cert), "drain_window": "2.5", "metrics": "off"}, OPEN)
    assert (config.certfile, config.drain_window, config.metrics) == (str(cert), 2.5, False)


def test_token_key_from_files_env_or_toml_and_insecure_only_when_asked(tmp_path) -> None:
    key = tmp_path / "jwt"
    key.write_text("s" * 40 + "\r\n")
    api = tmp_path / "api"
    api.write_text("k" * 20)
    config = load_config({"jwt_secret_file": str(key), "api_key_file": str(api)}, {})
    assert (config.jwt_secret, config.api_key, config.insecure) == ("s" * 40, "k" * 20, False)
    path = write(tmp_path, f"jwt_secret_file = '{key}'\n")
    assert check_file(path).jwt_secret == "s" * 40
    assert load_config({}, {"FASTWS_JWT_SECRET_FILE": str(key)}).jwt_secret == "s" * 40
    for environ, path_text in [
        ({"FASTWS_INSECURE": "1"}, None),
        ({"FASTWS_INSECURE": "true"}, None),
        ({}, "insecure = true\n"),
    ]:
        path = write(tmp_path, path_text) if path_text else None
        assert load_config({}, environ, path).insecure
    assert load_config({"insecure": "true"}, {}).insecure
    with pytest.raises(ConfigError, match="no token key"):
        load_config({}, {"FASTWS_INSECURE": "0"})
    with pytest.raises(ConfigError, match="insecure: expected true or false"):
        write(tmp_path, "insecure = 'yes'\n")
        check_file(str(tmp_path / "hub.toml"))


def test_a_secret_and_its_file_are_one_setting(tmp_path) -> None:
    key = tmp_path / "jwt"
    key.write_text("from the file " * 3)
    env = {"FASTWS_JWT_SECRET": "from the environment " * 2}
    assert load_config({"jwt_secret_file": str(key)}, env).jwt_secret == "from the file " * 3
    flag_wins = load_config({"jwt_secret": "flag " * 8}, {"FASTWS_JWT_SECRET_FILE": str(key)})
    assert flag_wins.jwt_secret == "flag " * 8
    path = write(tmp_path, f"jwt_secret_file = '{key}'\n")
    assert load_config({}, env, path).jwt_secret == "from the environment " * 2
    for flags, environ in [
        ({"jwt_secret": "a", "jwt_secret_file": str(key)}, {}),
        ({}, {"FASTWS_API_KEY": "a", "FASTWS_API_KEY_FILE": str(key), **OPEN}),
    ]:
        with pytest.raises(ConfigError, match="both set"):
            load_config(flags, environ)


def test_internal_port_is_checked() -> None:
    assert load_config({"internal_port": "9090"}, OPEN).internal_port == 9090
    assert load_config({}, OPEN).internal_port is None
    for flags, expected in [
        ({"internal_port": "70000"}, "internal_port: 70000 is not between"),
        ({"internal_port": "8080"}, "internal_port: must differ from port"),
        ({"internal_host": "10.0.0.1"}, "internal_host: needs internal_port"),
        ({"internal_port": "x"}, "--internal-port: expected an integer"),
    ]:
        with pytest.raises(ConfigError, match=expected):
            load_config(flags, OPEN)


def test_a_secret_of_the_wrong_type_is_not_repeated(tmp_path) -> None:
    with pytest.raises(ConfigError, match="jwt_secret: expected a string, got int$"):
        check_file(write(tmp_path, "jwt_secret = 123456789\n"))


def test_broker_errors_hide_the_password() -> None:
    for broker in ("kafka://:hunter2@h", "redis://:hunter2@h:x/0", "redis://:hunter2@h/abc"):
        with pytest.raises(ConfigError) as caught:
            load_config({"broker": broker}, OPEN)
        assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


def test_an_upgrade_keeps_secret_flags_off_the_command_line(monkeypatch) -> None:
    from fastws.hub.process.supervisor import upgrade_command

    monkeypatch.setattr(sys, "argv", ["/x/fastws/__main__.py", "--workers", "2", "--api-key", "K"])
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-X", "dev", "-m", "fastws", "--workers",
                                           "2", "--api-key", "K"])  # fmt: skip
    flags = {
        "workers": "2",
        "api_key": "K",
        "jwt_secret": "S",
        "broker": "redis://:P@h/0",
        "port": "0",
    }
    argv, secrets = upgrade_command(flags, "/etc/hub.toml")
    assert argv == [
        sys.executable, "-X", "dev", "-m", "fastws", "--workers=2", "--port=0",
        "--config=/etc/hub.toml",
    ]  # fmt: skip
    assert secrets == {"api_key": "K", "jwt_secret": "S", "broker": "redis://:P@h/0"}
    argv, secrets = upgrade_command({"broker": "redis://h/0"}, None)
    assert argv[-1] == "--broker=redis://h/0" and secrets == {}


def test_proxy_static_headers_from_a_table_repeated_flags_the_env_or_a_file(tmp_path) -> None:
    from fastws.cli import _parser
    from fastws.hub.config import flags_from_namespace

    hub = "insecure = true\nproxy_rpc_endpoint = 'http://backend/rpc'\n"
    path = write(tmp_path, hub + "[proxy_static_headers]\nX-Hub-Name = 'eu-1'\n")
    assert load_config({}, {}, path).proxy_static_headers == {"X-Hub-Name": "eu-1"}
    secret = tmp_path / "hook-headers"
    secret.write_text("# the key the backend checks\nAuthorization = Bearer s3cr=t\n")
    config = load_config({"proxy_static_headers_file": str(secret)}, {}, path)
    assert config.proxy_static_headers == {"X-Hub-Name": "eu-1", "Authorization": "Bearer s3cr=t"}
    assert config.proxy_static_headers_file is None  # read once; workers get the headers
    env = {"FASTWS_PROXY_STATIC_HEADERS": "Authorization=Bearer from-env\nX-B=2"}
    assert load_config({}, env, path).proxy_static_headers == {
        "Authorization": "Bearer from-env", "X-B": "2"
    }  # fmt: skip
    args = _parser().parse_args(
        ["--proxy-static-header", "X-A=1", "--proxy-static-header", "X-B = two words"]
    )
    flags, _ = flags_from_namespace(args)
    assert load_config(flags, {}, path).proxy_static_headers == {"X-A": "1", "X-B": "two words"}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('"X-A=1"', r"proxy_static_headers: expected a table of strings \(NAME = \"VALUE\"\), got str$"),
        ('{"X-A" = "k\\r\\nInjected: 1"}', "the value of 'X-A' contains a line break"),
        ('{"X-A" = "k\\u0000"}', "the value of 'X-A' contains a control character"),
        ('{"X A" = "k"}', "'X A' is not a valid header name"),
        ('{"Content-Length" = "0"}', "'Content-Length' is written by the hub itself"),
        ('{"X-A" = "k", "x-a" = "j"}', "'x-a' is given twice"),
    ],
)
def test_proxy_static_headers_are_checked_without_repeating_values(tmp_path, table, expected) -> None:
    path = write(tmp_path, f"insecure = true\nproxy_rpc_endpoint = 'http://b/rpc'\nproxy_static_headers = {table}\n")
    with pytest.raises(ConfigError, match=expected) as caught:
        check_file(path)
    assert "Injected" not in str(caught.value)


def test_proxy_static_headers_need_an_endpoint_and_one_value_per_name(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no proxy_\\*_endpoint is configured"):
        load_config({"proxy_static_headers": "X-A=1"}, OPEN)
    endpoint = {"proxy_rpc_endpoint": "http://b/rpc"}
    with pytest.raises(ConfigError, match="FASTWS_PROXY_STATIC_HEADERS: line 2 is not NAME=VALUE"):
        load_config(endpoint, {**OPEN, "FASTWS_PROXY_STATIC_HEADERS": "X-A=1\nsecret"})
    secret = tmp_path / "hook-headers"
    secret.write_text("x-a=2\n")
    flags = {**endpoint, "proxy_static_headers": "X-A=1", "proxy_static_headers_file": str(secret)}
    with pytest.raises(ConfigError, match="'x-a' is given both inline and in proxy_static_headers"):
        load_config(flags, OPEN)
    secret.write_text("")
    with pytest.raises(ConfigError, match="proxy_static_headers_file: .* is empty"):
        load_config({**endpoint, "proxy_static_headers_file": str(secret)}, OPEN)


def test_an_upgrade_keeps_the_proxy_static_headers_off_the_command_line(monkeypatch) -> None:
    from fastws.hub.process.supervisor import SECRET_VARIABLES, upgrade_command

    monkeypatch.setattr(sys, "argv", ["/x/fastws/__main__.py"])
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-m", "fastws"])
    flags = {"proxy_static_headers": "Authorization=Bearer K", "workers": "2"}
    argv, secrets = upgrade_command(flags, None)
    assert argv[-1] == "--workers=2" and secrets == {"proxy_static_headers": "Authorization=Bearer K"}
    assert "FASTWS_PROXY_STATIC_HEADERS" in SECRET_VARIABLES  # workers get the merged headers


def test_proxy_notify_events_from_the_file_a_flag_or_the_env_default_to_all() -> None:
    assert load_config({}, OPEN).proxy_notify_events == [
        "disconnect", "channel_occupied", "channel_vacated"
    ]  # fmt: skip
    endpoint = {"proxy_notify_endpoint": "http://backend/notify"}
    flag = {"proxy_notify_events": "disconnect, channel_vacated", **endpoint}
    assert load_config(flag, OPEN).proxy_notify_events == ["disconnect", "channel_vacated"]
    env = {"FASTWS_PROXY_NOTIFY_EVENTS": "disconnect", **OPEN}
    assert load_config(endpoint, env).proxy_notify_events == ["disconnect"]
    with pytest.raises(ConfigError, match="proxy_notify_events: empty"):
        load_config(endpoint, {"FASTWS_PROXY_NOTIFY_EVENTS": "", **OPEN})
    with pytest.raises(ConfigError, match="proxy_notify_events: 'occupied' is not a notification"):
        load_config({"proxy_notify_events": "disconnect,occupied"}, OPEN)
