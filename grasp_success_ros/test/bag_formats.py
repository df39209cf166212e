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
from grasp_success_ros.core.stamps import split_ns

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
            sec, nanosec = split_ns(t)
            log = Log(stamp=Time(sec=sec, nanosec=nanosec), level=20, name="talker",
                      msg=f"Publishing: 'Hello World: {i}'", file="talker.cpp",
                      function="operator()", line=41)
            w.write(rosout, t + 1000, ts.serialize_cdr(log, "rcl_interfaces/msg/Log"))
    return out


JAZZY_QOS = {"history": "keep_last", "depth": 10, "reliability": "reliable",
             "durability": "volatile", "deadline": {"sec": 9223372036, "nsec": 854775807},
             "lifespan": {"sec": 9223372036, "nsec": 854775807}, "liveliness": "automatic",
             "liveliness_lease_duration": {"sec": 9223372036, "nsec": 854775807},
             "avoid_ros_namespace_conventions": False}


def _edit_metadata(bag: Path, edit) -> Path:
    path = bag / "metadata.yaml"
    meta = yaml.safe_load(path.read_text())
    edit(meta["rosbag2_bagfile_information"])
    path.write_text(yaml.safe_dump(meta))
    return bag


def offer_other_qos(bag: Path) -> Path:
    """metadata.yaml states, for every topic, a QoS profile the storage file does not hold
    (as in several of rosbag2's own test bags)."""
    def edit(info: dict) -> None:
        for t in info["topics_with_message_count"]:
            t["topic_metadata"]["offered_qos_profiles"] = \
                [JAZZY_QOS] if info["version"] >= 9 else yaml.safe_dump([JAZZY_QOS])
    return _edit_metadata(bag, edit)


def overstate_count(bag: Path, topic: str, extra: int) -> Path:
    """metadata.yaml lists ``extra`` more messages on ``topic`` than the storage holds."""
    def edit(info: dict) -> None:
        for t in info["topics_with_message_count"]:
            if t["topic_metadata"]["name"] == topic:
                t["message_count"] += extra
        info["message_count"] += extra
    return _edit_metadata(bag, edit)


def short_form_types(bag: Path) -> Path:
    """A Humble-layout sqlite3 bag (no message definitions) whose types are named in the
    short form ``pkg/Type``, as older recorders wrote them (rosbag2's ``test_bag_for_seek``):
    in the storage's topics table and in metadata.yaml alike."""
    def short(msgtype: str) -> str:
        pkg, _, name = msgtype.split("/")
        return f"{pkg}/{name}"

    db = sqlite3.connect(next(bag.glob("*.db3")))
    for topic_id, msgtype in db.execute("SELECT id, type FROM topics").fetchall():
        db.execute("UPDATE topics SET type = ? WHERE id = ?", (short(msgtype), topic_id))
    db.commit()
    db.close()

    def edit(info: dict) -> None:
        for t in info["topics_with_message_count"]:
            t["topic_metadata"]["type"] = short(t["topic_metadata"]["type"])
    return _edit_metadata(bag, edit)


def split_session(out: Path, n_grasps: int, seed: int, storage: str = "sqlite3", **kw) -> Path:
    """A session split in two storage files, as ``ros2 bag record --max-bag-duration`` leaves
    it: one metadata.yaml listing both files in order, counts summed."""
    from grasp_success_ros.bags.writer import write_items
    from grasp_success_ros.data.synth import grasp_stream

    items = list(grasp_stream(seed, n_grasps, **kw))
    cut = next(i for i, it in enumerate(items) if it.kind == "event") + 1
    parts = [write_items(out.with_name(f"{out.name}_part{k}"), half, storage=storage).path
             for k, half in enumerate((items[:cut], items[cut:]))]
    infos = [yaml.safe_load((p / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
             for p in parts]
    out.mkdir(parents=True)
    names = [f"{out.name}_{k}.{'db3' if storage == 'sqlite3' else 'mcap'}" for k in (0, 1)]
    for part, name in zip(parts, names, strict=True):
        next(part.glob("*.db3" if storage == "sqlite3" else "*.mcap")).rename(out / name)
        shutil.rmtree(part)
    merged, last = infos
    merged["files"] = [{**info["files"][0], "path": name}
                       for info, name in zip(infos, names, strict=True)]
    merged["relative_file_paths"] = names
    merged["message_count"] += last["message_count"]
    merged["duration"]["nanoseconds"] = (last["starting_time"]["nanoseconds_since_epoch"]
                                         + last["duration"]["nanoseconds"]
                                         - merged["starting_time"]["nanoseconds_since_epoch"])
    for t, u in zip(merged["topics_with_message_count"], last["topics_with_message_count"],
                    strict=True):
        t["message_count"] += u["message_count"]
    (out / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": merged}))
    return out
