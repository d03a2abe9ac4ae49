"""The caption WebSocket server and the WebSocket ingest, with real sockets on 127.0.0.1 and
real WebSocket clients; no models. Every server a test starts is closed in `finally`."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from transcribe.streaming.server import CaptionServer
from transcribe.streaming.sources import Pcm, State, WebSocketIngest


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def recv_json(ws, timeout=5.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


# --------------------------------------------------------------------------- captions


def test_captions_reach_every_client_in_order_and_late_clients_get_a_replay():
    async def main():
        server = CaptionServer("127.0.0.1", 0, hello=lambda: {"type": "hello", "session": "s1"}, replay=2)
        await server.start()
        try:
            url = f"ws://127.0.0.1:{server.bound_port}/"
            async with connect(url) as a:
                hello = await recv_json(a)
                assert hello == {"type": "hello", "session": "s1", "replay": 0}
                for i in range(3):
                    server.broadcast({"type": "partial", "seq": 2 * i, "text": f"p{i}"})
                    server.broadcast({"type": "final", "seq": 2 * i + 1, "id": i, "text": f"f{i}"})
                got = [await recv_json(a) for _ in range(6)]
                assert [m["seq"] for m in got] == list(range(6))
                assert server.clients == 1
                async with connect(url + "captions") as b:
                    hello = await recv_json(b)
                    assert hello["replay"] == 2
                    replay = [await recv_json(b) for _ in range(2)]
                    assert [m["id"] for m in replay] == [1, 2]  # the last finals, no partials
                    server.broadcast({"type": "status", "seq": 6})
                    assert (await recv_json(b))["seq"] == 6
                    assert (await recv_json(a))["seq"] == 6
                # b left: broadcasting goes on for a
                await asyncio.sleep(0.1)
                assert server.clients == 1
                server.broadcast({"type": "status", "seq": 7})
                assert (await recv_json(a))["seq"] == 7
                await server.close()
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(a.recv(), 5)
                assert closed.value.rcvd.code == 1001
        finally:
            await server.close()

    run(main())


def test_captions_need_the_token_when_one_is_set():
    async def main():
        server = CaptionServer("127.0.0.1", 0, token="s3cret")
        await server.start()
        try:
            base = f"ws://127.0.0.1:{server.bound_port}/"
            for url, headers in ((base, None), (base + "?token=wrong", None), (base, {"Authorization": "Bearer nope"})):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(url, additional_headers=headers):
                        pass
                assert refused.value.response.status_code == 401
            async with connect(base + "?token=s3cret") as ws:
                assert (await recv_json(ws))["type"] == "hello"
            async with connect(base, additional_headers={"Authorization": "Bearer s3cret"}) as ws:
                assert (await recv_json(ws))["type"] == "hello"
            with pytest.raises(InvalidStatus) as wrong_path:
                async with connect(f"ws://127.0.0.1:{server.bound_port}/other?token=s3cret"):
                    pass
            assert wrong_path.value.response.status_code == 404
            assert server.refused == 4
        finally:
            await server.close()

    run(main())


def test_a_slow_caption_client_is_dropped_not_waited_for():
    async def main():
        server = CaptionServer("127.0.0.1", 0, client_queue=5, replay=0)
        await server.start()
        try:
            url = f"ws://127.0.0.1:{server.bound_port}/"
            async with connect(url) as slow, connect(url) as fast:
                await recv_json(slow)
                await recv_json(fast)
                # 20 messages at once, no chance to send in between: both queues overflow
                for i in range(20):
                    server.broadcast({"type": "partial", "seq": i})
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(slow.recv(), 5)
                assert closed.value.rcvd.code == 1013
                assert server.dropped_clients == 2 and server.clients == 0
            # the server still serves new clients
            async with connect(url) as again:
                assert (await recv_json(again))["type"] == "hello"
                server.broadcast({"type": "partial", "seq": 99})
                assert (await recv_json(again))["seq"] == 99
        finally:
            await server.close()

    run(main())


def test_big_messages_from_caption_clients_are_refused():
    async def main():
        server = CaptionServer("127.0.0.1", 0)
        await server.start()
        try:
            async with connect(f"ws://127.0.0.1:{server.bound_port}/") as ws:
                await recv_json(ws)
                await ws.send("x" * 10_000)
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 1009
        finally:
            await server.close()

    run(main())


# --------------------------------------------------------------------------- ingest


async def collect(ingest, into):
    async for ev in ingest.events():
        into.append(ev)


def pcm(n, value=1000):
    return np.full(n, value, "<i2").tobytes()


def test_ingest_takes_pcm_frames_and_ends_on_request():
    async def main():
        ingest = WebSocketIngest("127.0.0.1", 0, token="t0k")
        await ingest.start()
        events: list = []
        task = asyncio.ensure_future(collect(ingest, events))
        try:
            url = f"ws://127.0.0.1:{ingest.bound_port}/ingest"
            async with connect(url, additional_headers={"Authorization": "Bearer t0k"}) as ws:
                await ws.send(json.dumps({"type": "start", "format": "s16le", "sample_rate": 16000, "channels": 1}))
                for i in range(5):
                    await ws.send(pcm(320, 100 * (i + 1)))
                await ws.send(json.dumps({"type": "end"}))
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
            await asyncio.wait_for(task, 5)
        finally:
            task.cancel()
            await ingest.close()
        states = [e.state for e in events if isinstance(e, State)]
        assert states[0] == "connecting" and "live" in states and states[-1] == "ended"
        samples = np.concatenate([e.samples for e in events if isinstance(e, Pcm)])
        assert len(samples) == 1600
        np.testing.assert_allclose(samples[::320] * 32768, [100, 200, 300, 400, 500])

    run(main())


@pytest.mark.parametrize(
    "send, code",
    [
        (b"\x01\x02\x03", 1007),  # half a sample
        (b"\x00" * 5000, 1009),  # over max_frame
        (json.dumps({"type": "start", "sample_rate": 44100}), 1003),
        (json.dumps({"type": "start", "channels": 2}), 1003),
        (json.dumps({"type": "volume"}), 1003),
        ("not json", 1003),
        (json.dumps([1, 2]), 1003),
    ],
)
def test_ingest_refuses_malformed_and_oversized_frames(send, code):
    async def main():
        ingest = WebSocketIngest("127.0.0.1", 0, max_frame=4000)
        await ingest.start()
        events: list = []
        task = asyncio.ensure_future(collect(ingest, events))
        try:
            async with connect(f"ws://127.0.0.1:{ingest.bound_port}/") as ws:
                await ws.send(pcm(100))
                await ws.send(send)
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == code
            await asyncio.sleep(0.1)
            # the session goes on: the publisher may come back
            assert not task.done()
            assert isinstance(events[-1], State) and events[-1].state == "reconnecting"
        finally:
            task.cancel()
            await ingest.close()

    run(main())


def test_ingest_token_and_path():
    async def main():
        ingest = WebSocketIngest("127.0.0.1", 0, token="abc")
        await ingest.start()
        try:
            for path, status in (("/ingest", 401), ("/ingest?token=abd", 401), ("/elsewhere?token=abc", 404)):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(f"ws://127.0.0.1:{ingest.bound_port}{path}"):
                        pass
                assert refused.value.response.status_code == status
        finally:
            await ingest.close()

    run(main())


def test_a_new_publisher_replaces_the_old_one():
    async def main():
        ingest = WebSocketIngest("127.0.0.1", 0)
        await ingest.start()
        events: list = []
        task = asyncio.ensure_future(collect(ingest, events))
        try:
            url = f"ws://127.0.0.1:{ingest.bound_port}/ingest"
            async with connect(url) as first:
                await first.send(pcm(160, 1))
                await asyncio.sleep(0.1)
                async with connect(url) as second:
                    with pytest.raises(ConnectionClosed) as closed:
                        await asyncio.wait_for(first.recv(), 5)
                    assert closed.value.rcvd.code == 4000
                    await second.send(pcm(160, 2))
                    await asyncio.sleep(0.2)
            assert ingest.reconnects == 1
            values = [int(round(e.samples[0] * 32768)) for e in events if isinstance(e, Pcm)]
            assert values == [1, 2]
        finally:
            task.cancel()
            await ingest.close()

    run(main())


# --------------------------------------------------------------------------- ffmpeg and pipe sources


from transcribe.errors import InputError  # noqa: E402
from transcribe.samples import pyannote_sample  # noqa: E402
from transcribe.streaming.sources import FfmpegSource, PipeSource  # noqa: E402


async def drain(source, limit=None):
    events = []
    async for ev in source.events():
        events.append(ev)
        if limit is not None and len(events) >= limit:
            break
    return events


def total_samples(events):
    return sum(len(e.samples) for e in events if isinstance(e, Pcm))


def test_ffmpeg_source_reads_a_file_to_its_end_without_reconnecting():
    events = run(drain(FfmpegSource(str(pyannote_sample(".wav")))))
    states = [e.state for e in events if isinstance(e, State)]
    assert states == ["connecting", "live", "ended"]
    assert total_samples(events) == pytest.approx(30 * 16000, abs=1600)


def test_ffmpeg_source_fails_at_once_on_what_no_retry_fixes(tmp_path):
    with pytest.raises(InputError, match="No such file"):
        run(drain(FfmpegSource(str(tmp_path / "missing.wav"))))
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(InputError):
        run(drain(FfmpegSource(str(tmp_path / "text.wav"))))


def test_ffmpeg_source_keeps_retrying_a_live_url_until_stopped():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    source = FfmpegSource(f"rtmp://127.0.0.1:{port}/live/none")

    async def main():
        events = []

        async def consume():
            async for ev in source.events():
                events.append(ev)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(3.0)
        source.stop()
        await asyncio.wait_for(task, 10)
        return events

    events = run(main())
    states = [e.state for e in events if isinstance(e, State)]
    assert states[0] == "connecting" and states.count("reconnecting") >= 2 and states[-1] == "ended"
    assert source.reconnects >= 2


def test_pipe_source_raw_and_container_give_the_same_audio():
    import io
    import subprocess

    from transcribe.media import ffmpeg_binary

    wav = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i", str(pyannote_sample(".wav")), "-t", "3",
         "-ac", "1", "-ar", "16000", "-f", "wav", "-"],
        capture_output=True, check=True,
    ).stdout
    raw = wav[wav.index(b"data") + 8:]  # the samples after the WAV header
    from_raw = run(drain(PipeSource(io.BytesIO(raw))))
    from_wav = run(drain(PipeSource(io.BytesIO(wav))))
    a = np.concatenate([e.samples for e in from_raw if isinstance(e, Pcm)])
    b = np.concatenate([e.samples for e in from_wav if isinstance(e, Pcm)])
    assert len(a) == 3 * 16000 and len(b) == len(a)
    np.testing.assert_allclose(a, b, atol=1e-4)
    empty = run(drain(PipeSource(io.BytesIO(b""))))
    assert [e.state for e in empty] == ["connecting", "ended"]
    with pytest.raises(InputError, match="cannot decode"):
        run(drain(PipeSource(io.BytesIO(b"RIFF" + b"\x00" * 4000))))
