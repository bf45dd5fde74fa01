#!/usr/bin/python3
"""The built-in embedding model in C against the model's own JavaScript runtime
(TensorFlow.js, WebAssembly, one thread), on the same texts in the same run.

    bench/embed_compare.py --bench BUILD/bench/chronik-embed-bench [--rounds 3] [--seconds 3]

chronik-embed-bench writes its ~64-token texts (cut from the Vaswani abstracts) to a file;
then the C bench (as it runs by default, and with CHRONIK_EMBED_AMX=0: OpenBLAS, as on a
CPU without AMX) and bench/js-embed/embed-bench.mjs take turns, ROUNDS times each, every
run measuring batch sizes 1 and 64 for SECONDS each, so that the machine's noise hits all
sides alike. Prints a Markdown section with every run, the medians and the ratio C / JS
(stdout) and a RESULT line (stderr). The JavaScript packages come from scripts/setup.sh."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JS = os.path.join(ROOT, "bench", "js-embed", "embed-bench.mjs")


def last_json(out):
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON line in: %r" % out[-500:])


def run(cmd, timeout, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    if p.returncode:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode, p.stderr[-800:]))
    return last_json(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="the chronik-embed-bench binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        texts = os.path.join(tmp, "texts.txt")
        subprocess.run([a.bench, "--write-texts", texts], check=True, capture_output=True, timeout=300)
        c_runs, blas_runs, js_runs = [], [], []
        cmd = [a.bench, "--texts", texts, "--seconds", str(a.seconds)]
        for r in range(a.rounds):
            print("round %d: C" % (r + 1), file=sys.stderr, flush=True)
            c_runs.append(run(cmd, 600))
            print("round %d: C on OpenBLAS" % (r + 1), file=sys.stderr, flush=True)
            blas_runs.append(run(cmd, 600, {"CHRONIK_EMBED_AMX": "0"}))
            print("round %d: JavaScript" % (r + 1), file=sys.stderr, flush=True)
            js_runs.append(run(["node", JS, texts, str(a.seconds)], 600))
    med = {}
    for side, runs in (("c", c_runs), ("blas", blas_runs), ("js", js_runs)):
        for b in ("batch1_per_s", "batch64_per_s"):
            med[side, b] = statistics.median(x[b] for x in runs)
    print("### Embedding: C against the model's JavaScript runtime (same texts, same run)\n")
    print("`bench/embed_compare.py --rounds %d --seconds %g`; %d texts of ~%.0f tokens; one thread each. "
          "C: as it runs here (%s), and on OpenBLAS (`CHRONIK_EMBED_AMX=0`, as without AMX); JavaScript: "
          "TensorFlow.js, %s backend. Texts/s; the runs alternate C, C on OpenBLAS, JS.\n"
          % (a.rounds, a.seconds, js_runs[0]["texts"], c_runs[0].get("tokens_mean", 0),
             "AMX" if c_runs[0].get("amx") else "OpenBLAS", js_runs[0]["backend"]))
    print("| run | C b1 | C b64 | C OpenBLAS b1 | C OpenBLAS b64 | JS b1 | JS b64 |")
    print("|---|---|---|---|---|---|---|")
    rows = [("%d" % (i + 1), c, b, j) for i, (c, b, j) in enumerate(zip(c_runs, blas_runs, js_runs))]
    rows.append(("median", {k: med["c", k] for k in ("batch1_per_s", "batch64_per_s")},
                 {k: med["blas", k] for k in ("batch1_per_s", "batch64_per_s")},
                 {k: med["js", k] for k in ("batch1_per_s", "batch64_per_s")}))
    for name, c, b, j in rows:
        print("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |" % (
            name, c["batch1_per_s"], c["batch64_per_s"], b["batch1_per_s"], b["batch64_per_s"],
            j["batch1_per_s"], j["batch64_per_s"]))
    ratio = {(side, b): med[side, b] / med["js", b] for side in ("c", "blas")
             for b in ("batch1_per_s", "batch64_per_s")}
    print("\nRatio to JavaScript (medians; target 10x): C batch 1 **%.1fx**, batch 64 **%.1fx**; "
          "C on OpenBLAS batch 1 %.1fx, batch 64 %.1fx.\n" % (
              ratio["c", "batch1_per_s"], ratio["c", "batch64_per_s"],
              ratio["blas", "batch1_per_s"], ratio["blas", "batch64_per_s"]))
    print(json.dumps({"c": c_runs, "c_openblas": blas_runs, "js": js_runs,
                      "ratio_batch1": ratio["c", "batch1_per_s"], "ratio_batch64": ratio["c", "batch64_per_s"]}))
    print("RESULT bench=embed_compare ratio_batch1=%.2f ratio_batch64=%.2f openblas_ratio_batch64=%.2f "
          "c_batch64=%.1f js_batch64=%.1f" % (
              ratio["c", "batch1_per_s"], ratio["c", "batch64_per_s"], ratio["blas", "batch64_per_s"],
              med["c", "batch64_per_s"], med["js", "batch64_per_s"]), file=sys.stderr)


if __name__ == "__main__":
    main()
