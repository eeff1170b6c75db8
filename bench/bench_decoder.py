"""Decoder throughput: server.sse.Decoder against httpx-sse and openai, same bytes.

Run: .venv/bin/python bench/bench_decoder.py  (about 2 minutes; --scale 0.1 for a quick look)

Two deterministic streams, cut into network-like chunks of 1-4 KiB (seeded):

- llm: ~200k small ``chat.completion.chunk`` JSON events, as the OpenAI API streams them.
- json: ~10k events of ~20 KB pretty-printed JSON, so each event has hundreds of
  ``data:`` lines.

Each decoder is run the way its users run it:

- ours: ``Decoder.feed(chunk)`` for each chunk, then ``close()``.
- httpx-sse: ``EventSource(response).iter_sse()`` over an ``httpx.Response`` whose body
  yields the chunks; that is httpx's own text decoding plus httpx-sse's line splitter
  and decoder, the path ``connect_sse`` takes.
- openai: ``openai._streaming.SSEDecoder().iter_bytes(chunks)``, the path the OpenAI
  client takes.

The best of 5 runs is reported, with each decoder's time as a ratio of ours.
"""

import argparse
import gc
import json
import random
import sys
import time
from collections.abc import Callable, Iterator

import httpx  # httpx-sse, timed as its users run it: EventSource over an httpx.Response
from httpx_sse import EventSource
from openai._streaming import SSEDecoder as OpenAISSEDecoder

from server.sse import Decoder

# Token-sized words, with some multi-byte UTF-8 so decoding is not ASCII-only.
VOCABULARY = (
    "the of and to in is you that it he was for on are as with his they I at be this have "
    "from or one had by word but not what all were we when your can said there use an each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could "
    "people my than first water been call who oil its now find long down day did get come "
    "made may part 서버 이벤트 스트림 😀 é"
)
WORDS = VOCABULARY.split()


def llm_stream(n_events: int, rng: random.Random) -> bytes:
    """OpenAI-style streaming chat completion: one small JSON delta per token."""
    out = []
    for i in range(n_events):
        chunk = {
            "id": f"chatcmpl-{i // 500:08x}AbCdEfGhIjKlMnOpQrStUv",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000 + i // 50,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_0123456789",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": " " + rng.choice(WORDS)},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
        out.append(f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'))}\n\n")
    out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def json_stream(n_events: int, rng: random.Random) -> bytes:
    """Large pretty-printed JSON documents, one per event, one data line per JSON line."""
    out = []
    for i in range(n_events):
        doc = {
            "id": i,
            "type": "snapshot",
            "items": [
                {
                    "sku": f"SKU-{rng.randrange(10**6):06d}",
                    "name": " ".join(rng.choices(WORDS, k=4)),
                    "price": round(rng.uniform(1, 500), 2),
                    "tags": rng.choices(WORDS, k=3),
                    "stock": {"warehouse": rng.randrange(50), "store": rng.randrange(20)},
                }
                for _ in range(60)
            ],
        }
        text = json.dumps(doc, indent=2, ensure_ascii=False)
        data = "".join(f"data: {line}\n" for line in text.split("\n"))
        out.append(f"event: snapshot\nid: {i}\n{data}\n")
    return "".join(out).encode()


def cut(stream: bytes, rng: random.Random) -> list[bytes]:
    """Cut into chunks of 1-4 KiB, as a TCP socket might deliver them."""
    chunks, i = [], 0
    while i < len(stream):
        n = rng.randint(1024, 4096)
        chunks.append(stream[i : i + n])
        i += n
    return chunks


def run_ours(chunks: list[bytes]) -> int:
    decoder = Decoder()
    n = 0
    for chunk in chunks:
        n += len(decoder.feed(chunk))
    return n + len(decoder.close())


class _Body(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)


def run_httpx_sse(chunks: list[bytes]) -> int:
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_Body(chunks)
    )
    return sum(1 for _ in EventSource(response).iter_sse())


def run_openai(chunks: list[bytes]) -> int:
    return sum(1 for _ in OpenAISSEDecoder().iter_bytes(iter(chunks)))


DECODERS: dict[str, Callable[[list[bytes]], int]] = {
    "server.sse": run_ours,
    "httpx-sse": run_httpx_sse,
    "openai": run_openai,
}


def best_time(
    run: Callable[[list[bytes]], int], chunks: list[bytes], repeat: int
) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        count = run(chunks)
        best = min(best, time.perf_counter() - start)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="stream size factor")
    parser.add_argument("--repeat", type=int, default=5, help="runs per decoder (best kept)")
    args = parser.parse_args()

    streams = {
        "llm": llm_stream(int(200_000 * args.scale), random.Random(1)),
        "json": json_stream(int(10_000 * args.scale), random.Random(2)),
    }
    print(f"Python {sys.version.split()[0]}, best of {args.repeat}")
    print(f"{'stream':<6} {'decoder':<11} {'MB/s':>8} {'events/s':>11} {'time':>8} {'vs ours':>8}")
    for name, stream in streams.items():
        chunks = cut(stream, random.Random(3))
        megabytes = len(stream) / 1e6
        results = {label: best_time(run, chunks, args.repeat) for label, run in DECODERS.items()}
        counts = {count for _, count in results.values()}
        assert len(counts) == 1, f"decoders disagree on the event count: {results}"
        ours = results["server.sse"][0]
        for label, (seconds, count) in results.items():
            print(
                f"{name:<6} {label:<11} {megabytes / seconds:8.1f} {count / seconds:11,.0f} "
                f"{seconds:7.3f}s {seconds / ours:7.2f}x"
            )
        print(f"{'':<6} ({megabytes:.1f} MB, {count:,} events, {len(chunks):,} chunks)")


if __name__ == "__main__":
    main()
