#!/usr/bin/env python3
"""The hand-written alternative to `cutover digest`: the official Python `neo4j` driver
streams every node and relationship and hashes them (SHA-256 per record of a sorted JSON
rendering, summed mod 2^256 so the result is order-independent, like cutover's digest).

Usage: digest_baseline.py URI USER DATABASE   (password in $BENCH_PASSWORD)
Prints one JSON line: {"nodes": N, "relationships": R, "seconds": S, "digest": "..."}.
"""
import hashlib
import json
import os
import sys
import time

import neo4j


def canon(value):
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def main():
    uri, user, database = sys.argv[1], sys.argv[2], sys.argv[3]
    driver = neo4j.GraphDatabase.driver(uri, auth=(user, os.environ["BENCH_PASSWORD"]))
    total = 0
    mod = 1 << 256
    nodes = rels = 0
    started = time.monotonic()
    with driver.session(database=database, fetch_size=5000) as session:
        result = session.run("MATCH (n) RETURN labels(n) AS l, properties(n) AS p")
        for record in result:
            h = hashlib.sha256(canon([sorted(record["l"]), record["p"]]).encode()).digest()
            total = (total + int.from_bytes(h, "big")) % mod
            nodes += 1
        result = session.run(
            "MATCH (a)-[r]->(b) RETURN labels(a) AS al, properties(a) AS ap, type(r) AS t, "
            "properties(r) AS rp, labels(b) AS bl, properties(b) AS bp"
        )
        for record in result:
            h = hashlib.sha256(
                canon([sorted(record["al"]), record["ap"], record["t"], record["rp"], sorted(record["bl"]), record["bp"]]).encode()
            ).digest()
            total = (total + int.from_bytes(h, "big")) % mod
            rels += 1
    seconds = time.monotonic() - started
    driver.close()
    print(json.dumps({"nodes": nodes, "relationships": rels, "seconds": seconds, "digest": "%064x" % total}))


if __name__ == "__main__":
    main()
