"""daybreak.toml, validated once into a Settings object; secrets come only from the environment.

Everything else in daybreak receives a Settings (or a part of it) and never reads files or
os.environ for configuration itself.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import io
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from daybreak.errors import ConfigError
from daybreak.state import StateLayout

CONFIG_ENV_VAR = "DAYBREAK_CONFIG"
DEFAULT_CONFIG_NAME = "daybreak.toml"


def _valid_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"an IANA time zone such as 'Europe/London', got {name!r}") from None
    return name


def _currency_code(code: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValueError(f"a 3-letter ISO currency code such as 'GBP', got {code!r}")
    return code


def _market_code(code: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise ValueError(f"a 2-letter upper-case market code such as 'UK', got {code!r}")
    return code


def _extract_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}", name) or name.endswith("."):
        raise ValueError(f"an extract name of letters, digits, ' ', '_', '.', '-', got {name!r}")
    return name


def _identifier(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"a plain name of letters, digits and '_', got {name!r}")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Market(_Strict):
    """One market: its trading currency and the zone its order timestamps are in."""

    currency: Annotated[str, AfterValidator(_currency_code)]
    timezone: Annotated[str, AfterValidator(_valid_timezone)]


# TOML has no path type: a path is a string, converted here.
_PathField = Annotated[Path, Field(strict=False)]


class Paths(_Strict):
    """Folders daybreak reads and writes; relative ones are resolved against the config file."""

    landing: _PathField = Path("data/landing")
    lake: _PathField = Path("data/lake")
    warehouse: _PathField = Path("data/warehouse/daybreak.duckdb")
    exports: _PathField = Path("data/exports")
    state: _PathField = Path("data/state")
    # The dbt project; by default the one in this repository, wherever the config file lives.
    dbt_project: _PathField = Path(__file__).resolve().parent.parent / "dbt"


class AzureSourceConfig(_Strict):
    """Where the Azure container is; the credential itself comes from the environment."""

    container: str
    account_url: str | None = None
    # Azurite rejects the newest storage API version; real Azure needs no override.
    api_version: str | None = None


class SourceConfig(_Strict):
    """Which backend the landing zone is read from."""

    backend: Literal["local", "azure"] = "local"
    azure: AzureSourceConfig | None = None


class IngestionConfig(_Strict):
    """How far back a routine sync looks, and how it treats bad input."""

    # A routine sync looks at files dated within this many days before the run date (a first
    # sync, or --full, takes the whole history). dbt's key tests check the same window.
    days_back: Annotated[int, Field(ge=1, le=3660)] = 30
    on_bad_file: Literal["fail", "warn"] = "fail"
    # Volume check on daily files: a day with fewer rows than this fraction of the median of the
    # same weekday over the last volume_weeks weeks is flagged as a probable partial export (and
    # alerted once); 0 turns it off. A day below min_rows fails the asset instead.
    volume_ratio: Annotated[float, Field(ge=0, le=1, strict=False)] = 0.5
    volume_weeks: Annotated[int, Field(ge=2, le=52)] = 6
    min_rows: Annotated[int, Field(ge=0)] = 0


class SharePointConfig(_Strict):
    """Where the budget workbook lives in SharePoint; the app's credentials come from the env."""

    site_hostname: str
    site_path: str
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com/v1.0"
    # Tries per Graph call before the asset fails as transient; the asset's retry policy (60,
    # 120, ... s) is the retry layer, so 1 by default (more for standalone use).
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 1
    backoff_seconds: Annotated[float, Field(ge=0, strict=False)] = 2.0


class BudgetConfig(_Strict):
    """Finance's budget workbook: from the local landing zone or from SharePoint."""

    source: Literal["local", "sharepoint"] = "local"
    # Path inside the SharePoint drive; locally, inside <landing>/sharepoint/.
    file: str = "Budget/Daily Sales Budget.xlsx"
    keep_downloads: Annotated[int, Field(ge=1, le=1000)] = 10
    sharepoint: SharePointConfig | None = None


class TableauConfig(_Strict):
    """Tableau Server to publish extracts to; without server_url nothing is published."""

    server_url: str | None = None
    site: str = ""  # the site's content URL; "" is the default site
    project: str = "Default"
    # Ask the server for its REST API version (recommended); else TSC's default or api_version.
    use_server_version: bool = True
    api_version: str | None = None
    # Publish tries before the export fails as transient; the export asset's retry policy is the
    # retry layer, so 1 by default (more for the script run by hand).
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 1
    backoff_seconds: Annotated[float, Field(ge=0, strict=False)] = 5.0
    keep_backups: Annotated[int, Field(ge=1, le=1000)] = 7


class ExportConfig(_Strict):
    """One Tableau export: which warehouse tables go into which extract, as which asset."""

    asset: Annotated[str, AfterValidator(_identifier)]
    name: Annotated[str, AfterValidator(_extract_name)]
    tables: Annotated[list[Annotated[str, AfterValidator(_identifier)]], Field(min_length=1)]
    upstream: list[Annotated[str, AfterValidator(_identifier)]] = []
    project: str | None = None
    description: str = ""


class RetryOverride(_Strict):
    """Overrides of the retry policy an asset declares (unset fields keep the declared value)."""

    max_retries: Annotated[int, Field(ge=0, le=100)] | None = None
    delay: Annotated[float, Field(ge=0, strict=False)] | None = None
    backoff: Literal["constant", "linear", "exponential"] | None = None
    jitter: Annotated[float, Field(ge=0, le=1, strict=False)] | None = None
    max_delay: Annotated[float, Field(ge=0, strict=False)] | None = None


class RetriesConfig(_Strict):
    """Retry settings: per-asset overrides and a scale on every wait."""

    # Multiplies every retry wait: 1 in production; tests shrink it.
    delay_scale: Annotated[float, Field(ge=0, strict=False)] = 1.0
    assets: dict[str, RetryOverride] = {}


def _wall_time(text: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
        raise ValueError(f"a time of day as HH:MM, got {text!r}")
    return text


class FreshnessConfig(_Strict):
    """How current an asset must be: a daily deadline in a zone and/or a maximum age."""

    deadline: Annotated[str, AfterValidator(_wall_time)] | None = None
    timezone: Annotated[str, AfterValidator(_valid_timezone)] = "Europe/London"
    max_age_hours: Annotated[float, Field(gt=0, strict=False)] | None = None


def _file_name(name: str) -> str:
    if name and (not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}", name) or ".." in name):
        raise ValueError(f"a plain file name such as 'daybreak_readonly.duckdb', got {name!r}")
    return name


class HeartbeatConfig(_Strict):
    """Pings to an outside monitor (the URL: DAYBREAK_HEARTBEAT_URL in the environment or .env)."""

    interval_minutes: Annotated[float, Field(gt=0, le=24 * 60, strict=False)] = 5.0
    # Also signal each job's start (<url>/start) and failure (<url>/fail).
    signal_jobs: bool = True


class SparkConfig(_Strict):
    """The Spark warehouse ([warehouse] engine = "spark"): dbt-spark's connection.

    `method = "session"` (the default) is an in-process local Spark, for trying it and for the
    tests; "thrift" a Spark Thrift server at host:port; "http" a Databricks or Synapse SQL
    endpoint at host with `cluster` (or an endpoint's http path), its token from
    DAYBREAK_SPARK_TOKEN in the environment or .env.
    """

    method: Literal["session", "thrift", "http"] = "session"
    host: str = "NA"
    port: Annotated[int, Field(ge=1, le=65535)] = 10000
    cluster: str = ""
    schema_name: Annotated[str, AfterValidator(_identifier), Field(alias="schema")] = "daybreak"
    # Where Spark keeps its tables. The exports read the tables' Parquet from here, so it must be
    # a folder this machine can read (local for a session; a mounted share or storage otherwise).
    # Default: <warehouse's folder>/spark-warehouse.
    warehouse_dir: _PathField | None = None
    driver_memory: str = "1g"
    shuffle_partitions: Annotated[int, Field(ge=1, le=10000)] = 4


class WarehouseConfig(_Strict):
    """How daybreak shares the DuckDB warehouse with other programs, and which engine holds the
    warehouse: DuckDB (a file on this machine) or Spark (docs/ARCHITECTURE.md)."""

    engine: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkConfig = SparkConfig()

    # A program outside daybreak (the DuckDB CLI, DBeaver, Tableau) holding the warehouse makes a
    # writer wait; it alerts once after this long and gives up after lock_timeout_minutes.
    lock_alert_minutes: Annotated[float, Field(gt=0, strict=False)] = 10.0
    lock_timeout_minutes: Annotated[float, Field(gt=0, strict=False)] = 60.0
    # After each successful build, a read-only database for people and BI tools to open, beside
    # the warehouse ("" turns it off): views over Parquet snapshots of the models in
    # `reader_layers` (folders under dbt/models), each written again only when a build changed it.
    reader_copy: Annotated[str, AfterValidator(_file_name)] = "daybreak_readonly.duckdb"
    reader_layers: list[Literal["staging", "intermediate", "marts"]] = ["marts"]
    # dbt's tests of the incremental models read the rows a build wrote; every test reads its
    # whole table on `--full` and at the first build this many days after the last full run
    # (0: every build tests every row).
    full_tests_every_days: Annotated[float, Field(ge=0, le=366, strict=False)] = 7.0


class EngineConfig(_Strict):
    """Where the Python assets run: this process, a Dask cluster, or a Dask cluster on loopback.

    The warehouse side (dbt models, exports, the backup) always runs in the runner, which holds
    the warehouse's writer lock; see docs/ARCHITECTURE.md, "Running on a cluster".
    """

    kind: Literal["local", "dask", "local-cluster"] = "local"
    address: str | None = None  # kind = "dask": the scheduler, e.g. "tcp://10.0.0.5:8786"
    workers: Annotated[int, Field(ge=1, le=64)] = 2  # kind = "local-cluster": worker processes
    # How long to wait for the scheduler to answer, and for a first worker, at a run's start.
    connect_timeout_seconds: Annotated[float, Field(gt=0, le=600, strict=False)] = 10.0

    @model_validator(mode="after")
    def _address_for_dask(self) -> EngineConfig:
        if self.kind == "dask" and not self.address:
            raise ValueError('kind = "dask" needs address = "tcp://HOST:8786" (the scheduler)')
        if self.address and not re.fullmatch(r"(tcp|tls|inproc|ucx)://[^\s/]+", self.address):
            raise ValueError(f"address {self.address!r} is not a scheduler address like "
                             "tcp://HOST:8786")  # fmt: skip
        return self


class BackupConfig(_Strict):
    """Warehouse backups (in <state>/backups/warehouse): how many are kept."""

    keep: Annotated[int, Field(ge=1, le=1000)] = 7


class HistoryConfig(_Strict):
    """How long run history and run logs are kept, and how long a success counts as fresh."""

    retention_days: Annotated[int, Field(ge=1, le=3650)] = 365
    # An asset without a [freshness] policy is fresh this long after its last success.
    fresh_for_hours: Annotated[float, Field(gt=0, strict=False)] = 26.0


class DemoConfig(_Strict):
    """The generated demo landing zone (embedded default and benchmarks)."""

    # Write the demo landing zone before a run when the local landing folder is empty.
    generate_when_empty: bool = True
    seed: int = 42
    days: Annotated[int, Field(ge=1, le=5000)] = 400
    rows_per_day: Annotated[int, Field(ge=1, le=10_000_000)] = 300


_Port = Annotated[int, Field(ge=1, le=65535)]


def _module_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
        raise ValueError(f"expected a module name like 'dataflows.ingestion', got {name!r}")
    return name


class GraphConfig(_Strict):
    """Which Hamilton modules make the asset graph (default: daybreak's dataflows/)."""

    # Importable module names, e.g. ["bench.noop_flow"] for the orchestration benchmark.
    dataflows: list[Annotated[str, AfterValidator(_module_name)]] = []


class UiConfig(_Strict):
    """The Hamilton UI that `make ui` starts: its store is <state>/hamilton-ui."""

    host: str = "127.0.0.1"  # loopback only; the UI has no login
    port: _Port = 8241


class TrackingConfig(_Strict):
    """Mirror every run into a Hamilton UI (one DAG per job). Without [tracking], none is."""

    enabled: bool = True
    url: str | None = None  # the UI's address; default: the [ui] that `make ui` starts
    project: str = "daybreak"
    username: str = "daybreak@localhost"  # the key, if the UI wants one: HAMILTON_API_KEY
    timeout_seconds: Annotated[float, Field(gt=0, le=60, strict=False)] = 2.0
    # "report": status, timing, errors and each asset's report (counts, files, dbt results:
    # never rows of data); "none": status, timing and errors only.
    capture: Literal["report", "none"] = "report"


class WebConfig(_Strict):
    """The status page `python runner.py` serves (`--no-web` turns it off), and its actions
    (daybreak.views.web: who may read, who may act)."""

    enabled: bool = True
    # 127.0.0.1: this desktop only, no set-up. Any other address (e.g. "0.0.0.0" for the team's
    # LAN) needs DAYBREAK_WEB_TOKEN in .env, or the runner refuses to start.
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8250  # 0: any free port (logged)
    refresh_seconds: Annotated[int, Field(ge=2, le=3600)] = 30
    # With a token: whether reading (the page, /api/*) is open to anyone who can reach it.
    # Acting (/actions/*) always needs the token once one is set.
    public_read: bool = False
    # Host names the page answers to besides localhost, 127.0.0.1, this machine's name and its
    # addresses (e.g. "daybreak.office.example"); any other Host header is refused (DNS rebinding).
    names: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.\-]{1,253}$")]] = Field(
        default_factory=list
    )
    # Runs the page may have going at once (each is a thread of the runner's process).
    max_page_runs: Annotated[int, Field(ge=1, le=16)] = 4


def _cron(expression: str) -> str:
    from cronsim import CronSim, CronSimError

    if len(expression.split()) != 5:  # cronsim also takes a 6th (seconds) field; cron does not
        raise ValueError(
            "a cron expression of 5 fields (minute hour day-of-month month day-of-week), "
            f"got {expression!r}"
        )
    try:
        CronSim(expression, dt.datetime(2026, 1, 1))  # the zone is checked on its own key
    except CronSimError as exc:
        raise ValueError(f"a valid cron expression, got {expression!r}: {exc}") from None
    return expression


def _window(text: str) -> str:
    start, sep, end = text.partition("-")
    wall = r"([01]\d|2[0-3]):[0-5]\d"
    if not (sep and re.fullmatch(wall, start) and re.fullmatch(wall, end)) or start == end:
        raise ValueError(f"a window of the day as HH:MM-HH:MM such as '00:00-07:15', got {text!r}")
    return text


def minutes_of(wall: str) -> int:
    """Minutes after midnight of an HH:MM wall time."""
    hour, minute = wall.split(":")
    return int(hour) * 60 + int(minute)


class JobConfig(_Strict):
    """A named selection of assets (asset names or group names), on a cron schedule, on the
    arrival of its input files (`on_arrival`, see daybreak.runner.arrival), or both."""

    description: str = ""
    select: Annotated[list[Annotated[str, AfterValidator(_identifier)]], Field(min_length=1)]
    tags: dict[str, str] = {}
    cron: Annotated[str, AfterValidator(_cron)] | None = None
    timezone: Annotated[str, AfterValidator(_valid_timezone)] = "Europe/London"
    # A tick missed while the runner was down is run once on start if it is this recent;
    # 0 turns catch-up off. Older misses are recorded, not replayed.
    catch_up_hours: Annotated[float, Field(ge=0, le=24 * 7, strict=False)] = 6.0
    # Arrival: the ingestion assets whose new files start this job (polled every
    # [arrival] poll_seconds). Within `window` (in `timezone`) it waits for "all" of them (or
    # "any"), at most until `latest` (default: the window's end); at `latest` it runs with what
    # has arrived and names what is missing. After `latest`, every arrival runs it (a late
    # market still reaches the mart); before the window opens, arrivals wait for it.
    on_arrival: list[Annotated[str, AfterValidator(_identifier)]] = []
    wait: Literal["all", "any"] = "all"
    window: Annotated[str, AfterValidator(_window)] = "00:00-23:59"
    latest: Annotated[str, AfterValidator(_wall_time)] | None = None

    @model_validator(mode="after")
    def _arrival_keys(self) -> JobConfig:
        if not self.on_arrival and (
            self.latest is not None
            or "window" in self.model_fields_set
            or "wait" in self.model_fields_set
        ):
            raise ValueError("wait, window and latest go with on_arrival = [...] (the inputs "
                             "whose arrival starts the job)")  # fmt: skip
        if len(set(self.on_arrival)) != len(self.on_arrival):
            raise ValueError("on_arrival names an input twice")
        if self.latest is not None:
            start, end = (minutes_of(t) for t in self.window.split("-"))
            at = minutes_of(self.latest)
            inside = start <= at <= end if start < end else (at >= start or at <= end)
            if not inside or at == start:
                raise ValueError(f"latest {self.latest!r} is not inside window {self.window!r}")
        return self

    @property
    def latest_time(self) -> str:
        """When the job stops waiting for all its inputs: `latest`, else the window's end."""
        return self.latest or self.window.split("-")[1]


class ArrivalConfig(_Strict):
    """How arrival-driven jobs watch their sources (see daybreak.runner.arrival)."""

    # How often each source is listed (names, ETags, sizes: no download).
    poll_seconds: Annotated[float, Field(ge=1, le=3600, strict=False)] = 60.0
    # A file counts as arrived once unchanged for this long (a file still being written is not).
    settle_seconds: Annotated[float, Field(ge=0, le=3600, strict=False)] = 30.0
    # Arrivals this close together make one run: a run starts once none came for this long.
    debounce_seconds: Annotated[float, Field(ge=0, le=3600, strict=False)] = 120.0
    # Usual arrival times are learnt from the last learn_weeks weeks, per weekday.
    learn_weeks: Annotated[int, Field(ge=1, le=52)] = 6
    # An input later than its usual time by this much is alerted once, naming the file.
    late_minutes: Annotated[float, Field(ge=0, le=24 * 60, strict=False)] = 30.0


class _File(_Strict):
    """The shape of daybreak.toml."""

    paths: Paths = Paths()
    source: SourceConfig = SourceConfig()
    ingestion: IngestionConfig = IngestionConfig()
    budget: BudgetConfig = BudgetConfig()
    tableau: TableauConfig = TableauConfig()
    exports: list[ExportConfig] = []
    retries: RetriesConfig = RetriesConfig()
    history: HistoryConfig = HistoryConfig()
    backup: BackupConfig = BackupConfig()
    freshness: dict[Annotated[str, AfterValidator(_identifier)], FreshnessConfig] = {}
    # Tag concurrency limits: at most N assets carrying the tag run at once, across processes.
    concurrency: dict[Annotated[str, AfterValidator(_identifier)], Annotated[int, Field(ge=1)]] = {}
    demo: DemoConfig = DemoConfig()
    graph: GraphConfig = GraphConfig()
    ui: UiConfig = UiConfig()
    tracking: TrackingConfig | None = None
    web: WebConfig = WebConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    warehouse: WarehouseConfig = WarehouseConfig()
    engine: EngineConfig = EngineConfig()
    markets: Annotated[
        dict[Annotated[str, AfterValidator(_market_code)], Market], Field(min_length=1)
    ]
    jobs: dict[Annotated[str, AfterValidator(_identifier)], JobConfig] = {}
    arrival: ArrivalConfig = ArrivalConfig()


@dataclass(frozen=True)
class Secrets:
    """Credentials read from the environment (or .env). Never logged: see daybreak.logs.

    Tenant and client ids identify the app registration and may appear in error messages;
    everything typed SecretStr is masked everywhere.
    """

    azure_connection_string: SecretStr | None = None
    azure_account_key: SecretStr | None = None
    azure_sas_token: SecretStr | None = None
    sharepoint_tenant_id: str | None = None
    sharepoint_client_id: str | None = None
    sharepoint_client_secret: SecretStr | None = None
    tableau_token_name: str | None = None
    tableau_token_secret: SecretStr | None = None
    tableau_username: str | None = None
    tableau_password: SecretStr | None = None
    hamilton_api_key: SecretStr | None = None
    spark_token: SecretStr | None = None
    # apprise URLs and the heartbeat check URL carry tokens: secrets like the rest.
    alert_urls: SecretStr | None = None
    heartbeat_url: SecretStr | None = None
    # The status page's token: needed to act from the page, and to serve it beyond 127.0.0.1.
    web_token: SecretStr | None = None

    ENV: ClassVar[dict[str, str]] = {
        "azure_connection_string": "AZURE_STORAGE_CONNECTION_STRING",
        "azure_account_key": "AZURE_STORAGE_ACCOUNT_KEY",
        "azure_sas_token": "AZURE_STORAGE_SAS_TOKEN",
        "sharepoint_tenant_id": "SHAREPOINT_TENANT_ID",
        "sharepoint_client_id": "SHAREPOINT_CLIENT_ID",
        "sharepoint_client_secret": "SHAREPOINT_CLIENT_SECRET",
        "tableau_token_name": "TABLEAU_TOKEN_NAME",
        "tableau_token_secret": "TABLEAU_TOKEN_SECRET",
        "tableau_username": "TABLEAU_USERNAME",
        "tableau_password": "TABLEAU_PASSWORD",
        "hamilton_api_key": "HAMILTON_API_KEY",
        "spark_token": "DAYBREAK_SPARK_TOKEN",
        "alert_urls": "DAYBREAK_ALERT_URLS",
        "heartbeat_url": "DAYBREAK_HEARTBEAT_URL",
        "web_token": "DAYBREAK_WEB_TOKEN",
    }
    _PLAIN: ClassVar[frozenset[str]] = frozenset(
        {"sharepoint_tenant_id", "sharepoint_client_id", "tableau_token_name", "tableau_username"}
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Secrets:
        values: dict[str, Any] = {}
        for field, var in cls.ENV.items():
            if environ.get(var):
                values[field] = environ[var] if field in cls._PLAIN else SecretStr(environ[var])
        return cls(**values)

    @property
    def hamilton_api_key_value(self) -> str | None:
        key = self.hamilton_api_key
        return key.get_secret_value() if key is not None else None

    def values(self) -> list[str]:
        """Every secret value, for redaction."""
        found = []
        for field in self.ENV:
            secret = getattr(self, field)
            if isinstance(secret, SecretStr):
                found.append(secret.get_secret_value())
        return found


@dataclass(frozen=True)
class Settings:
    """Validated configuration with absolute paths, plus the secrets from the environment."""

    config_path: Path
    paths: Paths
    source: SourceConfig
    ingestion: IngestionConfig
    budget: BudgetConfig
    tableau: TableauConfig
    exports: list[ExportConfig]
    retries: RetriesConfig
    history: HistoryConfig
    backup: BackupConfig
    freshness: dict[str, FreshnessConfig]
    concurrency: dict[str, int]
    demo: DemoConfig
    graph: GraphConfig
    ui: UiConfig
    tracking: TrackingConfig | None
    web: WebConfig
    heartbeat: HeartbeatConfig
    warehouse: WarehouseConfig
    markets: dict[str, Market]
    jobs: dict[str, JobConfig]
    secrets: Secrets
    engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)
    arrival: ArrivalConfig = dataclasses.field(default_factory=ArrivalConfig)

    @property
    def market_codes(self) -> list[str]:
        return list(self.markets)

    @property
    def reader_copy(self) -> Path | None:
        """The read-only copy of the warehouse for analysts and BI tools, if configured."""
        name = self.warehouse.reader_copy
        return self.paths.warehouse.parent / name if name else None

    @property
    def spark_warehouse(self) -> Path:
        """Where a Spark warehouse keeps its tables (each a folder of Parquet files)."""
        configured = self.warehouse.spark.warehouse_dir
        if configured is None:
            return self.paths.warehouse.parent / "spark-warehouse"
        return configured if configured.is_absolute() else (
            self.config_path.parent / configured).resolve()  # fmt: skip

    @property
    def state(self) -> StateLayout:
        """The state folder's layout (history, logs, locks, quarantine, backups)."""
        return StateLayout(self.paths.state)


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: --config, else $DAYBREAK_CONFIG, else ./daybreak.toml."""
    chosen = explicit or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_NAME
    return Path(chosen).expanduser().resolve()


def read_text(path: Path) -> str:
    """A text file as Notepad or PowerShell may have saved it: UTF-8 with or without a byte-order
    mark, or UTF-16 with one (PowerShell 5's `>`). Never echoes content: it may hold secrets."""
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 or UTF-16 text (byte {exc.start}); save it as UTF-8"
        ) from None


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file, read by python-dotenv (comments, quotes, `export`)."""
    from dotenv.parser import parse_stream

    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(read_text(path))):
        if binding.key is None and not binding.error:
            continue  # a blank or comment line
        if binding.error or binding.value is None:
            # Never echo the line: it may hold a secret.
            raise ConfigError(f"{path}:{binding.original.line}: expected KEY=VALUE")
        values[binding.key] = binding.value  # type: ignore[index]
    return values


def _describe(error: Mapping[str, Any]) -> str:
    # For a bad table name (e.g. [markets.uk]) pydantic appends "[key]" to the location.
    key = ".".join(str(part) for part in error["loc"] if part != "[key]") or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    if kind == "missing":
        return f"{key}: missing value"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    message = re.sub(r"^Input should be ", "expected ", message)
    if "input" in error and kind != "value_error" and not isinstance(error["input"], dict):
        message += f", got {error['input']!r}"
    if not message.startswith("expected "):
        message = "expected " + message
    return f"{key}: {message}"


def load_settings(
    config: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read, validate and resolve the config; raise ConfigError naming every bad key."""
    path = find_config(config)
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path} (use --config PATH or set {CONFIG_ENV_VAR})"
        )
    try:
        raw = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{path}: invalid configuration:\n  {problems}") from None

    base = path.parent
    paths = Paths(
        **{
            name: (value if value.is_absolute() else (base / value)).resolve()
            for name, value in parsed.paths.model_dump().items()
        }
    )
    env = {**read_dotenv(base / ".env"), **(os.environ if environ is None else environ)}
    settings = Settings(
        config_path=path,
        paths=paths,
        source=parsed.source,
        ingestion=parsed.ingestion,
        budget=parsed.budget,
        tableau=parsed.tableau,
        exports=list(parsed.exports),
        retries=parsed.retries,
        history=parsed.history,
        backup=parsed.backup,
        freshness=dict(parsed.freshness),
        concurrency=dict(parsed.concurrency),
        demo=parsed.demo,
        graph=parsed.graph,
        ui=parsed.ui,
        tracking=_tracking(parsed),
        web=parsed.web,
        heartbeat=parsed.heartbeat,
        warehouse=parsed.warehouse,
        markets=dict(parsed.markets),
        jobs=dict(parsed.jobs),
        secrets=Secrets.from_environ(env),
        engine=parsed.engine,
        arrival=parsed.arrival,
    )
    _check_cross_fields(settings)
    return settings


def _tracking(parsed: _File) -> TrackingConfig | None:
    tracking = parsed.tracking
    if tracking is None or not tracking.enabled:
        return None
    url = tracking.url or f"http://{parsed.ui.host}:{parsed.ui.port}"
    return tracking.model_copy(update={"url": url.rstrip("/")})


def _check_cross_fields(settings: Settings) -> None:
    reader = settings.warehouse.reader_copy
    warehouse = settings.paths.warehouse.name
    if reader and (
        not reader.lower().endswith(".duckdb")
        or Path(reader).stem.lower() in {Path(warehouse).stem.lower(), "spark-warehouse"}
        or reader.lower().startswith(warehouse.lower())
    ):
        raise ConfigError(
            f"{settings.config_path}: warehouse.reader_copy {reader!r}: expected a file name "
            f"ending .duckdb other than the warehouse's own ({warehouse}) or its files: it is "
            "written beside the warehouse, with a folder of snapshots named after its stem"
        )
    names = [e.asset for e in settings.exports]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{settings.config_path}: exports: asset {twice[0]!r} is declared twice")
    if settings.tableau.server_url:
        s = settings.secrets
        if not (
            (s.tableau_token_name and s.tableau_token_secret)
            or (s.tableau_username and s.tableau_password)
        ):
            raise ConfigError(
                f"{settings.config_path}: tableau.server_url is set, so publishing needs "
                "TABLEAU_TOKEN_NAME and TABLEAU_TOKEN_SECRET (a personal access token), or "
                "TABLEAU_USERNAME and TABLEAU_PASSWORD, in the environment or .env"
            )
    budget = settings.budget
    if budget.source == "sharepoint":
        if budget.sharepoint is None:
            raise ConfigError(
                f"{settings.config_path}: budget.sharepoint: missing value (budget.source = "
                "'sharepoint' needs [budget.sharepoint] with site_hostname and site_path)"
            )
        missing = [
            var
            for field, var in Secrets.ENV.items()
            if field.startswith("sharepoint_") and getattr(settings.secrets, field) is None
        ]
        if missing:
            raise ConfigError(
                f"{settings.config_path}: budget.source = 'sharepoint' needs "
                f"{', '.join(missing)} in the environment or .env"
            )
    source = settings.source
    if source.backend == "azure":
        if source.azure is None:
            raise ConfigError(
                f"{settings.config_path}: source.azure: missing value "
                "(backend 'azure' needs [source.azure] with at least 'container')"
            )
        secrets = settings.secrets
        has_connection_string = secrets.azure_connection_string is not None
        has_account = source.azure.account_url is not None and (
            secrets.azure_account_key is not None or secrets.azure_sas_token is not None
        )
        if not (has_connection_string or has_account):
            raise ConfigError(
                f"{settings.config_path}: source.backend = 'azure' needs a credential: set "
                "AZURE_STORAGE_CONNECTION_STRING, or source.azure.account_url plus "
                "AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, in the environment or .env"
            )
