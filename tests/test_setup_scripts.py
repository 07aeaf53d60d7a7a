"""The README's test command sets up what the tests need on a fresh machine: the set-up
installs Debian's chromium and espeak-ng when they are missing (apt-get, sudo only when not
root, ``apt-get update`` when the first install fails), and the browser test fails rather
than skips when chromium is missing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "system-deps.sh"


def _stub(folder: Path, name: str, body: str) -> None:
    p = folder / name
    p.write_text(f"#!/bin/bash\n{body}\n")
    p.chmod(0o755)


def _run(tmp_path: Path, *, uid: int, have: tuple[str, ...] = (), fail_first_install: bool = False) -> list[str]:
    """system-deps.sh with PATH holding only stubs (apt-get and sudo log their calls)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "calls.log"
    _stub(bin_, "id", f'[ "$1" = "-u" ] && echo {uid}')
    _stub(bin_, "sudo", f'echo "sudo $*" >> {log}; "$@"')
    first = tmp_path / "first-install-failed"
    fail = (f'case " $* " in *" install "*) [ -e {first} ] || {{ : > {first}; exit 100; }};; esac'
            if fail_first_install else "")
    _stub(bin_, "apt-get", f'echo "apt-get $*" >> {log}\n{fail}\nexit 0')
    for tool in have:
        _stub(bin_, tool, "exit 0")
    bash = "/bin/bash"
    r = subprocess.run([bash, str(SCRIPT)], env={"PATH": str(bin_), "HOME": str(tmp_path)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    assert all("-o Acquire::Retries=5" in c for c in calls if "apt-get" in c), calls   # a cut download is retried
    return [c.replace("-o Acquire::Retries=5 ", "") for c in calls]


def test_setup_installs_chromium_and_espeak_ng_when_missing(tmp_path):
    calls = _run(tmp_path, uid=0)
    assert len(calls) == 1 and calls[0].startswith("apt-get install -y"), calls
    assert {"chromium", "espeak-ng"} <= set(calls[0].split()), calls


def test_setup_uses_sudo_only_when_not_root_and_updates_when_the_install_fails(tmp_path):
    calls = _run(tmp_path, uid=1000, have=("chromium",), fail_first_install=True)
    assert [c.split()[:3] for c in calls if c.startswith("apt-get")] == [
        ["apt-get", "install", "-y"], ["apt-get", "update"], ["apt-get", "install", "-y"]], calls
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert all("espeak-ng" in c and "chromium" not in c for c in installs), calls
    assert all(c.startswith("sudo ") for c in calls if not c.startswith("apt-get")), calls
    assert sum(c.startswith("sudo ") for c in calls) == 3, calls


def test_setup_does_nothing_when_both_are_installed(tmp_path):
    assert _run(tmp_path, uid=0, have=("chromium", "espeak-ng")) == []


def test_setup_sh_runs_the_system_deps_step():
    lines = [ln.strip() for ln in (REPO / "scripts" / "setup.sh").read_text().splitlines()]
    assert "bash scripts/system-deps.sh" in lines


def test_browser_test_fails_rather_than_skips_without_chromium(tmp_path):
    env = {**os.environ, "TALKREC_CHROMIUM": str(tmp_path / "no-chromium")}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/service/test_service_browser.py"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "skipped" not in out and "chromium not found" in out and "scripts/setup.sh" in out, out[-3000:]


def test_setup_retries_a_pip_step_that_fails_on_a_cut_connection(tmp_path):
    """CI once failed when a 55 MB wheel stopped at 37 MB six times: each pip step is re-run
    (up to 4 tries) with pip's own retries and timeout raised."""
    text = (REPO / "scripts" / "setup.sh").read_text()
    func = text[text.index("pip_install() {"):]
    func = func[:func.index("\n}\n") + 3]
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    tries = tmp_path / "tries"
    _stub(tmp_path / ".venv" / "bin", "python", f'echo "$*" >> {tries}; [ $(wc -l < {tries}) -ge 3 ]')
    script = f"sleep() {{ :; }}\n{func}\npip_install torch==2.13.0 && echo ok\n"
    r = subprocess.run(["/bin/bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "ok", r.stderr
    calls = tries.read_text().splitlines()
    assert len(calls) == 3 and all("--retries 10 --timeout 60 torch==2.13.0" in c for c in calls), calls
    assert r.stderr.count("failed (try") == 2
    _stub(tmp_path / ".venv" / "bin", "python", "exit 1")            # never succeeds: gives up after 4 tries
    r = subprocess.run(["/bin/bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and r.stderr.count("failed (try") == 4 and "ok" not in r.stdout
