"""One settings object for every interface, read from ``NANO_EXPORT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nano_export.errors import InvalidSetting

DEFAULT_DATA_DIR = Path("./data")
MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    """Configuration of nano-export; each field has a one-line help for ``nano-export config``."""

    model_config = SettingsConfigDict(env_prefix="NANO_EXPORT_", extra="ignore")

    data_dir: Path = Field(
        DEFAULT_DATA_DIR, description="Folder for the embedded database, secret key and exports."
    )
    database_url: str = Field(
        "", description="SQLAlchemy URL of the database (default: SQLite file in DATA_DIR)."
    )
    export_dir: Path = Field(
        Path("./data/exports"), description="Folder where export files are written."
    )
    auth_file: Path = Field(
        Path("./data/auth.yaml"), description="Users, bcrypt hashes, roles and cookie settings."
    )
    max_concurrent_exports: int = Field(
        3, ge=1, le=100, description="Exports one user may run at once."
    )
    # 7,500, with the reader two chunks ahead: a 1M-row export peaks at 170-183 MB (10,000:
    # 185-200 MB, at 200 on PostgreSQL in some runs; 5,000: 7-10 MB less than 7,500, about 10%
    # slower on PostgreSQL; bench/export_bench.py).
    chunk_rows: int = Field(
        7_500, ge=10, le=1_000_000, description="Rows read and written per chunk (at most)."
    )
    xlsx_sheet_rows: int = Field(
        1_048_575,
        ge=1,
        le=1_048_575,
        description="Data rows per xlsx worksheet before the rows continue on a new sheet.",
    )
    export_retention_days: int = Field(
        7, ge=1, le=3650, description="Days an export file is kept before pruning."
    )
    secret_key: str = Field(
        "",
        description="Signs login cookies and keys identifier hashes, at least 32 bytes "
        "(generated into the database by init if unset).",
    )
    smtp_host: str = Field(
        "", description="Mail server for scheduled exports (empty: email disabled)."
    )
    smtp_port: int = Field(25, ge=1, le=65535, description="Mail server port.")
    smtp_user: str = Field("", description="Mail server login user (empty: no login).")
    smtp_password: str = Field("", description="Mail server login password.")
    smtp_from: str = Field(
        "nano-export@localhost", description="Sender address of scheduled-export emails."
    )
    smtp_starttls: bool = Field(False, description="Upgrade the mail connection with STARTTLS.")
    email_attach_max_mb: float = Field(
        10.0, ge=0, description="Attach the gzip file when smaller than this (MB)."
    )
    base_url: str = Field(
        "http://localhost:8501", description="Dashboard address used in email links."
    )
    heartbeat_timeout_s: int = Field(
        60, ge=5, le=3600, description="Seconds after which a silent export is failed."
    )
    storage_url: str = Field(
        "",
        description="Where export files are kept: an fsspec URL such as s3://bucket/prefix "
        "(default: EXPORT_DIR). The store's own options come from fsspec's environment "
        "(FSSPEC_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as key=value text or as JSON lines."
    )
    metrics_public: bool = Field(False, description="Serve /api/metrics without an admin token.")
    embedded_worker: bool = Field(
        True,
        description="Run exports and due schedules inside each dashboard process: an export "
        "worker on PostgreSQL, a schedule thread on SQLite (false for web-only replicas).",
    )
    worker_concurrency: int = Field(
        2, ge=1, le=64, description="Exports one worker process runs at once (PostgreSQL)."
    )
    worker_stall_timeout_s: float = Field(
        60,
        ge=1,
        le=3600,
        description="Seconds without a worker heartbeat after which its exports run again "
        "on another worker (PostgreSQL).",
    )
    query_timeout_s: int = Field(
        30,
        ge=1,
        le=3600,
        description="Seconds an interactive query (Explore, notebook count/preview) may run "
        "on PostgreSQL; exports have EXPORT_TIME_LIMIT_S.",
    )
    export_time_limit_s: int = Field(
        7200, ge=1, le=7 * 24 * 3600, description="Seconds an export may run before it is failed."
    )
    session_max_age_h: float = Field(
        12.0, gt=0, le=24 * 90, description="Hours a login lasts at most, whatever the cookie says."
    )
    session_idle_timeout_min: float = Field(
        60.0, gt=0, le=24 * 60 * 90, description="Minutes without a request that end a login."
    )
    password_min_length: int = Field(
        12, ge=1, le=72, description="Characters a new password needs at least (bcrypt: 72 bytes)."
    )
    bcrypt_rounds: int = Field(
        12, ge=4, le=16, description="bcrypt cost of new password hashes (and of the dummy check)."
    )
    login_free_failures: int = Field(
        5, ge=1, le=100, description="Failed logins per user name or address before back-off."
    )
    login_backoff_s: float = Field(
        2.0, gt=0, le=3600, description="First back-off after too many failed logins (doubles)."
    )
    api_requests_per_minute: int = Field(
        600, ge=1, le=1_000_000, description="API requests one token or login may make a minute."
    )

    @model_validator(mode="after")
    def _follow_data_dir(self) -> Settings:
        # Paths left at their defaults live inside DATA_DIR, wherever that is.
        if "export_dir" not in self.model_fields_set:
            self.export_dir = self.data_dir / "exports"
        if "auth_file" not in self.model_fields_set:
            self.auth_file = self.data_dir / "auth.yaml"
        return self

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError("must be a SQLAlchemy URL such as sqlite:///data/nano.db")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, value: str) -> str:
        if value and len(value.encode("utf-8")) < MIN_SECRET_BYTES:
            size = len(value.encode("utf-8"))
            raise ValueError(
                f"must be at least {MIN_SECRET_BYTES} bytes (it has {size}); "
                "for example the output of `openssl rand -hex 32`"
            )
        return value

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and "://" not in value:
            raise ValueError("must be an fsspec URL such as s3://bucket/prefix or file:///srv/x")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def uses_queue(self) -> bool:
        """Whether exports run as jobs on a worker pool (PostgreSQL) rather than in threads."""
        return self.db_url.startswith("postgresql")

    @property
    def db_url(self) -> str:
        """The database URL in force: the setting, or the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.data_dir / 'nano-export.db'}"

    @property
    def secret_file(self) -> Path:
        """Where a generated secret key is kept."""
        return self.data_dir / "secret.key"

    def resolved_secret(self) -> str:
        """The signing secret: the setting, or the one stored in the database (made by ``init``)."""
        if self.secret_key:
            return self.secret_key
        # Imported here: the key store sits above settings (it needs the database).
        from nano_export.keystore import database_secret

        return database_secret(self.db_url, legacy_file=self.secret_file)


SECRET_FIELDS = frozenset({"secret_key", "smtp_password"})


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment plus keyword overrides; bad values raise InvalidSetting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        raise InvalidSetting(f"NANO_EXPORT_{name.upper()}: {err['msg']}") from None


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot parse is shown as given, minus any user info
        return url.split("@")[-1]


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """Each setting as (environment name, shown value, help), secrets masked."""
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = "********" if name in SECRET_FIELDS and value else str(value)
        if name == "database_url":
            shown = _hide_password(value) if value else f"(default) {settings.db_url}"
        rows.append((f"NANO_EXPORT_{name.upper()}", shown, field.description or ""))
    return rows
