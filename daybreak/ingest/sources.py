"""Where landing files come from: a local folder laid out like the Azure container, or Azure itself.

Both backends list blobs under a prefix (names, ETags, sizes; no content) and hand one blob over
as a local file. Sources are read-only: daybreak never moves, renames or deletes upstream data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from daybreak.config import Settings
from daybreak.errors import ConfigError


class UnsafeBlobName(ValueError):
    """A blob name that could escape the folder it is written under."""


@dataclass(frozen=True)
class BlobInfo:
    """One blob as listed: its name relative to the container, version tag and size."""

    name: str
    etag: str
    size: int
    last_modified: dt.datetime


def check_blob_name(name: str) -> PurePosixPath:
    """The blob name as a safe relative path, or UnsafeBlobName saying why it is refused."""
    if not name:
        raise UnsafeBlobName("empty blob name")
    if "\x00" in name:
        raise UnsafeBlobName(f"blob name {name!r} contains a NUL character")
    if "\\" in name:
        raise UnsafeBlobName(f"blob name {name!r} contains a backslash")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeBlobName(f"blob name {name!r} is an absolute path")
    parts = name.split("/")
    if any(part in ("..", ".") for part in parts):
        raise UnsafeBlobName(f"blob name {name!r} contains a '.' or '..' segment")
    if any(part == "" for part in parts):
        raise UnsafeBlobName(f"blob name {name!r} contains an empty path segment")
    return PurePosixPath(name)


class Source(Protocol):
    """The landing zone: list what is there, and fetch one blob as a local file."""

    description: str

    def list(self, prefix: str) -> Iterator[BlobInfo]:
        """Every blob whose name starts with `prefix`, in name order."""
        ...

    def fetch(self, blob: BlobInfo, scratch: Path) -> contextlib.AbstractContextManager[Path]:
        """A local path holding the blob's bytes for the duration of the `with` block."""
        ...


class LocalSource:
    """A folder laid out exactly like the Azure container (the embedded default)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"local folder {root}"

    def list(self, prefix: str) -> Iterator[BlobInfo]:
        base = self.root / prefix
        folder = base if prefix.endswith("/") or base.is_dir() else base.parent
        if not folder.is_dir():
            return
        found = []
        for dirpath, _dirnames, filenames in os.walk(folder):
            for filename in filenames:
                path = Path(dirpath, filename)
                name = path.relative_to(self.root).as_posix()
                if not name.startswith(prefix):
                    continue
                stat = path.stat()
                # Size and mtime stand in for Azure's ETag: a rewrite changes one or both.
                modified = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
                etag = f"{stat.st_size}-{stat.st_mtime_ns}"
                found.append(BlobInfo(name, etag, stat.st_size, modified))
        yield from sorted(found, key=lambda b: b.name)

    @contextlib.contextmanager
    def fetch(self, blob: BlobInfo, scratch: Path) -> Iterator[Path]:
        # check_blob_name has been called on every listed name before it gets here.
        yield self.root / blob.name


class AzureSource:
    """A container in Azure Blob Storage (or Azurite), through azure-storage-blob."""

    def __init__(self, settings: Settings) -> None:
        from azure.storage.blob import ContainerClient

        self._settings = settings
        azure = settings.source.azure
        if azure is None:  # load_settings has already refused this
            raise ConfigError("source.azure: missing value")
        secrets = settings.secrets
        # No retries inside the SDK (azure-core's policy made one call take ~80 s against a
        # refused connection): the asset's retry policy is the one retry layer. Timeouts bound
        # each attempt: 20 s to connect, 120 s between bytes of a download.
        kwargs: dict[str, Any] = {"retry_total": 0, "connection_timeout": 20, "read_timeout": 120}
        if azure.api_version:
            kwargs["api_version"] = azure.api_version
        if secrets.azure_connection_string is not None:
            self._client = ContainerClient.from_connection_string(
                secrets.azure_connection_string.get_secret_value(), azure.container, **kwargs
            )
        else:
            credential = secrets.azure_account_key or secrets.azure_sas_token
            assert credential is not None and azure.account_url is not None
            self._client = ContainerClient(
                azure.account_url,
                azure.container,
                credential=credential.get_secret_value(),
                **kwargs,
            )
        # The account URL is not secret; the connection string that may contain it is.
        self.description = f"Azure container {azure.container!r} at {self._client.url}"

    def __reduce__(self) -> Any:  # sent to a Dask worker: it opens its own client there
        return (AzureSource, (self._settings,))

    def list(self, prefix: str) -> Iterator[BlobInfo]:
        for props in self._client.list_blobs(name_starts_with=prefix):
            yield BlobInfo(
                props.name, str(props.etag).strip('"'), int(props.size or 0), props.last_modified
            )

    @contextlib.contextmanager
    def fetch(self, blob: BlobInfo, scratch: Path) -> Iterator[Path]:
        from azure.core import MatchConditions

        scratch.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="blob-", suffix=".csv", dir=scratch)
        try:
            with os.fdopen(fd, "wb") as out:
                # Download exactly the version that was listed: if it changed since, the
                # next sync sees the new ETag and fetches it then.
                downloader = self._client.download_blob(
                    blob.name, etag=f'"{blob.etag}"', match_condition=MatchConditions.IfNotModified
                )
                downloader.readinto(out)
            yield Path(tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def copy_into(path: Path, dest: Path) -> None:
    """Copy a fetched blob somewhere durable (used for quarantine)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
