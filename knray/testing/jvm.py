"""Java servers for tests: jars fetched from Maven Central with Maven, cached, run on loopback.

Apache Kafka and Apache RocketMQ publish their servers as ordinary Maven artifacts. Rather than
downloading release tarballs (which the test machines cannot reach), :func:`fetch_jars` resolves
the server artifact and its runtime dependencies with ``mvn dependency:copy-dependencies`` into
a folder under the user's cache directory (``$KNRAY_CACHE_DIR``, else
``$XDG_CACHE_HOME/knray``, else ``~/.cache/knray``). A second call with the same coordinates
reuses that folder and starts no Maven at all.

:class:`JavaServer` is one started JVM (a :class:`~knray.testing.process.ServerProcess`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from knray.testing.process import ServerProcess, ServerStartError

__all__ = [
    "CACHE_DIR_ENV",
    "JavaServer",
    "MissingToolError",
    "cache_dir",
    "fetch_jars",
    "find_java",
]

CACHE_DIR_ENV: Final = "KNRAY_CACHE_DIR"
_LOG_TAIL_CHARS: Final = 4000
_DONE_MARKER: Final = ".complete"
_MAVEN_TIMEOUT_S: Final = 900.0


class MissingToolError(ServerStartError):
    """A program the server needs (``java``, ``mvn``) is not installed."""


def cache_dir() -> Path:
    """knray's cache folder (created): ``$KNRAY_CACHE_DIR``, ``$XDG_CACHE_HOME/knray`` or
    ``~/.cache/knray``."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "knray"
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_java() -> str:
    """The ``java`` to run: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").is_file():
        return str(Path(home, "bin", "java"))
    found = shutil.which("java")
    if found is None:
        raise MissingToolError(
            "java was not found (neither $JAVA_HOME/bin/java nor on PATH); the Apache servers "
            "need Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless)"
        )
    return found


def _pom(coordinates: Sequence[str]) -> str:
    dependencies = []
    for coordinate in coordinates:
        group, artifact, version = coordinate.split(":")
        dependencies.append(
            f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version></dependency>"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">'
        "<modelVersion>4.0.0</modelVersion><groupId>dev.knray</groupId>"
        "<artifactId>knray-test-server</artifactId><version>1</version>"
        f"<dependencies>{''.join(dependencies)}</dependencies></project>"
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two test processes may fetch the same server at once; the second waits for the first.
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_jars(name: str, coordinates: Sequence[str]) -> Path:
    """A folder holding ``coordinates`` (``group:artifact:version``) and their runtime
    dependencies, fetched from Maven Central with ``mvn`` on first use and cached.

    Raises MissingToolError without Maven, ServerStartError (with Maven's output) when the
    artifacts cannot be resolved, e.g. without network access to Maven Central.
    """
    digest = hashlib.sha256("\n".join(sorted(coordinates)).encode()).hexdigest()[:12]
    target = cache_dir() / "jars" / f"{name}-{digest}"
    if (target / _DONE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f"{name}-{digest}.lock"):
        if (target / _DONE_MARKER).is_file():
            return target
        mvn = shutil.which("mvn")
        if mvn is None:
            raise MissingToolError(
                f"mvn (Apache Maven) was not found on PATH; it fetches {name}'s jars from Maven "
                "Central once (Debian: apt-get install maven)"
            )
        find_java()  # Maven needs it too: fail with the clearer message
        work = target.with_name(target.name + ".work")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "pom.xml").write_text(_pom(coordinates))
        command = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={work / 'lib'}",
        ]
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_MAVEN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise ServerStartError(
                f"Maven did not fetch {name} ({', '.join(coordinates)}) within "
                f"{_MAVEN_TIMEOUT_S:.0f} s; is Maven Central reachable?"
            ) from error
        if done.returncode != 0:
            output = (done.stdout + done.stderr)[-_LOG_TAIL_CHARS:]
            raise ServerStartError(
                f"Maven could not fetch {name} ({', '.join(coordinates)}); it needs network "
                f"access to Maven Central the first time. Maven said:\n{output}"
            )
        (work / "lib").rename(target)
        shutil.rmtree(work, ignore_errors=True)
        (target / _DONE_MARKER).write_text("\n".join(coordinates) + "\n")
    return target


class JavaServer(ServerProcess):
    """One JVM started in its own process group, with its output in ``log_path``."""

    @classmethod
    def start(
        cls,
        name: str,
        *,
        classpath: Sequence[Path | str],
        main_class: str,
        arguments: Sequence[str] = (),
        jvm_options: Sequence[str] = (),
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> JavaServer:
        """Start ``java <jvm_options> -cp <classpath> <main_class> <arguments>``."""
        command = [
            find_java(),
            *jvm_options,
            "-cp",
            os.pathsep.join(str(entry) for entry in classpath),
            main_class,
            *arguments,
        ]
        return cls.launch(name, command, log_path=log_path, env=env, cwd=cwd)
