"""Nearest-neighbour search over moment vectors: which index a gallery should keep.

For each size, synthetic vectors shaped like a gallery's moments (videos of 20 moments
each, a walk near each other; unit length, 512 numbers as CLIP/X-CLIP base give, varying
mostly in 48 of them, see make_data) are written once to a file; queries are moments
moved a little, as a text is near what it describes. Exact neighbours come from a
chunked float32 matmul. Each candidate then runs in a process of its own (so memory
figures are its own) and reports build time, its anonymous memory after building
(RssAnon: the index, not the memory-mapped input), query latency (one query at a time,
top 10, median and p95) and recall@10 against the exact neighbours.

    pip install usearch faiss-cpu lancedb   # the candidates (only those installed run)
    python benchmarks/search.py [--sizes 100000 1000000] [--queries 200] [--dim 512]

Goal for the gallery's default: median under 50 ms and recall@10 of at least 0.95 at
1M vectors, under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vidclass.info import cpu_line

MOMENTS_PER_VIDEO = 20
LATENT = 48  # dimensions the vectors really vary in (see make_data)
K = 10
CANDIDATES = {
    # name: (library module, what it is)
    "exact (numpy float32)": (None, "every vector scored; the matrix in memory"),
    "usearch HNSW f16": ("usearch", "M=16, ef_add=128, ef_search=64, vectors as float16"),
    "usearch HNSW i8": ("usearch", "the same with vectors as int8"),
    "faiss HNSW SQ8": ("faiss", "M=32, efConstruction=80, efSearch=64, 8-bit scalar"),
    "lancedb IVF_PQ": ("lancedb", "on disk; partitions sqrt(n), 64 sub-vectors, refine x5"),
}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_data(folder: Path, n: int, dim: int, queries: int) -> None:
    """vectors.npy (n, dim), queries.npy, truth.npy (exact top K of each query).

    Embeddings of real models lie near a space of far fewer dimensions than they have:
    here a video is a point in a LATENT-dimensional space, its moments a walk from it,
    mapped into `dim` dimensions by one fixed random map, plus a little noise of every
    dimension; a query is a moment moved a little, as a text is near what it names."""
    rng = np.random.default_rng(0)
    mapping = rng.standard_normal((LATENT, dim), dtype=np.float32) / LATENT**0.5
    vectors = np.lib.format.open_memmap(folder / "vectors.npy", "w+", np.float32, (n, dim))
    latents = np.empty((n, LATENT), np.float32)
    step = 50_000
    for start in range(0, n, step):
        count = min(step, n - start)
        videos = -(-count // MOMENTS_PER_VIDEO)
        centres = rng.standard_normal((videos, 1, LATENT), dtype=np.float32)
        walk = 0.15 * rng.standard_normal((videos, MOMENTS_PER_VIDEO, LATENT), np.float32)
        latent = (centres + walk.cumsum(axis=1)).reshape(-1, LATENT)[:count]
        latents[start : start + count] = latent
        noise = 0.05 * rng.standard_normal((count, dim), dtype=np.float32)
        vectors[start : start + count] = unit(latent @ mapping + noise)
    vectors.flush()
    picked = np.sort(rng.choice(n, queries, replace=False))
    moved = latents[picked] + 0.3 * rng.standard_normal((queries, LATENT), np.float32)
    q = unit(moved @ mapping + 0.05 * rng.standard_normal((queries, dim), np.float32))
    np.save(folder / "queries.npy", q.astype(np.float32))
    np.save(folder / "truth.npy", exact_top(vectors, q))


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    best = np.full((len(queries), k), -np.inf, np.float32)
    ids = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(vectors), 100_000):
        scores = queries @ np.asarray(vectors[start : start + 100_000]).T
        both = np.concatenate([best, scores], axis=1)
        both_ids = np.concatenate([ids, np.arange(start, start + scores.shape[1])[None].repeat(
            len(queries), 0)], axis=1)  # fmt: skip
        order = np.argsort(-both, axis=1)[:, :k]
        best = np.take_along_axis(both, order, 1)
        ids = np.take_along_axis(both_ids, order, 1)
    return ids


def rss_anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def chunks(vectors: np.ndarray, step: int = 100_000):
    for start in range(0, len(vectors), step):
        yield start, np.ascontiguousarray(vectors[start : start + step])


def build(name: str, vectors: np.ndarray, work: Path):
    """The index, and a search function (query -> K ids)."""
    dim = vectors.shape[1]
    if name.startswith("exact"):
        matrix = np.concatenate([c for _, c in chunks(vectors)])
        return lambda q: np.argpartition(-(matrix @ q), K)[:K]
    if name.startswith("usearch"):
        from usearch.index import Index

        kind = "f16" if "f16" in name else "i8"
        index = Index(ndim=dim, metric="cos", dtype=kind, connectivity=16, expansion_add=128)
        index.expansion_search = 64
        for start, chunk in chunks(vectors):
            index.add(np.arange(start, start + len(chunk)), chunk)
        return lambda q: index.search(q, K).keys
    if name.startswith("faiss"):
        import faiss

        index = faiss.IndexHNSWSQ(
            dim, faiss.ScalarQuantizer.QT_8bit, 32, faiss.METRIC_INNER_PRODUCT
        )
        index.hnsw.efConstruction = 80
        sample = np.asarray(vectors[: min(len(vectors), 100_000)])
        index.train(sample)
        for _, chunk in chunks(vectors):
            index.add(chunk)
        index.hnsw.efSearch = 64
        return lambda q: index.search(q[None], K)[1][0]
    if name.startswith("lancedb"):
        import lancedb
        import pyarrow as pa

        db = lancedb.connect(str(work / "lance"))
        schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), dim))])
        table = db.create_table("moments", schema=schema)
        for start, chunk in chunks(vectors):
            flat = pa.array(chunk.reshape(-1), pa.float32())
            column = pa.FixedSizeListArray.from_arrays(flat, dim)
            ids = pa.array(np.arange(start, start + len(chunk)))
            table.add(pa.Table.from_arrays([ids, column], schema=schema))
        partitions = max(1, int(len(vectors) ** 0.5))
        table.create_index(
            metric="cosine", vector_column_name="vector", num_partitions=partitions,
            num_sub_vectors=64,
        )  # fmt: skip

        def search(q):
            hits = table.search(q).metric("cosine").nprobes(20).refine_factor(5).limit(K)
            return hits.to_arrow()["id"].to_numpy()

        return search
    raise ValueError(name)


def measure(name: str, folder: Path) -> dict:
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    queries, truth = np.load(folder / "queries.npy"), np.load(folder / "truth.npy")
    before = rss_anon_mb()
    begin = time.perf_counter()
    search = build(name, vectors, folder)
    built = time.perf_counter() - begin
    memory = rss_anon_mb() - before
    latencies, recalls = [], []
    for q, exact in zip(queries, truth, strict=True):
        start = time.perf_counter()
        found = search(q)
        latencies.append((time.perf_counter() - start) * 1000)
        recalls.append(len(set(np.asarray(found).tolist()) & set(exact.tolist())) / K)
    return {
        "build_s": built,
        "memory_mb": memory,
        "median_ms": statistics.median(latencies),
        "p95_ms": float(np.percentile(latencies, 95)),
        "recall": float(np.mean(recalls)),
    }


def installed(module: str | None) -> bool:
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--only", nargs="*", help="candidates whose name starts so")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.folder)))
        return
    print(cpu_line())
    names = [n for n, (module, _) in CANDIDATES.items() if installed(module)]
    if args.only:
        names = [n for n in names if n.startswith(tuple(args.only))]
    skipped = sorted(set(CANDIDATES) - set(names))
    if skipped:
        print(f"not run (not installed or not asked for): {', '.join(skipped)}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            begin = time.perf_counter()
            make_data(folder, n, args.dim, args.queries)
            print(f"\n{n} vectors of {args.dim}, {args.queries} queries "
                  f"(data and exact answers: {time.perf_counter() - begin:.0f} s)")  # fmt: skip
            print(f"{'index':<24}{'build s':>9}{'memory MB':>11}{'median ms':>11}"
                  f"{'p95 ms':>9}{'recall@10':>11}")  # fmt: skip
            for name in names:
                cmd = [sys.executable, __file__, "--measure", name, "--folder", str(folder)]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"{name:<24}failed: {done.stderr.strip().splitlines()[-1][:80]}")
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"{name:<24}{r['build_s']:>9.1f}{r['memory_mb']:>11.0f}"
                    f"{r['median_ms']:>11.2f}{r['p95_ms']:>9.2f}{r['recall']:>11.3f}",
                    flush=True,
                )
    for name, (_, what) in CANDIDATES.items():
        print(f"  {name}: {what}")


if __name__ == "__main__":
    main()
