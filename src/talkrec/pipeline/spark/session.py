"""The ``spark:`` block of a build config, the checks made before anything is written, and
the Spark session a build runs in.

Every check raises :class:`~talkrec.errors.InputError` naming the setting at fault
(``spark.master``, ``spark.remote``, ``spark.output``, ``JAVA_HOME``, ``output``...) before
a session starts or a file is written, so a bad setting never half-builds a space.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ...errors import InputError

log = logging.getLogger(__name__)

__all__ = ["SparkSettings", "check_output", "checkpoint_dir", "preflight", "spark_session"]

#: Spark master URLs that talkrec knows how to check (spark-submit's forms).
_MASTER = re.compile(r"^(local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[\d+,\d+,\d+\]|yarn"
                     r"|spark://[^/\s]+|k8s://\S+)$")
_LOCAL_FS = ("", "file")
#: Session settings talkrec sets unless the config's ``spark.conf`` does.
_CONF = {"spark.sql.execution.arrow.pyspark.enabled": "true", "spark.ui.showConsoleProgress": "false",
         "spark.cleaner.referenceTracking.cleanCheckpoints": "true"}
_LOCAL_CONF = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SparkSettings:
    """The ``spark:`` block of a build config (see docs/scale.md).

    master: spark-submit master URL (``local[*]``, ``spark://host:7077``, ``yarn``,
    ``k8s://https://host:443``); remote: a Spark Connect URL (``sc://host:15002``) used
    instead of ``master``; app_name; conf: extra Spark settings; output: the URI under which
    the Parquet outputs go (a local path, ``s3a://`` or ``hdfs://``; default
    ``<output>.build/spark``); partitions: partitions of the item-wise stages (``None``:
    Spark's default parallelism); fusion_sample: items the fusion model trains on (``None``:
    all); text_batch_size: texts per model call in the text embedding.
    """

    master: str = "local[*]"
    remote: str | None = None
    app_name: str = "talkrec"
    conf: dict[str, str] = field(default_factory=dict)
    output: str = ""
    partitions: int | None = None
    fusion_sample: int | None = None
    text_batch_size: int = 64

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "SparkSettings":
        """Read and check the block; unknown keys and wrong types name their setting."""
        block = cfg.get("spark") or {}
        if not isinstance(block, Mapping):
            raise InputError(f"spark must be a mapping of settings, got {type(block).__name__}", field="spark")
        known = set(cls.__dataclass_fields__)
        for key in block:
            if key not in known:
                raise InputError(f"unknown setting; expected one of {sorted(known)}", field=f"spark.{key}")
        for key in ("master", "app_name", "remote", "output"):
            if block.get(key) is not None and not (isinstance(block[key], str) and block[key].strip()):
                raise InputError(f"must be a non-empty string, got {block[key]!r}", field=f"spark.{key}")
        for key in ("partitions", "fusion_sample", "text_batch_size"):
            v = block.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InputError(f"must be a positive integer, got {v!r}", field=f"spark.{key}")
        conf = block.get("conf") or {}
        if not isinstance(conf, Mapping):
            raise InputError(f"must be a mapping of Spark settings, got {type(conf).__name__}", field="spark.conf")
        output = block.get("output") or str(Path(str(cfg["output"]) + ".build").resolve() / "spark")
        given = {k: v for k, v in block.items() if k in known and v is not None}
        given.update(conf={str(k): str(v) for k, v in conf.items()}, output=str(output))
        return cls(**given)

    @property
    def is_local(self) -> bool:
        return self.remote is None and self.master.startswith("local")


def preflight(s: SparkSettings, space_dir: Path) -> None:
    """Check pyspark, Java, the master (or Connect) URL and the local paths, writing nothing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise InputError("engine: spark needs pyspark: pip install 'talkrec[spark]'", field="engine") from None
    if s.remote is not None:
        _check_url_answers(s.remote, "sc", "spark.remote")
    else:
        _check_master(s.master)
        _check_java()
    _check_local_dir(space_dir, "output")
    if urlparse(s.output).scheme in _LOCAL_FS:
        _check_local_dir(Path(urlparse(s.output).path), "spark.output")


def _check_master(master: str) -> None:
    if not _MASTER.match(master):
        raise InputError(f"{master!r} is not a Spark master URL (local[*], local[N], spark://host:port, yarn, "
                         "k8s://https://host:port; Spark Connect goes in spark.remote)", field="spark.master")
    if master.startswith("spark://"):
        hosts = master[len("spark://"):].split(",")
        if not any(_answers(h if ":" in h else f"{h}:7077") for h in hosts):
            raise InputError(f"no Spark master answers at {master!r} (nothing listening within "
                             f"{_CONNECT_TIMEOUT_S:.0f}s)", field="spark.master")
    elif master.startswith("k8s://"):
        _check_url_answers(master[len("k8s://"):], None, "spark.master")
    elif master == "yarn" and not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
        raise InputError("master 'yarn' needs HADOOP_CONF_DIR or YARN_CONF_DIR set to the cluster's configuration",
                         field="spark.master")


def _check_url_answers(url: str, scheme: str | None, setting: str) -> None:
    u = urlparse(url)
    if (scheme is not None and u.scheme != scheme) or not u.hostname:
        want = f"{scheme}://host:port" if scheme else "https://host:port"
        raise InputError(f"{url!r} is not a URL of the form {want}", field=setting)
    port = u.port or {"sc": 15002, "https": 443, "http": 80}.get(u.scheme, 443)
    if not _answers(f"{u.hostname}:{port}"):
        raise InputError(f"nothing answers at {u.hostname}:{port} (within {_CONNECT_TIMEOUT_S:.0f}s)", field=setting)


def _answers(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
            return True
    except (OSError, ValueError):
        return False


def _check_java() -> None:
    """A ``java`` of version 17 or newer, from ``JAVA_HOME`` or else the ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if home and not Path(java).is_file():
        raise InputError(f"JAVA_HOME is {home!r} but {java} does not exist; Spark needs Java 17 or newer",
                         field="JAVA_HOME")
    if not java:
        raise InputError("no Java found (JAVA_HOME unset, no java on the PATH); Spark needs Java 17 or newer: "
                         "install one or set JAVA_HOME", field="JAVA_HOME")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InputError(f"{java} -version failed: {e}", field="JAVA_HOME") from None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(m.group(1)) if m else 0
    major = int(m.group(2) or 0) if major == 1 and m else major       # "1.8.0" is Java 8
    if major < 17:
        raise InputError(f"{java} is Java {major or 'of unknown version'}; Spark 4 needs Java 17 or newer",
                         field="JAVA_HOME")


def _check_local_dir(path: Path, setting: str) -> None:
    """The nearest existing folder above ``path`` is a writable folder."""
    p = path.resolve()
    while not p.exists():
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK):
        raise InputError(f"cannot write {path}: {p} is not a writable folder", field=setting)


@contextmanager
def spark_session(s: SparkSettings) -> Iterator[Any]:
    """The active session if there is one (left running), else a new one (stopped at the end).

    Local masters run the Python workers with this interpreter and bind to 127.0.0.1."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        log.info("using the active Spark session (%s)", _where(active))
        yield active
        return
    conf = {**_CONF, **(_LOCAL_CONF if s.is_local else {}), **s.conf}
    builder = SparkSession.builder.appName(s.app_name)
    builder = builder.remote(s.remote) if s.remote is not None else builder.master(s.master)
    for k, v in conf.items():
        builder = builder.config(k, v)
    if s.is_local:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)   # read by pyspark, not a session setting
    setting = "spark.remote" if s.remote is not None else "spark.master"
    try:
        spark = builder.getOrCreate()
    except Exception as e:  # py4j / Java gateway errors carry no common base class
        raise InputError(f"could not start Spark with {setting}={getattr(s, setting[6:])!r}: {e}",
                         field=setting) from e
    log.info("started Spark (%s)", _where(spark))
    try:
        yield spark
    finally:
        spark.stop()


def _where(spark: Any) -> str:
    try:
        return f"master {spark.sparkContext.master}, Spark {spark.version}"
    except Exception:  # Spark Connect sessions have no SparkContext
        return f"Spark Connect, Spark {spark.version}"


def check_output(spark: Any, s: SparkSettings) -> None:
    """The output URI's file system answers (``s3a://``, ``hdfs://``...), before anything is written."""
    from .frames import hadoop_path

    if urlparse(s.output).scheme in _LOCAL_FS:
        return
    try:
        fs_path = hadoop_path(spark, s.output)
        if fs_path is not None:          # None on Spark Connect: the first write reports a bad URI
            fs_path[0].exists(fs_path[1])
    except Exception as e:
        raise InputError(f"cannot reach {s.output!r}: {str(e).splitlines()[0]}", field="spark.output") from None


def checkpoint_dir(spark: Any, path: str) -> None:
    """Let iterative jobs (ALS) cut their lineage under ``path`` unless the session already
    checkpoints somewhere: without it, 20+ ALS iterations overflow the JVM's stack."""
    try:
        sc = spark.sparkContext
    except Exception:  # Spark Connect: the server's own setting applies
        return
    if sc.getCheckpointDir() is None:
        sc.setCheckpointDir(path)
