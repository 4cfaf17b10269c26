"""What a report records of where it ran: the CPU and its flags, and whether the tree was
dirty (untracked files included; gitignored files and the runs' own outputs not)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.environment import cpu_info, cpu_line, dirty_line, dirty_paths, git_commit

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8
"""
EPYC = """processor\t: 0
model name\t: AMD EPYC 7R13 Processor
flags\t\t: fpu sse sse2 avx avx2 fma
"""


def test_cpu_flags_are_read_from_cpuinfo():
    xeon = cpu_info(XEON)
    assert xeon["cpu_model"] == "Intel(R) Xeon(R) Platinum 8488C"
    assert xeon["cpu_flags"] == {"avx2": True, "avx512f": True, "avx512_bf16": True,
                                 "amx_bf16": True, "amx_tile": True}
    epyc = cpu_info(EPYC)
    assert epyc["cpu_model"] == "AMD EPYC 7R13 Processor"
    assert epyc["cpu_flags"] == {"avx2": True, "avx512f": False, "avx512_bf16": False,
                                 "amx_bf16": False, "amx_tile": False}
    assert cpu_line(epyc) == ("AMD EPYC 7R13 Processor; avx2 yes, avx512f no, avx512_bf16 no, "
                              "amx_bf16 no, amx_tile no")


def test_cpuinfo_without_a_model_name_or_flags_says_so():
    unknown = cpu_info("processor\t: 0\n")
    assert unknown["cpu_model"] is None
    assert not any(unknown["cpu_flags"].values())
    assert cpu_line({}) == "unknown CPU; flags unknown"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _committed_repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "c")
    return tmp_path


def test_an_untracked_file_makes_the_tree_dirty(tmp_path):
    repo = _committed_repo(tmp_path)
    assert dirty_paths(repo) == []
    assert not git_commit(repo).endswith("-dirty")
    (repo / "new_module.py").write_text("y = 2\n")
    assert dirty_paths(repo) == ["new_module.py"]
    assert git_commit(repo).endswith("-dirty")


def test_gitignored_files_and_the_runs_outputs_leave_it_clean(tmp_path):
    repo = _committed_repo(tmp_path)
    (repo / "ignored").mkdir()
    (repo / "ignored" / "cache.bin").write_text("x")
    (repo / "bench" / "results" / "r.json").write_text('{"new": 1}')
    (repo / "bench" / "results" / "another.json").write_text("{}")
    assert dirty_paths(repo) == []
    (repo / "code.py").write_text("x = 2\n")
    assert dirty_paths(repo) == ["code.py"]


def test_a_dirty_tree_is_flagged_in_the_header_with_its_paths():
    assert dirty_line({"git_commit": "abc1234"}) is None
    line = dirty_line({"git_commit": "abc1234-dirty", "dirty_paths": ["a.py", "b.py"]})
    assert line.startswith("**DIRTY TREE**")
    assert "`a.py`, `b.py`" in line
