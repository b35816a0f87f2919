"""The status tables: brokers with their address and ingress responses by meaning."""

from __future__ import annotations

from rich.console import Console

from knray.runtime.status_view import render_status


def test_brokers_table_shows_address_and_responses_by_meaning() -> None:
    status = {
        "brokers": {
            "shop/orders": {
                "class": "memory",
                "address": "http://127.0.0.1:8000/shop/orders",
                "responses": {"202": 7, "400": 2, "404": 1, "413": 1, "503": 3},
                "queued": 4,
            },
            "shop/audit": {"class": "kafka", "address": ""},
        }
    }
    console = Console(width=200, record=True)
    console.print(render_status(status))
    text = console.export_text()
    row = next(line for line in text.splitlines() if "shop/orders" in line)
    assert row.split("│")[1:-1] == [
        " shop/orders ",
        " memory ",
        " http://127.0.0.1:8000/shop/orders ",
        "        7 ",
        "        4 ",
        "    3 ",
        "      4 ",
    ]
    assert "(no ingress)" in next(line for line in text.splitlines() if "shop/audit" in line)
