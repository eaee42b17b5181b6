"""A stand-in live ingest for the tests: `python tests/live_listener.py URL OUT LOG`.

Listens on an rtmp:// URL (FFmpeg's own RTMP server mode, through PyAV), copies what it
receives into OUT (an FLV file) and appends one line per packet to LOG: the wall-clock time it
arrived, the stream, and its timestamp in seconds. Reconnections are accepted: it listens again
after each stream ends, until killed.
"""

from __future__ import annotations

import sys
import time

import av


def main() -> None:
    url, out, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
    session = 0
    with open(log_path, "a", encoding="utf-8") as log:
        while True:
            try:
                source = av.open(url, options={"listen": "1"}, timeout=(60, 10))
            except av.FFmpegError:
                continue
            name = out if session == 0 else f"{out}.{session}"
            sink = av.open(name, "w", format="flv")
            streams = {s.index: sink.add_stream_from_template(s) for s in source.streams}
            log.write(f"connect {time.time():.4f} {session}\n")
            log.flush()
            try:
                for packet in source.demux():
                    if packet.dts is None:
                        continue
                    at = float(packet.dts * packet.time_base)
                    log.write(f"{packet.stream.type} {time.time():.4f} {at:.4f}\n")
                    log.flush()
                    packet.stream = streams[packet.stream.index]
                    sink.mux(packet)
            except (av.FFmpegError, OSError):
                pass  # the sender went away
            finally:
                sink.close()
                source.close()
            log.write(f"end {time.time():.4f} {session}\n")
            log.flush()
            session += 1


if __name__ == "__main__":
    main()
