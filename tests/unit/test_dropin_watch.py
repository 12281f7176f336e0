"""The drop-in directory watcher on a real directory with real inotify events."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from oomd.dropin_watch import DropInWatcher, list_drop_ins


@pytest.fixture
def dropins(tmp_path):
    d = tmp_path / "pyoomd.d"
    d.mkdir()
    return d


@pytest.fixture
def make_watcher():
    made = []

    def make(directory, **kw):
        logged: list[str] = []
        w = DropInWatcher(str(directory), log=lambda msg, priority=6: logged.append(msg), **kw)
        w.logged = logged
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def write(path: Path, text: str = '{"rulesets": []}') -> None:
    path.write_text(text)


def test_startup_adds_regular_non_dot_files_in_bytewise_order(dropins, make_watcher):
    for name in ["b.json", "B.json", "a.json", ".hidden.json", "é.json", "_x"]:
        write(dropins / name)
    (dropins / "subdir").mkdir()
    (dropins / "link.json").symlink_to(dropins / "a.json")
    w = make_watcher(dropins)
    assert w.poll() == [("add", n) for n in
                        ["B.json", "_x", "a.json", "b.json", "link.json", "é.json"]]
    assert w.logged[0] == "Adding drop in config=B.json"
    assert w.poll() == []


def test_empty_directory_gives_nothing(dropins, make_watcher):
    w = make_watcher(dropins)
    assert w.poll() == [] and w.armed and w.logged == []


def test_empty_touch_is_not_an_event(dropins, make_watcher):
    w = make_watcher(dropins)
    w.poll()
    (dropins / "new.json").touch()
    assert w.poll() == []


def test_written_file_is_added_once_per_poll(dropins, make_watcher):
    w = make_watcher(dropins)
    w.poll()
    with open(dropins / "big.json", "w", buffering=1) as f:
        for _ in range(50):
            f.write("x" * 10 + "\n")  # line-buffered: one write(), one IN_MODIFY per line
    assert w.poll() == [("add", "big.json")]


def test_rewrite_of_existing_file_is_an_add(dropins, make_watcher):
    write(dropins / "a.json")
    w = make_watcher(dropins)
    w.poll()
    write(dropins / "a.json", '{"rulesets": [{"name": "x"}]}')
    assert w.poll() == [("add", "a.json")]


def test_delete_is_a_remove(dropins, make_watcher):
    write(dropins / "a.json")
    w = make_watcher(dropins)
    w.poll()
    (dropins / "a.json").unlink()
    assert w.poll() == [("remove", "a.json")]
    assert w.logged[-1] == "Removing drop in config=a.json"


def test_moves_in_out_and_renames(dropins, make_watcher, tmp_path):
    outside = tmp_path / "staging.json"
    write(outside)
    write(dropins / "old.json")
    w = make_watcher(dropins)
    w.poll()
    os.rename(outside, dropins / "in.json")
    os.rename(dropins / "old.json", dropins / "new.json")
    os.rename(dropins / "in.json", tmp_path / "out.json")
    assert w.poll() == [("add", "in.json"), ("remove", "old.json"), ("add", "new.json"),
                        ("remove", "in.json")]


def test_atomic_write_through_dot_temp_file_adds_only_the_target(dropins, make_watcher):
    w = make_watcher(dropins)
    w.poll()
    write(dropins / ".rules.json.tmp")
    os.rename(dropins / ".rules.json.tmp", dropins / "rules.json")
    assert w.poll() == [("add", "rules.json")]


def test_directory_moved_in_is_not_a_drop_in(dropins, make_watcher, tmp_path):
    w = make_watcher(dropins)
    w.poll()
    (tmp_path / "adir").mkdir()
    os.rename(tmp_path / "adir", dropins / "adir")
    assert w.poll() == []


def test_missing_directory_is_logged_each_poll_then_picked_up(tmp_path, make_watcher):
    d = tmp_path / "later.d"
    w = make_watcher(str(d) + "/")  # one trailing slash is stripped
    assert w.poll() == [] and w.poll() == []
    assert w.logged == [f"Error: {d} is not a directory"] * 2
    assert not w.armed and w.fileno() == -1
    d.mkdir()
    write(d / "z.json")
    write(d / "a.json")
    assert w.poll() == [("add", "a.json"), ("add", "z.json")]
    assert w.armed


def test_deleted_directory_removes_then_rearms_when_recreated(dropins, make_watcher):
    write(dropins / "a.json")
    w = make_watcher(dropins)
    w.poll()
    shutil.rmtree(dropins)
    assert w.poll() == [("remove", "a.json")]
    assert not w.armed
    assert w.poll() == []
    assert w.logged[-1] == f"Error: {dropins} is not a directory"
    dropins.mkdir()
    write(dropins / "b.json")
    assert w.poll() == [("add", "b.json")]
    write(dropins / "b.json", "{}")
    assert w.poll() == [("add", "b.json")]  # the new watch delivers events


def test_moved_away_directory_is_replaced_by_the_new_ones_content(dropins, make_watcher, tmp_path):
    write(dropins / "a.json")
    write(dropins / "b.json")
    w = make_watcher(dropins)
    w.poll()
    os.rename(dropins, tmp_path / "retired.d")
    assert w.poll() == []  # move-self: torn down, nothing removed yet (as oomd)
    assert not w.armed
    dropins.mkdir()
    write(dropins / "b.json")
    write(dropins / "c.json")
    assert w.poll() == [("remove", "a.json"), ("add", "b.json"), ("add", "c.json")]
    write(tmp_path / "retired.d" / "a.json", "{}")
    assert w.poll() == []  # the old directory is no longer watched


def test_queue_overflow_rereads_the_directory(dropins, make_watcher):
    max_events = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if max_events > 70000:
        pytest.skip(f"max_queued_events={max_events} is too large to overflow quickly")
    write(dropins / "gone.json")
    w = make_watcher(dropins)
    w.poll()
    (dropins / "gone.json").unlink()
    fa = os.open(dropins / "a.json", os.O_WRONLY | os.O_CREAT, 0o644)
    fb = os.open(dropins / "b.json", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(max_events // 2 + 10):  # alternate so the kernel cannot merge them
            os.write(fa, b"x")
            os.write(fb, b"x")
    finally:
        os.close(fa)
        os.close(fb)
    ops = w.poll()
    assert f"inotify queue overflowed on {dropins}; re-reading it" in w.logged
    # Whatever came before, the last word on each file matches the directory.
    last = {name: op for op, name in ops}
    assert last == {"gone.json": "remove", "a.json": "add", "b.json": "add"}


def test_list_drop_ins_skips_dot_files_and_directories(dropins):
    write(dropins / ".x")
    write(dropins / "y")
    (dropins / "d").mkdir()
    assert list_drop_ins(str(dropins)) == ["y"]


def test_overflow_removes_file_added_and_deleted_in_the_same_poll(dropins, make_watcher):
    w = make_watcher(dropins)
    w.poll()
    write(dropins / "brief.json")
    ops = [("add", "brief.json")]
    os.unlink(dropins / "brief.json")
    w._reconcile(ops)  # as on overflow, before the delete event was read
    assert ops == [("add", "brief.json"), ("remove", "brief.json")]
