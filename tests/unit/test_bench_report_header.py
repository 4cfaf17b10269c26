"""A run report's header says which CPU it ran on, with the flags that decide its speed, which
routes went to another server of the stack, and, loudly, when the tree was dirty."""

from __future__ import annotations

from bench.markdown import render
from bench.metrics import run_metrics
from bench.records import RequestRecord
from bench.report import build_report

CPU = {"cpu_model": "AMD EPYC 7R13 Processor",
       "cpu_flags": {"avx2": True, "avx512f": False, "avx512_bf16": False, "amx_bf16": False,
                     "amx_tile": False}}


def report(commit: str, dirty: list[str]) -> dict:
    records = [RequestRecord("chat", 100.0 + i, stream=True, end=1.0, status=200,
                             token_times=[0.1, 0.2], output_tokens=2) for i in range(4)]
    return build_report(
        name="r", command="python -m bench run ...",
        environment={"host": "h", "cpu_count": 2, "uptime_before": "u", "uptime_after": "u",
                     "git_commit": commit, "dirty_paths": dirty, **CPU},
        target={"url": "http://pool", "kind": "peers", "profile": None,
                "route_urls": {"/v1/chat/completions": "http://vllm"}},
        workload={"name": "chat"},
        load={"mode": "closed", "concurrency": 4, "rate": None, "burstiness": 1.0,
              "duration_s": 10.0, "requests": None, "warmup_s": 1.0},
        clients={"actors": 1, "nodes": ["127.0.0.1"], "start_at": 100.0},
        metrics=run_metrics(records, {}),
        server={"available": False, "targets": [], "series": [], "summary": {}},
        records=None)


def test_the_header_names_the_cpu_and_its_flags():
    text = render(report("abc1234", []))
    assert ("- CPU: AMD EPYC 7R13 Processor; avx2 yes, avx512f no, avx512_bf16 no, amx_bf16 no, "
            "amx_tile no; commit `abc1234`") in text
    assert "`/v1/chat/completions` to `http://vllm`" in text
    assert "DIRTY" not in text


def test_a_dirty_tree_is_said_at_the_top():
    text = render(report("abc1234-dirty", ["new_module.py"]))
    assert text.splitlines()[2].startswith("> **DIRTY TREE**")
    assert "`new_module.py`" in text
