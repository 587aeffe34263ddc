"""Names shared by the nodes of one floor.

Each Asterisk node has a PJSIP endpoint for every other node, named ``node-<name>`` after the
other node's ``[[asterisk]] name`` (config/asterisk/pjsip.conf): a seat registered on node
``b`` is dialled from node ``a`` as ``PJSIP/<seat>@node-b``, and node ``b`` receives the call
on its endpoint ``node-a``, in the context [from-node].
"""

from __future__ import annotations

TRUNK_PREFIX = "node-"
FROM_NODE_CONTEXT = "from-node"


def trunk_to(node: str) -> str:
    """The endpoint that reaches ``node`` from any other node."""
    return f"{TRUNK_PREFIX}{node}"


def is_node_trunk(endpoint: str) -> bool:
    return endpoint.startswith(TRUNK_PREFIX)


def dialled_seat(dial_string: str) -> str:
    """The seat of a DialBegin's DialString through a node trunk (``8002@node-b``), else ""."""
    number, at, endpoint = dial_string.partition("@")
    return number if at and is_node_trunk(endpoint) else ""
