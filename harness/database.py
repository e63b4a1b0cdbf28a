"""Where failures are remembered: the example database behind ``--database URL``.

A location is a directory (the default, ``.hypothesis/rnn-harness/``) or a Redis
server (``redis://HOST:PORT/DB``, Hypothesis's `RedisExampleDatabase`, extra
``[redis]``). Every run against the same location, local, pytest plugin or cluster,
replays the failures any earlier run stored there before it generates anything new,
whatever its seed. Entries are kept per implementation, as Hypothesis keys them by
the test function, which is the same for every implementation.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

ACCEPTED = "a directory path, or redis://HOST:PORT/DB"
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a Redis server before calling it unreachable."""


class DatabaseError(Exception):
    """A database location that is malformed or cannot be reached; a usage error."""


@dataclasses.dataclass(frozen=True)
class Location:
    """A parsed ``--database`` value: plain data, so it travels to cluster workers."""

    scheme: str  # "directory" or "redis"
    target: str  # the directory, or the Redis URL as given

    def __str__(self) -> str:
        return self.target

    def absolute(self) -> Location:
        """The same location with a directory made absolute (what a worker started
        elsewhere must be told)."""
        if self.scheme != "directory":
            return self
        return Location("directory", str(Path(self.target).expanduser().absolute()))


def parse(text: str | os.PathLike) -> Location:
    """Read a ``--database`` value; raise `DatabaseError` naming the accepted forms."""
    text = os.fspath(text)
    if not text:
        raise DatabaseError(f"an empty database location; expected {ACCEPTED}")
    if "://" not in text:
        return Location("directory", text)
    parts = urlsplit(text)
    if parts.scheme != "redis":
        raise DatabaseError(f"database URL scheme {parts.scheme + '://'!r} is not supported; expected {ACCEPTED}")
    try:
        port = parts.port
    except ValueError:
        raise DatabaseError(f"database URL {text!r} has a port that is not a number; expected redis://HOST:PORT/DB") from None
    database = parts.path.strip("/") or "0"
    if not parts.hostname or port is None or not database.isdigit():
        raise DatabaseError(f"database URL {text!r} is incomplete; expected redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0")
    return Location("redis", text)


def _redis_client(location: Location):
    try:
        import redis
    except ImportError:
        raise DatabaseError(
            f"{location} needs the redis client: pip install 'rnn-harness[redis]'"
        ) from None
    return redis.Redis.from_url(location.target, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=60)


def check_reachable(location: Location) -> None:
    """Raise `DatabaseError` (one line) unless a campaign could use `location` now."""
    if location.scheme == "redis":
        import redis

        client = _redis_client(location)
        try:
            client.ping()
        except redis.RedisError as error:
            raise DatabaseError(f"cannot reach the example database at {location}: {error}") from None
        finally:
            client.close()
        return
    # A directory is created on the first failure, as Hypothesis does; here only
    # check that it could be.
    path = Path(location.target).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise DatabaseError(f"the example database {location} is not a directory")
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise DatabaseError(f"the example database {location} cannot be created: {existing} is not a writable directory")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def storage_name(implementation_name: str, devices: list[str] | None) -> str:
    """The per-implementation part of the key. CPU-only campaigns use the bare name,
    as every run before ``--database`` did; a campaign over other devices gets its
    own entries, because Hypothesis replays stored choices, and the same choices
    drawn over another device list are another case, which it would then delete."""
    name = slug(implementation_name)
    if not devices or list(devices) == ["cpu"]:
        return name
    return f"{name}@{'+'.join(sorted(set(devices)))}"


def open_database(location: Location | None, implementation_name: str, devices: list[str] | None = None):
    """The Hypothesis database one implementation's campaign reads and writes."""
    if location is None:
        return None
    name = storage_name(implementation_name, devices)
    if location.scheme == "redis":
        from hypothesis.extra.redis import RedisExampleDatabase

        return RedisExampleDatabase(_redis_client(location), key_prefix=f"rnn-harness:{name}:".encode())
    from hypothesis.database import DirectoryBasedExampleDatabase

    return DirectoryBasedExampleDatabase(str(Path(location.target).expanduser() / name))
