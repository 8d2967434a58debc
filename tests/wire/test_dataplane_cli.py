"""sekisho-dataplane refuses bad configurations with file, line and reason,
and exits 2, before touching the wire."""
import os
import subprocess

import pytest

from harness import DATAPLANE

BASE = """dataplane = {{
  eal = [ "--no-huge", "-m", "128", "--no-pci", "--file-prefix", "skcli-{tag}", "--log-level", "lib.eal:error"{eal_extra} ];
  ports = ( {{ name = "outside"; device = "net_af_packet0,iface={if_a}"; }},
            {{ name = "inside";  device = "net_af_packet1,iface=lo"; }} );
  bridges = ( [ "outside", "inside" ] );
  workers = {workers};
}};
"""


def run(tmp_path, text, *extra):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    r = subprocess.run([DATAPLANE, "-c", str(conf)] + list(extra), capture_output=True, text=True, timeout=60)
    return str(conf), r


def test_missing_file(tmp_path):
    r = subprocess.run([DATAPLANE, "-c", str(tmp_path / "none.conf")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "none.conf:0: cannot read the configuration file" in r.stderr


def test_syntax_error(tmp_path):
    conf, r = run(tmp_path, "dataplane = { workers = ; };\n")
    assert r.returncode == 2
    assert conf + ":1: syntax error" in r.stderr


def test_unknown_key(tmp_path):
    conf, r = run(tmp_path, BASE.format(tag="k", eal_extra="", if_a="lo", workers="1 ; burts = 4"))
    assert r.returncode == 2
    assert conf + ":6: unknown key 'dataplane.burts'" in r.stderr


def test_port_that_does_not_exist(tmp_path):
    conf, r = run(tmp_path, BASE.format(tag="p", eal_extra="", if_a="nosuchif0", workers=1))
    assert r.returncode == 2
    assert conf + ":3: port 'outside': interface 'nosuchif0' does not exist" in r.stderr


def test_more_workers_than_cpus(tmp_path):
    conf, r = run(tmp_path, BASE.format(tag="w", eal_extra="", if_a="lo", workers=os.cpu_count() + 1))
    assert r.returncode == 2
    assert conf + ":6: workers = %d: this machine gives only" % (os.cpu_count() + 1) in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="EAL with net_af_packet needs root")
def test_lcores_the_eal_cannot_give(tmp_path):
    conf, r = run(tmp_path, BASE.format(tag="l", eal_extra=', "-l", "0"', if_a="lo", workers=1))
    assert r.returncode == 2, r.stdout + r.stderr
    assert conf + ":6: workers = 1 needs 2 lcores; EAL gave 1" in r.stderr


def test_check_mode_accepts_the_shipped_config():
    src = os.environ.get("SEKISHO_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
    r = subprocess.run([DATAPLANE, "--check", "-c", os.path.join(src, "appliance", "sekisho.conf")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "2 ports, 1 bridges, 1 workers" in r.stdout
