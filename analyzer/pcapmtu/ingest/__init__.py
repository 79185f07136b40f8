"""Read (the first stage): capture files to columnar tables.

formats (file formats, compression, the chunk reader) -> decode (link, IP, TCP/UDP headers into numpy
columns; the C core in _native.c, the numpy path beside it, `native` the one switch between them) -> packets
(the packets table) -> tcp (connections, segments, the flows table; Wireshark's tcp.stream numbers, Zeek's
conn_state) -> rare_layers (DNS, ICMP, TLS handshakes, decoded with dpkt), service_names -> capture (the
`Capture` a user holds).

Nothing here knows about verdicts or reports: ingest imports neither diagnose nor render (tests/test_layering.py).
"""
