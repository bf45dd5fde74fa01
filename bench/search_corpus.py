#!/usr/bin/python3
"""A reproducible synthetic corpus and query sets for the search benchmarks.

    /usr/bin/python3 bench/search_corpus.py [--docs 1000000] [--out corpus.jsonl|-] [--queries-dir DIR]

Corpus: N documents, JSON lines {"id": i, "text": "..."} (i = 0..N-1). Each document has
a length drawn uniformly from [min_len, max_len] (30..50) words; each word is drawn from a
vocabulary of V (200,000) words with Zipf probabilities p(rank r) ~ 1 / r^s (s = 1.07).
The vocabulary: the 50 most common English stop words take ranks 1..50 (so queries drawn
by corpus frequency are stop-word heavy, as real ones are), then pseudo-words made of
consonant-vowel syllables ("tokari", "benvol"), unique, shorter ones at the more frequent
ranks. Everything follows from --seed (three separate random streams: vocabulary, corpus,
queries), with Python's Mersenne Twister (random.random, randint, choices), so the same
arguments give byte-identical output on any machine with CPython 3.

Query sets (1000 queries each, --queries): for k = 1, 2, 3 terms, `uniform-k` draws each
term uniformly from the words that occur in the corpus, `freq-k` draws it with probability
proportional to its number of occurrences in the corpus; the terms of one query are
distinct. Written as DIR/<set>.txt, one query per line (terms separated by a space).

Pure Python (no numpy needed): about 20 s per million documents on one core.
"""
import argparse
import collections
import hashlib
import json
import random
import sys
import time

STOP_WORDS = (
    "the of and to a in is that for it as was with be on by not he this are or at from his "
    "but have an they which you were her she there will one all would their we him been has "
    "when who more if no out"
).split()

_ONSETS = ("b c d f g h j k l m n p r s t v w z br ch dr fl gr kl pr sh st tr th pl").split()
_VOWELS = ("a e i o u a e i o u ai ea ou").split()
_CODAS = ("n r l s m k t nd rt lk") .split()

DEFAULTS = dict(docs=1000000, vocab=200000, zipf_s=1.07, min_len=30, max_len=50, seed=20240601,
                queries=1000)


def make_vocab(size, seed):
    """size words: STOP_WORDS first, then unique pseudo-words, shorter ones first."""
    rng = random.Random(seed * 3 + 1)
    seen = set(STOP_WORDS)
    words = []
    need = size - len(STOP_WORDS)
    while len(words) < need:
        n_syl = 1 + min(3, int(rng.random() * 4.2))  # 1..4 syllables, mostly 2-4
        parts = []
        for _ in range(n_syl):
            parts.append(_ONSETS[int(rng.random() * len(_ONSETS))])
            parts.append(_VOWELS[int(rng.random() * len(_VOWELS))])
        if rng.random() < 0.35:
            parts.append(_CODAS[int(rng.random() * len(_CODAS))])
        w = "".join(parts)
        if len(w) < 3 or w in seen:
            continue
        seen.add(w)
        words.append(w)
    words.sort(key=len)  # stable: equal lengths keep generation order
    return list(STOP_WORDS[:size]) + words


def zipf_cum_weights(size, s):
    cum = []
    t = 0.0
    for r in range(1, size + 1):
        t += 1.0 / (r ** s)
        cum.append(t)
    return cum


class Corpus:
    """The corpus definition; docs() yields the texts, counting word occurrences into
    self.counts (a Counter word -> occurrences) as a side effect."""

    def __init__(self, docs=None, vocab=None, zipf_s=None, min_len=None, max_len=None, seed=None):
        d = DEFAULTS
        self.n = d["docs"] if docs is None else docs
        self.vocab_size = d["vocab"] if vocab is None else vocab
        self.s = d["zipf_s"] if zipf_s is None else zipf_s
        self.min_len = d["min_len"] if min_len is None else min_len
        self.max_len = d["max_len"] if max_len is None else max_len
        self.seed = d["seed"] if seed is None else seed
        self.vocab = make_vocab(self.vocab_size, self.seed)
        self.cum = zipf_cum_weights(self.vocab_size, self.s)
        self.counts = collections.Counter()
        self.tokens = 0

    def describe(self):
        return ("%d documents of %d..%d words (uniform), vocabulary %d (50 English stop words at the top, "
                "then pseudo-words), Zipf s=%.2f, seed %d" % (self.n, self.min_len, self.max_len,
                                                                self.vocab_size, self.s, self.seed))

    def docs(self, chunk=5000):
        rng = random.Random(self.seed * 3 + 2)
        vocab, cum = self.vocab, self.cum
        self.counts = collections.Counter()
        self.tokens = 0
        done = 0
        while done < self.n:
            m = min(chunk, self.n - done)
            lens = [rng.randint(self.min_len, self.max_len) for _ in range(m)]
            ws = rng.choices(vocab, cum_weights=cum, k=sum(lens))
            self.counts.update(ws)
            self.tokens += len(ws)
            pos = 0
            for ln in lens:
                yield " ".join(ws[pos:pos + ln])
                pos += ln
            done += m

    def queries(self, n=None):
        """{set name: [query]} for uniform-1..3 and freq-1..3; call after docs() ran."""
        if not self.counts:
            raise RuntimeError("generate the documents first (the query sets depend on the counts)")
        n = DEFAULTS["queries"] if n is None else n
        rng = random.Random(self.seed * 3 + 3)
        occurring = [w for w in self.vocab if self.counts.get(w)]
        cum = []
        t = 0
        for w in occurring:
            t += self.counts[w]
            cum.append(t)
        out = {}
        for kind in ("uniform", "freq"):
            for k in (1, 2, 3):
                qs = []
                for _ in range(n):
                    terms = []
                    while len(terms) < k:
                        if kind == "uniform":
                            w = occurring[int(rng.random() * len(occurring))]
                        else:
                            w = rng.choices(occurring, cum_weights=cum, k=1)[0]
                        if w not in terms:
                            terms.append(w)
                    qs.append(" ".join(terms))
                out["%s-%d" % (kind, k)] = qs
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=DEFAULTS["docs"])
    ap.add_argument("--vocab", type=int, default=DEFAULTS["vocab"])
    ap.add_argument("--zipf-s", type=float, default=DEFAULTS["zipf_s"])
    ap.add_argument("--min-len", type=int, default=DEFAULTS["min_len"])
    ap.add_argument("--max-len", type=int, default=DEFAULTS["max_len"])
    ap.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    ap.add_argument("--out", default="-", help="JSON lines file, - for stdout (default)")
    ap.add_argument("--queries-dir", help="also write the query sets there (<set>.txt)")
    ap.add_argument("--queries", type=int, default=DEFAULTS["queries"], help="queries per set (1000)")
    a = ap.parse_args()
    if a.min_len < 1 or a.max_len < a.min_len or a.vocab <= len(STOP_WORDS):
        ap.error("need 1 <= min-len <= max-len and vocab > %d" % len(STOP_WORDS))
    c = Corpus(a.docs, a.vocab, a.zipf_s, a.min_len, a.max_len, a.seed)
    t0 = time.monotonic()
    out = sys.stdout if a.out == "-" else open(a.out, "w")
    h = hashlib.sha256()
    for i, text in enumerate(c.docs()):
        line = json.dumps({"id": i, "text": text}) + "\n"
        h.update(line.encode())
        out.write(line)
    if out is not sys.stdout:
        out.close()
    else:
        out.flush()
    sys.stderr.write("search-corpus: %s: %d words, %d distinct, %.1f s, sha256 %s\n" % (
        c.describe(), c.tokens, len(c.counts), time.monotonic() - t0, h.hexdigest()))
    if a.queries_dir:
        import os
        os.makedirs(a.queries_dir, exist_ok=True)
        for name, qs in c.queries(a.queries).items():
            with open(os.path.join(a.queries_dir, name + ".txt"), "w") as f:
                f.write("\n".join(qs) + "\n")
        sys.stderr.write("search-corpus: query sets in %s\n" % a.queries_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
