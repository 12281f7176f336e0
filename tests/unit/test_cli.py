"""oomd's command line (reference §9): options, defaults, messages and exit codes."""

from __future__ import annotations

import fcntl
import json
import os

import pytest

from oomd import __version__
from oomd.cli import DEFAULT_CONFIG, main, parse_options
from oomd.daemon import cgroup_fs_valid

GOOD = {"rulesets": [{"name": "r", "detectors": [["g", {"name": "continue"}]],
                      "actions": [{"name": "continue"}]}]}


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD))
    bad = tmp_path / "bad.json"
    bad.write_text('{"rulesets": [{"name": "r", "detectors": [["g", {"name": "nope"}]], '
                   '"actions": [{"name": "continue"}]}]}')
    return {"good": str(good), "bad": str(bad), "kmsg": str(tmp_path / "kmsg"),
            "rt": str(tmp_path / "run"), "tmp": tmp_path}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_prints_to_stdout(capsys):
    assert run(capsys, "-v") == (0, f"v{__version__}\n", "")


def test_help_goes_to_stderr_and_exits_zero(capsys):
    code, out, err = run(capsys, "--help")
    assert code == 0 and out == ""
    assert err.startswith("usage: pyoomd [OPTION]...\n\noptional arguments:\n")
    for flag in ("--config, -C", "--interval, -i", "--cgroup-fs, -f", "--check-config, -c",
                 "--list-plugins, -l", "--drop-in-dir, -w", "--runtime-dir, -D", "--dump-stats, -d",
                 "--reset-stats, -r", "--device", "--ssd-coeffs", "--hdd-coeffs", "--kmsg-override",
                 "--dry-run"):
        assert f"  {flag} " in err


def test_list_plugins_names_every_registered_plugin(capsys):
    from oomd.plugin import REGISTRY

    code, out, err = run(capsys, "-l")
    assert code == 0
    lines = err.splitlines()
    assert lines[0] == "List of plugins pyoomd was compiled with:"
    assert sorted(line[1:] for line in lines[1:]) == sorted(REGISTRY)


def test_unknown_option_prints_usage_and_exits_one(capsys):
    code, out, err = run(capsys, "--bogus")
    assert code == 1
    assert "Unknown option or missing argument\nusage: pyoomd" in err


def test_missing_option_argument_exits_one(capsys):
    code, _, err = run(capsys, "-i")
    assert code == 1 and "Unknown option or missing argument" in err


def test_positional_arguments_are_refused(capsys):
    code, _, err = run(capsys, "--dry-run", "extra", "words")
    assert code == 1
    assert err.startswith('Non-option argument is not supported: "extra" "words" \nusage:')


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "nan", "inf"])
def test_interval_must_be_a_positive_number(capsys, value):
    code, _, err = run(capsys, "-i", value)
    assert (code, err) == (1, f"Interval not a >0 number: {value}\n")


def test_interval_accepts_fractions_of_a_second():
    assert parse_options(["-i", "0.25"]).interval == 0.25
    assert parse_options([]).interval == 5.0


def test_defaults_are_oomds():
    o = parse_options([])
    assert (o.config, o.runtime_dir, o.kmsg_path) == (DEFAULT_CONFIG, "/run/oomd", "/dev/kmsg")
    assert DEFAULT_CONFIG == "/etc/oomd.json"


def test_cgroup2_mount_is_read_from_proc_mounts(tmp_path):
    from oomd.fs import cgroup2_mount

    mounts = tmp_path / "mounts"
    mounts.write_text("tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    assert cgroup2_mount(str(mounts)) == "/sys/fs/cgroup/unified"
    assert cgroup2_mount(str(tmp_path / "missing")) is None


def test_cgroup_fs_defaults_to_the_cgroup2_mount_else_sys_fs_cgroup(monkeypatch):
    import oomd.cli as cli

    monkeypatch.setattr(cli, "cgroup2_mount", lambda: "/mnt/cg2")
    assert parse_options([]).cgroup_fs == "/mnt/cg2"
    assert parse_options(["-f", "/other"]).cgroup_fs == "/other"
    monkeypatch.setattr(cli, "cgroup2_mount", lambda: None)
    assert parse_options([]).cgroup_fs == "/sys/fs/cgroup"


def test_check_config_accepts_a_good_config(capsys, files):
    code, _, err = run(capsys, "--kmsg-override", files["kmsg"], "-c", files["good"])
    assert code == 0, err


def test_check_config_rejects_a_bad_config_with_path_and_reason(capsys, files):
    code, _, err = run(capsys, "--kmsg-override", files["kmsg"], "-c", files["bad"])
    assert code == 1
    assert (f"{files['bad']}: at $.rulesets[0].detectors[0][1].name: "
            "Could not locate plugin=nope in plugin registry") in err
    assert "Config is not valid" in err


def test_check_config_of_a_missing_file_exits_one(capsys, files):
    code, _, err = run(capsys, "--kmsg-override", files["kmsg"], "-c", "/nonexistent.json")
    assert code == 1 and "Could not open confg_file=/nonexistent.json" in err


def test_unwritable_kmsg_file_fails_before_anything_else(capsys, files):
    code, _, err = run(capsys, "--kmsg-override", "/nonexistent-dir/kmsg", "-c", files["good"])
    assert code == 1
    assert err.splitlines() == [
        "open: No such file or directory",
        "Unable to open outfile /nonexistent-dir/kmsg, not logging",
        "Logging failed to initialize. Try running with sudo",
    ]


def test_kmsg_override_file_is_created(capsys, files):
    run(capsys, "--kmsg-override", files["kmsg"], "-c", files["good"])
    assert os.path.exists(files["kmsg"])


def test_bad_device_is_refused(capsys):
    code, _, err = run(capsys, "--device", "4095:4095")
    assert code == 1 and err.startswith("Invalid devices: 4095:4095:")


def test_device_type_comes_from_sysfs_rotational(tmp_path):
    from oomd.cli import parse_devices

    for dev, rot in (("8:0", "1"), ("259:0", "0")):
        q = tmp_path / "dev" / "block" / dev / "queue"
        q.mkdir(parents=True)
        (q / "rotational").write_text(rot + "\n")
    assert parse_devices("8:0,259:0", sysfs=str(tmp_path)) == ((8, 0, True), (259, 0, False))


def test_coefficients_fill_missing_trailing_values_with_zero():
    o = parse_options(["--ssd-coeffs", "1,2.5", "--hdd-coeffs", "1e-3,2,3,4,5,6"])
    assert o.ssd_coeffs == (1.0, 2.5, 0.0, 0.0, 0.0, 0.0)
    assert o.hdd_coeffs == (1e-3, 2.0, 3.0, 4.0, 5.0, 6.0)


def test_unparsable_coefficients_are_refused(capsys):
    assert run(capsys, "--ssd-coeffs", "a,b") == (1, "", "Invalid SSD coefficients: stod\n")
    assert run(capsys, "--hdd-coeffs", "1,x") == (1, "", "Invalid HDD coefficients: stod\n")


def test_daemon_refuses_a_cgroup_fs_outside_the_cgroup2_mount(capsys, files):
    code, _, err = run(capsys, "--kmsg-override", files["kmsg"], "-D", files["rt"],
                       "-f", str(files["tmp"]), "-C", files["good"])
    assert code == 3 and f"{files['tmp']} is not a valid cgroup2 filesystem" in err


def test_cgroup_fs_check_is_textual_like_oomds():
    mount = "/sys/fs/cgroup/unified"
    assert cgroup_fs_valid("/sys/fs/cgroup/unified/../../../../tmp/tree", mount)
    assert cgroup_fs_valid("/sys/fs/cgroup/unified/", mount)
    assert not cgroup_fs_valid("/sys/fs/cgroup", mount)
    assert not cgroup_fs_valid("/sys/fs/cgroup/unified", None)


def test_daemon_with_a_bad_config_exits_three(capsys, files):
    from oomd.fs import cgroup2_mount

    if cgroup2_mount() is None:
        pytest.skip("no cgroup2 mount on this host: the daemon stops at the cgroup-fs check first")
    code, _, err = run(capsys, "--kmsg-override", files["kmsg"], "-D", files["rt"], "-C", files["bad"])
    assert code == 3 and "Config failed to compile" in err


def test_second_daemon_cannot_take_the_runtime_lock(capsys, files):
    os.makedirs(files["rt"])
    fd = os.open(os.path.join(files["rt"], "oomd.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, _, err = run(capsys, "--kmsg-override", files["kmsg"], "-D", files["rt"], "-C", files["good"])
    finally:
        os.close(fd)
    lock = os.path.join(files["rt"], "oomd.lock")
    assert code == 1
    assert f'Failed to acquire exclusive runtime lock="{lock}": Resource temporarily unavailable' in err


def test_daemon_imports_numpy_with_a_single_blas_thread(files):
    """An idle OOM killer keeps no BLAS thread pool; the operator's variables are restored for
    the commands the daemon starts."""
    import subprocess
    import sys

    probe = (
        "import ctypes, json, os, sys\n"
        "from oomd import cli\n"
        "assert 'numpy' not in sys.modules\n"
        "rc = cli.main(['-c', sys.argv[1]])\n"
        "threads = None\n"
        "libs = sorted({l.split()[-1] for l in open('/proc/self/maps')\n"
        "               if 'openblas' in l.lower() and l.split()[-1].startswith('/')})\n"
        "for lib in libs:\n"
        "    h = ctypes.CDLL(lib)\n"
        "    for sym in ('openblas_get_num_threads', 'openblas_get_num_threads64_',\n"
        "                'scipy_openblas_get_num_threads64_'):\n"
        "        if hasattr(h, sym):\n"
        "            threads = getattr(h, sym)()\n"
        "print(json.dumps({'rc': rc, 'numpy': 'numpy' in sys.modules, 'threads': threads,\n"
        "                  'openblas': os.environ.get('OPENBLAS_NUM_THREADS'),\n"
        "                  'omp': os.environ.get('OMP_NUM_THREADS')}))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["OMP_NUM_THREADS"] = "3"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root
    out = subprocess.run([sys.executable, "-c", probe, files["good"]], capture_output=True,
                         text=True, env=env, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0 and got["numpy"]
    assert got["openblas"] is None and got["omp"] == "3"
    if got["threads"] is None:
        pytest.skip("numpy here is not linked with OpenBLAS: no BLAS thread count to check")
    assert got["threads"] == 1
