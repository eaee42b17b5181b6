"""The process that holds one destination's connection: `python -m broadcaster.live.sender_child`.

It reads one line from standard input (JSON: the target URL or file and a display name), then
a NUT stream of already-encoded packets, and copies them into the target (FLV over RTMP(S), or
a file). It runs apart from the channel because PyAV opens an output (TCP connect, RTMP
handshake, TLS) while holding Python's global lock: a destination that hangs there must never
freeze the encoder and the other destinations. It reports on standard output, one JSON object
per line, and never writes the target (which may carry a stream key) in a report.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import Any


def report(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def describe(exc: BaseException, target: str, name: str, connected: bool) -> tuple[str, str]:
    """(kind, message) of a failure, with the target replaced by the destination's name."""
    code = getattr(exc, "errno", None)
    text = str(exc).replace(target, name)
    if code == errno.ECONNREFUSED:
        return "refused", "connection refused (is the ingest server up?)"
    if code in (errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENOENT):
        return "network", f"network unreachable or timed out ({text})"
    if not connected:
        return "rejected", f"the server closed the connection while publishing ({text}): " + (
            "stream key refused, or the broadcast is not ready"
        )
    return "lost", f"connection lost ({text})"


def _first_line() -> bytes:
    """The header line, read byte by byte so nothing after it is taken from the pipe."""
    line = bytearray()
    while True:
        byte = os.read(0, 1)
        if not byte or byte == b"\n":
            return bytes(line)
        line += byte


def main() -> int:
    import av

    from broadcaster.live.encoder import output_format

    header = json.loads(_first_line() or b"{}")
    target, name = str(header.get("target", "")), str(header.get("name", "destination"))
    connected = False
    try:
        # FFmpeg reads the rest of standard input itself (no Python buffering, no seeking).
        source = av.open(
            "pipe:0",
            "r",
            format="nut",
            options={"probesize": "4096", "analyzeduration": "0"},
        )
        fmt, options = output_format(target)
        sink = av.open(target, "w", format=fmt, container_options=options, timeout=10)
        streams = {s.index: sink.add_stream_from_template(s) for s in source.streams}
        sent = 0
        for packet in source.demux():
            if packet.dts is None:
                if packet.pts is None:
                    continue
                packet.dts = packet.pts  # the NUT demuxer leaves it out early on; no B-frames
            packet.stream = streams[packet.stream.index]
            sink.mux(packet)  # the first call writes the header: that is the connection
            sent += packet.size
            if not connected:
                connected = True
                report("live")
            if sent >= 262_144:
                report("sent", bytes=sent)
                sent = 0
        sink.close()
        report("ended")
        return 0
    except (OSError, av.FFmpegError) as exc:
        kind, message = describe(exc, target, name, connected)
        report("error", kind=kind, message=message)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
