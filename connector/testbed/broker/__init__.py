"""Embedded Apache Kafka (KRaft) for tests and the demo: jars from Maven Central, one local JVM.

`python -m connector.testbed.broker fetch` fills the jar cache (`make kafka`); `EmbeddedKafka`
starts a single-node broker on free loopback ports; `python -m connector.testbed.broker run` starts one in
the foreground.
"""

from connector.testbed.broker.fetch import FetchResult, fetch_jars, kafka_version, lib_dir, require_lib_dir
from connector.testbed.broker.launcher import BrokerState, EmbeddedKafka, create_topic

__all__ = [
    "BrokerState",
    "EmbeddedKafka",
    "FetchResult",
    "create_topic",
    "fetch_jars",
    "kafka_version",
    "lib_dir",
    "require_lib_dir",
]
