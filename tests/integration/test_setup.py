"""The README's two commands on a machine without the Debian packages.

The Makefile asks pkg-config for the libraries when make reads it. These
tests run the real Makefile in a copy of the tree with fake tools first on
PATH: a `pkg-config` that finds liblz4/libzstd only once a fake `apt-get
install` has run, a `dpkg-query` that says they are missing until then, and
a compiler that records its command line and writes a no-op program. So they
check, in seconds and without touching the machine's packages, that

- `make run` and `make test` install first and then build with the library
  flags (a stale, empty flag set is what broke the first run on a fresh
  machine: the link failed on LZ4_/ZSTD_ symbols);
- a plain `make` or `make libpier` without the packages stops at once with a
  message naming `make deps`, before compiling anything.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_PKG_CONFIG = r"""#!/bin/sh
# Finds liblz4 and libzstd only after the fake apt-get installed them.
[ -f "$FAKE_MARK" ] || { echo "Package liblz4 was not found in the pkg-config search path." >&2; exit 1; }
case " $* " in
  *" --exists "*) exit 0 ;;
  *" --libs "*) echo "-llz4 -lzstd" ;;
  *) echo "" ;;
esac
"""

FAKE_DPKG_QUERY = r"""#!/bin/sh
# Every package is installed but the two libraries, until apt-get ran.
for last; do :; done
case "$last" in
  liblz4-dev|libzstd-dev) [ -f "$FAKE_MARK" ] && printf 'install ok installed' ;;
  *) printf 'install ok installed' ;;
esac
exit 0
"""

FAKE_APT_GET = r"""#!/bin/sh
echo "fake apt-get $*" >> "$FAKE_LOG"
case "$1" in install) touch "$FAKE_MARK" ;; esac
exit 0
"""

# Records each call; writes a program that exits 0 wherever -o points.
FAKE_CC = r"""#!/bin/sh
echo "cc $*" >> "$FAKE_LOG"
out=""; prev=""
for a; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  printf '#!/bin/sh\nexit 0\n' > "$out"; chmod +x "$out"
fi
exit 0
"""

FAKE_AR = r"""#!/bin/sh
echo "ar $*" >> "$FAKE_LOG"
touch "$2"
"""


def _tree_copy(dst: Path) -> Path:
    """The repository's files (tracked and new, not ignored) under dst."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    return dst


@pytest.fixture
def fresh(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to copy the tree")
    tree = _tree_copy(tmp_path / "tree")
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, text in (("pkg-config", FAKE_PKG_CONFIG), ("dpkg-query", FAKE_DPKG_QUERY),
                       ("apt-get", FAKE_APT_GET), ("fakecc", FAKE_CC), ("ar", FAKE_AR)):
        p = fake / name
        p.write_text(text)
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = dict(os.environ)
    env.update(PATH=f"{fake}:{env['PATH']}", FAKE_MARK=str(tmp_path / "installed"),
               FAKE_LOG=str(tmp_path / "calls.log"))
    for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PKG_CONFIG"):
        env.pop(var, None)

    def make(*goals, timeout=300):
        return subprocess.run(["make", "-C", str(tree), *goals, f"CC={fake}/fakecc",
                               f"FUZZ_CC={fake}/fakecc", "PYTHON=true"],
                              env=env, capture_output=True, text=True, timeout=timeout)

    def calls():
        log = tmp_path / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    return make, calls


def _links(calls, target):
    return [c for c in calls if c.startswith("cc ") and f"-o {target} " in c + " "]


@pytest.mark.parametrize("goal", [[], ["all"], ["libpier"], ["build/pier-server"]])
def test_build_without_packages_stops_at_once_naming_deps(fresh, goal):
    make, calls = fresh
    r = make(*goal)
    assert r.returncode != 0
    assert "make deps" in r.stdout + r.stderr
    assert not [c for c in calls() if c.startswith("cc ")], "compiled before stopping"


def test_make_run_installs_then_links_with_the_libraries(fresh):
    make, calls = fresh
    r = make("run")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = calls()
    assert any(c.startswith("fake apt-get install") and "liblz4-dev" in c for c in log)
    links = _links(log, "build/pier-server")
    assert links, "build/pier-server was never linked"
    assert all("-llz4" in c and "-lzstd" in c for c in links), links


def test_make_test_installs_then_links_with_the_libraries(fresh):
    make, calls = fresh
    r = make("test", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = calls()
    links = _links(log, "build/asan/pier-server")
    assert links, "build/asan/pier-server was never linked"
    assert all("-llz4" in c and "-lzstd" in c for c in links), links
    unit_links = [c for c in log if c.startswith("cc ") and "-o build/asan/unit/" in c]
    assert unit_links and all("-llz4" in c for c in unit_links)
