"""oomd HEAD's configuration keys (reference §10): the ruleset keys ``cgroup`` and
``xattr_filter``, plugin arg ``ruleset_cgroup``, ``cgroup`` made optional, ``--compat``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from support import FakeClock, StubContext
from oomd import logs
from oomd.cli import UsageExit, main, parse_options
from oomd.compat import HEAD, V050, Compat, parse_mode
from oomd.config.compiler import compile_config
from oomd.config.parser import parse_string
from oomd.errors import ConfigError
from oomd.plugin import PluginConstructionContext
from oomd.rulesets import PerCgroupRuleset
from oomd.stats import Stats

DETECTOR = {"name": "pressure_above", "args": {"ruleset_cgroup": "/", "resource": "memory",
                                               "threshold": "50", "duration": "0"}}


def compile_text(config: dict, compat: Compat = V050):
    ctx = PluginConstructionContext(cgroup_fs="/sys/fs/cgroup", stats=Stats(), compat=compat)
    return compile_config(parse_string(json.dumps(config), "head.json"), ctx, FakeClock())


def ruleset(**kw):
    rs = {"name": "rs", "detectors": [["g", DETECTOR]],
          "actions": [{"name": "kill_by_pressure", "args": {"ruleset_cgroup": "*",
                                                            "resource": "memory"}}]}
    rs.update(kw)
    return {"rulesets": [rs]}


def rejection(config: dict, compat: Compat = V050) -> str:
    with pytest.raises(ConfigError) as e:
        compile_text(config, compat)
    return str(e.value)


# -- the ruleset keys ----------------------------------------------------------------------------


def test_ruleset_with_cgroup_key_compiles_to_a_per_cgroup_ruleset_in_both_modes():
    for compat in (V050, HEAD):
        engine = compile_text(ruleset(cgroup="work/*", xattr_filter="trusted.oomd"), compat)
        rs = engine.rulesets[0].ruleset
        assert isinstance(rs, PerCgroupRuleset)
        assert [tuple(p) for p in rs.patterns] == [("work", "*")]
        assert rs.xattr_filter == "trusted.oomd"


def test_ruleset_keys_are_string_coerced_and_dumped():
    root = parse_string(json.dumps(ruleset(cgroup="a/*,b", xattr_filter="user.x")), "h.json")
    assert (root.rulesets[0].cgroup, root.rulesets[0].xattr_filter) == ("a/*,b", "user.x")
    assert "  Cgroup=a/*,b\n  XattrFilter=user.x" in root.dump()
    assert rejection(ruleset(cgroup=["a"])) == (
        "head.json: at $.rulesets[0].cgroup: expected a string, number or bool, got an array")


@pytest.mark.parametrize("name, why", [
    ("oomd_example", "has no namespace prefix"),          # oomd HEAD's own doc example
    ("user.", "has no name after its namespace"),
    ("trusted." + "x" * 250, "more than 255"),
    ("os2.x", "has no namespace prefix"),
])
def test_xattr_filter_that_is_not_an_xattr_name_is_a_config_error(name, why):
    msg = rejection(ruleset(cgroup="work/*", xattr_filter=name))
    assert msg.startswith("head.json: at $.rulesets[0].xattr_filter: xattr name ")
    assert why in msg


def test_xattr_filter_without_cgroup_is_a_config_error():
    assert rejection(ruleset(xattr_filter="user.x")) == (
        'head.json: at $.rulesets[0].xattr_filter: xattr_filter needs the ruleset key "cgroup" '
        "(it filters the cgroups that get a copy of the ruleset)")


@pytest.mark.parametrize("pattern", ["work/..", "../x", "work/./a"])
def test_ruleset_cgroup_key_with_dot_components_is_a_config_error(pattern):
    msg = rejection(ruleset(cgroup=pattern))
    assert msg.startswith(f"head.json: at $.rulesets[0].cgroup: Ruleset cgroup {pattern!r}: ")
    assert "may not leave it" in msg


def test_ruleset_cgroup_key_without_any_pattern_is_a_config_error():
    assert rejection(ruleset(cgroup=",")) == (
        "head.json: at $.rulesets[0].cgroup: Ruleset cgroup ',' has no pattern")


# -- ruleset_cgroup ------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["..", "../sibling", "a/../../b", "./x"])
def test_ruleset_cgroup_arg_with_dot_components_is_rejected(pattern):
    bad = {"name": "exists", "args": {"ruleset_cgroup": pattern}}
    msg = rejection(ruleset(cgroup="work/*", detectors=[["g", bad]]))
    assert msg.startswith("head.json: at $.rulesets[0].detectors[0][1].args.ruleset_cgroup: "
                          'Plugin=exists failed to init() with code=1: Failed to parse argument '
                          '"ruleset_cgroup" of plugin "exists": pattern ')
    assert "may not leave it" in msg


def test_template_plugins_bind_ruleset_cgroup_under_the_ruleset_patterns():
    engine = compile_text(ruleset(cgroup="work/*,batch/x"))
    det = engine.rulesets[0].ruleset.detector_groups[0].detectors[0]
    assert str(det.cgroup) == "work/*,batch/x"
    kill = engine.rulesets[0].ruleset.actions[0]
    assert str(kill.cgroup) == "work/*/*,batch/x/*"


def test_ruleset_cgroup_outside_a_per_cgroup_ruleset_resolves_nothing_and_says_so():
    engine = compile_text({"rulesets": [{"name": "plain", "detectors": [["g", {
        "name": "exists", "args": {"ruleset_cgroup": "*", "negate": "true"}}]],
        "actions": [{"name": "continue"}]}]})
    det = engine.rulesets[0].ruleset.detector_groups[0].detectors[0]
    assert det.cgroup.patterns == ()
    ctx = StubContext()
    ctx.resolve = lambda patterns: np.empty(0, np.int32)
    with logs.capture() as lines:
        engine.tick(ctx)
    assert any("Trying to add empty cgroup set to context cache, is your plugin configured "
               "correctly?" in ln for ln in lines)


# -- cgroup optional -----------------------------------------------------------------------------


def plain(detector):
    return {"rulesets": [{"name": "r", "detectors": [["g", detector]],
                          "actions": [{"name": "continue"}]}]}


def test_cgroup_stays_required_in_0_5_0_mode_without_ruleset_cgroup():
    msg = rejection(plain({"name": "exists", "args": {}}))
    assert msg.endswith('Required arg "cgroup" missing in plugin "exists"')


def test_ruleset_cgroup_alone_is_enough_in_0_5_0_mode():
    compile_text(ruleset(cgroup="work/*", detectors=[["g", {"name": "exists",
                                                             "args": {"ruleset_cgroup": "*"}}]]))


class NoCgroups:
    """A context in which nothing resolves."""

    def resolve(self, patterns):
        return np.empty(0, np.int32)


def test_compat_head_needs_neither_and_warns_when_run():
    engine = compile_text(plain({"name": "exists", "args": {"negate": "true"}}), HEAD)
    det = engine.rulesets[0].ruleset.detector_groups[0].detectors[0]
    with logs.capture() as lines:
        ret = det.run(NoCgroups())
    assert ret == 0  # CONTINUE: nothing exists, negated
    assert len([ln for ln in lines if "Trying to add empty cgroup set" in ln]) == 1


def test_explicit_empty_cgroup_is_silent_in_0_5_0_mode_and_warned_in_head_mode():
    for compat, warned in ((V050, 0), (HEAD, 1)):
        engine = compile_text(plain({"name": "exists", "args": {"cgroup": ""}}), compat)
        det = engine.rulesets[0].ruleset.detector_groups[0].detectors[0]
        with logs.capture() as lines:
            det.run(NoCgroups())
        assert len([ln for ln in lines if "Trying to add empty cgroup set" in ln]) == warned


def test_prekill_hook_cgroup_is_optional_with_xattr_or_compat_head():
    hook = {"name": "dummy_prekill_hook", "args": {}}
    base = plain({"name": "continue"})
    assert rejection({**base, "prekill_hooks": [hook]}).endswith(
        'Required arg "cgroup" missing in plugin "dummy_prekill_hook"')
    compile_text({**base, "prekill_hooks": [hook]}, HEAD)
    compile_text({**base, "prekill_hooks": [{"name": "dummy_prekill_hook",
                                             "args": {"xattr": "user.oomd_hook"}}]})
    assert "xattr name 'oomd_hook' has no namespace prefix" in rejection(
        {**base, "prekill_hooks": [{"name": "dummy_prekill_hook", "args": {"xattr": "oomd_hook"}}]})


# -- --compat ------------------------------------------------------------------------------------


def test_compat_option_selects_the_mode():
    assert parse_options(["--compat", "head"]).compat == "head"
    assert parse_options(["--compat=0.5.0"]).compat == "0.5.0"
    assert parse_options([]).compat == "0.5.0"
    assert parse_mode("HEAD") == HEAD and parse_mode("0.5") == V050
    with pytest.raises(UsageExit) as e:
        parse_options(["--compat", "0.4"])
    assert e.value.code == 1
    assert e.value.message == "--compat: unknown compat mode '0.4' (one of: 0.5.0, head)"


def test_every_behaviour_flag_is_off_by_default_and_on_with_head():
    import dataclasses

    flags = [f.name for f in dataclasses.fields(Compat) if f.name != "mode"]
    assert not any(getattr(V050, f) for f in flags)
    assert all(getattr(HEAD, f) for f in flags)


def test_check_config_accepts_a_head_config_in_the_default_mode(tmp_path, capsys):
    cfg = ruleset(cgroup="workload.slice/workload-*.slice/*.service",
                  xattr_filter="trusted.oomd_example")
    cfg["rulesets"][0]["actions"][0]["args"].update(kernelkill="true", reap_memory="false",
                                                    log_kmemalloc_prekill="true")
    cfg["prekill_hooks"] = [{"name": "dummy_prekill_hook", "args": {"xattr": "user.hook"}}]
    path = tmp_path / "head.json"
    path.write_text(json.dumps(cfg))
    code = main(["--kmsg-override", str(tmp_path / "kmsg"), "-c", str(path)])
    assert code == 0, capsys.readouterr().err
    code = main(["--kmsg-override", str(tmp_path / "kmsg"), "--compat", "head", "-c", str(path)])
    assert code == 0
