"""Event → next recommendation: POST one event, then GET that user's recommendations, and
check the list reflects it (the purchased item is gone). Prints the time from sending the
event to receiving the new list (median, p99 over N rounds) as one JSON line.

    python3 scripts/load/freshness.py PORT [N] [USERS]
"""
import http.client
import json
import random
import sys
import time

port = int(sys.argv[1])
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 300
users = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
conn = http.client.HTTPConnection("127.0.0.1", port)
random.seed(0)
times, reflected = [], 0
for r in range(rounds):
    user = "U%05d" % random.randint(1, users)
    conn.request("GET", f"/v1/users/{user}/recommendations?k=10")
    before = json.loads(conn.getresponse().read())
    if not before["items"]:
        continue
    top = before["items"][0]["id"]
    event = json.dumps({"id": f"fresh-{r}", "user": user, "item": top, "kind": "purchase", "unit_price": 1.0})
    t0 = time.perf_counter()
    conn.request("POST", "/v1/events", body=event, headers={"Content-Type": "application/json"})
    assert conn.getresponse().read() and True
    conn.request("GET", f"/v1/users/{user}/recommendations?k=10")
    after = json.loads(conn.getresponse().read())
    times.append((time.perf_counter() - t0) * 1000)
    reflected += top not in [i["id"] for i in after["items"]]
times.sort()
print(json.dumps({
    "rounds": len(times),
    "reflected": reflected,
    "event_to_new_list_ms_median": round(times[len(times) // 2], 3),
    "event_to_new_list_ms_p99": round(times[int(len(times) * 0.99) - 1], 3),
}))
