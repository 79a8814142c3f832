"""daybreak.toml validation, path resolution, config discovery, and secrets from the environment."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from daybreak.config import find_config, load_settings, read_dotenv
from daybreak.errors import ConfigError
from daybreak.logs import Redactor, make_handler
from tests.conftest import write_config


def error_for(tmp_path: Path, extra: str = "", replace: tuple[str, str] | None = None) -> str:
    config = write_config(tmp_path, extra)
    if replace:
        config.write_text(config.read_text().replace(*replace))
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    return str(caught.value)


def test_shipped_config_is_valid_and_names_four_markets() -> None:
    settings = load_settings(Path(__file__).parents[1] / "daybreak.toml", environ={})
    assert settings.market_codes == ["UK", "DE", "IT", "JP"]
    assert settings.markets["JP"].currency == "JPY"
    assert settings.source.backend == "local"
    assert "daily_sales_flow" in settings.jobs


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path), environ={})
    assert settings.paths.lake == tmp_path / "lake"
    assert settings.paths.warehouse == tmp_path / "warehouse" / "daybreak.duckdb"


@pytest.mark.parametrize(
    ("extra", "replace", "expected"),
    [
        ("\n[ingestion]\non_bad_fil = 'fail'\n", None, "ingestion.on_bad_fil: unknown key"),
        (
            None,
            ('currency = "JPY"', "currency = 392"),
            "markets.JP.currency: expected a valid string, got 392",
        ),
        (
            None,
            ('currency = "JPY"', 'currency = "yen"'),
            "markets.JP.currency: expected a 3-letter ISO currency code",
        ),
        (
            None,
            ('timezone = "Asia/Tokyo"', 'timezone = "Asia/Tokio"'),
            "markets.JP.timezone: expected an IANA time zone",
        ),
        (
            None,
            ('[markets.JP]\ncurrency = "JPY"\n', "[markets.JP]\n"),
            "markets.JP.currency: missing value",
        ),
        (
            None,
            ("rows_per_day = 25", 'rows_per_day = "25"'),
            "demo.rows_per_day: expected a valid integer, got '25'",
        ),
        (
            "\n[source]\nbackend = 'ftp'\n",
            None,
            "source.backend: expected 'local' or 'azure', got 'ftp'",
        ),
        (
            None,
            ("[markets.UK]", "[markets.uk]"),
            "markets.uk: expected a 2-letter upper-case market code",
        ),
        ("\n[source]\nbackend = 'azure'\n", None, "backend 'azure' needs [source.azure]"),
        (
            "\n[jobs.nightly]\nselect = ['uk_orders_azure']\ncron = '61 3 * * *'\n",
            None,
            "jobs.nightly.cron: expected a valid cron expression, got '61 3 * * *'",
        ),
        (
            "\n[jobs.nightly]\nselect = ['uk_orders_azure']\ncron = '0 0 3 * * *'\n",
            None,
            "jobs.nightly.cron: expected a cron expression of 5 fields",
        ),
        ("\n[ingestion]\ndays_back = 0\n", None, "ingestion.days_back: expected"),
    ],
)
def test_bad_config_names_the_key_and_what_was_expected(
    tmp_path: Path, extra: str | None, replace: tuple[str, str] | None, expected: str
) -> None:
    message = error_for(tmp_path, extra or "", replace)
    assert str(tmp_path / "daybreak.toml") in message
    assert expected in message, message


def test_not_toml_names_line_and_column(tmp_path: Path) -> None:
    message = error_for(tmp_path, "\n[demo\n")
    assert "not valid TOML" in message and "line" in message and "column" in message


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config PATH or set DAYBREAK_CONFIG"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_config_is_found_from_argument_then_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAYBREAK_CONFIG", raising=False)
    assert find_config() == tmp_path / "daybreak.toml"
    monkeypatch.setenv("DAYBREAK_CONFIG", "other/x.toml")
    assert find_config() == tmp_path / "other" / "x.toml"
    assert find_config("given.toml") == tmp_path / "given.toml"


AZURE = '\n[source]\nbackend = "azure"\n[source.azure]\ncontainer = "qi"\n'


def test_azure_needs_a_credential_from_the_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path, AZURE)
    with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        load_settings(config, environ={})
    settings = load_settings(
        config, environ={"AZURE_STORAGE_CONNECTION_STRING": "AccountKey=abc123secret"}
    )
    assert settings.secrets.values() == ["AccountKey=abc123secret"]
    assert "abc123secret" not in repr(settings)


def test_dotenv_beside_the_config_supplies_secrets_and_the_environment_wins(tmp_path: Path) -> None:
    config = write_config(tmp_path, AZURE)
    (tmp_path / ".env").write_text(
        "# secrets\nexport AZURE_STORAGE_CONNECTION_STRING='from-dotenv-123456'\n"
    )
    assert load_settings(config, environ={}).secrets.values() == ["from-dotenv-123456"]
    env = {"AZURE_STORAGE_CONNECTION_STRING": "from-environ-123456"}
    assert load_settings(config, environ=env).secrets.values() == ["from-environ-123456"]


def test_malformed_dotenv_names_the_line_without_echoing_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GOOD=1\nthis is my-secret-value\n")
    with pytest.raises(ConfigError) as caught:
        read_dotenv(tmp_path / ".env")
    assert ".env:2: expected KEY=VALUE" in str(caught.value)
    assert "my-secret-value" not in str(caught.value)


def test_dotenv_as_other_tools_read_it_comments_quotes_export(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# secrets\n"
        "export AZURE_STORAGE_SAS_TOKEN=sv=2024&sig=abc123456  # the token from the portal\n"
        "TABLEAU_TOKEN_SECRET='quoted # not a comment'\n"
        'SHAREPOINT_CLIENT_SECRET="double quoted"\n'
        "\n"
    )
    assert read_dotenv(tmp_path / ".env") == {
        "AZURE_STORAGE_SAS_TOKEN": "sv=2024&sig=abc123456",
        "TABLEAU_TOKEN_SECRET": "quoted # not a comment",
        "SHAREPOINT_CLIENT_SECRET": "double quoted",
    }


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-8-sig"], ids=["PowerShell 5 (UTF-16)", "Notepad (UTF-8 BOM)"]
)
def test_dotenv_and_config_saved_by_windows_editors_are_read(tmp_path: Path, encoding: str) -> None:
    config = write_config(tmp_path, AZURE)
    config.write_bytes(config.read_text().replace("\n", "\r\n").encode(encoding))
    (tmp_path / ".env").write_bytes(
        "AZURE_STORAGE_CONNECTION_STRING=from-windows-123456\r\n".encode(encoding)
    )
    settings = load_settings(config, environ={})
    assert settings.secrets.values() == ["from-windows-123456"]
    assert settings.market_codes == ["UK", "DE", "IT", "JP"]


def test_a_dotenv_that_is_not_text_is_named_not_echoed(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"KEY=\xff\xfe-not-utf8-secret\xc3\x28\n")
    with pytest.raises(ConfigError) as caught:
        read_dotenv(tmp_path / ".env")
    assert ".env: not UTF-8 or UTF-16 text" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_log_lines_and_tracebacks_never_carry_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    from daybreak import logs

    logs.redact.register(["s3cr3t-account-key"])
    logger = logging.getLogger("test.redaction")
    handler = make_handler()
    logger.addHandler(handler)
    try:
        logger.error("connecting with %s", "AccountKey=s3cr3t-account-key;")
        try:
            raise RuntimeError("GET https://acct.blob/x?sv=1&sig=abcdefSIGNATURE&se=2 failed")
        except RuntimeError:
            logger.exception("download failed")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "s3cr3t-account-key" not in err and "abcdefSIGNATURE" not in err
    assert "AccountKey=***" in err and "sig=***" in err
    assert "RuntimeError" in err  # the traceback itself is kept


def test_redactor_masks_longest_secret_first() -> None:
    redact = Redactor()
    redact.register(["abcdef", "abcdefghij", "xy"])
    assert redact("key abcdefghij and abcdef, xy") == "key *** and ***, xy"


@pytest.mark.parametrize(
    "name", ["daybreak.duckdb", "DAYBREAK.duckdb", "readers.db", "spark-warehouse.duckdb"]
)
def test_a_reader_copy_that_would_land_on_the_warehouse_or_its_files_is_refused(
    tmp_path: Path, name: str
) -> None:
    config = write_config(tmp_path, f'[warehouse]\nreader_copy = "{name}"\n')
    with pytest.raises(ConfigError, match=r"warehouse\.reader_copy .*other than the warehouse"):
        load_settings(config, environ={})
    ok = write_config(tmp_path, '[warehouse]\nreader_copy = "for_readers.duckdb"\n')
    assert load_settings(ok, environ={}).reader_copy == tmp_path / "warehouse/for_readers.duckdb"
