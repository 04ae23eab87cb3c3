"""Run the scim2-tester compliance checker (PyPI) against a live ssogate SCIM endpoint.

Usage: scim_check.py BASE_URL TOKEN
Prints one line per check (STATUS title: reason) and a summary; exits 1 when any check
reports ERROR or CRITICAL.
"""

import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

base, token = sys.argv[1], sys.argv[2]
http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=20)
client = SyncSCIMClient(http)
results = check_server(client)
counts = {}
failed = False
for r in results:
    counts[r.status.name] = counts.get(r.status.name, 0) + 1
    where = f"[{r.resource_type}] " if r.resource_type else ""
    print(f"{r.status.name:<10} {where}{r.title}: {r.reason or ''}")
    if r.status in (Status.ERROR, Status.CRITICAL):
        failed = True
print("summary: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
sys.exit(1 if failed else 0)
