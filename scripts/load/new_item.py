"""New item → similar answers: PUT a new item (a copy of an existing one under a new id
and title, in stock), then GET the `similar` items of the item it copies until the new one is
listed. Prints the time from the upsert's answer to the first list that names it (median,
p99, max over N rounds) and how many rounds saw it, as one JSON line.

    python3 scripts/load/new_item.py PORT [N] [ITEMS]
"""
import http.client
import json
import random
import sys
import time

port = int(sys.argv[1])
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
items = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
conn = http.client.HTTPConnection("127.0.0.1", port)
random.seed(0)
times, seen = [], 0
for r in range(rounds):
    kin = "SKU-%05d" % random.randint(1, items)
    conn.request("GET", f"/v1/items/{kin}")
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        continue
    record = json.loads(body)
    record = record.get("item", record)
    new_id = f"NEW-{r}"
    record["id"] = new_id
    record["title"] = (record.get("title") or kin) + " (new)"
    # Listed in stock (similar answers leave out-of-stock items out, as they should).
    record["in_stock"] = True
    record.pop("stock", None)
    conn.request("PUT", "/v1/items", body=json.dumps([record]), headers={"Content-Type": "application/json"})
    assert conn.getresponse().read() is not None
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        conn.request("GET", f"/v1/items/{kin}/similar?k=10")
        listed = [i["id"] for i in json.loads(conn.getresponse().read())["items"]]
        if new_id in listed:
            seen += 1
            break
    times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(json.dumps({
    "rounds": len(times),
    "listed": seen,
    "upsert_to_similar_ms_median": round(times[len(times) // 2], 3),
    "upsert_to_similar_ms_p99": round(times[max(int(len(times) * 0.99) - 1, 0)], 3),
    "upsert_to_similar_ms_max": round(times[-1], 3),
}))
