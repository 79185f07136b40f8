"""The measures of a connection that `inspect` and the report both show: the same names, order and format.

MSS and packet sizes are what an MTU problem is about: the MSS each side advertised, and the largest IP
packet each way (client to server first, as everywhere in pcapmtu), then retransmissions and the state in
words with Zeek's conn_state beside it.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ("MSS c/s", "max IP c>s / s>c", "retrans", "state")


def measures(flows: pd.DataFrame) -> dict[str, list[str]]:
    """COLUMNS -> one text cell per row of `flows` (a flows table or a selection of its rows)."""
    mss = zip(flows["mss_client"], flows["mss_server"], strict=True)
    big = zip(flows["max_ip_len_c2s"], flows["max_ip_len_s2c"], strict=True)
    state = zip(flows["state"].astype(str), flows["conn_state"], strict=True)
    return {
        "MSS c/s": [f"{int(c) or '-'}/{int(s) or '-'}" for c, s in mss],
        "max IP c>s / s>c": [f"{int(c)} / {int(s)}" for c, s in big],
        "retrans": [str(int(n)) for n in flows["retransmissions"]],
        "state": [f"{s} ({z})" for s, z in state],
    }
