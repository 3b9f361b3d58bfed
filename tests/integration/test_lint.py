"""tests/lint/check.py passes on the tree and fails on each kind of breach."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tests" / "lint" / "check.py"


def run(root):
    return subprocess.run([sys.executable, str(CHECK), str(root)], capture_output=True, text=True)


def test_tree_passes():
    r = run(ROOT)
    assert r.returncode == 0, r.stdout


def _copy(tmp_path):
    dst = tmp_path / "tree"
    for sub in ("src", "client", "tools"):
        shutil.copytree(ROOT / sub, dst / sub)
    return dst


def _add(path, text):
    path.write_text(path.read_text() + text)


def test_upward_include_fails(tmp_path):
    t = _copy(tmp_path)
    _add(t / "src/store/evict.c", '\n#include "../server/server.h"\n')
    r = run(t)
    assert r.returncode == 1 and "src/store includes a higher layer" in r.stdout


def test_type_folder_is_the_types_layer(tmp_path):
    """src/types/<type>/ files are the "types" layer: a type may not include
    commands (a higher layer)."""
    t = _copy(tmp_path)
    _add(t / "src/types/stream/group.c", '\n#include "cmd/command.h"\n')
    r = run(t)
    assert r.returncode == 1 and "src/types includes a higher layer (src/cmd)" in r.stdout


def test_include_cycle_fails(tmp_path):
    t = _copy(tmp_path)
    _add(t / "src/lib/clock.h", '\n#include "lib/hash.h"\n')
    _add(t / "src/lib/hash.h", '\n#include "lib/clock.h"\n')
    r = run(t)
    assert r.returncode == 1 and "include cycle" in r.stdout


def test_command_name_compare_fails(tmp_path):
    t = _copy(tmp_path)
    _add(t / "src/cmd/keys.c", '\nstatic int is_get(const command *cmd) { return !strcmp(cmd->name, "get"); }\n')
    r = run(t)
    assert r.returncode == 1 and "compares a command's name" in r.stdout


def test_long_function_and_style_fail(tmp_path):
    t = _copy(tmp_path)
    body = "".join(f"    x += {i};\n" for i in range(101))
    _add(t / "src/lib/util.c", f"\nint too_long(int x) {{\n{body}    return x; \n}}\n")
    r = run(t)
    assert r.returncode == 1
    assert "function of" in r.stdout and "trailing white space" in r.stdout


def test_command_name_compare_in_routing_fails(tmp_path):
    """Cluster routing once held eight such compares (allowed then); none
    may come back: routing reads the verdict's row."""
    t = _copy(tmp_path)
    _add(t / "src/server/cluster_client.c",
         '\nstatic int is_mset(const command *cmd) { return !strcasecmp(cmd->name, "mset"); }\n')
    r = run(t)
    assert r.returncode == 1 and "src/server/cluster_client.c" in r.stdout
