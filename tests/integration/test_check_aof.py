"""pier-check-aof: checks the AOF (manifest, base, incremental files) and a
snapshot with the server's own parser, reports the first bad offset and
the bytes there, and with --fix cuts a damaged tail off the last file
(after asking, as redis-check-aof does; --yes does not ask)."""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import PIER_BIN, REPO, Server, pier_only, start_one_node_cluster

pytestmark = pier_only

CHECK_BIN = os.environ.get("PIER_CHECK_AOF", str(Path(PIER_BIN).parent / "pier-check-aof"))
SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")


def check(*args, answer=None):
    if not os.access(CHECK_BIN, os.X_OK):
        pytest.fail(f"{CHECK_BIN} missing: `make build/asan/pier-check-aof`", pytrace=False)
    p = subprocess.run([CHECK_BIN] + [str(a) for a in args], capture_output=True, timeout=60,
                       input=answer.encode() if answer is not None else b"")
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    for m in SANITIZER_MARKERS:
        assert m not in out, out
    return p.returncode, out


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def write_manifest(path, files):
    body = "pier-aof-manifest 1\n" + "".join(
        f"file {name} seq {seq} type {kind}\n" for name, seq, kind in files)
    path.write_text(body + "crc %08x\n" % crc32c(body.encode()))


class Aof:
    """An AOF directory written by a real server: 20 SETs (k0..k19)."""

    def __init__(self, workdir, rewrite=False):
        self.workdir = Path(workdir)
        self.args = ("--appendonly", "yes", "--dir", str(self.workdir))
        srv = Server("pier", self.workdir, self.args).start()
        c = srv.client()
        c.set("base-key", "1")
        if rewrite:
            assert c.bgrewriteaof()
            import time
            deadline = time.monotonic() + 20
            while c.info("persistence")["aof_rewrites"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
        for i in range(20):
            c.set(f"k{i}", f"v{i}")
        srv.stop()
        self.dir = self.workdir / "appendonlydir"
        self.manifest = self.dir / "appendonly.aof.manifest"

    def incr(self):
        return sorted(self.dir.glob("*.incr.aof"), key=lambda p: int(p.name.split(".")[-3]))[-1]

    def base(self):
        return next(self.dir.glob("*.base.pier"))

    def start(self):
        return Server("pier", self.workdir, self.args).start()


def append(path, data):
    """Append data to the file; returns the offset it starts at."""
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(data)
    return size


def damage_second_set(incr, at, byte):
    """Overwrite the byte `at` bytes into the file's second SET; returns
    (the new bytes, the SET's offset)."""
    data = bytearray(incr.read_bytes())
    first = data.index(b"*3\r\n$3\r\nSET")
    bad = data.index(b"*3\r\n$3\r\nSET", first + 1)
    data[bad + at] = ord(byte)
    incr.write_bytes(bytes(data))
    return bytes(data), bad


def test_valid_aof(tmp_path):
    aof = Aof(tmp_path, rewrite=True)
    rc, out = check(aof.manifest)
    assert rc == 0, out
    assert f"manifest {aof.manifest}: ok, 2 files" in out, out
    assert f"base {aof.base().name}: ok, 1 keys" in out, out
    assert f"incr {aof.incr().name}: ok, 20 commands" in out, out
    assert out.rstrip().endswith("is valid"), out


def test_torn_tail_reported_then_fixed_after_asking(tmp_path):
    aof = Aof(tmp_path)
    incr = aof.incr()
    good = append(incr, b"*3\r\n$3\r\nSET\r\n$1\r\nz\r\n$5\r\nhal")
    rc, out = check(aof.manifest)
    assert rc == 1, out
    assert f"incr {incr.name}: incomplete last command" in out and f"at offset {good} " in out
    assert r'there: "*3\r\n$3\r\nSET\r\n$1\r\nz\r\n$5\r\nhal"' in out, out
    assert "Use the --fix option" in out
    rc, out = check("--fix", aof.manifest, answer="n\n")
    assert rc == 1 and "Continue? [y/N]" in out and "Aborting" in out, out
    assert incr.stat().st_size > good
    rc, out = check("--fix", aof.manifest, answer="y\n")
    assert rc == 0 and f"Successfully truncated AOF {incr.name}" in out, out
    assert incr.stat().st_size == good
    assert check(aof.manifest)[0] == 0
    srv = aof.start()
    assert srv.client().get("k19") == b"v19" and srv.client().dbsize() == 21
    srv.stop()


def test_mid_file_damage_in_the_last_file_is_cut_with_yes(tmp_path):
    aof = Aof(tmp_path)
    incr = aof.incr()
    data, bad = damage_second_set(incr, 4, "X")
    rc, out = check(aof.manifest)
    assert rc == 1 and f"bad RESP format at offset {bad} of {len(data)} bytes" in out, out
    assert r'there: "*3\r\nX3\r\nSET' in out, out
    rc, out = check("--fix", "--yes", aof.manifest)
    assert rc == 0 and "Continue?" not in out and "Successfully truncated" in out, out
    assert incr.stat().st_size == bad
    srv = aof.start()  # the first SET of the file survives, the rest is cut
    assert srv.client().dbsize() == 1
    srv.stop()


def test_damage_in_an_earlier_file_is_not_cut(tmp_path):
    aof = Aof(tmp_path)
    first = aof.incr()
    data, bad = damage_second_set(first, 0, "?")
    later = aof.dir / "appendonly.aof.2.incr.aof"
    later.write_bytes(b"*3\r\n$3\r\nSET\r\n$4\r\nlate\r\n$1\r\n1\r\n")
    write_manifest(aof.manifest, [(aof.base().name, 1, "b"), (first.name, 1, "i"),
                                  (later.name, 2, "i")])
    rc, out = check("--fix", "--yes", aof.manifest)
    assert rc == 1, out
    assert f"incr {first.name}: bad RESP format at offset {bad}" in out, out
    assert "not the last file of the manifest" in out, out
    assert first.read_bytes() == data


def test_unknown_command_is_named(tmp_path):
    aof = Aof(tmp_path)
    size = append(aof.incr(), b"*2\r\n$7\r\nNOSUCHX\r\n$1\r\na\r\n")
    rc, out = check(aof.manifest)
    assert rc == 1 and f"unknown command 'NOSUCHX' at offset {size}" in out, out


def test_cluster_node_aof_with_witness_records_is_valid(tmp_path):
    """A cluster node's AOF holds its log (PIER.ENTRY, VOTE, COMMIT, TRUNCATE)
    and its witness's records (PIER.WITNESS, PIER.WGC: every follower writes
    them); pier-check-aof accepts all of them, as the node's start-up does."""
    srv = start_one_node_cluster(tmp_path / "run1", tmp_path)
    assert srv.client().set("a", "1")
    srv.stop()
    incr = sorted((tmp_path / "appendonlydir").glob("*.incr.aof"))[-1]
    keys = (0x1234).to_bytes(8, "little")
    req = b"*3\r\n$3\r\nSET\r\n$1\r\nw\r\n$1\r\n1\r\n"

    def resp(*args):
        return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    append(incr, resp(b"PIER.WITNESS", b"1", b"77", b"1", keys, req) +
           resp(b"PIER.WGC", b"77", b"1", keys))
    rc, out = check(tmp_path / "appendonlydir" / "appendonly.aof.manifest")
    assert rc == 0, out
    srv = Server("pier", tmp_path / "run2", srv.extra_args, port=srv.port).start()
    assert srv.client().get("a") == b"1"
    srv.stop()


def test_corrupt_base_is_reported_and_not_fixable(tmp_path):
    aof = Aof(tmp_path, rewrite=True)
    base = aof.base()
    data = bytearray(base.read_bytes())
    data[len(data) // 2] ^= 0xFF
    base.write_bytes(bytes(data))
    rc, out = check("--fix", "--yes", aof.manifest)
    assert rc == 1 and f"base {base.name}:" in out and "checksum" in out, out
    assert "cannot be fixed" in out and base.read_bytes() == bytes(data)


def test_corrupt_manifest_is_reported(tmp_path):
    aof = Aof(tmp_path)
    aof.manifest.write_text(aof.manifest.read_text().replace("seq 1 type i", "seq 7 type i"))
    rc, out = check(aof.manifest)
    assert rc == 1 and "checksum mismatch" in out, out


def test_missing_listed_file(tmp_path):
    aof = Aof(tmp_path)
    aof.incr().unlink()
    rc, out = check(aof.manifest)
    assert rc == 1 and "cannot read" in out and "No such file" in out, out


def test_single_files_and_snapshot(tmp_path):
    aof = Aof(tmp_path)
    rc, out = check(aof.incr())
    assert rc == 0 and "ok, 21 commands" in out, out
    srv = Server("pier", tmp_path / "snap", ("--dir", str(tmp_path / "snap"))).start()
    c = srv.client()
    c.set("a", "b")
    c.xadd("s", {"f": "v"})
    assert c.save()
    srv.stop()
    dump = tmp_path / "snap" / "dump.pier"
    rc, out = check(dump)
    assert rc == 0 and "ok, 2 keys" in out, out
    data = bytearray(dump.read_bytes())
    data[-1] ^= 0xFF
    dump.write_bytes(bytes(data))
    rc, out = check(dump)
    assert rc == 1 and "checksum" in out and "at offset" in out, out


def test_usage(tmp_path):
    rc, out = check()
    assert rc == 2 and "Usage: pier-check-aof [--fix [--yes]]" in out, out
    rc, out = check("--help")
    assert rc == 0 and "Usage:" in out and "--fix" in out and "--yes" in out, out
    rc, out = check("--frobnicate", "x")
    assert rc == 2 and "Usage:" in out
    rc, out = check(tmp_path / "nope.manifest")
    assert rc == 2 and "No such file" in out, out


def test_built_by_make_all():
    text = (REPO / "Makefile").read_text()
    all_line = next(l for l in text.splitlines() if l.startswith("all:"))
    assert "build/pier-check-aof" in all_line
