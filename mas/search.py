"""Document search: a BM25 index of passages on SQLite FTS5, for a researcher that cites what it read.

    index = DocumentIndex("index.db")          # or ":memory:"; the index is one SQLite file
    index.add_knowledge_base()                  # the offline model's notes: a document a note, a passage a fact
    report = index.add_folder("my_docs/")       # .md and .txt files; run again, and only changed files are read
    for hit in index.search("how does HNSW work", limit=5):
        print(hit.id, round(hit.score, 1), hit.text)
    index.read("vector-databases")              # a whole document; index.passage("vector-databases#2"): one passage

Passages, not documents, are ranked: a researcher cites one fact, and a long file's one relevant paragraph must
not be buried by the rest of it. Each passage carries its document's title, weighted twice its text, and its
document's other names (a note's aliases and keywords, a file's path), weighted as its text
(`bm25(passages_fts, 2.0, 1.0, 1.0)`): a passage of the document *about* HNSW beats a passing mention of it, and
"k8s" finds the Kubernetes note though no fact says "k8s".

A query is data, never FTS5 syntax: it is cut into words, each word quoted as an FTS5 string and ORed with the
others, so `"foo" OR bar*`, `NEAR(` or `title:x` are searched as the words they contain, and BM25 ranks first the
passages that hold more of them, and rarer ones. The tokenizer (`porter unicode61 remove_diacritics 2`) folds case
and accents and stems English, so "indexes" and "indexing" find "index", and "cafe" finds "café".

A folder is indexed incrementally: a manifest table keeps each file's size, mtime and SHA-256, and `add_folder`
reads again only the files whose size or mtime changed (and re-indexes them only if their hash changed too),
drops the documents of deleted files and leaves the rest alone. Files it cannot index (hidden ones are ignored
silently) come back in the report's `skipped`, each with a one-line reason; nothing is raised for them.

Simplified on purpose: no phrase search or operators for the user (a query is a bag of words), no vectors (a
hybrid search would add them beside BM25), passages cut at blank lines and sentence ends rather than by tokens,
and one index in one process writing at a time (SQLite's own locking is all there is between processes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["DocumentIndex", "Document", "Passage", "FolderReport", "Skipped", "fts_query", "document_id",
           "title_of", "split_passages", "MAX_FILE_BYTES", "MAX_PASSAGE_CHARS", "MAX_QUERY_WORDS", "MAX_LIMIT"]

MAX_FILE_BYTES = 2 * 1024 * 1024  # a bigger file is skipped: a log or a dump, not a document to cite
MAX_PASSAGE_CHARS = 1200  # a longer paragraph is cut at sentence ends: about a screen, what one citation covers
MAX_QUERY_WORDS = 32  # a query's first 32 distinct words are searched: a question has fewer, a pasted page more
MAX_LIMIT = 50  # search(limit=...) is clamped to this: more passages than a prompt should carry
SUFFIXES = (".md", ".txt")
# bm25's column weights: a word of the title counts twice one of the text, or of the document's other names
TITLE_WEIGHT, TEXT_WEIGHT, NAMES_WEIGHT = 2.0, 1.0, 1.0
KNOWLEDGE_BASE = "mas:knowledge-base"  # the origin of the bundled notes' documents (a folder's is its real path)
SCHEMA_VERSION = 1  # PRAGMA user_version of an index file; another number is another layout
# subtle: a file written within this long of being checked may be rewritten with the same size and mtime (mtime has
# a coarse clock, 2 s on FAT), so such a "racy" file is hashed again, as git does, rather than trusted on its stat
RACY_NS = 2_000_000_000

_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script: what unicode61 keeps as a token
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+")
_FENCE = re.compile(r" {0,3}(```|~~~)")
_HEADING = re.compile(r" {0,3}#{1,6}(\s|$)")
_TITLE = re.compile(r" {0,3}#[ \t]+(.+?)[ \t#]*$")

_SCHEMA = """
CREATE TABLE documents (id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, origin TEXT NOT NULL);
CREATE TABLE passages (pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, n INTEGER NOT NULL,
                       title TEXT NOT NULL, text TEXT NOT NULL, source TEXT NOT NULL, names TEXT NOT NULL);
CREATE INDEX passages_of_document ON passages (doc_id, n);
-- external content: the text is stored once, in passages; the triggers keep the full-text index in step with it
CREATE VIRTUAL TABLE passages_fts USING fts5(title, text, names, content='passages', content_rowid='pk',
                                             tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER passages_added AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, title, text, names) VALUES (new.pk, new.title, new.text, new.names);
END;
CREATE TRIGGER passages_removed AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, title, text, names)
    VALUES ('delete', old.pk, old.title, old.text, old.names);
END;
-- what each indexed file (or note) was when it was indexed: what add_folder compares a file with
CREATE TABLE files (origin TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                    sha256 TEXT NOT NULL, checked_ns INTEGER NOT NULL, doc_id TEXT NOT NULL,
                    PRIMARY KEY (origin, path));
"""


@dataclass(frozen=True)
class Passage:
    """One searchable piece of a document: a knowledge-base fact, or a paragraph of a file."""

    id: str  # f"{doc_id}#{n}", n from 1 in document order: what a researcher cites
    doc_id: str  # the document it belongs to (DocumentIndex.read takes it)
    title: str  # its document's title
    text: str  # the fact's sentence (without its source), or the paragraph (a heading line included)
    source: str  # a fact's "(source: ...)", or the file's path relative to the folder it was added from
    score: float = 0.0  # BM25 relevance to the query, higher is better; 0.0 when not from a search


@dataclass(frozen=True)
class Document:
    """A whole document: a note of the knowledge base, or one file of a folder."""

    id: str  # a note's slug, or a file's relative path without suffix, lower-case, spaces as '-'
    title: str  # a note's topic, or a file's first '# heading' (else its name without suffix)
    source: str  # the note's file in the package, or the file's path relative to its folder
    passages: tuple[Passage, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(p.text for p in self.passages)


@dataclass(frozen=True)
class Skipped:
    """A file that add_folder (or a note that add_knowledge_base) did not index, and why."""

    path: str  # relative to the folder
    reason: str  # one line: "not valid UTF-8 (byte 0xff at offset 3)"

    def line(self) -> str:
        return f"skipped {self.path}: {self.reason}"


@dataclass(frozen=True)
class FolderReport:
    """What one add_folder (or add_knowledge_base) did, counted in documents."""

    added: int = 0  # new files, indexed
    updated: int = 0  # files whose content changed, indexed again
    removed: int = 0  # documents taken out: their file was deleted, or can no longer be indexed (see skipped)
    unchanged: int = 0  # files left alone: same size and mtime, or same SHA-256
    skipped: tuple[Skipped, ...] = ()  # files not indexed, each with a reason; never raised, never a traceback

    def __str__(self) -> str:
        counts = (f"{self.added} added, {self.updated} updated, {self.removed} removed, {self.unchanged} unchanged, "
                  f"{len(self.skipped)} skipped")
        return "\n".join([counts, *(s.line() for s in self.skipped)])


def fts_query(query: str) -> str:
    """The FTS5 MATCH expression for a user's query: each distinct word quoted as a string, ORed; '' if none.

    Only letters and digits reach FTS5, each word inside double quotes, so nothing in a query is an operator:

    >>> fts_query('"HNSW" OR graph* NEAR( title:x -y')
    '"hnsw" OR "or" OR "graph" OR "near" OR "title" OR "x" OR "y"'
    >>> fts_query("¿Qué es un índice? 🙂")
    '"qué" OR "es" OR "un" OR "índice"'
    >>> fts_query(" --- ")
    ''
    """
    seen: dict[str, None] = {}  # a dict keeps the first occurrence's order
    for match in _WORD.finditer(query):
        seen.setdefault(match.group().lower())
        if len(seen) == MAX_QUERY_WORDS:
            break
    return " OR ".join(f'"{word}"' for word in seen)  # a word holds no '"', so no escaping is needed


def document_id(relative_path: str) -> str:
    """A file's document id: its path relative to the folder, without suffix, lower-case, spaces as '-'.

    >>> document_id("Guides/Set Up.md")
    'guides/set-up'
    """
    return re.sub(r"\s+", "-", str(PurePosixPath(relative_path).with_suffix("")).lower())


def title_of(text: str, fallback: str) -> str:
    """A markdown text's first '# heading' (outside code blocks), else `fallback`.

    >>> title_of("intro\\n\\n# Setting up\\n## Step 1", fallback="setup")
    'Setting up'
    """
    fence = None
    for line in text.splitlines():
        fence = _fence_after(line, fence)
        if fence is None and (m := _TITLE.match(line)):
            return m.group(1)
    return fallback


def split_passages(text: str, limit: int = MAX_PASSAGE_CHARS) -> list[str]:
    """A file's passages: its paragraphs (blank-line separated; a heading line joins the paragraph after it; a
    code block is not cut at its blank lines), a paragraph over `limit` characters cut at sentence ends.

    >>> split_passages("# Setup\\n\\nInstall it.\\nThen run it.\\n\\n## Use\\nCall it.")
    ['# Setup\\nInstall it.\\nThen run it.', '## Use\\nCall it.']
    >>> split_passages("One. Two. Three.", limit=10)
    ['One. Two.', 'Three.']
    """
    blocks: list[list[str]] = [[]]
    fence = None
    for line in text.splitlines():
        fence = _fence_after(line, fence)
        if line.strip() or fence is not None:
            blocks[-1].append(line.rstrip())
        elif blocks[-1]:
            blocks.append([])
    passages, heading = [], []
    for block in filter(None, blocks):
        if all(_HEADING.match(line) for line in block):
            heading += block  # a heading alone is the title of what follows, not a passage of its own
            continue
        passages += _cut("\n".join(heading + block).strip(), limit)
        heading = []
    if heading:  # headings at the very end, with nothing under them
        passages += _cut("\n".join(heading).strip(), limit)
    return passages


def _fence_after(line: str, fence: str | None) -> str | None:
    """The code fence open after `line` (``` or ~~~), given the one open before it."""
    m = _FENCE.match(line)
    if m is None:
        return fence
    if fence is None:
        return m.group(1)
    return None if m.group(1) == fence else fence


def _cut(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut at sentence ends, a longer sentence at its last space
    (else anywhere). Linear in the text's length."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    pieces, start, i = [], 0, 0
    while len(text) - start > limit:
        cut = start
        while i < len(ends) and ends[i] - start <= limit:
            cut, i = ends[i], i + 1
        if cut == start:  # one sentence longer than the limit
            space = max(text.rfind(" ", start + 1, start + limit), text.rfind("\n", start + 1, start + limit))
            cut = space + 1 if space > start else start + limit
        pieces.append(text[start:cut].strip())
        start = cut
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


@dataclass(frozen=True)
class _Known:
    """A manifest row: a file as it was when it was indexed."""

    size: int
    mtime_ns: int
    sha256: str
    checked_ns: int
    doc_id: str


@dataclass(frozen=True)
class _New:
    """A document to (re-)index, with the manifest row that records its file."""

    path: str
    doc_id: str
    title: str
    source: str
    names: str  # the document's other names, searched with each passage: a note's aliases and keywords
    passages: list[tuple[str, str]]  # (text, source)
    size: int
    mtime_ns: int
    sha256: str


class DocumentIndex:
    """A search index of documents in one SQLite database (a file, or ":memory:").

    Safe to share between threads: every call holds the index's lock (the connection is opened with
    check_same_thread=False), since parallel researchers may search one index from mas's worker threads and
    a search takes a millisecond or two. Use `with DocumentIndex(path) as index:` or call `close()`."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.Lock()  # one statement at a time on the connection
        self._writer = threading.Lock()  # one add_* at a time: each compares the files with the manifest first
        try:
            # check_same_thread=False: the lock serialises every use, so mas.parallel's threads can share an index
            self._db = sqlite3.connect(self.path, check_same_thread=False)
        except sqlite3.Error as exc:  # a missing parent folder, a folder, no permission
            raise ValueError(f"cannot open {self.path!r} as a search index ({exc}): give DocumentIndex a file path "
                             "in a folder that exists, or ':memory:'") from None
        try:
            self._open_schema()
        except sqlite3.DatabaseError as exc:  # not a database, or another program's
            self._db.close()
            raise ValueError(f"cannot open {self.path!r} as a search index ({exc}): give DocumentIndex a new file, "
                             "or one that it made") from None

    def _open_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if version != 0 or tables:
            raise sqlite3.DatabaseError(f"it is another database (schema version {version}, {tables} objects)")
        self._db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    # --- reading -------------------------------------------------------------------------------------------

    def search(self, query: str, limit: int = 5) -> list[Passage]:
        """The passages that best match `query`'s words, best first (BM25; ties in document order: by document
        id, then passage number). At most `limit`, clamped to MAX_LIMIT.

        Any text is a valid query: its words are searched, its punctuation ignored; no words gives []."""
        if not isinstance(query, str):
            raise TypeError(f"search() takes the query as a str, got {type(query).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"search()'s limit is a whole number >= 1 (at most {MAX_LIMIT} are returned), "
                             f"got {limit!r}")
        expression = fts_query(query)
        if not expression:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT p.id, p.doc_id, p.title, p.text, p.source, -bm25(passages_fts, ?, ?, ?) AS score "
                "FROM passages_fts JOIN passages AS p ON p.pk = passages_fts.rowid "
                "WHERE passages_fts MATCH ? ORDER BY score DESC, p.doc_id, p.n LIMIT ?",
                (TITLE_WEIGHT, TEXT_WEIGHT, NAMES_WEIGHT, expression, min(limit, MAX_LIMIT))).fetchall()
        return [Passage(*row) for row in rows]

    def read(self, doc_id: str) -> Document | None:
        """The whole document `doc_id` (a note's slug, a file's id), or None when the index has none."""
        with self._lock:
            row = self._db.execute("SELECT id, title, source FROM documents WHERE id = ?", (doc_id,)).fetchone()
            if row is None:
                return None
            passages = self._db.execute("SELECT id, doc_id, title, text, source FROM passages WHERE doc_id = ? "
                                        "ORDER BY n", (doc_id,)).fetchall()
        return Document(*row, passages=tuple(Passage(*p) for p in passages))

    def passage(self, passage_id: str) -> Passage | None:
        """One passage by its id ("vector-databases#2"), with score 0.0; None when the index has none."""
        with self._lock:
            row = self._db.execute("SELECT id, doc_id, title, text, source FROM passages WHERE id = ?",
                                   (passage_id,)).fetchone()
        return Passage(*row) if row else None

    def document_ids(self) -> list[str]:
        """Every document's id, sorted."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM documents ORDER BY id")]

    def __len__(self) -> int:
        """The number of passages."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM passages").fetchone()[0]

    # --- adding --------------------------------------------------------------------------------------------

    def add_knowledge_base(self) -> FolderReport:
        """Index the bundled notes (mas/offline/knowledge): one document a note (id: its slug, title: its topic),
        one passage a fact (its sentence; source: the fact's source). Again later: only changed notes."""
        from mas.offline.knowledge import notes  # on use: an index of a user's folder never parses the notes

        with self._writer:
            return self._add_notes(notes())

    def _add_notes(self, all_notes: tuple) -> FolderReport:
        known = self._known(KNOWLEDGE_BASE)
        taken = self._taken_ids(KNOWLEDGE_BASE)
        keep, new, skipped = set(), [], []
        for note in all_notes:
            path = f"{note.slug}.md"
            passages = [(fact.text, fact.source) for fact in note.facts]
            # subtle: the names a learner types ("k8s", "sft", "pub/sub") are often in no fact, so they are
            # searched too; keywords is a set, sorted so that the same note always makes the same row
            names = "; ".join([*note.aliases, " ".join(sorted(note.keywords))])
            content = json.dumps([note.topic, names, passages], ensure_ascii=False).encode()
            sha = hashlib.sha256(content).hexdigest()
            if note.slug in taken:
                skipped.append(Skipped(path, f"its id {note.slug!r} is already a document of "
                                             f"{_name(taken[note.slug])}"))
            elif (old := known.get(path)) and old.sha256 == sha:
                keep.add(path)
            else:
                new.append(_New(path, note.slug, note.topic, f"mas/offline/knowledge/{path}", names, passages,
                                len(content), 0, sha))
        return self._apply(KNOWLEDGE_BASE, known, keep, new, refresh=[], skipped=skipped)

    def add_folder(self, folder: str | os.PathLike[str]) -> FolderReport:
        """Index every .md and .txt file under `folder` (recursively, UTF-8), or, when it was added before, only
        what changed since: new and changed files are indexed, deleted ones' documents removed.

        A file's document: id from its relative path (`document_id`), title its first '# heading', passages its
        paragraphs (`split_passages`), source its relative path. Hidden files and folders are ignored; files over
        MAX_FILE_BYTES, not UTF-8, unreadable, or whose id another document has, are skipped: each is one line
        in the report's `skipped`, never an exception. A folder that does not exist raises, with its path."""
        root = Path(folder).expanduser()
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise NotADirectoryError(f"add_folder: {str(folder)!r} {what}: give it a folder of .md or .txt files")
        with self._writer:
            return self._add_folder(root)

    def _add_folder(self, root: Path) -> FolderReport:
        origin = str(root.resolve())
        known = self._known(origin)
        taken = self._taken_ids(origin)
        keep, refresh, new, claimed = set(), [], [], {}  # claimed: doc id -> the file that has it
        files, skipped = _scan(root)
        now = time.time_ns()  # before any file is read: a file written after this is "racy" next time
        for rel, path in files:
            doc_id, old = document_id(rel), known.get(rel)
            if doc_id in claimed or doc_id in taken:
                owner = f"{claimed[doc_id]}'s" if doc_id in claimed else f"a document of {_name(taken[doc_id])}"
                skipped.append(Skipped(rel, f"its id {doc_id!r} is already {owner}"))
                continue
            try:
                stat = path.stat()
                if stat.st_size > MAX_FILE_BYTES:
                    skipped.append(Skipped(rel, f"{stat.st_size / 2**20:.1f} MB, over the {MAX_FILE_BYTES / 2**20:g} "
                                                "MB limit (MAX_FILE_BYTES)"))
                    continue
                same_file = old is not None and old.doc_id == doc_id
                if same_file and (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns) \
                        and stat.st_mtime_ns + RACY_NS < old.checked_ns:
                    keep.add(rel)  # the common case: its stat is all that is read
                    claimed[doc_id] = rel
                    continue
                data = path.read_bytes()
            except OSError as exc:
                skipped.append(Skipped(rel, f"cannot be read ({exc.strerror or exc})"))
                continue
            sha = hashlib.sha256(data).hexdigest()
            if same_file and old.sha256 == sha:
                keep.add(rel)  # touched, not changed: its new stat is remembered, so it is not read next time
                refresh.append((stat.st_size, stat.st_mtime_ns, now, origin, rel))
                claimed[doc_id] = rel
                continue
            try:
                text = data.decode("utf-8-sig")  # -sig: a byte-order mark is not part of the first word
            except UnicodeDecodeError as exc:
                skipped.append(Skipped(rel, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"))
                continue
            claimed[doc_id] = rel
            new.append(_New(rel, doc_id, title_of(text, PurePosixPath(rel).stem), rel, _path_words(rel),
                            [(p, rel) for p in split_passages(text)], stat.st_size, stat.st_mtime_ns, sha))
        return self._apply(origin, known, keep, new, refresh, skipped, now)

    def _known(self, origin: str) -> dict[str, _Known]:
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, sha256, checked_ns, doc_id FROM files "
                                    "WHERE origin = ?", (origin,)).fetchall()
        return {path: _Known(*rest) for path, *rest in rows}

    def _taken_ids(self, origin: str) -> dict[str, str]:
        """The ids of other origins' documents, with their origin: an id names one document in the index."""
        with self._lock:
            return dict(self._db.execute("SELECT id, origin FROM documents WHERE origin != ?", (origin,)))

    def _apply(self, origin: str, known: dict[str, _Known], keep: set[str], new: list[_New],
               refresh: list[tuple], skipped: list[Skipped], now: int | None = None) -> FolderReport:
        """One transaction: drop the documents of every known file not kept (deleted, changed or now skipped),
        then index the new ones. Dropping first lets a document move to another file that now has its id."""
        now = time.time_ns() if now is None else now
        gone = [path for path in known if path not in keep]
        with self._lock, self._db:
            for path in gone:
                self._drop(known[path].doc_id, origin)
            self._db.executemany("DELETE FROM files WHERE origin = ? AND path = ?", [(origin, p) for p in gone])
            for doc in new:
                self._db.execute("INSERT INTO documents (id, title, source, origin) VALUES (?, ?, ?, ?)",
                                 (doc.doc_id, doc.title, doc.source, origin))
                self._db.executemany(
                    "INSERT INTO passages (id, doc_id, n, title, text, source, names) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(f"{doc.doc_id}#{n}", doc.doc_id, n, doc.title, text, source, doc.names)
                     for n, (text, source) in enumerate(doc.passages, 1)])
            self._db.executemany("INSERT INTO files (origin, path, size, mtime_ns, sha256, checked_ns, doc_id) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [(origin, d.path, d.size, d.mtime_ns, d.sha256, now, d.doc_id) for d in new])
            self._db.executemany("UPDATE files SET size = ?, mtime_ns = ?, checked_ns = ? WHERE origin = ? AND "
                                 "path = ?", refresh)
        updated = sum(1 for d in new if d.path in known)
        return FolderReport(added=len(new) - updated, updated=updated, unchanged=len(keep),
                            removed=sum(1 for p in gone if p not in {d.path for d in new}), skipped=tuple(skipped))

    def _drop(self, doc_id: str, origin: str) -> None:
        if self._db.execute("DELETE FROM documents WHERE id = ? AND origin = ?", (doc_id, origin)).rowcount:
            self._db.execute("DELETE FROM passages WHERE doc_id = ?", (doc_id,))

    # --- lifetime ------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> DocumentIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DocumentIndex({self.path!r})"


def _scan(root: Path) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """Every .md and .txt file under `root` as (path relative to root, with '/', path), sorted, hidden files and
    folders left out; and the folders that could not be listed."""
    found, skipped = [], []

    def unreadable(exc: OSError) -> None:
        skipped.append(Skipped(Path(exc.filename).relative_to(root).as_posix(), f"cannot be listed ({exc.strerror})"))

    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in names:
            if not name.startswith(".") and name.lower().endswith(SUFFIXES):
                path = Path(folder, name)
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found), skipped


def _name(origin: str) -> str:
    return "the knowledge base" if origin == KNOWLEDGE_BASE else f"the folder {origin}"


def _path_words(relative_path: str) -> str:
    """A file's other name: the words of its path, so "setup guide" finds guides/setup.md untitled or not.

    >>> _path_words("guides/first_steps.md")
    'guides first steps'
    """
    return " ".join(_WORD.findall(str(PurePosixPath(relative_path).with_suffix(""))))
