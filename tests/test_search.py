"""mas.search: the knowledge base and a folder indexed for real, queries that are only ever data, and the
manifest that re-indexes only what changed."""

from __future__ import annotations

import ast
import os
import re
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mas
from mas.offline.knowledge import notes
from mas.search import (
    MAX_FILE_BYTES,
    MAX_LIMIT,
    MAX_PASSAGE_CHARS,
    MAX_QUERY_WORDS,
    Document,
    DocumentIndex,
    FolderReport,
    Passage,
    fts_query,
    split_passages,
)

HOUR_NS = 3600 * 10**9
FTS5_SYNTAX = '"*^():+-{},.NEAR AND OR NOT title: text: \x00 \\ \' 🙂 é'


@pytest.fixture(scope="module")
def kb():
    """One index of the bundled notes for the module's read-only tests."""
    with DocumentIndex() as index:
        index.add_knowledge_base()
        yield index


def _all_passages(index: DocumentIndex) -> list[Passage]:
    return [p for doc_id in index.document_ids() for p in index.read(doc_id).passages]


def _write(path, text: str, *, age_ns: int = 0) -> None:
    """Write `text` to `path`, its mtime `age_ns` in the past (an old file is trusted on its stat)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if age_ns:
        then = path.stat().st_mtime_ns - age_ns
        os.utime(path, ns=(then, then))


@pytest.fixture
def docs(tmp_path):
    """A folder of three documents (nested, a heading, a name with a space) and what must not be indexed."""
    root = tmp_path / "docs"
    _write(root / "intro.md", "# Getting started\n\nThe zeppelin project indexes manuals.\n\n## Install\n\n"
                              "Run the installer, then restart.\n", age_ns=HOUR_NS)
    _write(root / "guides" / "setup.md", "Configure the quokka service with a token.\n\n"
                                         "Rotate the token every month.\n", age_ns=HOUR_NS)
    _write(root / "notes" / "Release Notes.txt", "Version two adds a marmalade exporter.\n", age_ns=HOUR_NS)
    _write(root / ".hidden.md", "secret hidden platypus\n")
    _write(root / ".git" / "notes.md", "hidden folder platypus\n")
    _write(root / "picture.png", "not a document platypus\n")
    return root


# --- the knowledge base -------------------------------------------------------------------------------------


def test_the_knowledge_base_has_a_document_a_note_and_a_passage_a_fact(kb):
    assert kb.document_ids() == sorted(note.slug for note in notes())
    assert len(kb) == sum(len(note.facts) for note in notes())
    for note in notes():
        doc = kb.read(note.slug)
        assert (doc.id, doc.title) == (note.slug, note.topic)
        assert [(p.id, p.text, p.source) for p in doc.passages] == [
            (f"{note.slug}#{n}", fact.text, fact.source) for n, fact in enumerate(note.facts, 1)]
        assert "(source:" not in doc.text


def test_hnsw_graph_finds_the_vector_databases_note_first(kb):
    hits = kb.search("HNSW graph")
    assert hits[0].doc_id == "vector-databases" and "HNSW" in hits[0].text
    assert kb.search("how does HNSW work")[0].doc_id == "vector-databases"


def test_every_note_is_found_by_its_topic_first_and_by_its_first_alias_in_the_top_3(kb):
    by_topic = [n.slug for n in notes() if kb.search(n.topic, limit=1)[0].doc_id != n.slug]
    by_alias = [(n.slug, n.aliases[0]) for n in notes()
                if n.slug not in {hit.doc_id for hit in kb.search(n.aliases[0], limit=3)}]
    assert (by_topic, by_alias) == ([], [])


def test_nearly_every_alias_finds_its_note_in_the_top_3(kb):
    """Aliases are searched with the note (they are often in no fact: "k8s", "sft"); a few are ambiguous on
    purpose ("token limit" is rate limiting's too), so the floor is 98% of them, and a miss is named."""
    aliases = [(n.slug, a) for n in notes() for a in n.aliases]
    misses = [(slug, a) for slug, a in aliases if slug not in {h.doc_id for h in kb.search(a, limit=3)}]
    assert len(misses) <= len(aliases) // 50, misses


def test_read_and_passage_give_back_what_search_found(kb):
    hit = kb.search("product quantization compress")[0]
    assert kb.passage(hit.id) == Passage(hit.id, hit.doc_id, hit.title, hit.text, hit.source, 0.0)
    doc = kb.read(hit.doc_id)
    assert isinstance(doc, Document) and kb.passage(hit.id) in doc.passages
    assert doc.text == "\n\n".join(p.text for p in doc.passages)
    assert kb.read("no-such-note") is None and kb.passage("vector-databases#999") is None


def test_ids_are_stable_across_rebuilds_and_an_unchanged_knowledge_base_is_not_rewritten(kb, tmp_path):
    with DocumentIndex(tmp_path / "index.db") as fresh:
        assert fresh.add_knowledge_base().added == len(notes())
        assert [(p.id, p.text) for p in _all_passages(fresh)] == [(p.id, p.text) for p in _all_passages(kb)]
        assert fresh.add_knowledge_base() == FolderReport(unchanged=len(notes()))


# --- queries are data ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ['"foo" OR bar*', "NEAR(", "NEAR(hnsw graph, 2)", "-x", '"unbalanced', "title:x",
                                   "hnsw\x00graph", "🙂🙂", "x" * 10_000, "word " * 2_000, "a AND", "^hnsw", "(", ")",
                                   "{title text}: hnsw", "'", "\\", "* OR *", "NOT"])
def test_any_query_is_searched_as_words_and_never_raises(kb, query):
    hits = kb.search(query, limit=5)
    assert len(hits) <= 5 and all(isinstance(h, Passage) for h in hits)


def test_operators_in_a_query_are_words_not_fts5_syntax(tmp_path):
    _write(tmp_path / "a.md", "alpha beta")
    _write(tmp_path / "b.md", "gamma delta")
    with DocumentIndex() as index:
        index.add_folder(tmp_path)
        found = {q: sorted(h.doc_id for h in index.search(q)) for q in
                 ("alpha NOT gamma", '"alpha" AND gamma', "NEAR(alpha gamma)", "text:gamma alpha", "alp*", "-alpha")}
    assert found == {"alpha NOT gamma": ["a", "b"], '"alpha" AND gamma': ["a", "b"], "NEAR(alpha gamma)": ["a", "b"],
                     "text:gamma alpha": ["a", "b"], "alp*": [], "-alpha": ["a"]}


def test_a_query_is_its_first_distinct_words_quoted_and_ored():
    assert fts_query('Quoted "words" AND words, NEAR(x)') == '"quoted" OR "words" OR "and" OR "near" OR "x"'
    many = " ".join(f"w{i}" for i in range(1000))
    assert fts_query(many).count(" OR ") == MAX_QUERY_WORDS - 1


def test_a_query_without_words_finds_nothing_and_limits_are_checked(kb):
    assert kb.search("") == [] and kb.search(" ?!* ") == [] and kb.search("\x00") == []
    assert len(kb.search("the of a and", limit=1000)) == MAX_LIMIT
    for bad in (0, -1, 2.5, True, "5"):
        with pytest.raises(ValueError, match="limit"):
            kb.search("hnsw", limit=bad)
    with pytest.raises(TypeError, match="str"):
        kb.search(None)


def test_the_tokenizer_stems_and_folds_accents(tmp_path):
    _write(tmp_path / "menu.md", "The café keeps an index of every dish.")
    with DocumentIndex() as index:
        index.add_folder(tmp_path)
        assert [h.doc_id for h in index.search("indexing")] == ["menu"]
        assert [h.doc_id for h in index.search("indexes")] == ["menu"]
        assert [h.doc_id for h in index.search("CAFE")] == ["menu"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text() | st.text(alphabet=st.sampled_from(FTS5_SYNTAX + "hnsw vector graph")),
       limit=st.integers(1, 80))
def test_property_any_text_query_returns_at_most_limit_passages_best_first(kb, query, limit):
    hits = kb.search(query, limit=limit)
    assert len(hits) <= min(limit, MAX_LIMIT)
    assert all(isinstance(h, Passage) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.fixture(scope="module")
def distinctive(kb) -> dict[str, list[str]]:
    """Each passage's words whose stem no other passage has (in its text, title or its note's names), with the
    index's own tokenizer as the judge of "the same word" (so "fits" is not distinctive beside "fit")."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61 remove_diacritics 2')")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    names = {n.slug: " ".join([*n.aliases, *n.keywords]) for n in notes()}
    passages = _all_passages(kb)
    words = sorted({w for p in passages for w in re.findall(r"[^\W_]+", p.text)})
    db.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)",
                   [(i, f"{p.title} {p.text} {names[p.doc_id]}") for i, p in enumerate(passages)])
    db.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", [(-1 - i, w) for i, w in enumerate(words)])
    holders: dict[str, set[int]] = {}
    stems: dict[int, set[str]] = {}
    for term, row in db.execute("SELECT term, doc FROM v"):
        if row >= 0:
            holders.setdefault(term, set()).add(row)
        else:
            stems.setdefault(-1 - row, set()).add(term)
    found: dict[str, list[str]] = {}
    for i, p in enumerate(passages):
        own = set(re.findall(r"[^\W_]+", p.text))
        found[p.id] = [w for j, w in enumerate(words) if w in own and stems.get(j)
                       and all(holders[t] == {i} for t in stems[j])]
    return found


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_a_passages_own_distinctive_words_find_it_alone(kb, distinctive, data):
    passage_id = data.draw(st.sampled_from(sorted(p for p, words in distinctive.items() if words)))
    words = data.draw(st.lists(st.sampled_from(distinctive[passage_id]), min_size=1, max_size=4))
    assert [h.id for h in kb.search(" ".join(words), limit=MAX_LIMIT)] == [passage_id]


# --- a folder -----------------------------------------------------------------------------------------------


def test_a_folder_is_indexed_a_document_a_file_a_passage_a_paragraph(docs):
    with DocumentIndex() as index:
        report = index.add_folder(docs)
        assert report == FolderReport(added=3)
        assert index.document_ids() == ["guides/setup", "intro", "notes/release-notes"]
        intro = index.read("intro")
        assert (intro.title, intro.source) == ("Getting started", "intro.md")
        assert [p.text for p in intro.passages] == ["# Getting started\nThe zeppelin project indexes manuals.",
                                                    "## Install\nRun the installer, then restart."]
        assert [p.id for p in intro.passages] == ["intro#1", "intro#2"]
        notes_doc = index.read("notes/release-notes")
        assert (notes_doc.title, notes_doc.source) == ("Release Notes", "notes/Release Notes.txt")
        assert index.search("quokka")[0].source == "guides/setup.md"
        assert index.search("guides")[0].doc_id == "guides/setup"  # the path's words are searched too
        assert index.search("platypus") == []  # hidden files and folders, other suffixes


def test_a_file_not_utf8_or_too_big_is_skipped_with_one_line(docs):
    (docs / "latin1.md").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (docs / "huge.txt").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    with DocumentIndex() as index:
        report = index.add_folder(docs)
    assert (report.added, [s.path for s in report.skipped]) == (3, ["huge.txt", "latin1.md"])
    lines = [s.line() for s in report.skipped]
    assert all("\n" not in line for line in lines)
    assert "MAX_FILE_BYTES" in lines[0] and "not valid UTF-8 (byte 0xe9 at offset 3)" in lines[1]
    assert str(report).splitlines() == ["3 added, 0 updated, 0 removed, 0 unchanged, 2 skipped", *lines]


def test_a_long_paragraph_is_cut_at_sentence_ends(tmp_path):
    sentences = [f"Sentence number {i} talks about the walrus registry at some length." for i in range(60)]
    _write(tmp_path / "long.md", " ".join(sentences))
    with DocumentIndex() as index:
        index.add_folder(tmp_path)
        passages = index.read("long").passages
    assert len(passages) > 1 and all(len(p.text) <= MAX_PASSAGE_CHARS for p in passages)
    assert all(p.text.endswith(".") for p in passages)
    assert " ".join(p.text for p in passages) == " ".join(sentences)


def test_editing_one_file_reindexes_only_it(docs):
    with DocumentIndex() as index:
        index.add_folder(docs)
        _write(docs / "guides" / "setup.md", "Configure the wombat service instead.\n")
        assert index.add_folder(docs) == FolderReport(updated=1, unchanged=2)
        assert [h.id for h in index.search("wombat")] == ["guides/setup#1"]
        assert index.search("quokka") == [] and index.passage("guides/setup#2") is None


def test_an_edit_that_keeps_size_and_mtime_is_still_seen_while_the_file_is_new(docs):
    """Subtle: a file rewritten within the mtime clock's tick has the same stat; a recent file is hashed."""
    with DocumentIndex() as index:
        path = docs / "fresh.md"
        _write(path, "ocelot")
        index.add_folder(docs)
        before = path.stat()
        path.write_text("jaguar", encoding="utf-8")  # same size
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert index.add_folder(docs) == FolderReport(updated=1, unchanged=3)
        assert index.search("jaguar")[0].doc_id == "fresh" and index.search("ocelot") == []


def test_a_touched_file_is_unchanged(docs):
    with DocumentIndex() as index:
        index.add_folder(docs)
        os.utime(docs / "intro.md")
        assert index.add_folder(docs) == FolderReport(unchanged=3)


def test_deleting_a_file_removes_its_passages(docs):
    with DocumentIndex() as index:
        index.add_folder(docs)
        (docs / "intro.md").unlink()
        assert index.add_folder(docs) == FolderReport(removed=1, unchanged=2)
        assert index.read("intro") is None and index.passage("intro#1") is None
        assert index.search("zeppelin") == [] and len(index) == 3


def test_a_file_that_becomes_unreadable_as_utf8_loses_its_document(docs):
    with DocumentIndex() as index:
        index.add_folder(docs)
        (docs / "intro.md").write_bytes(b"\xff\xfe broken")
        report = index.add_folder(docs)
        assert (report.removed, report.unchanged, [s.path for s in report.skipped]) == (1, 2, ["intro.md"])
        assert index.search("zeppelin") == []


def test_a_reopened_index_file_reads_no_unchanged_file(docs, tmp_path, monkeypatch):
    with DocumentIndex(tmp_path / "index.db") as index:
        index.add_folder(docs)
        ids = [p.id for p in _all_passages(index)]
    monkeypatch.setattr("pathlib.Path.read_bytes", lambda self: pytest.fail(f"{self} was read again"))
    with DocumentIndex(tmp_path / "index.db") as index:
        assert [p.id for p in _all_passages(index)] == ids
        assert index.add_folder(docs) == FolderReport(unchanged=3)
        assert index.search("marmalade")[0].doc_id == "notes/release-notes"


def test_one_id_names_one_document(tmp_path):
    _write(tmp_path / "a.md", "from the markdown file")
    _write(tmp_path / "a.txt", "from the text file")
    _write(tmp_path / "vector-databases.md", "a user's own note")
    with DocumentIndex() as index:
        index.add_knowledge_base()
        report = index.add_folder(tmp_path)
        assert report.added == 1 and [s.path for s in report.skipped] == ["a.txt", "vector-databases.md"]
        assert "'a' is already a.md's" in report.skipped[0].reason
        assert index.read("vector-databases").title == "How vector databases enable semantic search"


def test_a_missing_folder_or_a_file_that_is_no_index_says_so(tmp_path):
    with DocumentIndex() as index, pytest.raises(NotADirectoryError, match="does not exist"):
        index.add_folder(tmp_path / "nowhere")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="cannot open .* as a search index"):
        DocumentIndex(tmp_path / "junk.db")


def test_one_index_serves_several_threads(kb):
    results, errors = [], []

    def search():
        try:
            results.extend(kb.search("HNSW graph", limit=1)[0].doc_id for _ in range(50))
        except Exception as exc:  # the assert below names it
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == ["vector-databases"] * 200


# --- splitting text -----------------------------------------------------------------------------------------


def test_a_code_block_stays_whole_and_headings_join_what_follows():
    text = "# Title\n\n## Part\n\nText.\n\n```\ncode\n\nmore code\n```\n\n## End"
    assert split_passages(text) == ["# Title\n## Part\nText.", "```\ncode\n\nmore code\n```", "## End"]


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab .!?\n#`~")) | st.text(), limit=st.integers(5, 60))
def test_property_splitting_keeps_every_character_and_the_limit(text, limit):
    passages = split_passages(text, limit=limit)
    assert "".join("".join(p.split()) for p in passages) == "".join(text.split())
    assert all(0 < len(p) <= limit and p == p.strip() for p in passages)


def test_splitting_is_linear_on_one_huge_paragraph():
    assert len(split_passages("x" * 1_000_000)) == -(-1_000_000 // MAX_PASSAGE_CHARS)
    assert all(len(p) <= MAX_PASSAGE_CHARS for p in split_passages("Go. " * 250_000))


# --- the module's shape -------------------------------------------------------------------------------------


def _loaded_imports(tree: ast.AST) -> set[str]:
    """The modules a module's code imports when it is loaded: not in functions, nor under `if TYPE_CHECKING`."""
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found |= {m for child in node.orelse for m in _loaded_imports(child)}
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        found |= _loaded_imports(node)
    return found


def test_import_mas_does_not_load_the_search_module():
    """Followed through the source (a fresh interpreter would cost 2 s, anthropic's import): every mas module that
    `import mas` loads, and what each of those loads, leaves mas.search out."""
    package = Path(mas.__file__).parent
    files = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in package.rglob("*.py")}
    loaded, todo = set(), ["mas"]
    while todo:
        name = todo.pop()
        if name in loaded or name not in files:
            continue
        loaded.add(name)
        todo += [m for m in _loaded_imports(ast.parse(files[name].read_text(encoding="utf-8"))) if m in files]
        todo += [name.rpartition(".")[0]] if "." in name else []  # a submodule's package is loaded first
    assert {"mas", "mas.agents", "mas.memory"} <= loaded and "mas.search" not in loaded
