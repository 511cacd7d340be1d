"""Benchmark: ``mvn package`` through the Maven format of the proxy, cold and warm.

    python bench/maven.py [--runs 3]

The upstream is a fake plain Maven repository serving the machine's ~/.m2/repository read only
(tests/fakes/maven_repository.py, on a thread of this process); the proxy runs as a subprocess
(``python -m proxy serve``). Every build is the real mvn (tests/fakes/maven_client.py) of the small test
project (tests/maven/app: a class, a JUnit 5 test, commons-lang3; ~190 plugin and library files)
with a fresh, empty local repository. Prints the median wall time of ``--runs`` builds:
- straight from the fake (no proxy), the baseline;
- cold through the proxy: empty store (a new proxy for each run);
- warm through the proxy: the store holds everything;
- warm with every upstream stopped (served from the store alone).
mvn's own start-up and build (JVM, compiling, running the test) is most of each figure.
Nothing is deleted until the end: every build gets its own copy of the project and its own local
repository (deleting files makes later creations slower on some file systems; see bench/npm.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.daemon import RunningDaemon, start_daemon, write_config  # noqa: E402
from tests.fakes.maven_client import Maven, copy_project, write_settings  # noqa: E402
from tests.fakes.maven_repository import FakeMavenRepository  # noqa: E402

M2 = Path.home() / ".m2" / "repository"


class Bench:
    def __init__(self, root: Path, mvn: str, upstream: FakeMavenRepository) -> None:
        self.root = root
        self.mvn = mvn
        self.upstream = upstream
        self._runs = 0

    def build(self, repository_url: str) -> float:
        """One ``mvn package`` with a fresh local repository against ``repository_url``; seconds."""
        self._runs += 1
        maven = Maven(self.mvn, write_settings(self.root / f"settings-{self._runs}.xml", repository_url))
        project = copy_project("app", self.root / f"app-{self._runs}", LIB_DEPENDENCY="")
        started = time.perf_counter()
        maven.run(project, self.root / "local" / str(self._runs), "package")
        return time.perf_counter() - started

    def proxy(self) -> RunningDaemon:
        home = Path(tempfile.mkdtemp(dir=self.root, prefix="proxy-"))
        config = write_config(
            home,
            f'[upstream.m2]\nformat = "maven"\nurl = "{self.upstream.url}"\n\n'
            '[repository.dev]\nupstreams = ["m2"]\npublish = true\n',
        )
        return start_daemon(config, home / "daemon.log")


def median_of(runs: int, one: Callable[[], float]) -> tuple[float, list[float]]:
    times = [one() for _ in range(runs)]
    return statistics.median(times), times


def report(label: str, result: tuple[float, list[float]]) -> None:
    median, times = result
    print(f"  {label:<38} {median:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times)})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    mvn = shutil.which("mvn")
    if mvn is None or not M2.is_dir():
        sys.exit("needs mvn and a filled ~/.m2/repository")
    with tempfile.TemporaryDirectory(prefix="bench-maven-") as tmp, FakeMavenRepository(M2) as upstream:
        bench = Bench(Path(tmp), mvn, upstream)
        print(f"mvn package, fresh local repository each run, median of {args.runs}:", flush=True)
        report("straight from the upstream", median_of(args.runs, lambda: bench.build(upstream.url)))

        def cold() -> float:
            proxy = bench.proxy()
            try:
                return bench.build(f"{proxy.url}/maven/dev/")
            finally:
                proxy.stop()

        report("cold through the proxy (empty store)", median_of(args.runs, cold))
        proxy = bench.proxy()
        try:
            url = f"{proxy.url}/maven/dev/"
            bench.build(url)  # fill the store
            report("warm through the proxy", median_of(args.runs, lambda: bench.build(url)))
            upstream.stop()
            report("warm, every upstream stopped", median_of(args.runs, lambda: bench.build(url)))
            upstream.start()
        finally:
            proxy.stop()


if __name__ == "__main__":
    main()
