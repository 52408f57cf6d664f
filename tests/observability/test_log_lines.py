"""Request lines of several workers sharing one stdout pipe never interleave."""

from __future__ import annotations

import io
import select

from warmgate.proxy.observability.logs import LineBuffer


class RecordingSink(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return super().write(data)


def test_a_shared_sink_gets_whole_lines_at_most_pipe_buf_bytes_a_write() -> None:
    sink = RecordingSink()
    buffer = LineBuffer(sink, shared_sink=True)
    lines = [(b'{"n":%d,"pad":"' % n) + b"x" * (n * 37 % 700) + b'"}' for n in range(60)]
    long_line = b"y" * (select.PIPE_BUF + 100)
    for line in [*lines[:30], long_line, *lines[30:]]:
        buffer.msg(line)
    buffer.flush()
    assert len(sink.writes) > 1
    for write in sink.writes:
        assert write.endswith(b"\n")
        assert len(write) <= select.PIPE_BUF or write == long_line + b"\n"
    assert sink.getvalue().splitlines() == [*lines[:30], long_line, *lines[30:]]


def test_a_private_sink_gets_the_whole_buffer_in_one_write() -> None:
    sink = RecordingSink()
    buffer = LineBuffer(sink)
    for n in range(200):
        buffer.msg(b"x" * 100 + str(n).encode())
    buffer.flush()
    assert len(sink.writes) == 1
