"""Bags laid out as ``ros2 bag record`` writes them, for reader tests.

The ros2/rosbag2 repository's own test bags (e.g. ``talker``) cannot be downloaded here, so
these helpers reproduce the layouts instead:

- Humble (rosbag2 0.15): ``metadata.yaml`` version 5 (``files`` list, QoS as a YAML string,
  no ``type_description_hash``/``ros_distro``/``custom_data``); sqlite3 storage with schema
  version 3 (``schema`` and ``metadata`` tables, ``topics.offered_qos_profiles``, no
  ``message_definitions`` table, so no embedded message definitions); mcap storage with
  ``ros2msg`` schemas.
- Jazzy and later (rosbag2 0.26+): metadata version 8 or 9, sqlite3 schema 4 (with
  ``message_definitions``), written by rosbags' own writer.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import yaml

from grasp_success_ros.bags.writer import write_session

HUMBLE_QOS = ("- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n  deadline:\n"
              "    sec: 0\n    nsec: 0\n  lifespan:\n    sec: 0\n    nsec: 0\n  liveliness: 1\n"
              "  liveliness_lease_duration:\n    sec: 0\n    nsec: 0\n"
              "  avoid_ros_namespace_conventions: false")


def _messages(src: Path):
    from rosbags.rosbag2 import Reader

    with Reader(src) as r:
        topics = [(c.id, c.topic, c.msgtype) for c in r.connections]
        msgs = [(c.id, t, bytes(raw)) for c, t, raw in r.messages()]
    return topics, msgs


def humble_metadata(name: str, storage: str, topics, msgs, qos: dict | None = None) -> dict:
    counts = {cid: 0 for cid, _, _ in topics}
    for cid, _, _ in msgs:
        counts[cid] += 1
    start = min(t for _, t, _ in msgs)
    duration = max(t for _, t, _ in msgs) - start
    fname = f"{name}_0.{'db3' if storage == 'sqlite3' else 'mcap'}"
    return {"rosbag2_bagfile_information": {
        "version": 5, "storage_identifier": storage,
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": len(msgs),
        "topics_with_message_count": [
            {"topic_metadata": {"name": topic, "type": msgtype, "serialization_format": "cdr",
                                "offered_qos_profiles": (qos or {}).get(topic, HUMBLE_QOS)},
             "message_count": counts[cid]} for cid, topic, msgtype in topics],
        "compression_format": "", "compression_mode": "",
        "relative_file_paths": [fname],
        "files": [{"path": fname, "starting_time": {"nanoseconds_since_epoch": start},
                   "duration": {"nanoseconds": duration}, "message_count": len(msgs)}],
    }}


def humble_sqlite3(src: Path, out: Path) -> Path:
    """Rewrite a bag as Humble's sqlite3 plugin writes it (schema 3, metadata v5)."""
    topics, msgs = _messages(src)
    out.mkdir(parents=True)
    db = sqlite3.connect(out / f"{out.name}_0.db3")
    db.executescript("""
        CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
        INSERT INTO schema VALUES (3, 'humble');
        CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,
                              metadata TEXT NOT NULL);
        CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                            serialization_format TEXT NOT NULL,
                            offered_qos_profiles TEXT NOT NULL);
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
                              timestamp INTEGER NOT NULL, data BLOB NOT NULL);
        CREATE INDEX timestamp_idx ON messages (timestamp ASC);
    """)
    db.executemany("INSERT INTO topics VALUES (?, ?, ?, 'cdr', ?)",
                   [(cid, topic, msgtype, HUMBLE_QOS) for cid, topic, msgtype in topics])
    db.executemany("INSERT INTO messages(topic_id, timestamp, data) VALUES (?, ?, ?)", msgs)
    meta = humble_metadata(out.name, "sqlite3", topics, msgs)
    db.execute("INSERT INTO metadata(metadata_version, metadata) VALUES (5, ?)",
               (yaml.safe_dump(meta),))
    db.commit()
    db.close()
    (out / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return out


def humble_mcap(src: Path, out: Path) -> Path:
    """An mcap bag (ros2msg schemas, QoS strings in channel metadata) with Humble's v5
    metadata.yaml."""
    topics, msgs = _messages(src)
    # the channels in the mcap file carry the QoS string too; metadata.yaml must agree
    info = yaml.safe_load((src / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    qos = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
           for t in info["topics_with_message_count"]}
    tmp = out.with_name(out.name + "_tmp")
    shutil.copytree(src, tmp)
    out.mkdir(parents=True)
    (next(tmp.glob("*.mcap"))).rename(out / f"{out.name}_0.mcap")
    shutil.rmtree(tmp)
    (out / "metadata.yaml").write_text(yaml.safe_dump(humble_metadata(out.name, "mcap",
                                                                      topics, msgs, qos)))
    return out


def session(out: Path, layout: str, **kw) -> Path:
    """A synthetic session in one of: humble-sqlite3, humble-mcap, jazzy-sqlite3 (v8),
    jazzy-mcap (v8), sqlite3 (v9), mcap (v9)."""
    distro, _, storage = layout.rpartition("-")
    if distro == "humble":
        src = out.with_name(out.name + "_src")
        write_session(src, storage=storage, version=8, **kw)
        made = (humble_sqlite3 if storage == "sqlite3" else humble_mcap)(src, out)
        shutil.rmtree(src)
        return made
    write_session(out, storage=storage, version=8 if distro == "jazzy" else 9, **kw)
    return out


def talker_bag(out: Path, storage: str = "sqlite3") -> Path:
    """Like rosbag2's ``talker`` test bag: /topic (std_msgs/String) and /rosout only."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    String = ts.types["std_msgs/msg/String"]
    Log = ts.types["rcl_interfaces/msg/Log"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(out, version=8, storage_plugin=plugin) as w:
        topic = w.add_connection("/topic", "std_msgs/msg/String", typestore=ts)
        rosout = w.add_connection("/rosout", "rcl_interfaces/msg/Log", typestore=ts)
        for i in range(10):
            t = 1585866235112411371 + i * 500_000_000
            w.write(topic, t, ts.serialize_cdr(String(data=f"Hello World: {i}"),
                                               "std_msgs/msg/String"))
            log = Log(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), level=20, name="talker",
                      msg=f"Publishing: 'Hello World: {i}'", file="talker.cpp",
                      function="operator()", line=41)
            w.write(rosout, t + 1000, ts.serialize_cdr(log, "rcl_interfaces/msg/Log"))
    return out
