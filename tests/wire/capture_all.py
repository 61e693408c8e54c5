#!/usr/bin/env python3
"""Run genai_bench_wire.py for every supported combination (and a few
variants) and write tests/wire/captured/<backend>__<task>__<stream|nostream>[__variant].json.

    target/py-genai-bench/bin/python tests/wire/capture_all.py [-j N] [FILTER...]

FILTER: only combinations whose file name contains one of the strings.
Also checks that the unsupported combinations exit 3.
"""

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
OUT = os.path.join(HERE, "captured")
HARNESS = os.path.join(HERE, "genai_bench_wire.py")

# Extra captures beyond the default model/auth/framing: (backend, task, mode, suffix, args)
VARIANTS = []
for mode in ("stream", "nostream"):
    VARIANTS += [
        ("aws-bedrock", "text-to-text", mode, "titan", ["--model", "amazon.titan-text-test-model-v1"]),
        ("aws-bedrock", "text-to-text", mode, "llama", ["--model", "meta.llama3-test-model-v1:0"]),
        ("aws-bedrock", "text-to-text", mode, "generic", ["--model", "test-model"]),
        ("gcp-vertex", "text-to-text", mode, "ndjson", ["--framing", "ndjson"]),
    ]
VARIANTS += [
    ("gcp-vertex", "text-to-text", "nostream", "palm", ["--model", "test-model"]),
    ("gcp-vertex", "text-to-text", "stream", "apikey", ["--gcp-auth", "api-key"]),
    ("azure-openai", "text-to-text", "stream", "adtoken", ["--azure-auth", "ad-token"]),
]

MUST_EXIT_3 = [
    ("openai", "text-to-rerank", []),
    ("baseten", "text-to-text", []),
    ("openai", "text-to-text", ["--no-stream"]),
    ("oci-genai", "image-text-to-text", []),
    ("gcp-vertex", "text-to-text", ["--stream", "--model", "test-model"]),
]


def jobs():
    from wire_matrix import SUPPORTED
    out = []
    for backend, tasks in SUPPORTED.items():
        for task, modes in tasks.items():
            for mode in modes:
                out.append((f"{backend}__{task}__{mode}", [backend, task, f"--{'no-' if mode == 'nostream' else ''}stream"]))
    for backend, task, mode, suffix, extra in VARIANTS:
        out.append((f"{backend}__{task}__{mode}__{suffix}",
                    [backend, task, f"--{'no-' if mode == 'nostream' else ''}stream"] + extra))
    return out


def run_one(name, argv):
    p = subprocess.run([sys.executable, HARNESS] + argv, capture_output=True, timeout=300)
    if p.returncode != 0 or not p.stdout.strip():
        return name, p.returncode, p.stderr.decode(errors="replace")[-2000:]
    with open(os.path.join(OUT, name + ".json"), "wb") as f:
        f.write(p.stdout)
    return name, 0, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-j", type=int, default=3)
    ap.add_argument("filters", nargs="*")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    todo = [(n, v) for n, v in jobs() if not a.filters or any(f in n for f in a.filters)]
    failed = 0
    with ThreadPoolExecutor(a.j) as ex:
        for name, rc, err in ex.map(lambda j: run_one(*j), todo):
            print(f"{'ok  ' if rc == 0 else 'FAIL'} {name}" + (f" (exit {rc})\n{err}" if rc else ""))
            failed += rc != 0
    if not a.filters:
        for backend, task, extra in MUST_EXIT_3:
            p = subprocess.run([sys.executable, HARNESS, backend, task] + extra,
                               capture_output=True, timeout=300)
            ok = p.returncode == 3
            failed += not ok
            msg = p.stderr.decode(errors="replace").strip().splitlines()[-1:]
            print(f"{'ok  ' if ok else 'FAIL'} exit {p.returncode} {backend} {task} {' '.join(extra)}: "
                  f"{msg[0] if msg else ''}")
    print(f"{len(todo)} captures, {failed} failures")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
