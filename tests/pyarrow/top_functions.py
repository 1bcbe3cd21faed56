"""Reads one Cinder block with pyarrow alone, the way docs/block-format.md describes, and
prints its flat value per leaf function as JSON: {"profile_type": ..., "flat": {name: v}}.

Usage: python top_functions.py BLOCK_DIR
"""

import json
import pathlib
import sys

import pyarrow.parquet as pq


def table(block, name):
    return pq.read_table(block / f"{name}.parquet").to_pylist()


def main(block):
    meta = json.loads((block / "meta.json").read_text())
    stacks = {r["stack_id"]: r["location_ids"] for r in table(block, "stacks")}
    locations = {r["location_id"]: r for r in table(block, "locations")}
    functions = {r["function_id"]: r for r in table(block, "functions")}
    flat = {}
    for row in table(block, "samples"):
        location_ids = stacks[row["stack_id"]]
        if not location_ids:
            continue
        leaf = locations[location_ids[0]]
        # A location's lines are innermost first: the first is the leaf function.
        name = functions[leaf["function_ids"][0]]["name"] if leaf["function_ids"] else hex(leaf["address"])
        flat[name] = flat.get(name, 0) + row["value"]
    print(json.dumps({"profile_type": meta["profile_type"], "rows": meta["rows"], "flat": flat}))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
