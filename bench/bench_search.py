"""How fast `mas.search` indexes a folder and answers queries, and what re-indexing an unchanged folder costs.

    python bench/bench_search.py [--documents 1000] [--paragraphs 10] [--queries 500] [--seed 7]

A folder of synthetic markdown files (generated from the knowledge base's own words, the same for a seed) is
indexed into an index file, as `mas run --docs DIR` does: 1,000 files of 10 paragraphs, 10,000 passages. Then:

1. Full build: documents and passages indexed per second (files read, hashed, split and inserted; one commit).
2. Queries: `--queries` questions of 2 to 6 words drawn from the same vocabulary, each timed alone; queries per
   second and the p50 and p95 latency. Target: p95 <= 50 ms.
3. Re-index with nothing changed: `add_folder` again, on files last written an hour ago (only their stat is
   read), and on files just touched (each one hashed, none re-indexed). The full build's time over each is
   printed. Target: the stat-only re-index is >= 10x faster than the full build.
4. One file edited: what re-indexing that one file costs in a 1,000-file folder.

Exit 1 when a target is missed (each says which).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mas.offline.knowledge import notes
from mas.search import DocumentIndex, FolderReport

P95_TARGET_MS = 50.0
REINDEX_TARGET = 10.0  # full build / stat-only re-index of an unchanged folder
HOUR_NS = 3600 * 10**9


def vocabulary() -> list[str]:
    """The knowledge base's words, sorted: what the synthetic documents and the queries are made of."""
    return sorted({w.strip(".,;:()\"'").lower() for n in notes() for f in n.facts for w in f.text.split()} - {""})


def make_folder(root: Path, documents: int, paragraphs: int, rng: random.Random, words: list[str]) -> None:
    """`documents` markdown files in 10 sub-folders, each a '# title' and `paragraphs` paragraphs of 3 to 5
    sentences (under MAX_PASSAGE_CHARS, so a paragraph is a passage), mtimes an hour ago."""
    def sentence() -> str:
        return " ".join(rng.choices(words, k=rng.randint(6, 14))).capitalize() + "."

    for i in range(documents):
        path = root / f"section-{i % 10}" / f"doc-{i:05d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "\n\n".join(" ".join(sentence() for _ in range(rng.randint(3, 5))) for _ in range(paragraphs))
        path.write_text(f"# Document {i}: {' '.join(rng.choices(words, k=3))}\n\n{body}\n", encoding="utf-8")
    age(root)


def age(root: Path) -> None:
    """Every file's mtime an hour back: a folder as it is when nobody is editing it."""
    for path in root.rglob("*.md"):
        then = path.stat().st_mtime_ns - HOUR_NS
        os.utime(path, ns=(then, then))


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--paragraphs", type=int, default=10, help="paragraphs (passages) a document")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if min(args.documents, args.paragraphs, args.queries) < 1:
        parser.error("--documents, --paragraphs and --queries must be >= 1")
    rng = random.Random(args.seed)
    words = vocabulary()
    missed = []
    with tempfile.TemporaryDirectory(prefix="mas-bench-search-") as tmp:
        folder = Path(tmp) / "docs"
        make_folder(folder, args.documents, args.paragraphs, rng, words)
        with DocumentIndex(Path(tmp) / "index.db") as index:
            build_s, report = timed(lambda: index.add_folder(folder))
            assert report == FolderReport(added=args.documents), report
            passages = len(index)
            print(f"search: {args.documents:,} documents, {passages:,} passages, {len(words):,}-word vocabulary, "
                  f"an index file")
            print(f"full build        {build_s:8.2f} s   {args.documents / build_s:9,.0f} documents/s "
                  f"{passages / build_s:9,.0f} passages/s")

            queries = [" ".join(rng.choices(words, k=rng.randint(2, 6))) for _ in range(args.queries)]
            index.search(queries[0])  # warm up: the first query reads the index's pages from disk
            latencies, found = [], 0
            for query in queries:
                seconds, hits = timed(lambda: index.search(query, limit=5))
                latencies.append(seconds)
                found += bool(hits)
            p50, p95 = (statistics.quantiles(latencies, n=100)[i] * 1000 for i in (49, 94))
            print(f"queries           {len(queries) / sum(latencies):8,.0f} /s     p50 {p50:6.2f} ms   p95 {p95:6.2f} ms "
                  f"  ({found} of {len(queries)} found something)")
            print(f"p95 query latency {p95:.2f} ms (target <= {P95_TARGET_MS:.0f} ms): "
                  f"{'met' if p95 <= P95_TARGET_MS else 'NOT met'}")
            if p95 > P95_TARGET_MS:
                missed.append("p95")

            stat_s, report = timed(lambda: index.add_folder(folder))
            assert report == FolderReport(unchanged=args.documents), report
            for path in folder.rglob("*.md"):
                os.utime(path)  # touched, not changed: each file is hashed again, none re-indexed
            hash_s, report = timed(lambda: index.add_folder(folder))
            assert report == FolderReport(unchanged=args.documents), report
            print(f"re-index, nothing changed, stat only  {stat_s * 1000:8.1f} ms   full build / it "
                  f"{build_s / stat_s:6.1f}x")
            print(f"re-index, every file touched (hashed) {hash_s * 1000:8.1f} ms   full build / it "
                  f"{build_s / hash_s:6.1f}x")
            print(f"stat-only re-index vs full build {build_s / stat_s:.1f}x (target >= {REINDEX_TARGET:.0f}x): "
                  f"{'met' if build_s / stat_s >= REINDEX_TARGET else 'NOT met'}")
            if build_s / stat_s < REINDEX_TARGET:
                missed.append("re-index")

            age(folder)
            index.add_folder(folder)  # the manifest learns the aged mtimes, so the next run reads stats only
            edited = folder / "section-0" / "doc-00000.md"
            edited.write_text("# Edited\n\nA single new paragraph about zanzibar.\n", encoding="utf-8")
            one_s, report = timed(lambda: index.add_folder(folder))
            assert report == FolderReport(updated=1, unchanged=args.documents - 1), report
            assert index.search("zanzibar")[0].doc_id == "section-0/doc-00000"
            print(f"re-index, one file edited             {one_s * 1000:8.1f} ms")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
