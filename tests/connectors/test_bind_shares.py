"""An SMPP connector's binds, receivers and tps are cluster-wide totals, shared out over
the live nodes (SPEC §9, connectors/registry.py)."""

from smsgate.connectors.registry import node_share
from smsgate.connectors.settings import settings_for
from smsgate.core.models import Connector

NODES = ["a", "b", "c"]


def smpp(**config) -> Connector:
    return Connector("up", "smpp", {"host": "h", "port": 2775, "system_id": "s",
                                    "password": "p", **config})


def shares(row: Connector, key: str) -> list:
    return [node_share(row, NODES, node).config.get(key) for node in NODES]


def test_binds_spread_evenly_the_first_nodes_taking_the_remainder():
    assert shares(smpp(binds=4), "binds") == [2, 1, 1]
    assert shares(smpp(binds=6), "binds") == [2, 2, 2]


def test_every_node_keeps_one_sending_bind_but_receivers_may_be_none():
    row = smpp(binds=2, mode="tx+rx", rx_binds=1)
    assert shares(row, "binds") == [1, 1, 1]
    assert shares(row, "rx_binds") == [1, 0, 0]
    for node in NODES:  # a share is a valid connector of its own
        settings_for("smpp", node_share(row, NODES, node).config)


def test_tps_follows_the_sending_share():
    assert shares(smpp(binds=4, tps=100), "tps") == [50, 25, 25]
    assert shares(smpp(binds=4), "tps") == [None, None, None]  # no limit stays none


def test_one_node_and_other_types_are_left_as_configured():
    row = smpp(binds=4, tps=100)
    assert node_share(row, ["a"], "a") is row
    simulator = Connector("sim", "simulator", {})
    assert node_share(simulator, NODES, "b") is simulator
