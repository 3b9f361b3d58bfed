"""Regression tests for bugs found in review, each named after the bug.
Written before the fix and seen failing against the unfixed server."""

import time



def test_pipelined_blocking_reads_each_time_out(raw):
    # Two XREAD BLOCK with a timeout and a PING in one write: the second
    # XREAD parks again from inside the timeout callback of the first; it
    # must still time out (it used to hang until the next XADD).
    c = raw()
    c.send(b"XREAD BLOCK 100 STREAMS blk-regress $\r\n"
           b"XREAD BLOCK 100 STREAMS blk-regress $\r\n"
           b"PING\r\n")
    start = time.monotonic()
    assert c.read_reply_raw(timeout=5) == b"*-1\r\n"
    assert c.read_reply_raw(timeout=5) == b"*-1\r\n"
    assert c.read_reply_raw(timeout=5) == b"+PONG\r\n"
    assert time.monotonic() - start < 3
