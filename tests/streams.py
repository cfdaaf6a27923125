"""A live stream for tests: a shared clip remuxed (no re-encoding) as MPEG-TS and sent
at its own pace to a UDP or TCP address on 127.0.0.1, to standard output or to a file
that grows as it plays. Run as `python -m tests.streams VIDEO URL [--loops N]`, so a
test can kill it mid-stream and start it again."""

from __future__ import annotations

import argparse
import sys
import time

import av


def push(video: str, url: str, loops: int = 1, speed: float = 1.0, fmt: str = "mpegts") -> None:
    """Send `video` `loops` times to `url` (udp://, tcp://...?listen=1, pipe:1 or a
    path), each packet when its time comes: `speed` times real time."""
    # Every packet goes out as it is muxed, as a live sender's would.
    options = {"flush_packets": "1"}
    if fmt == "hls":  # one-second segments, all kept in the playlist
        options.update(hls_time="1", hls_list_size="0")
    with av.open(url, "w", format=fmt, container_options=options) as out:
        started = time.monotonic()
        played = 0.0  # seconds of the loops before this one
        for _ in range(loops):
            with av.open(video) as src:
                stream = src.streams.video[0]
                if not out.streams.video:
                    out.add_stream_from_template(stream)
                sent = out.streams.video[0]
                tb = stream.time_base
                first = None
                end = 0.0
                for packet in src.demux(stream):
                    if packet.dts is None:
                        continue
                    first = packet.dts if first is None else first
                    t = float((packet.dts - first) * tb)
                    end = max(end, t)
                    wait = started + (played + t) / speed - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    shift = round(played / tb)
                    packet.dts += shift
                    packet.pts += shift
                    packet.stream = sent
                    out.mux(packet)
                played += end + 1 / float(stream.average_rate or 25)  # one frame on


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("url")
    parser.add_argument("--loops", type=int, default=1)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before sending")
    parser.add_argument("--format", default="mpegts", help="mpegts, or hls (a playlist path)")
    args = parser.parse_args()
    time.sleep(args.delay)
    try:
        push(args.video, args.url, args.loops, args.speed, args.format)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)


if __name__ == "__main__":
    main()
