"""The load benchmark reads the services' own log lines back (bench/load.py): the engine's
write units that held the writer over 250 ms and the agents' journal compactions, each placed
in its window by its time. Lines made here by the services' formatter from the messages the
services log (their constants), so a change of either message breaks this test."""

from __future__ import annotations

import logging
import time

from bench.load import COMPACTED, SLOW_UNIT, logged
from engine_service.service_layer.unit_of_work import SLOW_WRITE_MESSAGE
from service_common.logs import TextFormatter
from vdsm_agent.adapters.journal import COMPACTED_MESSAGE


def line(created: float, name: str, level: int, msg: str, *args: object) -> str:
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    return TextFormatter().format(record)


def test_slow_write_units_and_compactions_are_read_back_with_their_time() -> None:
    began = float(int(time.time()) - 100)  # whole: the lines keep milliseconds
    lines = [
        line(
            began - 5,
            "engine_service",
            logging.WARNING,
            SLOW_WRITE_MESSAGE,
            900.0,
            "x.py:1 (f)",
            "client",
        ),
        line(
            began + 12.5,
            "engine_service",
            logging.WARNING,
            SLOW_WRITE_MESSAGE,
            2460.4,
            "engine_service/service_layer/lifecycle.py:162 (_insert_placeholders)",
            "client",
        ),
        line(
            began + 61.25,
            "engine_service",
            logging.WARNING,
            SLOW_WRITE_MESSAGE,
            310.0,
            "a.py:9 (g)",
            "background",
        ),
        line(began + 30, "engine_service", logging.INFO, "command %s accepted", "c"),
    ]
    found = logged(lines, SLOW_UNIT, began)
    assert [(round(at, 2), m[1], m[2], m[3]) for at, m in found] == [
        (
            12.5,
            "2460",
            "engine_service/service_layer/lifecycle.py:162 (_insert_placeholders)",
            "client",
        ),
        (61.25, "310", "a.py:9 (g)", "background"),
    ]
    compaction = line(
        began + 3.25,
        "vdsm_agent.adapters.journal",
        logging.INFO,
        COMPACTED_MESSAGE,
        "/var/lib/vdsm/tasks/journal",
        4_300_000,
        61_000,
        120,
        37.2,
    )
    ((at, match),) = logged([compaction, "not a log line"], COMPACTED, began)
    assert at == 3.25 and (match[1], match[2], match[3]) == ("4300000", "61000", "37")
