"""SSE test vectors shared by the exporter's parser (exporter/wire.py) and the addon's (addons/agentcap.py).

The addon is stdlib-only and cannot import the exporter, so the two parsers are separate code; one set
of vectors keeps them in agreement. Each case: (id, SSE text, expected events as (event name, data)).
"""

SSE_CASES: list[tuple[str, str, list[tuple[str | None, str]]]] = [
    ("plain", "data: a\n\ndata: b\n\n", [(None, "a"), (None, "b")]),
    ("named", "event: ping\ndata: {}\n\n", [("ping", "{}")]),
    ("crlf", "event: x\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n", [("x", "1"), (None, "2")]),
    ("bare cr", "data: 1\r\rdata: 2\r\r", [(None, "1"), (None, "2")]),
    ("mixed line ends", "data: 1\r\n\rdata: 2\n\r\ndata: 3\r\r", [(None, "1"), (None, "2"), (None, "3")]),
    (
        "bare cr with usage",
        'data: {"model":"m-cr","usage":null}\r\rdata: {"usage":{"total_tokens":4}}\r\rdata: [DONE]\r\r',
        [(None, '{"model":"m-cr","usage":null}'), (None, '{"usage":{"total_tokens":4}}'), (None, "[DONE]")],
    ),
    ("multi-line data", "data: one\ndata: two\n\n", [(None, "one\ntwo")]),
    ("multi-line data, bare cr", "data: one\rdata: two\r\r", [(None, "one\ntwo")]),
    ("comments and keep-alives", ": keep-alive\n\n: hi\ndata: x\n\n", [(None, "x")]),
    ("no space after colon", "data:x\n\n", [(None, "x")]),
    ("only one space stripped", "data:  x\n\n", [(None, " x")]),
    ("unknown fields ignored", "id: 7\nretry: 10\ndata: x\n\n", [(None, "x")]),
    ("event without data dropped", "event: lonely\n\ndata: x\n\n", [(None, "x")]),
    ("cut last event kept", 'data: a\n\ndata: {"half', [(None, "a"), (None, '{"half')]),
    (
        "line separator inside data is not a line end",
        'data: {"t":"a\u2028b"}\n\n',
        [(None, '{"t":"a\u2028b"}')],
    ),
    ("empty", "", []),
]
