"""Give each connection the service name a person would recognise.

The name is the query name of the latest DNS answer (before the connection started) that returned the
connection's server address; the TLS SNI is the fallback. The query name is what the client asked for,
so a CNAME chain still leads back to the name in the client's configuration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def link_names(flows: pd.DataFrame, answers: pd.DataFrame, tls: pd.DataFrame) -> pd.DataFrame:
    """Add `name`, `name_source` and the TLS columns to `flows` (returns a new frame). `answers`: the DNS
    answers that carry an address, in capture order (`ts`, `answer`, `qname`; DnsMessages.answers())."""
    out = (
        flows.merge(tls, on="conn", how="left")
        if len(tls)
        else flows.assign(**{col: pd.Series(dtype=object) for col in tls.columns if col != "conn"})
    )
    out["sni"] = out["sni"].fillna("").astype(object)
    names = pd.Series("", index=out.index, dtype=object)
    if len(answers) and len(out):
        answers = answers[["ts", "answer", "qname"]].rename(columns={"answer": "server_ip", "ts": "dns_ts"})
        answers = answers.sort_values("dns_ts", kind="stable")
        left = out[["first_ts", "server_ip"]].reset_index().sort_values("first_ts", kind="stable")
        # the join key in one dtype on both sides (the DNS table's text is Python str objects)
        answers["server_ip"] = answers["server_ip"].astype(left["server_ip"].dtype)
        for direction in ("backward", "nearest"):
            todo = left[names.loc[left["index"]].to_numpy() == ""]
            if not len(todo):
                break
            hit = pd.merge_asof(
                todo, answers, left_on="first_ts", right_on="dns_ts", by="server_ip", direction=direction
            )
            found = hit["qname"].notna().to_numpy()
            names.loc[hit["index"].to_numpy()[found]] = hit["qname"].to_numpy()[found]
    from_dns = names != ""
    use_sni = ~from_dns & (out["sni"] != "")
    names[use_sni] = out.loc[use_sni, "sni"]
    out["name"] = names
    out["name_source"] = np.select([from_dns, use_sni], ["dns", "sni"], default="")
    return out
