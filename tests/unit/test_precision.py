"""The dtype and compute type an engine chooses for `auto`, on the kinds of CPU it meets: the
flags come from /proc/cpuinfo texts of each kind, not from this machine."""

from __future__ import annotations

import pytest

from deployments.core.cpu_features import CpuFeatures, cpu_features, parse_cpuinfo
from deployments.core.precision import (
    cpu_compute_type,
    cpu_dtype,
    cuda_dtype,
    resolve_compute_type,
    resolve_dtype,
)

BASE = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx fma"
CPUS = {  # the flags line of each kind, trimmed to what matters
    "intel_amx": f"{BASE} avx2 avx512f avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile "
                 "amx_int8",
    "amd_avx512_bf16": f"{BASE} avx2 avx512f avx512_vnni avx512_bf16",
    "amd_avx2_only": f"{BASE} avx2",
    "no_avx2": BASE,
}


def cpu(kind: str, architecture: str = "x86_64") -> CpuFeatures:
    text = (f"processor\t: 0\nvendor_id\t: Genuine\nmodel name\t: a {kind} CPU\n"
            f"flags\t\t: {CPUS[kind]}\n\nprocessor\t: 1\nflags\t\t: {CPUS[kind]}\n")
    return parse_cpuinfo(text, architecture)


def test_cpuinfo_is_parsed_into_flags_and_a_model_name():
    amx = cpu("intel_amx")
    assert amx.is_x86 and amx.model_name == "a intel_amx CPU"
    assert amx.has("amx_bf16", "avx512_bf16") and not amx.has("neon")
    assert amx.notable() == ["amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512_vnni",
                             "avx512f", "avx_vnni", "avx2"]
    arm = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n", "aarch64")
    assert not arm.is_x86 and arm.has("asimd", "bf16")


def test_an_unreadable_cpuinfo_gives_a_cpu_with_no_flags(tmp_path):
    none = cpu_features(tmp_path / "missing")
    assert none.flags == frozenset() and cpu_dtype(none).value == "float32"


@pytest.mark.parametrize(("kind", "dtype", "named"), [
    ("intel_amx", "bfloat16", "amx_bf16 and avx512_bf16"),
    ("amd_avx512_bf16", "bfloat16", "avx512_bf16"),
    ("amd_avx2_only", "float32", "no avx512_bf16 or amx_bf16"),
    ("no_avx2", "float32", "no avx512_bf16 or amx_bf16"),
])
def test_bfloat16_is_chosen_only_with_avx512_bf16_or_amx(kind, dtype, named):
    choice = resolve_dtype("auto", cpu(kind))
    assert choice.value == dtype
    assert named in choice.reason and choice.reason.startswith("auto: ")
    assert str(choice) == f"{dtype} ({choice.reason})"


def test_bfloat16_instructions_of_another_architecture_do_not_count():
    arm = parse_cpuinfo("Features\t: fp asimd bf16\n", "aarch64")
    assert cpu_dtype(arm).value == "float32" and "not on aarch64" in cpu_dtype(arm).reason


@pytest.mark.parametrize("kind", list(CPUS))
def test_a_dtype_named_in_the_config_is_kept_on_every_cpu(kind):
    for dtype in ("float32", "bfloat16", "float16"):
        assert resolve_dtype(dtype, cpu(kind)).as_fields("dtype") == {
            "dtype": dtype, "dtype_reason": "set in the config"}


@pytest.mark.parametrize(("kind", "compute_type", "named"), [
    ("intel_amx", "int8", "avx2 and avx512_vnni and avx_vnni"),
    ("amd_avx512_bf16", "int8", "avx2 and avx512_vnni"),
    ("amd_avx2_only", "int8", "the CPU has avx2"),
    ("no_avx2", "float32", "no avx2"),
])
def test_whisper_runs_int8_on_x86_with_avx2(kind, compute_type, named):
    choice = resolve_compute_type("auto", "cpu", cpu(kind), {"float32", "int8", "int8_float32"})
    assert choice.value == compute_type and named in choice.reason


def test_whisper_falls_back_to_float32_where_int8_is_missing_or_not_x86():
    assert cpu_compute_type(cpu("intel_amx"), {"float32"}).value == "float32"
    arm = parse_cpuinfo("Features\t: fp asimd\n", "aarch64")
    assert "aarch64" in cpu_compute_type(arm).reason


def test_cuda_devices_keep_the_half_precision_types():
    assert resolve_compute_type("auto", "cuda", cpu("no_avx2")).value == "float16"
    assert resolve_compute_type("int8_float16", "cuda", cpu("no_avx2")).value == "int8_float16"
    assert cuda_dtype(True).value == "bfloat16" and cuda_dtype(False).value == "float32"
